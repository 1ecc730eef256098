//! Errors as the draft answers them: problem details (RFC 9457,
//! `application/problem+json`) with the draft's problem types where it has
//! one, and Ferry's stable code and message in every body.

use super::Interop;
use crate::core::error::{Error, ErrorCode};
use crate::http::headers::set;
use crate::protocol::ietf::{self, problem};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Where the upload stands, for answers that must say it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Standing {
    /// The upload's offset (a 409 must carry it).
    pub offset: Option<u64>,
    /// The offset the request gave, for `mismatching-upload-offset`.
    pub provided: Option<u64>,
    /// Whether the request was for `/files/` rather than an upload.
    pub collection: bool,
}

/// The problem type, status and extra members of a core error.
fn classify(e: &Error, at: Standing) -> (Option<&'static str>, u16, Map<String, Value>) {
    let mut extra = Map::new();
    match e.code {
        ErrorCode::OffsetMismatch => {
            if let Some(o) = at.offset {
                extra.insert("expected-offset".into(), json!(o));
            }
            if let Some(p) = at.provided {
                extra.insert("provided-offset".into(), json!(p));
            }
            (Some(problem::MISMATCHING_OFFSET), 409, extra)
        }
        ErrorCode::UploadComplete => (Some(problem::COMPLETED_UPLOAD), 400, extra),
        // 460 is tus's own; draft clients know only standard statuses.
        ErrorCode::ChecksumMismatch => (None, 400, extra),
        ErrorCode::BodyExceedsLength | ErrorCode::LengthAlreadySet => {
            (Some(problem::INCONSISTENT_LENGTH), 400, extra)
        }
        _ => (None, e.status(), extra),
    }
}

/// A core error as a problem-details answer.
pub(super) fn problem(v: Interop, e: Error, at: Standing) -> Response {
    e.log();
    let (kind, status, extra) = classify(&e, at);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // RFC 9457: the title summarises the type; for `about:blank`, it is
    // the status's own phrase.
    let title = match kind {
        Some(problem::MISMATCHING_OFFSET) => {
            "offset from request does not match offset of resource"
        }
        Some(problem::COMPLETED_UPLOAD) => "upload is already completed",
        Some(problem::INCONSISTENT_LENGTH) => "inconsistent length values for upload",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let mut body = Map::new();
    body.insert("type".into(), json!(kind.unwrap_or("about:blank")));
    body.insert("title".into(), json!(title));
    body.insert("status".into(), json!(status.as_u16()));
    body.insert("detail".into(), json!(e.message));
    body.insert("error".into(), json!(e.code.as_str()));
    body.extend(extra);
    let mut resp = (status, Value::Object(body).to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ietf::PROBLEM_JSON),
    );
    if v.is_supported() {
        set(&mut resp, ietf::INTEROP_VERSION, v.0);
    }
    if let Some(offset) = at.offset {
        set(&mut resp, ietf::UPLOAD_OFFSET, offset);
    }
    // The request did not finish the upload (from interop 7 every answer
    // says so; before, those that say where it stands).
    if at.offset.is_some() || v.0 >= 7 {
        v.set_complete(&mut resp, false);
    }
    if e.code == ErrorCode::MethodNotAllowed {
        let allow = if at.collection {
            "POST, OPTIONS"
        } else {
            "HEAD, PATCH, DELETE, GET, OPTIONS"
        };
        set(&mut resp, "allow", allow);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_get_the_drafts_problem_types() {
        let at = Standing {
            offset: Some(7),
            provided: Some(3),
            collection: false,
        };
        let (kind, status, extra) = classify(&Error::of(ErrorCode::OffsetMismatch), at);
        assert_eq!((kind, status), (Some(problem::MISMATCHING_OFFSET), 409));
        assert_eq!(extra["expected-offset"], 7);
        assert_eq!(extra["provided-offset"], 3);
        let (kind, status, _) = classify(&Error::of(ErrorCode::UploadComplete), at);
        assert_eq!((kind, status), (Some(problem::COMPLETED_UPLOAD), 400));
        let (kind, status, _) = classify(&Error::of(ErrorCode::BodyExceedsLength), at);
        assert_eq!((kind, status), (Some(problem::INCONSISTENT_LENGTH), 400));
        let (kind, status, _) = classify(&Error::of(ErrorCode::NotFound), at);
        assert_eq!((kind, status), (None, 404));
    }
}
