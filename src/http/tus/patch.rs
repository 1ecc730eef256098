//! `PATCH /files/{id}`: appending a body at the upload's offset. The body
//! streams to the core; a body that would pass the upload's length is
//! refused by the core before a byte past it is written.

use super::super::body_stream;
use super::super::headers::{caller, set, set_expires, set_repr_digest};
use super::super::headers::{
    header_error, header_str, is_offset_stream, parse_checksum, u64_header,
};
use super::Result;
use crate::core::error::{Error, ErrorCode};
use crate::core::{AppendRequest, UploadId};
use crate::protocol::header;
use crate::protocol::OFFSET_OCTET_STREAM;
use crate::server::state::AppState;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(in crate::http) async fn patch(
    state: &AppState,
    id: &UploadId,
    req: Request,
) -> Result<Response> {
    let headers = req.headers();
    if !is_offset_stream(headers) {
        return Err(Error::new(
            ErrorCode::UnsupportedContentType,
            format!("PATCH bodies must be sent as Content-Type: {OFFSET_OCTET_STREAM}."),
        )
        .into());
    }
    let offset = u64_header(headers, header::UPLOAD_OFFSET)?
        .ok_or_else(|| header_error(header::UPLOAD_OFFSET, "missing"))?;
    let append = AppendRequest {
        offset,
        declare_length: u64_header(headers, header::UPLOAD_LENGTH)?,
        checksum: header_str(headers, header::UPLOAD_CHECKSUM)?
            .map(parse_checksum)
            .transpose()?,
        content_length: u64_header(headers, "Content-Length")?,
        caller: caller(state, &req),
        ..AppendRequest::default()
    };
    let record = match state
        .uploads
        .append(id, append, body_stream(req.into_body()))
        .await
    {
        Ok(record) => record,
        Err(e) if e.code == ErrorCode::OffsetMismatch => {
            // Say where the upload is, so the client resumes without a HEAD.
            let mut resp = super::super::error::ApiError(e).into_response();
            if let Ok(current) = state.uploads.get(id).await {
                set(&mut resp, header::UPLOAD_OFFSET, current.offset);
            }
            return Ok(resp);
        }
        Err(e) => return Err(e.into()),
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set(&mut resp, header::UPLOAD_OFFSET, record.offset);
    // The last bytes' answer says what the server holds, so the client
    // verifies without asking again.
    set_repr_digest(&mut resp, &record);
    set_expires(&mut resp, &record);
    Ok(resp)
}
