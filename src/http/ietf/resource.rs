//! An upload's own URL for a draft request: its offset by HEAD, appending
//! by PATCH, cancelling by DELETE (GET downloads, as for everyone).

use super::create::unsupported;
use super::problem::{problem, Standing};
use super::Interop;
use crate::core::error::{Error, ErrorCode};
use crate::core::{AppendRequest, ChecksumAlgorithm, ChunkChecksum, UploadId};
use crate::http::body_stream;
use crate::http::headers::{
    caller, content_type_is, header_error, parse_sha256_digest, set, u64_header,
};
use crate::protocol::ietf;
use crate::server::state::AppState;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// `/files/{id}` for a draft request.
pub(in crate::http) async fn resource(
    state: &AppState,
    id: &str,
    v: Interop,
    method: Method,
    req: Request,
) -> Response {
    if !v.is_supported() {
        return unsupported(v);
    }
    let Some(id) = UploadId::parse(id) else {
        return problem(v, Error::not_found(), Standing::default());
    };
    // A client's new request ends the one it gave up on (the draft allows it
    // in every version and asks for it from 7), so the offset it is told is
    // the one its next append must give, even while the old request's
    // connection lingers.
    if matches!(method, Method::HEAD | Method::PATCH) {
        if let Err(e) = state.uploads.stop_writer(&id).await {
            return problem(v, e, Standing::default());
        }
    }
    let result = match method {
        Method::HEAD => head(state, v, &id, req.headers()).await,
        Method::PATCH => return patch(state, v, &id, req).await,
        Method::DELETE => {
            let caller = caller(state, &req);
            delete(state, v, &id, req.headers(), caller).await
        }
        Method::GET => crate::http::download::download(state, &id, req.headers())
            .await
            .map_err(|e| e.0),
        _ => Err(Error::new(
            ErrorCode::MethodNotAllowed,
            "Use HEAD, PATCH, DELETE or GET here.",
        )),
    };
    result.unwrap_or_else(|e| problem(v, e, Standing::default()))
}

/// Up to interop 6, HEAD and DELETE must not carry the append's headers.
fn refuse_append_headers(v: Interop, headers: &HeaderMap) -> Result<(), Error> {
    if v.0 <= 6 {
        if headers.contains_key(ietf::UPLOAD_OFFSET) {
            return Err(header_error(
                ietf::UPLOAD_OFFSET,
                "only an append says an offset",
            ));
        }
        if v.says_completeness(headers) {
            return Err(header_error(
                v.completeness_name(),
                "only a creation or an append says whether it completes the upload",
            ));
        }
        if headers.contains_key(ietf::UPLOAD_LENGTH) {
            return Err(header_error(
                ietf::UPLOAD_LENGTH,
                "only a creation or an append says a length",
            ));
        }
    }
    Ok(())
}

/// Offset retrieval: 204 with where the upload stands. Never cached.
async fn head(
    state: &AppState,
    v: Interop,
    id: &UploadId,
    headers: &HeaderMap,
) -> Result<Response, Error> {
    refuse_append_headers(v, headers)?;
    let record = state.uploads.get(id).await.map_err(gone_is_missing)?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    v.describe(state, &mut resp, &record);
    set(&mut resp, "cache-control", "no-store");
    Ok(resp)
}

/// The draft has no "expired": an upload that is gone is not found.
fn gone_is_missing(e: Error) -> Error {
    if e.code == ErrorCode::UploadExpired {
        Error::new(ErrorCode::NotFound, e.message)
    } else {
        e
    }
}

/// Appending at the upload's offset.
async fn patch(state: &AppState, v: Interop, id: &UploadId, req: Request) -> Response {
    let headers = req.headers();
    let provided = match u64_header(headers, ietf::UPLOAD_OFFSET) {
        Ok(Some(offset)) => offset,
        Ok(None) => {
            let e = header_error(ietf::UPLOAD_OFFSET, "an append says where it starts");
            return problem(v, e, Standing::default());
        }
        Err(e) => return problem(v, e, Standing::default()),
    };
    match append(state, v, id, provided, req).await {
        Ok(resp) => resp,
        Err(e) => {
            let offset = state.uploads.get(id).await.ok().map(|r| r.offset);
            let at = Standing {
                offset,
                provided: Some(provided),
                ..Standing::default()
            };
            problem(v, e, at)
        }
    }
}

async fn append(
    state: &AppState,
    v: Interop,
    id: &UploadId,
    offset: u64,
    req: Request,
) -> Result<Response, Error> {
    let headers = req.headers();
    if v.0 >= 6 && !content_type_is(headers, ietf::PARTIAL_UPLOAD) {
        return Err(Error::new(
            ErrorCode::UnsupportedContentType,
            format!(
                "Appends are sent as Content-Type: {}.",
                ietf::PARTIAL_UPLOAD
            ),
        ));
    }
    let complete = match v.completeness(headers)? {
        Some(complete) => complete,
        // Up to interop 6 an append that does not say is the last one.
        None if v.0 <= 6 => true,
        None => {
            return Err(header_error(
                ietf::UPLOAD_COMPLETE,
                "an append must say whether it completes the upload",
            ))
        }
    };
    let content_length = u64_header(headers, "content-length")?;
    let declared = u64_header(headers, ietf::UPLOAD_LENGTH)?;
    let empty = match content_length {
        Some(n) => n == 0,
        None => http_body::Body::is_end_stream(req.body()),
    };
    let record = state.uploads.get(id).await.map_err(gone_is_missing)?;
    if record.is_complete() {
        // A lost answer to the last append, sent again: answer it again.
        if complete && offset == record.offset && empty {
            return Ok(done(state, v, &record));
        }
        return Err(Error::of(ErrorCode::UploadComplete));
    }
    // What the request says the whole length is, if anything.
    let ends_at = match (complete, content_length) {
        (true, Some(n)) => Some(offset.saturating_add(n)),
        _ => None,
    };
    let said = [declared, ends_at, record.length];
    let mut known = said.iter().flatten();
    if let Some(first) = known.next() {
        if let Some(other) = known.find(|l| *l != first) {
            return Err(Error::new(
                ErrorCode::LengthAlreadySet,
                format!("The upload's length is given as both {first} and {other} bytes."),
            ));
        }
    }
    let checksum = digest_checksum(headers)?;
    let append = AppendRequest {
        offset,
        checksum,
        declare_length: if record.length.is_none() {
            declared.or(ends_at)
        } else {
            None
        },
        content_length,
        length_at_end: complete && record.length.is_none() && declared.or(ends_at).is_none(),
        hold_at_length: v.holds_at_length() && !complete,
        caller: caller(state, &req),
        ..AppendRequest::default()
    };
    let record = state
        .uploads
        .append(id, append, body_stream(req.into_body()))
        .await?;
    if complete && !record.is_complete() {
        return Err(Error::new(
            ErrorCode::LengthAlreadySet,
            format!(
                "The request said it completes the upload, but it ends at byte {} of {}.",
                record.offset,
                record.length.unwrap_or(0)
            ),
        ));
    }
    verify_repr_digest(state, &record).await?;
    Ok(done(state, v, &record))
}

/// `Content-Digest` (RFC 9530) with a SHA-256: this request's bytes are
/// checked before any is kept, as `Upload-Checksum` is for tus.
pub(super) fn digest_checksum(headers: &HeaderMap) -> Result<Option<ChunkChecksum>, Error> {
    let Some(value) = headers.get("content-digest") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| header_error("content-digest", "not visible ASCII"))?;
    Ok(
        parse_sha256_digest("content-digest", value)?.map(|expected| ChunkChecksum {
            algorithm: ChecksumAlgorithm::Sha256,
            expected,
        }),
    )
}

/// A finished upload whose SHA-256 is not the one its creation promised in
/// `Repr-Digest` failed: it is removed, and the client told.
pub(super) async fn verify_repr_digest(
    state: &AppState,
    record: &crate::core::UploadRecord,
) -> Result<(), Error> {
    let (Some(promised), Some(got)) = (record.metadata.sha256(), record.sha256.as_deref()) else {
        return Ok(());
    };
    if !record.is_complete() || promised == got {
        return Ok(());
    }
    state.uploads.delete(&record.id).await?;
    Err(Error::new(
        ErrorCode::ChecksumMismatch,
        format!("The upload's SHA-256 is {got}, not the {promised} its Repr-Digest promised; it was removed."),
    ))
}

/// A successful append's answer.
fn done(state: &AppState, v: Interop, record: &crate::core::UploadRecord) -> Response {
    let mut resp = v.appended().into_response();
    v.describe(state, &mut resp, record);
    resp
}

/// Cancellation: the upload and its bytes are removed (the writer, if any,
/// is stopped first).
async fn delete(
    state: &AppState,
    v: Interop,
    id: &UploadId,
    headers: &HeaderMap,
    caller: Option<crate::core::Caller>,
) -> Result<Response, Error> {
    refuse_append_headers(v, headers)?;
    state
        .uploads
        .terminate(id, caller)
        .await
        .map_err(gone_is_missing)?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set(&mut resp, ietf::INTEROP_VERSION, v.0);
    Ok(resp)
}
