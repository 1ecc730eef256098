//! The tus 1.0.0 resumable-upload protocol, with the extensions creation,
//! creation-with-upload, creation-defer-length, termination, checksum,
//! expiration and concatenation: one file per method. `http::files` routes
//! a request here when it speaks tus. Handlers parse headers, call
//! `UploadService`, and map the answer; all rules live in the service.
//!
//! What it must not know: the IETF draft (`http::ietf`), or storage.

pub(super) mod create;
pub(super) mod delete;
pub(super) mod head;
pub(super) mod patch;

use super::error::ApiError;

pub(super) type Result<T> = std::result::Result<T, ApiError>;
