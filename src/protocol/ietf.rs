//! The IETF draft "Resumable Uploads for HTTP"
//! (draft-ietf-httpbis-resumable-upload) as Ferry speaks it beside tus 1.0,
//! on the same URLs. Clients name the draft's version they follow in
//! `Upload-Draft-Interop-Version`; Ferry speaks interop versions 3 to 8:
//!
//! | interop | drafts | clients | what changed |
//! |---|---|---|---|
//! | 3 | -01 | URLSession (iOS 17) | `Upload-Incomplete: ?1` marks a part; HEAD answers 204 |
//! | 4 | -02 | — | `Upload-Complete` replaces it, inverted; `?1` + `Content-Length` gives the length |
//! | 5 | -03 | URLSession (iOS 18.0), tus-js-client `ietf-draft-03` | HEAD may answer 200; progress 104s |
//! | 6 | -04, -05 | URLSession (iOS 18.1+), tus-js-client `ietf-draft-05` | PATCH is `application/partial-upload`; `Upload-Limit` (`expires`), `Upload-Length`; problem types |
//! | 7 | -06 to -08 | — | PATCH must say `Upload-Complete`; `max-age` replaces `expires`; `inconsistent-upload-length` |
//! | 8 | -09 to -11, current | URLSession (iOS 26) | `Upload-Limit` on HEAD and creation; `Accept-Patch` on OPTIONS |
//!
//! Ferry answers with the union that every version accepts: `Upload-Offset`
//! on every creation, append and 409; the version's completeness header on
//! every answer; `Upload-Limit` with both lifetime keys; problem details
//! (RFC 9457) for errors. It sends no 104 (see `http::ietf`).

/// The header naming the draft's interop version a client follows.
pub const INTEROP_VERSION: &str = "upload-draft-interop-version";
/// Interop 4 and later: `?1` when this request ends the upload.
pub const UPLOAD_COMPLETE: &str = "upload-complete";
/// Interop 3: `?1` when more is to come.
pub const UPLOAD_INCOMPLETE: &str = "upload-incomplete";
/// The upload's offset (as in tus).
pub const UPLOAD_OFFSET: &str = "upload-offset";
/// The upload's whole length (interop 6 and later; Ferry takes it always).
pub const UPLOAD_LENGTH: &str = "upload-length";
/// The server's limits, a structured dictionary.
pub const UPLOAD_LIMIT: &str = "upload-limit";
/// The media type of appended bytes (interop 6 and later).
pub const PARTIAL_UPLOAD: &str = "application/partial-upload";
/// The media type of problem details (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The interop versions Ferry speaks.
pub const VERSIONS: std::ops::RangeInclusive<u8> = 3..=8;

/// The draft's problem types.
pub mod problem {
    pub const MISMATCHING_OFFSET: &str =
        "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";
    pub const COMPLETED_UPLOAD: &str =
        "https://iana.org/assignments/http-problem-types#completed-upload";
    pub const INCONSISTENT_LENGTH: &str =
        "https://iana.org/assignments/http-problem-types#inconsistent-upload-length";
}

/// A structured-field boolean: `?1` or `?0`; `None` for anything else.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

/// A structured-field boolean's text.
pub fn bool_text(value: bool) -> &'static str {
    if value {
        "?1"
    } else {
        "?0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_structured_fields() {
        assert_eq!(parse_bool("?1"), Some(true));
        assert_eq!(parse_bool(" ?0 "), Some(false));
        for bad in ["1", "true", "?", "?2", ""] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
        assert_eq!(bool_text(true), "?1");
    }
}
