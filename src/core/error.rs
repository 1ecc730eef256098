//! The core's error: a code from the catalogue (`protocol::error`) and a
//! message for people. Internal details (file paths, database errors) are
//! kept apart in `detail`, for the log, never for the client.

use std::fmt;

pub use crate::protocol::error::ErrorCode;
use crate::protocol::metadata::MetadataError;

/// An error with its code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// What went wrong inside, for the server's log (whoever reports the
    /// error logs it; constructing one logs nothing).
    pub detail: Option<String>,
    /// The HTTP status to answer instead of the code's own: a pre-hook's
    /// refusal carries the status the operator's application chose.
    pub status: Option<u16>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            detail: None,
            status: None,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        self.status.unwrap_or(self.code.status())
    }

    /// An error with the catalogue's own message for its code.
    pub fn of(code: ErrorCode) -> Self {
        Error::new(code, code.message())
    }

    pub fn not_found() -> Self {
        Error::of(ErrorCode::NotFound)
    }

    /// An internal failure: reported without details, which are kept for
    /// the log.
    pub fn internal(context: &str, err: impl fmt::Display) -> Self {
        Error {
            detail: Some(format!("{context}: {err}")),
            ..Error::of(ErrorCode::Internal)
        }
    }

    /// Maps an I/O error from storage: a full disk is the client's to know
    /// about (507), anything else is internal.
    pub fn storage(context: &str, err: std::io::Error) -> Self {
        if is_storage_full(&err) {
            Error {
                detail: Some(format!("{context}: {err}")),
                ..Error::of(ErrorCode::StorageFull)
            }
        } else if err.kind() == std::io::ErrorKind::ResourceBusy {
            Error {
                detail: Some(format!("{context}: {err}")),
                ..Error::of(ErrorCode::ServerBusy)
            }
        } else {
            Error::internal(context, err)
        }
    }

    /// Writes what went wrong inside to the log, once the error is being
    /// reported to a client (a full disk is a warning, the rest errors).
    pub fn log(&self) {
        if let Some(detail) = &self.detail {
            if matches!(self.code, ErrorCode::StorageFull | ErrorCode::ServerBusy) {
                tracing::warn!("{detail}");
            } else {
                tracing::error!("{detail}");
            }
        }
    }
}

impl From<MetadataError> for Error {
    fn from(e: MetadataError) -> Self {
        Error::new(ErrorCode::InvalidMetadata, e.to_string())
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
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The result type of the domain core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_storage_full_and_keeps_its_detail() {
        let e = Error::storage("write", std::io::Error::from_raw_os_error(28));
        assert_eq!(e.code, ErrorCode::StorageFull);
        assert_eq!(e.code.status(), 507);
        assert!(e.detail.as_deref().unwrap().starts_with("write: "));
        assert!(
            !e.message.contains("write"),
            "details stay out of the message"
        );
    }

    #[test]
    fn a_busy_store_is_503_server_busy() {
        let busy = std::io::Error::new(std::io::ErrorKind::ResourceBusy, "no memory for a part");
        let e = Error::storage("writing", busy);
        assert_eq!(e.code, ErrorCode::ServerBusy);
        assert_eq!(e.code.status(), 503);
        assert!(e
            .detail
            .as_deref()
            .unwrap()
            .contains("no memory for a part"));
    }

    #[test]
    fn internal_errors_hide_their_cause_from_the_message() {
        let e = Error::internal("opening /srv/data/x", "permission denied");
        assert_eq!(e.message, ErrorCode::Internal.message());
        assert!(e.to_string().contains("permission denied"));
        assert_eq!(e.code.status(), 500);
    }
}
