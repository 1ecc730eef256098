//! The error catalogue: every error Ferry reports has a stable machine code
//! (clients read it), a human message (people read it) and an HTTP status,
//! defined here and nowhere else.

use std::fmt;

/// The stable codes, one per kind of failure. The string form (`as_str`) is
/// part of Ferry's API and never changes meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request header is missing, malformed or out of range.
    InvalidHeader,
    /// `Upload-Metadata` is not a valid list of `key base64value` pairs.
    InvalidMetadata,
    /// The client speaks a tus version this server does not.
    UnsupportedVersion,
    /// PATCH bodies must be `application/offset+octet-stream`.
    UnsupportedContentType,
    /// `Upload-Offset` is not the upload's current offset.
    OffsetMismatch,
    /// Another request is writing this upload right now.
    UploadLocked,
    /// `Upload-Checksum` names an algorithm the server does not support.
    ChecksumAlgorithmUnsupported,
    /// The chunk's checksum does not match the bytes received.
    ChecksumMismatch,
    /// The declared length is over the server's maximum upload size.
    UploadTooLarge,
    /// The body would go past the upload's declared length.
    BodyExceedsLength,
    /// The upload's length is already known and cannot change.
    LengthAlreadySet,
    /// The length was neither given nor deferred.
    LengthRequired,
    /// No upload with this ID (never existed, or deleted).
    NotFound,
    /// The upload was abandoned and has expired.
    UploadExpired,
    /// The upload is finished and takes no more bytes.
    UploadComplete,
    /// The upload is not finished, so it cannot be downloaded or used.
    UploadIncomplete,
    /// A final concatenated upload is assembled from its parts only.
    ConcatFinalImmutable,
    /// A part named in a concatenation is not usable (not partial, not
    /// finished, or not the requester's).
    InvalidConcatPart,
    /// The HTTP method is not allowed here.
    MethodNotAllowed,
    /// `X-HTTP-Method-Override` asked for something not allowed.
    InvalidMethodOverride,
    /// The Range header cannot be satisfied.
    RangeNotSatisfiable,
    /// Authentication is required or was wrong.
    Unauthorized,
    /// The resource belongs to someone else.
    Forbidden,
    /// The server's storage is full.
    StorageFull,
    /// The client was too slow sending the request.
    RequestTimeout,
    /// Too many requests from one client.
    RateLimited,
    /// The request body stopped before it was complete.
    BodyIncomplete,
    /// A request body (other than an upload's bytes) is larger than allowed.
    RequestTooLarge,
    /// A server function's arguments could not be read.
    InvalidArguments,
    /// The owner would store more than `--max-bytes-per-owner`.
    QuotaExceeded,
    /// The owner has `--max-unfinished-per-owner` unfinished uploads.
    TooManyUnfinished,
    /// Too many event streams or WebSockets open at once.
    TooManyStreams,
    /// Something failed inside the server; details are in its log.
    Internal,
}

impl ErrorCode {
    /// The stable machine-readable code.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidHeader => "invalid_header",
            InvalidMetadata => "invalid_metadata",
            UnsupportedVersion => "unsupported_version",
            UnsupportedContentType => "unsupported_content_type",
            OffsetMismatch => "offset_mismatch",
            UploadLocked => "upload_locked",
            ChecksumAlgorithmUnsupported => "checksum_algorithm_unsupported",
            ChecksumMismatch => "checksum_mismatch",
            UploadTooLarge => "upload_too_large",
            BodyExceedsLength => "body_exceeds_length",
            LengthAlreadySet => "length_already_set",
            LengthRequired => "length_required",
            NotFound => "not_found",
            UploadExpired => "upload_expired",
            UploadComplete => "upload_complete",
            UploadIncomplete => "upload_incomplete",
            ConcatFinalImmutable => "concat_final_immutable",
            InvalidConcatPart => "invalid_concat_part",
            MethodNotAllowed => "method_not_allowed",
            InvalidMethodOverride => "invalid_method_override",
            RangeNotSatisfiable => "range_not_satisfiable",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            StorageFull => "storage_full",
            RequestTimeout => "request_timeout",
            RateLimited => "rate_limited",
            BodyIncomplete => "body_incomplete",
            QuotaExceeded => "quota_exceeded",
            RequestTooLarge => "request_too_large",
            InvalidArguments => "invalid_arguments",
            TooManyUnfinished => "too_many_unfinished",
            TooManyStreams => "too_many_streams",
            Internal => "internal",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidHeader
            | InvalidMetadata
            | ChecksumAlgorithmUnsupported
            | LengthAlreadySet
            | InvalidConcatPart
            | InvalidMethodOverride
            | BodyIncomplete
            | InvalidArguments => 400,
            LengthRequired => 400,
            Unauthorized => 401,
            Forbidden | ConcatFinalImmutable => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            OffsetMismatch | UploadComplete | UploadIncomplete => 409,
            UploadExpired => 410,
            UnsupportedVersion => 412,
            UploadTooLarge | BodyExceedsLength | RequestTooLarge => 413,
            UnsupportedContentType => 415,
            RangeNotSatisfiable => 416,
            RateLimited | TooManyUnfinished | TooManyStreams => 429,
            UploadLocked => 423,
            ChecksumMismatch => 460,
            Internal => 500,
            StorageFull | QuotaExceeded => 507,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its code and a message for people. Internal details (file
/// paths, database errors) go to the log, not into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Error::new(ErrorCode::NotFound, "No upload exists at this address.")
    }

    pub fn header(name: &str, problem: impl fmt::Display) -> Self {
        Error::new(
            ErrorCode::InvalidHeader,
            format!("Header {name}: {problem}."),
        )
    }

    /// An internal failure: logged in full, reported without details.
    pub fn internal(context: &str, err: impl fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        Error::new(
            ErrorCode::Internal,
            "The server failed to handle this request; it has been logged.",
        )
    }

    /// Maps an I/O error from storage: a full disk is the client's to know
    /// about (507), anything else is internal.
    pub fn storage(context: &str, err: std::io::Error) -> Self {
        if is_storage_full(&err) {
            tracing::warn!("{context}: {err}");
            Error::new(
                ErrorCode::StorageFull,
                "The server's storage is full. The bytes received before this were kept; try again later.",
            )
        } else {
            Error::internal(context, err)
        }
    }
}

fn is_storage_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(err.raw_os_error(), Some(28) | Some(122)) // ENOSPC, EDQUOT
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// The result type of the domain core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        use ErrorCode::*;
        let all = [
            InvalidHeader,
            InvalidMetadata,
            UnsupportedVersion,
            UnsupportedContentType,
            OffsetMismatch,
            UploadLocked,
            ChecksumAlgorithmUnsupported,
            ChecksumMismatch,
            UploadTooLarge,
            BodyExceedsLength,
            LengthAlreadySet,
            LengthRequired,
            NotFound,
            UploadExpired,
            UploadComplete,
            UploadIncomplete,
            ConcatFinalImmutable,
            InvalidConcatPart,
            MethodNotAllowed,
            InvalidMethodOverride,
            RangeNotSatisfiable,
            Unauthorized,
            Forbidden,
            StorageFull,
            RequestTimeout,
            RateLimited,
            BodyIncomplete,
            QuotaExceeded,
            RequestTooLarge,
            InvalidArguments,
            TooManyUnfinished,
            TooManyStreams,
            Internal,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|c| c.status() >= 400));
    }

    #[test]
    fn enospc_is_storage_full() {
        let e = Error::storage("write", std::io::Error::from_raw_os_error(28));
        assert_eq!(e.code, ErrorCode::StorageFull);
        assert_eq!(e.code.status(), 507);
    }
}
