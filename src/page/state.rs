//! The page's state: the rows of the current batch and everything around
//! them, in signals that both the server render and the browser share. The
//! browser's client (`crate::client`) writes these; the components
//! (`crate::ui`) only read them.
//!
//! What this module must not know: how files travel (requests, sockets,
//! storage) or how the state is drawn.

use super::i18n::Lang;
use crate::protocol::events::EventKind;
use crate::protocol::model::{FileFingerprint, UploadSummary};
use crate::protocol::rules::UploadRules;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Where one file of the batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Asking the server what it already has.
    Checking,
    /// In the queue.
    Waiting,
    /// Computing the SHA-256 for instant upload.
    Hashing,
    Uploading,
    /// Waiting to try again after an error.
    Retrying,
    /// Every byte is on the server; the browser's SHA-256 of the file is
    /// being computed, or compared with the server's.
    Verifying,
    /// Every byte is on the server.
    Done,
    /// The server had it already: nothing was sent.
    AlreadyUploaded,
    /// Stopped by an error that retrying cannot fix.
    Failed,
    /// Stopped by the person; the server keeps what it has, and resuming
    /// continues from there.
    Paused,
    /// Breaks the server's rules (size, kind, count, room): never sent.
    Refused,
}

impl Status {
    /// The value of the row's `data-status` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Checking => "checking",
            Status::Waiting => "waiting",
            Status::Hashing => "hashing",
            Status::Uploading => "uploading",
            Status::Retrying => "retrying",
            Status::Verifying => "verifying",
            Status::Done => "done",
            Status::AlreadyUploaded => "already-uploaded",
            Status::Failed => "failed",
            Status::Paused => "paused",
            Status::Refused => "refused",
        }
    }

    /// Whether the file takes one of the parallel upload slots.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Hashing | Status::Uploading | Status::Retrying)
    }

    /// Whether the file can be paused: it is on its way or waiting for a
    /// slot.
    pub fn can_pause(self) -> bool {
        self.is_active() || matches!(self, Status::Waiting | Status::Checking)
    }

    /// Whether the file has reached the end of its way.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::AlreadyUploaded)
    }

    /// Whether every byte of the file is on the server (cancelling it
    /// removes the server's copy), finished or still being verified.
    pub fn is_on_server(self) -> bool {
        self.is_finished() || self == Status::Verifying
    }
}

/// How a file's bytes travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// tus PATCH requests (the default).
    #[default]
    Http,
    /// Binary frames on one WebSocket.
    WebSocket,
}

/// The most parts a file is sent in at once: the browser opens six
/// connections to one server (`client/lanes.rs`).
pub const MAX_STREAMS: u32 = 6;

/// The person's settings, kept in the browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bytes per PATCH request, in MiB.
    pub chunk_mib: u32,
    /// Files uploading at once.
    pub parallel: u32,
    /// Thumbnail size in CSS pixels.
    pub thumb_px: u32,
    /// Files up to this size (MiB) are hashed first so the server can
    /// complete duplicates at once.
    pub instant_mib: u32,
    /// How bytes travel.
    pub transport: Transport,
    /// Seconds a request may go without a byte leaving or an answer
    /// coming before it is given up and resumed from the server's offset.
    pub stall_secs: u32,
    /// A file of at least `streams_from_mib` MiB is sent as this many parts
    /// at once, joined on the server (tus concatenation); 1 sends every
    /// file in one stream.
    pub streams: u32,
    pub streams_from_mib: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chunk_mib: 8,
            parallel: 3,
            thumb_px: 96,
            instant_mib: 256,
            transport: Transport::Http,
            stall_secs: 15,
            streams: 4,
            streams_from_mib: 128,
        }
    }
}

impl Settings {
    /// The settings with every value brought into its sensible range.
    pub fn clamped(self) -> Settings {
        Settings {
            chunk_mib: self.chunk_mib.clamp(1, 1024),
            parallel: self.parallel.clamp(1, 16),
            thumb_px: self.thumb_px.clamp(32, 512),
            instant_mib: self.instant_mib.min(1 << 20),
            transport: self.transport,
            stall_secs: self.stall_secs.clamp(3, 600),
            streams: self.streams.clamp(1, MAX_STREAMS),
            streams_from_mib: self.streams_from_mib.clamp(1, 1 << 20),
        }
    }
}

/// One file of the batch.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: u32,
    pub file: FileFingerprint,
    pub status: RwSignal<Status>,
    /// Bytes the server has (or that are on their way in the current request).
    pub sent: RwSignal<u64>,
    /// Bytes per second, averaged over the last seconds.
    pub speed: RwSignal<f64>,
    /// Bytes hashed so far, while hashing.
    pub hashed: RwSignal<u64>,
    /// A data URL of the thumbnail, for images.
    pub thumb: RwSignal<Option<String>>,
    /// What went wrong, or what is being waited for.
    pub message: RwSignal<Option<String>>,
    /// The upload's URL on the server, once known.
    pub url: RwSignal<Option<String>>,
    /// The SHA-256 the browser computed (files under the instant-upload limit).
    pub local_sha: RwSignal<Option<String>>,
    /// The SHA-256 the server recorded.
    pub server_sha: RwSignal<Option<String>>,
}

impl Row {
    pub fn new(id: u32, file: FileFingerprint) -> Row {
        Row {
            id,
            file,
            status: RwSignal::new(Status::Checking),
            sent: RwSignal::new(0),
            speed: RwSignal::new(0.0),
            hashed: RwSignal::new(0),
            thumb: RwSignal::new(None),
            message: RwSignal::new(None),
            url: RwSignal::new(None),
            local_sha: RwSignal::new(None),
            server_sha: RwSignal::new(None),
        }
    }

    /// Whether the browser's and the server's SHA-256 agree.
    pub fn verified(&self) -> bool {
        matches!((self.local_sha.get(), self.server_sha.get()), (Some(a), Some(b)) if a == b)
    }

    /// Whether the browser's and the server's SHA-256 are both known and
    /// differ: the server's copy is not the file.
    pub fn mismatched(&self) -> bool {
        matches!((self.local_sha.get_untracked(), self.server_sha.get_untracked()), (Some(a), Some(b)) if a != b)
    }
}

/// The latest state of an upload, as the live events tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub id: String,
    pub name: String,
    pub size: Option<u64>,
    pub offset: u64,
    /// What the last event said happened.
    pub kind: EventKind,
    /// The event's ID.
    pub event: u64,
}

/// An upload that a previous visit left unfinished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    pub key: String,
    pub name: String,
    pub size: u64,
    pub offset: u64,
    /// The browser kept the file's handle: it can be resumed without
    /// choosing it again.
    pub by_handle: bool,
}

/// Everything the page shows, shared through context.
#[derive(Clone, Copy)]
pub struct Uploads {
    pub rows: RwSignal<Vec<Row>>,
    pub settings: RwSignal<Settings>,
    pub lang: RwSignal<Lang>,
    /// This owner's finished uploads.
    pub uploaded: RwSignal<Vec<UploadSummary>>,
    /// Where the listing of uploads goes on, when there are more.
    pub uploaded_next: RwSignal<Option<String>>,
    pub interrupted: RwSignal<Vec<Interrupted>>,
    /// The latest message for screen readers.
    pub announce: RwSignal<String>,
    /// True once the page is interactive.
    pub hydrated: RwSignal<bool>,
    /// Uploads of this owner as live events report them, newest first.
    pub activity: RwSignal<Vec<Activity>>,
    /// How live events arrive: "", "sse" or "poll".
    pub live: RwSignal<&'static str>,
    /// The server's rules for uploads, once it said them.
    pub rules: RwSignal<Option<UploadRules>>,
    /// True while files wait to be started (an embedded widget with
    /// `autostart` off, until the host page calls `start()`).
    pub held: RwSignal<bool>,
}

/// Row IDs are the page's, not one uploader's: the client keeps each row's
/// file under its ID, and a page may hold several embedded uploaders.
static NEXT_ROW: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Uploads {
    pub fn new(uploaded: Vec<UploadSummary>) -> Uploads {
        Uploads {
            rows: RwSignal::new(Vec::new()),
            settings: RwSignal::new(Settings::default()),
            lang: RwSignal::new(Lang::En),
            uploaded: RwSignal::new(uploaded),
            uploaded_next: RwSignal::new(None),
            interrupted: RwSignal::new(Vec::new()),
            announce: RwSignal::new(String::new()),
            hydrated: RwSignal::new(false),
            activity: RwSignal::new(Vec::new()),
            live: RwSignal::new(""),
            rules: RwSignal::new(None),
            held: RwSignal::new(false),
        }
    }

    /// A fresh row ID, unique on the page.
    pub fn next_id(&self) -> u32 {
        NEXT_ROW.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the uploader is still on the page (its state was not
    /// disposed with it): long-running loops end when it is not.
    pub fn alive(&self) -> bool {
        self.rows.try_with_untracked(|_| ()).is_some()
    }

    pub fn row(&self, id: u32) -> Option<Row> {
        self.rows
            .with_untracked(|rows| rows.iter().find(|r| r.id == id).cloned())
    }

    /// Bytes done and bytes in all, over the whole batch.
    pub fn totals(&self) -> (u64, u64) {
        self.rows.with(|rows| {
            // Refused files are never sent: they count for nothing.
            rows.iter()
                .filter(|r| r.status.get() != Status::Refused)
                .fold((0, 0), |(done, all), r| {
                    let size = r.file.size;
                    let sent = if r.status.get().is_finished() {
                        size
                    } else {
                        r.sent.get().min(size)
                    };
                    (done + sent, all + size)
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_clamped() {
        let s = Settings {
            chunk_mib: 0,
            parallel: 100,
            thumb_px: 1,
            instant_mib: u32::MAX,
            transport: Transport::WebSocket,
            stall_secs: 0,
            streams: 99,
            streams_from_mib: 0,
        }
        .clamped();
        assert_eq!((s.chunk_mib, s.parallel, s.thumb_px), (1, 16, 32));
        assert_eq!((s.streams, s.streams_from_mib), (MAX_STREAMS, 1));
        assert_eq!(s.stall_secs, 3);
        assert_eq!(s.instant_mib, 1 << 20);
    }

    #[test]
    fn statuses() {
        assert!(Status::Uploading.is_active());
        assert!(!Status::Waiting.is_active());
        assert!(Status::AlreadyUploaded.is_finished());
        assert_eq!(Status::AlreadyUploaded.as_str(), "already-uploaded");
        assert!(Status::Verifying.is_on_server() && !Status::Verifying.is_finished());
        assert!(!Status::Uploading.is_on_server());
    }
}
