//! The error catalogue: every error Ferry reports has a stable machine code
//! (clients read it), an HTTP status and a human message (people read it),
//! written on one line of the table below and nowhere else. `ErrorBody` is
//! the JSON shape every error answer has.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares `ErrorCode` from one table: `Variant => code, status, message`.
macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident => $code:literal, $status:literal, $message:literal;)*) => {
        /// The stable codes, one per kind of failure. The string form
        /// (`as_str`) is part of Ferry's API and never changes meaning.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the catalogue's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable machine-readable code.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this error is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// What the error means, for people, when nothing more precise
            /// was said.
            pub fn message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $message,)* }
            }
        }
    };
}

catalogue! {
    /// A request header is missing, malformed or out of range.
    InvalidHeader => "invalid_header", 400, "A request header is missing or malformed.";
    /// `Upload-Metadata` is not a valid list of `key base64value` pairs.
    InvalidMetadata => "invalid_metadata", 400, "Upload-Metadata is not a valid list of key and base64 value pairs.";
    /// The client speaks a tus version this server does not.
    UnsupportedVersion => "unsupported_version", 412, "This server speaks tus 1.0.0.";
    /// PATCH bodies must be `application/offset+octet-stream`.
    UnsupportedContentType => "unsupported_content_type", 415, "PATCH bodies must be application/offset+octet-stream.";
    /// `Upload-Offset` is not the upload's current offset.
    OffsetMismatch => "offset_mismatch", 409, "The upload is not at that offset; ask for its offset and resume there.";
    /// Another request is writing this upload right now.
    UploadLocked => "upload_locked", 423, "Another request is writing this upload; retry in a moment.";
    /// `Upload-Checksum` names an algorithm the server does not support.
    ChecksumAlgorithmUnsupported => "checksum_algorithm_unsupported", 400, "That checksum algorithm is not supported.";
    /// The chunk's checksum does not match the bytes received.
    ChecksumMismatch => "checksum_mismatch", 460, "The bytes received do not match their checksum; none of them were kept.";
    /// The declared length is over the server's maximum upload size.
    UploadTooLarge => "upload_too_large", 413, "The upload is larger than this server accepts.";
    /// The body would go past the upload's declared length.
    BodyExceedsLength => "body_exceeds_length", 413, "The body goes past the upload's length.";
    /// The upload's length is already known and cannot change.
    LengthAlreadySet => "length_already_set", 400, "The upload's length is already set.";
    /// The length was neither given nor deferred.
    LengthRequired => "length_required", 400, "Give Upload-Length, or Upload-Defer-Length: 1.";
    /// No upload with this ID (never existed, or deleted).
    NotFound => "not_found", 404, "No upload exists at this address.";
    /// The upload was abandoned and has expired.
    UploadExpired => "upload_expired", 410, "The upload expired before it was finished.";
    /// The upload is finished and takes no more bytes.
    UploadComplete => "upload_complete", 409, "The upload is finished and takes no more bytes.";
    /// The upload is not finished, so it cannot be downloaded or used.
    UploadIncomplete => "upload_incomplete", 409, "The upload is not finished yet.";
    /// A final concatenated upload is assembled from its parts only.
    ConcatFinalImmutable => "concat_final_immutable", 403, "A concatenated upload takes no bytes of its own.";
    /// A part named in a concatenation is not usable (not partial, not
    /// finished, or not the requester's).
    InvalidConcatPart => "invalid_concat_part", 400, "A part of the concatenation cannot be used.";
    /// An `Idempotency-Key` already created an upload of another length
    /// or kind.
    IdempotencyKeyReused => "idempotency_key_reused", 422, "That Idempotency-Key created another upload; use a new key.";
    /// The HTTP method is not allowed here.
    MethodNotAllowed => "method_not_allowed", 405, "That method is not allowed here.";
    /// `X-HTTP-Method-Override` asked for something not allowed.
    InvalidMethodOverride => "invalid_method_override", 400, "X-HTTP-Method-Override may only turn a POST into PATCH or DELETE.";
    /// The Range header cannot be satisfied.
    RangeNotSatisfiable => "range_not_satisfiable", 416, "That range is outside the file.";
    /// Authentication is required or was wrong.
    Unauthorized => "unauthorized", 401, "Sign in first.";
    /// The resource belongs to someone else.
    Forbidden => "forbidden", 403, "That is not yours.";
    /// The server's storage is full.
    StorageFull => "storage_full", 507, "The server's storage is full. The bytes received before this were kept; try again later.";
    /// The client was too slow sending the request.
    RequestTimeout => "request_timeout", 408, "The request was sent too slowly.";
    /// Too many requests from one client.
    RateLimited => "rate_limited", 429, "Too many requests; slow down.";
    /// The request body stopped before it was complete.
    BodyIncomplete => "body_incomplete", 400, "The request body ended before it was complete.";
    /// A request body (other than an upload's bytes) is larger than allowed.
    RequestTooLarge => "request_too_large", 413, "The request body is larger than allowed.";
    /// A request's line and headers are larger than `--max-header-bytes`.
    HeadersTooLarge => "headers_too_large", 431, "The request's headers are larger than this server accepts.";
    /// A server function's arguments could not be read.
    InvalidArguments => "invalid_arguments", 400, "The request's arguments could not be read.";
    /// The owner would store more than `--max-bytes-per-owner`.
    QuotaExceeded => "quota_exceeded", 507, "This would store more than your share of the server.";
    /// The owner has `--max-unfinished-per-owner` unfinished uploads.
    TooManyUnfinished => "too_many_unfinished", 429, "You have too many unfinished uploads; finish or delete some.";
    /// The operator's application (a pre-hook) refused this; its own status
    /// and message are answered instead of these.
    HookRefused => "hook_refused", 403, "The server's application refused this.";
    /// A pre-hook could not be asked (down, too slow, or answered nonsense):
    /// nothing was done, and asking again later may work.
    HookFailed => "hook_failed", 503, "The server could not check this with its application; try again later.";
    /// The file's kind (name ending or media type) is not one the server
    /// accepts (`--allow-types`).
    TypeNotAllowed => "type_not_allowed", 415, "This server does not accept files of this kind.";
    /// More files in one request than the server takes at once.
    TooManyFiles => "too_many_files", 400, "Too many files at once.";
    /// Too many event streams or WebSockets open at once.
    TooManyStreams => "too_many_streams", 429, "Too many streams are open at once; retry in a moment.";
    /// The server has no room for this request right now (with S3: the
    /// memory for parts being gathered, `--s3-memory`, is all in use).
    ServerBusy => "server_busy", 503, "The server is busy; retry in a moment from the upload's offset.";
    /// Something failed inside the server; details are in its log.
    Internal => "internal", 500, "The server failed to handle this request; it has been logged.";
}

impl ErrorCode {
    /// The code named by its string form.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ErrorCode::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {text:?}")))
    }
}

/// The JSON body of every error answer: `{"error": code, "message": text}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    /// Reads an error answer; `None` when the text is not one.
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_parses_back_and_is_an_error_status() {
        let codes: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!((400..600).contains(&code.status()), "{code}");
            assert!(code.message().ends_with('.'), "{code}");
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn bodies_round_trip() {
        let body = ErrorBody {
            error: ErrorCode::OffsetMismatch,
            message: "Resume at 5.".into(),
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(
            text,
            r#"{"error":"offset_mismatch","message":"Resume at 5."}"#
        );
        assert_eq!(ErrorBody::from_json(&text), Some(body));
        assert_eq!(
            ErrorBody::from_json(r#"{"error":"made_up","message":""}"#),
            None
        );
    }
}
