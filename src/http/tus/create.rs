//! `POST /files`: creating an upload (tus creation, creation-with-upload,
//! creation-defer-length and concatenation).

use super::super::headers::{caller, set, set_expires, set_repr_digest};
use super::super::headers::{
    header_error, header_str, idempotency_key, is_offset_stream, parse_checksum, parse_concat,
    public_base, u64_header,
};
use super::super::{body_stream, skip_bytes};
use super::Result;
use crate::core::error::{Error, ErrorCode};
use crate::core::{AppendRequest, Concat, CreateRequest, Owner};
use crate::protocol::header;
use crate::protocol::metadata::Metadata;
use crate::protocol::{upload_url, OFFSET_OCTET_STREAM};
use crate::server::state::AppState;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub(in crate::http) async fn create(
    state: &AppState,
    owner: Owner,
    req: Request,
) -> Result<Response> {
    let headers = req.headers();
    let concat = match header_str(headers, header::UPLOAD_CONCAT)? {
        Some(v) => parse_concat(v)?,
        None => Concat::None,
    };
    let length = u64_header(headers, header::UPLOAD_LENGTH)?;
    let deferred = match header_str(headers, header::UPLOAD_DEFER_LENGTH)? {
        None => false,
        Some("1") => true,
        Some(_) => {
            return Err(
                header_error(header::UPLOAD_DEFER_LENGTH, "the only allowed value is 1").into(),
            )
        }
    };
    match (length, deferred, &concat) {
        (Some(_), true, _) => {
            return Err(header_error(
                header::UPLOAD_LENGTH,
                "give either Upload-Length or Upload-Defer-Length, not both",
            )
            .into())
        }
        (None, false, Concat::None | Concat::Partial) => return Err(Error::new(
            ErrorCode::LengthRequired,
            "Give the upload's size in Upload-Length, or Upload-Defer-Length: 1 to give it later.",
        )
        .into()),
        _ => {}
    }
    let metadata = match header_str(headers, header::UPLOAD_METADATA)? {
        Some(v) => Metadata::parse(v).map_err(Error::from)?,
        None => Metadata::default(),
    };
    let content_length = u64_header(headers, "Content-Length")?;
    let has_body = content_length.is_some_and(|n| n > 0)
        || headers.contains_key(axum::http::header::TRANSFER_ENCODING);
    if has_body && !is_offset_stream(headers) && !matches!(concat, Concat::Final(_)) {
        return Err(Error::new(
            ErrorCode::UnsupportedContentType,
            format!(
                "The first bytes of an upload must be sent as Content-Type: {OFFSET_OCTET_STREAM}; nothing was created."
            ),
        )
        .into());
    }
    let with_body = is_offset_stream(headers) && !matches!(concat, Concat::Final(_));
    let checksum = match (with_body, header_str(headers, header::UPLOAD_CHECKSUM)?) {
        (true, Some(v)) => Some(parse_checksum(v)?),
        _ => None,
    };
    let idempotency_key = idempotency_key(headers)?;
    let base = public_base(headers, req.uri(), state.config.behind_proxy);
    let caller = caller(state, &req);

    let mut record = state
        .uploads
        .create(CreateRequest {
            owner,
            length,
            metadata,
            concat,
            caller: caller.clone(),
            idempotency_key,
        })
        .await?;

    // creation-with-upload: the body is the upload's first bytes. The upload
    // exists whatever happens to them, so the answer is 201 with the offset
    // really reached; the client resumes from there. The same request sent
    // again (by its Idempotency-Key) finds the upload further on: the bytes
    // the server has are passed over and the rest appended, unless a
    // checksum of the whole body is to be checked.
    let have = record.offset;
    let rest = content_length.map(|n| n.saturating_sub(have));
    let checkable = have == 0 || checksum.is_none();
    if with_body && !record.is_complete() && rest != Some(0) && checkable {
        let append = AppendRequest {
            offset: have,
            declare_length: None,
            checksum,
            content_length: rest,
            caller,
            ..AppendRequest::default()
        };
        let body = skip_bytes(body_stream(req.into_body()), have);
        match state.uploads.append(&record.id, append, body).await {
            Ok(updated) => record = updated,
            Err(e) => {
                tracing::info!(id = %record.id, "first bytes of a new upload not stored: {e}");
                match state.uploads.get(&record.id).await {
                    Ok(current) => record = current,
                    // The application refused the file and it was removed:
                    // that is the answer.
                    Err(_) if matches!(e.code, ErrorCode::HookRefused | ErrorCode::HookFailed) => {
                        return Err(e.into())
                    }
                    Err(_) => {}
                }
            }
        }
    }

    let mut resp = StatusCode::CREATED.into_response();
    // Absolute, for the clients and tools that cannot follow a relative one.
    let path = upload_url(record.id.as_str());
    set(
        &mut resp,
        "location",
        base.map_or(path.clone(), |b| format!("{b}{path}")),
    );
    // (An upload found by its key may be further on than its creation.)
    if with_body || record.is_complete() || record.offset > 0 {
        set(&mut resp, header::UPLOAD_OFFSET, record.offset);
    }
    set_repr_digest(&mut resp, &record);
    set_expires(&mut resp, &record);
    Ok(resp)
}
