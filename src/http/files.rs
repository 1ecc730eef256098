//! `/files`: which protocol a request speaks, and what every protocol
//! shares. A request with `Tus-Resumable` is tus 1.0 (`http::tus`); one
//! with `Upload-Draft-Interop-Version` and no `Tus-Resumable` is the IETF
//! draft (`http::ietf`); plain GETs are downloads. The same `UploadService`
//! answers all three, so an upload started with one can be inspected or
//! finished with another.
//!
//! What it must not know: the rules of either protocol.

use super::error::ApiError;
use super::headers::{check_version, effective_method, set};
use super::{download, ietf, tus};
use crate::core::error::{Error, ErrorCode};
use crate::core::{ChecksumAlgorithm, Owner, UploadId};
use crate::protocol::header;
use crate::protocol::{FILES, TUS_EXTENSIONS, TUS_VERSION};
use crate::server::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};

/// The routes under `/files`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(FILES, any(collection))
        .route(&format!("{FILES}/"), any(collection))
        .route(&format!("{FILES}/{{id}}"), any(resource))
}

type Result<T> = std::result::Result<T, ApiError>;

fn unsupported_version_response(err: ApiError) -> Response {
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert(header::TUS_VERSION, HeaderValue::from_static(TUS_VERSION));
    resp
}

fn parse_id(id: &str) -> Result<UploadId> {
    UploadId::parse(id).ok_or_else(|| Error::not_found().into())
}

fn with_tus(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    resp
}

/// What the server supports, for both protocols: tus's `Tus-*` headers and
/// the draft's `Upload-Limit` and `Accept-Patch`.
fn options(state: &AppState) -> Response {
    // 200 rather than 204: some clients treat only 200 as success here.
    let mut resp = StatusCode::OK.into_response();
    ietf::announce(state, &mut resp);
    set(&mut resp, header::TUS_VERSION, TUS_VERSION);
    set(&mut resp, header::TUS_EXTENSION, TUS_EXTENSIONS);
    set(
        &mut resp,
        header::TUS_MAX_SIZE,
        state.uploads.config().max_size,
    );
    set(
        &mut resp,
        header::TUS_CHECKSUM_ALGORITHM,
        ChecksumAlgorithm::ALL,
    );
    resp
}

/// `/files`: OPTIONS and POST (creation).
async fn collection(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    req: Request,
) -> Response {
    let method = match effective_method(&req) {
        Ok(m) => m,
        Err(e) => return ApiError(e).into_response(),
    };
    if method == Method::OPTIONS {
        return options(&state);
    }
    if let Some(version) = ietf::version_of(req.headers()) {
        return ietf::collection(&state, owner, version, method, req).await;
    }
    if let Err(e) = check_version(req.headers()) {
        return unsupported_version_response(e.into());
    }
    let result = match method {
        Method::POST => tus::create::create(&state, owner, req).await,
        _ => Err(method_not_allowed("OPTIONS, POST")),
    };
    with_tus(result.unwrap_or_else(IntoResponse::into_response))
}

/// `/files/{id}`: OPTIONS, HEAD, PATCH, DELETE and GET (download).
async fn resource(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let method = match effective_method(&req) {
        Ok(m) => m,
        Err(e) => return ApiError(e).into_response(),
    };
    if method == Method::OPTIONS {
        return options(&state);
    }
    if let Some(version) = ietf::version_of(req.headers()) {
        return ietf::resource(&state, &id, version, method, req).await;
    }
    if method != Method::GET {
        if let Err(e) = check_version(req.headers()) {
            return unsupported_version_response(e.into());
        }
    }
    let result = match parse_id(&id) {
        Err(e) => Err(e),
        Ok(id) => match method {
            Method::HEAD => tus::head::head(&state, &id).await,
            Method::PATCH => tus::patch::patch(&state, &id, req).await,
            Method::DELETE => {
                let caller = super::headers::caller(&state, &req);
                tus::delete::delete(&state, &id, caller).await
            }
            Method::GET => download::download(&state, &id, req.headers()).await,
            _ => Err(method_not_allowed("OPTIONS, HEAD, PATCH, DELETE, GET")),
        },
    };
    with_tus(result.unwrap_or_else(IntoResponse::into_response))
}

fn method_not_allowed(allowed: &'static str) -> ApiError {
    Error::new(
        ErrorCode::MethodNotAllowed,
        format!("Use one of {allowed} here."),
    )
    .into()
}
