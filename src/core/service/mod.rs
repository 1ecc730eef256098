//! `UploadService`: the domain core. It validates every operation (offsets,
//! lengths, checksums, locks, limits, ownership, expiry), drives the
//! `BlobStore` and `MetaStore`, and decides what is durable. It knows
//! nothing of HTTP.

use crate::core::blob::{BlobStore, ByteStream};
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::events::Events;
use crate::core::hooks::{Caller, Delivery, HookPoint, HookUpload, Hooks, FIRST_BYTES};
use crate::core::id::UploadId;
use crate::core::lock::Locker;
use crate::core::meta::{ListCursor, MetaStore};
use crate::core::observe::{Observer, Unobserved};
use crate::core::record::{now_millis, Concat, Owner, UploadRecord, UploadState};
use crate::protocol::events::EventKind;
use bytes::Bytes;
use futures_util::Stream;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

mod append;
mod commit;
mod concat;
mod create;
mod expiry;
mod recover;
mod sample;
mod start_up;
#[cfg(test)]
mod testing;

pub use append::{AppendRequest, CommitHook};
pub use create::CreateRequest;
pub use recover::Reconciled;
pub use sample::SAMPLED_PER_SIZE;
use start_up::StartUp;

/// When writes are forced to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before every acknowledgement (and every checkpoint): nothing a
    /// client was told is stored can be lost, even to a power cut.
    Request,
    /// Never explicitly: the operating system writes when it likes. A
    /// crashed process loses nothing; a power cut may.
    Never,
}

/// The rules the service enforces.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Largest upload accepted, in bytes.
    pub max_size: u64,
    /// How long an unfinished upload may sit idle before it expires.
    pub expire_after: Duration,
    /// When writes reach stable storage.
    pub fsync: FsyncPolicy,
    /// Within one long request, bytes are made durable and recorded at
    /// least this often, so a crash loses at most this much.
    pub checkpoint_bytes: u64,
    /// A request body that sends nothing for this long is ended.
    pub body_idle_timeout: Duration,
    /// How long expired uploads keep answering 410 before they are forgotten.
    pub expired_retention: Duration,
    /// Within one long request, bytes are made durable and recorded at
    /// least this often too.
    pub checkpoint_interval: Duration,
    /// Most bytes one owner may store (`None`: no limit).
    pub max_bytes_per_owner: Option<u64>,
    /// Most unfinished uploads of one owner (`None`: no limit).
    pub max_unfinished_per_owner: Option<u64>,
    /// Free space kept on the data disk (`None`: no reserve).
    pub min_free_space: Option<u64>,
    /// The only kinds of file accepted (`protocol::rules`); empty: any.
    pub allow_types: Vec<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_size: 1 << 40,
            expire_after: Duration::from_secs(24 * 3600),
            fsync: FsyncPolicy::Request,
            checkpoint_bytes: 64 << 20,
            body_idle_timeout: Duration::from_secs(60),
            expired_retention: Duration::from_secs(7 * 24 * 3600),
            checkpoint_interval: Duration::from_secs(1),
            max_bytes_per_owner: None,
            max_unfinished_per_owner: None,
            min_free_space: None,
            allow_types: Vec::new(),
        }
    }
}

/// A request body: chunks of bytes, or the I/O error that ended it.
pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The domain core. Cheap to clone.
#[derive(Clone)]
pub struct UploadService {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetaStore>,
    locks: Arc<dyn Locker>,
    events: Events,
    config: Arc<ServiceConfig>,
    observer: Arc<dyn Observer>,
    hooks: Hooks,
    /// Turns to take a stored upload's sample (`sample.rs`).
    sampling: Arc<tokio::sync::Semaphore>,
    /// The start-up check, while it runs beside the requests.
    start_up: Arc<StartUp>,
}

fn storage(context: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::storage(context, e)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl UploadService {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetaStore>,
        locks: Arc<dyn Locker>,
        events: Events,
        config: ServiceConfig,
    ) -> Self {
        UploadService {
            blobs,
            meta,
            locks,
            events,
            config: Arc::new(config),
            observer: Arc::new(Unobserved),
            hooks: Hooks::off(),
            sampling: Arc::new(tokio::sync::Semaphore::new(sample::SAMPLING_AT_ONCE)),
            start_up: Arc::new(StartUp::new()),
        }
    }

    /// This service, asking and telling `hooks` (see `core::hooks`).
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// The hooks the service calls.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// An upload as hooks see it, with where its bytes are.
    pub(super) fn hook_upload<'a>(
        &self,
        record: &'a UploadRecord,
        caller: Option<&'a Caller>,
    ) -> HookUpload<'a> {
        HookUpload {
            location: self.blobs.location(&record.blob_key),
            ..HookUpload::new(record, caller)
        }
    }

    /// The deliveries of these post-hooks for a record as it is after a
    /// change (none for points that are not called). `post-finish` gets
    /// the file's first bytes.
    pub(super) async fn news(
        &self,
        points: &[HookPoint],
        record: &UploadRecord,
        caller: Option<&Caller>,
    ) -> Vec<Delivery> {
        if !points.iter().any(|p| self.hooks.calls(*p)) {
            return Vec::new();
        }
        let mut upload = self.hook_upload(record, caller);
        if points.contains(&HookPoint::PostFinish) {
            upload.first_bytes = self.first_bytes(record, None).await;
        }
        points
            .iter()
            .filter_map(|p| self.hooks.news(*p, &upload))
            .collect()
    }

    /// The first `FIRST_BYTES` of an upload: what the store can read back
    /// of its recorded bytes, followed by `fresh` (bytes of the request
    /// being committed, and where they start). `None` when neither has them.
    pub(super) async fn first_bytes(
        &self,
        record: &UploadRecord,
        fresh: Option<(u64, &[u8])>,
    ) -> Option<Vec<u8>> {
        use futures_util::TryStreamExt;
        let stored_end = match fresh {
            Some((start, _)) => start.min(FIRST_BYTES),
            None => record.offset.min(FIRST_BYTES),
        };
        let mut head = Vec::new();
        if stored_end > 0 {
            let stream = self
                .blobs
                .read(&record.blob_key, 0..stored_end)
                .await
                .ok()?;
            let chunks: Vec<Bytes> = stream.try_collect().await.ok()?;
            chunks.iter().for_each(|c| head.extend_from_slice(c));
            if head.len() as u64 != stored_end {
                return None;
            }
        }
        if let Some((_, bytes)) = fresh {
            head.extend_from_slice(bytes);
        }
        head.truncate(FIRST_BYTES as usize);
        Some(head)
    }

    /// This service, telling `observer` what happens (metrics).
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Records an event of an upload and tells the observer.
    pub(super) async fn note(&self, kind: EventKind, record: &UploadRecord) {
        if kind != EventKind::Progress {
            self.observer.upload(kind);
        }
        // A part of a concatenation is not a file: its owner's live events
        // tell of the file it is joined into (hooks hear of parts).
        if record.concat != Concat::Partial {
            self.events.record(kind, record).await;
        }
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The event log the service writes to.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Records a new record's events: created, and completed when it is.
    pub(super) async fn announce_new(&self, record: &UploadRecord) {
        self.note(EventKind::Created, record).await;
        if record.is_complete() {
            self.note(EventKind::Completed, record).await;
        }
    }

    pub(super) fn durable(&self) -> bool {
        self.config.fsync == FsyncPolicy::Request
    }

    /// The record of an upload that exists and has not expired (checked
    /// against its bytes first, if the start-up check has not got to it).
    pub async fn get(&self, id: &UploadId) -> Result<UploadRecord> {
        self.fetch(id, false).await
    }

    /// `get`, for a caller that holds the upload's lock.
    pub(super) async fn get_locked(&self, id: &UploadId) -> Result<UploadRecord> {
        self.fetch(id, true).await
    }

    async fn fetch(&self, id: &UploadId, locked: bool) -> Result<UploadRecord> {
        let mut record = self.meta.get(id).await?.ok_or_else(Error::not_found)?;
        if self.start_up.pending(&record) {
            record = self.check_early(record, locked).await?;
        }
        let expired = record.state == UploadState::Expired
            || (record.can_expire() && record.expires_at.is_some_and(|t| t <= now_millis()));
        if expired {
            let why = match record.concat {
                Concat::Partial => {
                    "This part was left unjoined or unfinished for too long and has been removed."
                }
                _ => "This upload was left unfinished for too long and has been removed.",
            };
            return Err(Error::new(ErrorCode::UploadExpired, why));
        }
        Ok(record)
    }

    /// Streams `range` of a complete upload.
    pub async fn read(
        &self,
        id: &UploadId,
        range: Range<u64>,
    ) -> Result<(UploadRecord, ByteStream)> {
        let record = self.get(id).await?;
        if !record.is_complete() {
            return Err(Error::new(
                ErrorCode::UploadIncomplete,
                "This upload is not finished yet, so it cannot be downloaded.",
            ));
        }
        let stream = self
            .blobs
            .read(&record.blob_key, range)
            .await
            .map_err(storage("reading a blob"))?;
        Ok((record, stream))
    }

    /// A page of this owner's uploads, newest first, after `after`; nothing
    /// for anonymous requests.
    pub async fn list(
        &self,
        owner: &Owner,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<UploadRecord>> {
        if owner.is_anonymous() {
            return Ok(Vec::new());
        }
        self.meta.list_by_owner(owner, after, limit).await
    }

    /// This owner's uploads of one of these lengths, newest first (to find
    /// the files a browser is about to send).
    pub async fn find_by_lengths(
        &self,
        owner: &Owner,
        lengths: &[u64],
        limit: u32,
    ) -> Result<Vec<UploadRecord>> {
        if owner.is_anonymous() {
            return Ok(Vec::new());
        }
        self.meta.find_by_lengths(owner, lengths, limit).await
    }
}
