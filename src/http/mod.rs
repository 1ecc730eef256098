//! The HTTP face of Ferry: one `router(state)` that serves the page, its
//! assets, the server functions and the API. Handlers here are thin.

mod download;
pub mod error;
mod events;
mod form;
pub mod guard;
mod health;
pub mod limits;
mod serve;
pub mod session;
pub mod tus;
mod ws;

pub use serve::{serve, ServeOptions};

use crate::app::{shell, App};
use crate::state::AppState;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

/// Builds the whole application: page routes, server functions, API routes
/// and static assets. Tests drive it with `tower::ServiceExt::oneshot`,
/// `main` serves it on a socket.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let mut app = Router::new()
        .merge(tus::routes())
        .route("/files/{id}/ws", get(ws::upgrade))
        .route("/events", get(events::stream))
        .route("/events/poll", get(events::poll))
        .route(
            "/upload/form",
            axum::routing::post(form::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/signin", get(session::signin_page).post(session::signin))
        .leptos_routes(&state, routes, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::whole_api_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::identify,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::same_site_only,
        ));
    if let Some(cors) = cors(&state.config.cors_origin) {
        app = app.layer(cors);
    }
    app.route("/healthz", get(health::healthz))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::rate_limit,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Cross-origin access for the configured origins: preflights answered, the
/// tus request headers allowed and its response headers exposed.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
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
                        "tus-resumable",
                        "upload-length",
                        "upload-defer-length",
                        "upload-offset",
                        "upload-metadata",
                        "upload-checksum",
                        "upload-concat",
                        "x-http-method-override",
                        "x-requested-with",
                    ]))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(names(&[
                "location",
                "upload-offset",
                "upload-length",
                "upload-defer-length",
                "upload-metadata",
                "upload-expires",
                "upload-concat",
                "tus-resumable",
                "tus-version",
                "tus-extension",
                "tus-max-size",
                "tus-checksum-algorithm",
            ]))
            .max_age(std::time::Duration::from_secs(86400)),
    )
}
