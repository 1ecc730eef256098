//! The IETF draft "Resumable Uploads for HTTP" on `/files/`, interop
//! versions 3 to 8 (`protocol::ietf` tells what each changed). `http::files`
//! routes a request here when it carries `Upload-Draft-Interop-Version` and
//! no `Tus-Resumable`. The same `UploadService` serves it as tus, so owners,
//! quotas, expiry, instant upload, events and durability are the same, and
//! an upload started with one protocol can be inspected or finished with
//! the other.
//!
//! Completion: from interop 7 an upload completes only when a request says
//! `Upload-Complete: ?1` (bytes that reach the declared length are held
//! until one does). Up to interop 6 it also completes when its bytes reach
//! a length the client declared, as tusd does: tus-js-client 4.3 (interop
//! 5 and 6) sends `?0` on its last PATCH when reading a file stream, and
//! relies on that.
//!
//! No 104 (Upload Resumption Supported) is sent: hyper 1 has no server API
//! for informational responses (hyperium/hyper#4114 is open), and Ferry's
//! connection loop hands requests to hyper, which owns the response side of
//! the connection. The 104 is optional in every version; a client that
//! never sees it learns the upload's URL from the final response. A client
//! that sent a whole file in its creation request and lost that response
//! cannot resume it and starts again (URLSession's optimistic upload).
//!
//! What it must not know: tus's rules (`http::tus`), or storage.

mod create;
mod problem;
mod resource;

pub(super) use create::collection;
pub(super) use resource::resource;

use super::headers::set;
use crate::core::error::Result;
use crate::core::UploadRecord;
use crate::protocol::ietf::{self, bool_text, parse_bool};
use crate::server::state::AppState;
use axum::http::HeaderMap;
use axum::response::Response;

/// The draft's interop version a request follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Interop(pub u8);

/// The interop version of a request that speaks the draft: it names one,
/// and does not say `Tus-Resumable` (a tus client on a platform that adds
/// the draft's headers by itself stays a tus client).
pub(super) fn version_of(headers: &HeaderMap) -> Option<Interop> {
    if headers.contains_key(crate::protocol::header::TUS_RESUMABLE) {
        return None;
    }
    let value = headers.get(ietf::INTEROP_VERSION)?.to_str().ok()?.trim();
    // An unknown or malformed version is still a draft request: it is
    // refused as one, not taken for tus.
    Some(Interop(value.parse().unwrap_or(0)))
}

impl Interop {
    fn is_supported(self) -> bool {
        ietf::VERSIONS.contains(&self.0)
    }

    /// Whether bytes reaching the declared length wait for a request that
    /// says the upload is complete (from interop 7).
    fn holds_at_length(self) -> bool {
        self.0 >= 7
    }

    /// The status of a successful append or creation: 201 up to interop 6
    /// (which asks for it when the upload is not complete, and recommends
    /// it otherwise), 204 after, as the later drafts' examples answer.
    fn appended(self) -> axum::http::StatusCode {
        if self.0 <= 6 {
            axum::http::StatusCode::CREATED
        } else {
            axum::http::StatusCode::NO_CONTENT
        }
    }

    /// The completeness header this version uses.
    fn completeness_name(self) -> &'static str {
        if self.0 == 3 {
            ietf::UPLOAD_INCOMPLETE
        } else {
            ietf::UPLOAD_COMPLETE
        }
    }

    /// What the request says about completeness: `Some(true)` when it ends
    /// the upload, `Some(false)` when more is to come, `None` when it does
    /// not say.
    fn completeness(self, headers: &HeaderMap) -> Result<Option<bool>> {
        let (name, invert) = (self.completeness_name(), self.0 == 3);
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        let parsed = value.to_str().ok().and_then(parse_bool).ok_or_else(|| {
            super::headers::header_error(name, "expected the structured boolean ?1 or ?0")
        })?;
        Ok(Some(parsed != invert))
    }

    /// Whether a request says anything about completeness.
    fn says_completeness(self, headers: &HeaderMap) -> bool {
        headers.contains_key(ietf::UPLOAD_COMPLETE) || headers.contains_key(ietf::UPLOAD_INCOMPLETE)
    }

    /// Sets the version's completeness header.
    fn set_complete(self, resp: &mut Response, complete: bool) {
        if self.0 == 3 {
            set(resp, ietf::UPLOAD_INCOMPLETE, bool_text(!complete));
        } else {
            set(resp, ietf::UPLOAD_COMPLETE, bool_text(complete));
        }
    }

    /// The headers every answer about an upload carries: the version, where
    /// the upload stands and the server's limits.
    fn describe(self, state: &AppState, resp: &mut Response, record: &UploadRecord) {
        set(resp, ietf::INTEROP_VERSION, self.0);
        set(resp, ietf::UPLOAD_OFFSET, record.offset);
        self.set_complete(resp, record.is_complete());
        if let Some(length) = record.length {
            set(resp, ietf::UPLOAD_LENGTH, length);
        }
        set(resp, ietf::UPLOAD_LIMIT, self.limits(state, Some(record)));
    }

    /// `Upload-Limit`: the largest upload and, for an unfinished one, how
    /// long it has left (`expires` in interop 6, `max-age` after).
    fn limits(self, state: &AppState, record: Option<&UploadRecord>) -> String {
        // A structured-field integer has at most 15 digits.
        let max = state.uploads.config().max_size.min(999_999_999_999_999);
        let mut limits = format!("min-size=0, max-size={max}");
        let left = record
            .filter(|r| !r.is_complete())
            .and_then(|r| r.expires_at)
            .map(|at| (at - crate::core::record::now_millis()).max(0) / 1000);
        if let Some(secs) = left {
            let key = if self.0 <= 6 { "expires" } else { "max-age" };
            limits.push_str(&format!(", {key}={secs}"));
        }
        limits
    }
}

/// What OPTIONS tells draft clients: the server's limits, and that PATCH
/// takes `application/partial-upload`.
pub(super) fn announce(state: &AppState, resp: &mut Response) {
    set(resp, ietf::UPLOAD_LIMIT, Interop(8).limits(state, None));
    set(resp, "accept-patch", ietf::PARTIAL_UPLOAD);
}
