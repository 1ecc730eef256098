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
        ErrorCode::BodyExceedsLength | ErrorCode::LengthAlreadySet => {
            (Some(problem::INCONSISTENT_LENGTH), 400, extra)
        }
        code => (None, code.status(), extra),
    }
}

/// A core error as a problem-details answer.
pub(super) fn problem(v: Interop, e: Error, at: Standing) -> Response {
    e.log();
    let (kind, status, extra) = classify(&e, at);
    let mut body = Map::new();
    body.insert("type".into(), json!(kind.unwrap_or("about:blank")));
    body.insert("title".into(), json!(e.code.message()));
    body.insert("status".into(), json!(status));
    body.insert("detail".into(), json!(e.message));
    body.insert("error".into(), json!(e.code.as_str()));
    body.extend(extra);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, Value::Object(body).to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ietf::PROBLEM_JSON),
    );
    set(&mut resp, ietf::INTEROP_VERSION, v.0);
    if let Some(offset) = at.offset {
        set(&mut resp, ietf::UPLOAD_OFFSET, offset);
        // The request did not finish the upload.
        v.set_complete(&mut resp, false);
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
