//! How catalogue errors become HTTP responses: the status from the
//! catalogue, `{"error":"<code>","message":"..."}` as the body, and the
//! `Tus-Resumable` header (tus clients read every error of Ferry's as a tus
//! answer; others ignore it). The error's detail is logged here, once.

use crate::core::error::Error;
use crate::protocol::error::ErrorBody;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A catalogue error on its way out as a response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Json(ErrorBody {
            error: self.0.code,
            message: self.0.message,
        });
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            crate::protocol::header::TUS_RESUMABLE,
            HeaderValue::from_static(crate::protocol::TUS_VERSION),
        );
        resp
    }
}
