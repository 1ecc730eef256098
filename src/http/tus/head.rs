//! `HEAD /files/{id}`: where an upload stands (offset, length, metadata,
//! expiry, concatenation).

use super::super::headers::{set, set_expires, set_repr_digest};
use super::Result;
use crate::core::{Concat, UploadId};
use crate::protocol::header;
use crate::protocol::{concat, upload_url};
use crate::server::state::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(in crate::http) async fn head(state: &AppState, id: &UploadId) -> Result<Response> {
    let record = state.uploads.get(id).await?;
    let mut resp = StatusCode::OK.into_response();
    let is_final = matches!(record.concat, Concat::Final(_));
    if !is_final || record.is_complete() {
        set(&mut resp, header::UPLOAD_OFFSET, record.offset);
    }
    match record.length {
        Some(length) => set(&mut resp, header::UPLOAD_LENGTH, length),
        None => set(&mut resp, header::UPLOAD_DEFER_LENGTH, 1),
    }
    if !record.metadata.is_empty() {
        set(&mut resp, header::UPLOAD_METADATA, record.metadata.encode());
    }
    match &record.concat {
        Concat::None => {}
        Concat::Partial => set(&mut resp, header::UPLOAD_CONCAT, concat::PARTIAL),
        Concat::Final(parts) => set(
            &mut resp,
            header::UPLOAD_CONCAT,
            format!(
                "{}{}",
                concat::FINAL_PREFIX,
                parts
                    .iter()
                    .map(|id| upload_url(id.as_str()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
    }
    // A finished upload's SHA-256, for clients that did not create it (a
    // page whose owner changed) and still want to verify it.
    set_repr_digest(&mut resp, &record);
    set(&mut resp, "cache-control", "no-store");
    set_expires(&mut resp, &record);
    Ok(resp)
}
