//! The HTTP face of Ferry (server only): one `router(state)` that serves
//! the page, its assets, the server functions and the API, shaped as
//! sub-routers whose layers are their policy. Handlers here are thin: they
//! parse (`headers`), call `UploadService`, and map the answer (`error`).
//!
//! What it must not know: the rules of uploads (offsets, lengths, quotas,
//! ownership of parts, expiry: the core decides), or how bytes and records
//! are stored.

mod admin;
mod download;
pub mod embed_token;
pub mod error;
mod events;
mod files;
mod form;
pub mod guard;
pub mod headers;
mod health;
mod ietf;
pub mod metrics;
mod pages;
mod serve;
pub mod session;
mod tus;
mod ws;

pub use serve::{serve, ServeOptions};

use crate::app::{shell, App};
use crate::core::BodyStream;
use crate::protocol::{self, header as tus_header};
use crate::server::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::TryStreamExt;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

/// Builds the whole application: page routes, server functions, API routes
/// and static assets. Tests drive it with `tower::ServiceExt::oneshot`,
/// `main` serves it on a socket.
///
/// Its shape is its policy, one sub-router per kind of client with the
/// layers that kind needs:
/// - `/healthz`: rate limit only (no session, no token, no CORS);
/// - `admin`: the operator's routes, behind the access token as a bearer
///   token only;
/// - `open`: the sign-in page, the icon and the code every page loads
///   (`/embed.js`, `/pkg/…`), which need no token;
/// - `signed_in`: everything else, behind the access token (or an embed
///   token) when one is set; inside it, the server functions, WebSocket
///   uploads and the form upload are guarded against other sites (`api`,
///   `websocket`, `form`).
pub fn router(state: AppState) -> Router {
    let mut site = Router::new().merge(signed_in(&state)).merge(open(&state));
    if let Some(cors) = cors(&state.config.cors_origin) {
        site = site.layer(cors);
    }
    if state.config.metrics_addr.is_none() {
        // Outside the uploader's session and token, like /healthz; with
        // --metrics-addr it is served there instead.
        site = site.route("/metrics", get(metrics::metrics));
    }
    site.merge(admin::routes(&state))
        .route("/healthz", get(health::healthz))
        .layer(from_fn_with_state(state.clone(), metrics::count))
        .layer(from_fn_with_state(state.clone(), guard::rate_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// What needs no access token: signing in, the page's icon, and the code
/// of the page and of the embeddable uploader (`/embed.js`, `/pkg/…`,
/// and `/hash-worker.js`, which hashes large files beside the page),
/// which a host page's `<script>` loads without credentials and which is
/// the same for everyone.
fn open(state: &AppState) -> Router<AppState> {
    // Sent gzipped to browsers that take it (scripts/site.sh writes the
    // .gz beside each). Their names never change: browsers keep them and
    // ask whether they did (Last-Modified), so each is downloaded once per
    // build.
    let site = std::path::Path::new(&*state.leptos_options.site_root);
    let code = Router::new()
        .route_service(
            "/embed.js",
            ServeFile::new(site.join("embed.js")).precompressed_gzip(),
        )
        .route_service(
            "/hash-worker.js",
            ServeFile::new(site.join("hash-worker.js")).precompressed_gzip(),
        )
        .nest_service("/pkg", ServeDir::new(site.join("pkg")).precompressed_gzip())
        .layer(axum::middleware::map_response(revalidate));
    Router::new()
        .route("/signin", get(session::signin_page).post(session::signin))
        .route_layer(from_fn_with_state(state.clone(), guard::same_site_changes))
        .route(
            "/favicon.svg",
            get(leptos_axum::file_and_error_handler::<AppState, _>(shell)),
        )
        .merge(code)
        .layer(from_fn_with_state(state.clone(), session::welcome))
}

async fn revalidate(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    resp
}

/// What needs the access token (when one is set): the tus API, live events,
/// uploads by form and WebSocket, the server functions, the page and its
/// assets. Every request gets its `Owner` here.
fn signed_in(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(files::routes())
        .merge(websocket(state))
        .route(protocol::EVENTS, get(events::stream))
        .route(protocol::EVENTS_POLL, get(events::poll))
        .merge(form(state))
        .merge(api(state))
        .merge(pages(state))
        // The site's files (the WebAssembly bundle, styles, icons), and the
        // app's own not-found page for anything else.
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(from_fn_with_state(state.clone(), session::identify))
}

/// Uploads over a WebSocket. A browser opens one from any page, with the
/// session's cookie and no CORS check: pages of other sites are refused.
fn websocket(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(&format!("{}/{{id}}/ws", protocol::FILES), get(ws::upgrade))
        .route_layer(from_fn_with_state(state.clone(), guard::same_site_always))
}

/// The form upload that works without JavaScript: its body is the upload,
/// so no body limit; other sites may not post to it.
fn form(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            protocol::FORM_UPLOAD,
            post(form::upload).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(from_fn_with_state(state.clone(), guard::same_site_changes))
}

/// The server functions (`api.rs`): bodies read whole and bounded, a bounded
/// number running at once, and no calls from other sites.
fn api(state: &AppState) -> Router<AppState> {
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    Router::new()
        .route(
            "/api/{*name}",
            any(move |req: Request| {
                leptos_axum::handle_server_fns_with_context(context.clone(), req)
            }),
        )
        .route_layer(from_fn_with_state(state.clone(), guard::whole_api_body))
        .route_layer(from_fn_with_state(state.clone(), guard::same_site_always))
}

/// The pages of the Leptos app, rendered on the server.
fn pages(state: &AppState) -> Router<AppState> {
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let options = state.leptos_options.clone();
    let render =
        leptos_axum::render_app_async_with_context(context, move || shell(options.clone()));
    Router::new().leptos_routes_with_handler(generate_route_list(App), get(render))
}

/// A request body as the core reads it; a body that sent nothing for too
/// long (the connection's idle timeout) ends with `TimedOut`.
pub(crate) fn body_stream(body: Body) -> BodyStream {
    Box::pin(body.into_data_stream().map_err(
        |e| match e.into_inner().downcast::<std::io::Error>() {
            Ok(io) => *io,
            Err(other) => std::io::Error::other(other),
        },
    ))
}

/// `body` without its first `n` bytes (read and let go); a body that ends
/// before them ends with an error, as one cut short does.
pub(crate) fn skip_bytes(body: BodyStream, n: u64) -> BodyStream {
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    if n == 0 {
        return body;
    }
    let left = Arc::new(AtomicU64::new(n));
    let at_end = left.clone();
    let skipped = body.map_ok(move |mut bytes| {
        let skip = left.load(Ordering::Relaxed).min(bytes.len() as u64);
        left.fetch_sub(skip, Ordering::Relaxed);
        bytes.split_off(skip as usize)
    });
    let short = futures_util::stream::once(async move {
        (at_end.load(Ordering::Relaxed) > 0).then(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the body ended before the bytes the upload has",
            ))
        })
    })
    .filter_map(|end| async move { end });
    Box::pin(skipped.chain(short))
}

/// Cross-origin access for the configured origins: preflights answered, the
/// tus request headers allowed and its response headers exposed.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    // Named origins may send the browser's credentials (the session
    // cookie of an embedded uploader); `*` may not, and CORS forbids it.
    let any = origins.iter().any(|o| o == "*");
    let allow = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|n| HeaderName::from_static(n))
            .collect::<Vec<_>>()
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(
                [header::AUTHORIZATION, header::CONTENT_TYPE]
                    .into_iter()
                    .chain(names(&[
                        tus_header::TUS_RESUMABLE,
                        tus_header::UPLOAD_LENGTH,
                        tus_header::UPLOAD_DEFER_LENGTH,
                        tus_header::UPLOAD_OFFSET,
                        tus_header::UPLOAD_METADATA,
                        tus_header::UPLOAD_CHECKSUM,
                        tus_header::UPLOAD_CONCAT,
                        tus_header::METHOD_OVERRIDE,
                        tus_header::REQUESTED_WITH,
                        tus_header::IDEMPOTENCY_KEY,
                        protocol::ietf::INTEROP_VERSION,
                        protocol::ietf::UPLOAD_COMPLETE,
                        protocol::ietf::UPLOAD_INCOMPLETE,
                        "content-disposition",
                        "content-digest",
                        "repr-digest",
                        "want-repr-digest",
                    ]))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(names(&[
                "location",
                tus_header::UPLOAD_OFFSET,
                tus_header::UPLOAD_LENGTH,
                tus_header::UPLOAD_DEFER_LENGTH,
                tus_header::UPLOAD_METADATA,
                tus_header::UPLOAD_EXPIRES,
                tus_header::UPLOAD_CONCAT,
                tus_header::TUS_RESUMABLE,
                tus_header::TUS_VERSION,
                tus_header::TUS_EXTENSION,
                tus_header::TUS_MAX_SIZE,
                tus_header::TUS_CHECKSUM_ALGORITHM,
                protocol::ietf::INTEROP_VERSION,
                protocol::ietf::UPLOAD_COMPLETE,
                protocol::ietf::UPLOAD_INCOMPLETE,
                protocol::ietf::UPLOAD_LIMIT,
                "repr-digest",
            ]))
            .allow_credentials(!any)
            .max_age(std::time::Duration::from_secs(86400)),
    )
}
