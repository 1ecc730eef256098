//! The shapes that cross the wire in server functions and JSON answers:
//! what the page is told about the server, about its files and uploads.

use serde::{Deserialize, Serialize};

/// What the server says about itself to the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's version (the crate version).
    pub version: String,
    /// Seconds the server process has been up.
    pub uptime_secs: u64,
    /// The largest upload the server accepts, in bytes.
    pub max_size: u64,
}

/// What identifies a file the browser holds, without reading it: the same
/// four facts mean the same file (as resumable.js and tus-js-client assume).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileFingerprint {
    pub name: String,
    pub size: u64,
    /// `File.lastModified`, milliseconds since the Unix epoch.
    pub last_modified: i64,
    /// `File.type`, possibly empty.
    pub mime: String,
    /// Its path inside a chosen or dropped folder (`photos/2024/a.jpg`);
    /// empty for a file that came alone.
    #[serde(default)]
    pub path: String,
}

/// The folder part of a path inside a chosen folder (`photos/2024` of
/// `photos/2024/a.jpg`); empty when there is none.
pub fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(folder, _)| folder)
}

impl FileFingerprint {
    /// A stable text key for this fingerprint (for browser storage).
    pub fn key(&self) -> String {
        // Two files of one name in two folders are two files.
        let name = if self.path.is_empty() {
            &self.name
        } else {
            &self.path
        };
        format!(
            "{}|{}|{}|{}",
            self.size, self.last_modified, self.mime, name
        )
    }
}

/// A large file as the page asks about it before hashing it whole: its
/// size and its sample (`protocol::sample`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSample {
    pub size: u64,
    pub sample: String,
}

/// What the server already has of a file, answered before sending it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileCheck {
    /// Nothing: send it all.
    New,
    /// Part of it, at this URL: resume at `offset`.
    Partial { url: String, offset: u64 },
    /// All of it, unchanged: nothing to send.
    Complete { url: String, sha256: String },
}

/// One upload as the page lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSummary {
    pub id: String,
    /// Where the upload lives (tus URL, and its download when complete).
    pub url: String,
    pub name: String,
    /// Its path inside the folder it was sent with (cleaned by the
    /// server); empty when it came alone.
    #[serde(default)]
    pub path: String,
    pub mime: String,
    /// Total size; `None` while deferred.
    pub size: Option<u64>,
    /// Bytes received.
    pub offset: u64,
    pub complete: bool,
    /// The server's SHA-256 of the whole file, once complete.
    pub sha256: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// One page of the listing of uploads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPage {
    /// Newest first.
    pub uploads: Vec<UploadSummary>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}
