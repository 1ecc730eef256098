//! `DELETE /files/{id}`: termination.

use super::Result;
use crate::core::{Caller, UploadId};
use crate::server::state::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(in crate::http) async fn delete(
    state: &AppState,
    id: &UploadId,
    caller: Option<Caller>,
) -> Result<Response> {
    state.uploads.terminate(id, caller).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
