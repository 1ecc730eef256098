//! `DELETE /files/{id}`: termination.

use super::Result;
use crate::core::UploadId;
use crate::server::state::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(in crate::http) async fn delete(state: &AppState, id: &UploadId) -> Result<Response> {
    state.uploads.delete(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
