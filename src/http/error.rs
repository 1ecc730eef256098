//! How catalogue errors become HTTP responses: the status from the
//! catalogue, `{"error":"<code>","message":"..."}` as the body, and the
//! `Tus-Resumable` header that every tus response carries.

use crate::error::Error;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

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
        let status =
            StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = Json(json!({ "error": self.0.code.as_str(), "message": self.0.message }));
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            "tus-resumable",
            HeaderValue::from_static(super::tus::TUS_VERSION),
        );
        resp
    }
}
