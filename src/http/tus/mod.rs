//! The tus 1.0.0 resumable-upload protocol at `/files/`, with the
//! extensions creation, creation-with-upload, creation-defer-length,
//! termination, checksum, expiration and concatenation, and the download of
//! finished uploads. Handlers parse headers, call `UploadService`, and map
//! the answer; all rules live in the service.

mod create;
mod delete;
mod head;
mod patch;

use super::error::ApiError;
use super::headers::{check_version, effective_method};
use crate::core::error::{Error, ErrorCode};
use crate::core::{BodyStream, ChecksumAlgorithm, Owner, UploadId, UploadRecord};
use crate::protocol::header;
use crate::protocol::{FILES, TUS_EXTENSIONS, TUS_VERSION};
use crate::server::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use futures_util::TryStreamExt;

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

pub(super) fn set(resp: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

pub(super) fn set_expires(resp: &mut Response, record: &UploadRecord) {
    if let Some(ms) = record.expires_at {
        // HTTP dates end with the year 9999.
        let ms = ms.clamp(0, 253_402_300_799_000) as u64;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        set(resp, header::UPLOAD_EXPIRES, httpdate::fmt_http_date(t));
    }
}

fn options(state: &AppState) -> Response {
    // 200 rather than 204: some clients treat only 200 as success here.
    let mut resp = StatusCode::OK.into_response();
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
    if let Err(e) = check_version(req.headers()) {
        return unsupported_version_response(e.into());
    }
    let result = match method {
        Method::POST => create::create(&state, owner, req).await,
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
    if method != Method::GET {
        if let Err(e) = check_version(req.headers()) {
            return unsupported_version_response(e.into());
        }
    }
    let result = match parse_id(&id) {
        Err(e) => Err(e),
        Ok(id) => match method {
            Method::HEAD => head::head(&state, &id).await,
            Method::PATCH => patch::patch(&state, &id, req).await,
            Method::DELETE => delete::delete(&state, &id).await,
            Method::GET => super::download::download(&state, &id, req.headers()).await,
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

/// A request body as the core reads it; a body that sent nothing for too
/// long (the connection's idle timeout) ends with `TimedOut`.
pub(super) fn body_stream(body: Body) -> BodyStream {
    Box::pin(body.into_data_stream().map_err(
        |e| match e.into_inner().downcast::<std::io::Error>() {
            Ok(io) => *io,
            Err(other) => std::io::Error::other(other),
        },
    ))
}
