//! The wire, compiled into both halves (no tokio, no axum, no web-sys):
//! every constant, header name, metadata key, event kind, error code and
//! message shape that the server and the page must agree on. The browser
//! never retypes one of these; when the protocol changes, it changes here.
//!
//! What this module must not know: how uploads are stored, how requests are
//! served, or how the page draws them.

pub mod error;
pub mod events;
pub mod hooks;
pub mod ietf;
pub mod metadata;
pub mod model;
pub mod rules;
pub mod sample;
pub mod ws;

/// The tus protocol version Ferry speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// The tus extensions Ferry supports, as `Tus-Extension` lists them.
pub const TUS_EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation";
/// The media type of PATCH bodies.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// Where uploads live: `POST /files` creates one at `/files/{id}`.
pub const FILES: &str = "/files";
/// Where the page's live events stream (`GET`, server-sent events).
pub const EVENTS: &str = "/events";
/// The long-polling fallback of [`EVENTS`].
pub const EVENTS_POLL: &str = "/events/poll";
/// The form upload that works without JavaScript.
pub const FORM_UPLOAD: &str = "/upload/form";

/// The query key of the page a form upload returns to, with how many files
/// it stored: `/?uploaded=N`.
pub const FORM_DONE_KEY: &str = "uploaded";

/// The address of a long poll for events after `after`, waiting at most
/// `timeout_secs` (`/events/poll?after=N&timeout=S`).
pub fn events_poll_url(after: Option<u64>, timeout_secs: u64) -> String {
    match after {
        Some(after) => format!("{EVENTS_POLL}?after={after}&timeout={timeout_secs}"),
        None => EVENTS_POLL.to_string(),
    }
}

/// The address of one upload (its tus URL, and its download once complete).
pub fn upload_url(id: &str) -> String {
    format!("{FILES}/{id}")
}

/// The address of one upload's WebSocket, resuming at `offset`.
pub fn upload_ws_url(id_url: &str, offset: u64) -> String {
    format!("{id_url}/ws?offset={offset}")
}

/// Header names, lowercase as HTTP/2 sends them (lookups ignore case).
pub mod header {
    pub const TUS_RESUMABLE: &str = "tus-resumable";
    pub const TUS_VERSION: &str = "tus-version";
    pub const TUS_EXTENSION: &str = "tus-extension";
    pub const TUS_MAX_SIZE: &str = "tus-max-size";
    pub const TUS_CHECKSUM_ALGORITHM: &str = "tus-checksum-algorithm";
    pub const UPLOAD_LENGTH: &str = "upload-length";
    pub const UPLOAD_DEFER_LENGTH: &str = "upload-defer-length";
    pub const UPLOAD_OFFSET: &str = "upload-offset";
    pub const UPLOAD_METADATA: &str = "upload-metadata";
    pub const UPLOAD_CHECKSUM: &str = "upload-checksum";
    pub const UPLOAD_CONCAT: &str = "upload-concat";
    pub const UPLOAD_EXPIRES: &str = "upload-expires";
    pub const METHOD_OVERRIDE: &str = "x-http-method-override";
    pub const REQUESTED_WITH: &str = "x-requested-with";
    /// draft-ietf-httpapi-idempotency-key-header: a creation request sent
    /// again with the same key makes no second upload.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
}

/// `Upload-Concat`: `partial`, or `final;` then the parts' URLs separated by
/// spaces.
pub mod concat {
    pub const PARTIAL: &str = "partial";
    pub const FINAL_PREFIX: &str = "final;";
}

/// The `Upload-Metadata` keys Ferry reads and its page writes.
pub mod key {
    /// The file's name (tus-js-client's convention).
    pub const FILENAME: &str = "filename";
    /// The file's name as Uppy sends it.
    pub const NAME: &str = "name";
    /// The file's media type.
    pub const FILETYPE: &str = "filetype";
    /// The media type as Uppy sends it.
    pub const TYPE: &str = "type";
    /// Where the file sat in a dropped folder.
    pub const RELATIVE_PATH: &str = "relativePath";
    /// `File.lastModified`, milliseconds since the Unix epoch.
    pub const LAST_MODIFIED: &str = "lastmodified";
    /// The whole file's SHA-256 as the client computed it, lowercase hex.
    pub const SHA256: &str = "sha256";
}
