//! `UploadService`: the domain core. It validates every operation (offsets,
//! lengths, checksums, locks, limits, ownership, expiry), drives the
//! `BlobStore` and `MetaStore`, and decides what is durable. It knows
//! nothing of HTTP.

use super::blob::{BlobStore, BlobWriter, ByteStream, Space};
use super::events::{EventKind, Events};
use super::hash::{ChunkChecksum, ChunkHasher, ResumableSha256};
use super::id::UploadId;
use super::lock::{Locker, UploadLock};
use super::meta::{ListCursor, MetaStore};
use super::metadata::Metadata;
use super::record::{now_millis, Concat, Millis, Owner, UploadRecord, UploadState};
use crate::error::{Error, ErrorCode, Result};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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
        }
    }
}

/// A request body: chunks of bytes, or the I/O error that ended it.
pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What a new upload is to be.
#[derive(Clone, Debug)]
pub struct CreateRequest {
    pub owner: Owner,
    /// The total length; `None` defers it (or, for a final concatenation,
    /// lets it follow from the parts).
    pub length: Option<u64>,
    pub metadata: Metadata,
    pub concat: Concat,
}

/// Hears the durable offset after every commit of an append.
#[derive(Clone)]
pub struct CommitHook(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for CommitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitHook")
    }
}

/// One PATCH (or another way of sending bytes): where it starts and what
/// it promises.
#[derive(Clone, Debug, Default)]
pub struct AppendRequest {
    /// The client's idea of the current offset.
    pub offset: u64,
    /// Declares the length of an upload created with a deferred length.
    pub declare_length: Option<u64>,
    /// The expected checksum of this request's bytes.
    pub checksum: Option<ChunkChecksum>,
    /// The body's length, when the client said it in advance.
    pub content_length: Option<u64>,
    /// The end of the body is the end of the upload: its length becomes the
    /// offset reached (for streams whose length nobody knew in advance).
    pub length_at_end: bool,
    /// Commit (make durable and record) at least this often within this
    /// request, instead of the service's checkpoint interval.
    pub checkpoint_bytes: Option<u64>,
    /// Called with the durable offset after every commit.
    pub on_commit: Option<CommitHook>,
}

/// The domain core. Cheap to clone.
#[derive(Clone)]
pub struct UploadService {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetaStore>,
    locks: Arc<dyn Locker>,
    events: Events,
    config: Arc<ServiceConfig>,
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
    async fn announce_new(&self, record: &UploadRecord) {
        self.events.record(EventKind::Created, record).await;
        if record.is_complete() {
            self.events.record(EventKind::Completed, record).await;
        }
    }

    /// When an unfinished upload touched at `now` expires.
    fn expiry(&self, now: Millis) -> Millis {
        now.saturating_add(millis(self.config.expire_after))
    }

    fn durable(&self) -> bool {
        self.config.fsync == FsyncPolicy::Request
    }

    fn too_large(&self, length: u64) -> Error {
        Error::new(
            ErrorCode::UploadTooLarge,
            format!(
                "This file is {length} bytes; the server accepts at most {} bytes per upload.",
                self.config.max_size
            ),
        )
    }

    /// Creates an upload: an empty one, an instant one (complete at once,
    /// sharing the bytes of an identical upload of the same owner), or a
    /// final concatenation of finished partial uploads. It runs in a task
    /// of its own, so a client that goes away cannot stop it half-way
    /// (a record without its bytes, or bytes without their record).
    pub async fn create(&self, req: CreateRequest) -> Result<UploadRecord> {
        let service = self.clone();
        tokio::spawn(async move { service.create_whole(req).await })
            .await
            .map_err(|e| Error::internal("creating an upload", e))?
    }

    async fn create_whole(&self, mut req: CreateRequest) -> Result<UploadRecord> {
        req.metadata.clean_names();
        if let Concat::Final(parts) = &req.concat {
            let parts = parts.clone();
            return self.create_final(&req, &parts).await;
        }
        if let Some(length) = req.length {
            if length > self.config.max_size {
                return Err(self.too_large(length));
            }
        }
        let now = now_millis();
        if let Some(record) = self.create_instant(&req, now).await? {
            return Ok(record);
        }
        self.check_room(&req.owner, req.length.unwrap_or(0), true)
            .await?;
        let mut record = UploadRecord::new(req.owner, req.length, req.metadata, req.concat, now);
        record.expires_at = Some(self.expiry(now));
        if record.length == Some(0) {
            complete(&mut record, &ResumableSha256::new(), now);
        }
        // The record first, then its bytes: a crash in between leaves a
        // record whose empty blob the start-up check makes, never bytes
        // that no record names.
        self.meta.insert(&record).await?;
        if let Err(e) = self.blobs.create(&record.blob_key).await {
            let _ = self.meta.delete(&record.id).await;
            return Err(Error::storage("creating a blob", e));
        }
        tracing::info!(id = %record.id, length = ?record.length, "upload created");
        self.announce_new(&record).await;
        Ok(record)
    }

    /// An upload complete at once, when the owner already has a finished
    /// upload with the SHA-256 and length that the metadata announces: it
    /// shares those bytes. `None` when there is no such upload, or when it
    /// is deleted before its bytes could be shared (the bytes are then sent
    /// again, never lost).
    async fn create_instant(
        &self,
        req: &CreateRequest,
        now: Millis,
    ) -> Result<Option<UploadRecord>> {
        let (Some(length), Some(sha256)) = (req.length, req.metadata.sha256()) else {
            return Ok(None);
        };
        if req.owner.is_anonymous() || req.concat != Concat::None {
            return Ok(None);
        }
        let Some(twin) = self.meta.find_complete(&req.owner, &sha256, length).await? else {
            return Ok(None);
        };
        let mut record = UploadRecord::new(
            req.owner.clone(),
            Some(length),
            req.metadata.clone(),
            Concat::None,
            now,
        );
        record.blob_key = twin.blob_key;
        record.offset = length;
        record.state = UploadState::Complete;
        record.sha256 = twin.sha256;
        record.hash_state = None;
        record.completed_at = Some(now);
        if !self.meta.insert(&record).await? {
            tracing::info!(id = %record.id, "the identical upload went away meanwhile; its bytes will be sent");
            return Ok(None);
        }
        tracing::info!(id = %record.id, "instant upload: identical bytes already stored");
        self.announce_new(&record).await;
        Ok(Some(record))
    }

    /// The disk's reserve and its space now, when a reserve is kept (the
    /// disk is not asked otherwise).
    async fn reserve_and_space(&self) -> Option<(u64, Space)> {
        let reserve = self.config.min_free_space?;
        Some((reserve, self.blobs.space().await?))
    }

    /// Refuses a new upload (or new bytes) that would leave the data disk
    /// with less than its reserve, or take the owner past a quota.
    async fn check_room(&self, owner: &Owner, bytes: u64, new_upload: bool) -> Result<()> {
        if let Some((reserve, space)) = self.reserve_and_space().await {
            if space.free < reserve.saturating_add(bytes) {
                tracing::warn!(
                    free = space.free,
                    reserve,
                    bytes,
                    "refusing an upload: the disk is nearly full"
                );
                return Err(Error::new(
                    ErrorCode::StorageFull,
                    "The server's storage is nearly full; this upload was refused before it started. Try again later.",
                ));
            }
        }
        let (max_bytes, max_unfinished) = (
            self.config.max_bytes_per_owner,
            self.config.max_unfinished_per_owner,
        );
        if max_bytes.is_none() && max_unfinished.is_none() {
            return Ok(());
        }
        let usage = self.meta.usage(owner).await?;
        if let Some(max) = max_unfinished.filter(|m| new_upload && usage.unfinished >= *m) {
            return Err(Error::new(
                ErrorCode::TooManyUnfinished,
                format!("You have {max} unfinished uploads, the most allowed; finish or delete some first."),
            ));
        }
        if let Some(max) = max_bytes.filter(|m| usage.bytes.saturating_add(bytes) > *m) {
            return Err(Error::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "This would take your uploads to {} bytes; the limit is {max} bytes. Delete some to make room.",
                    usage.bytes.saturating_add(bytes)
                ),
            ));
        }
        Ok(())
    }

    /// A final upload: its record is written first (unfinished, so HEAD
    /// shows no offset yet), then the parts are copied into its blob by a
    /// task of its own, which finishes (or cleans up) even when the client
    /// goes away. A crash meanwhile leaves an unfinished final record, which
    /// the start-up check removes with its bytes.
    async fn create_final(
        &self,
        req: &CreateRequest,
        part_ids: &[UploadId],
    ) -> Result<UploadRecord> {
        let bad = |msg: String| Error::new(ErrorCode::InvalidConcatPart, msg);
        if part_ids.is_empty() {
            return Err(bad("A final upload needs at least one part.".into()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = part_ids.iter().find(|p| !seen.insert(*p)) {
            return Err(bad(format!("Part {twice} is named more than once.")));
        }
        let mut parts = Vec::with_capacity(part_ids.len());
        let mut total: u64 = 0;
        for pid in part_ids {
            let part = match self.get(pid).await {
                Ok(p) => p,
                Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::UploadExpired) => {
                    return Err(bad(format!("Part {pid} does not exist.")))
                }
                Err(e) => return Err(e),
            };
            if part.owner != req.owner {
                return Err(Error::new(
                    ErrorCode::Forbidden,
                    format!("Part {pid} belongs to someone else."),
                ));
            }
            if part.concat != Concat::Partial {
                return Err(bad(format!("Upload {pid} is not a partial upload.")));
            }
            if !part.is_complete() {
                return Err(bad(format!("Part {pid} is not finished.")));
            }
            total = total
                .checked_add(part.offset)
                .ok_or_else(|| self.too_large(u64::MAX))?;
            parts.push(part);
        }
        if total > self.config.max_size {
            return Err(self.too_large(total));
        }
        if let Some(length) = req.length {
            if length != total {
                return Err(Error::header(
                    "Upload-Length",
                    format!("the parts add up to {total} bytes, not {length}"),
                ));
            }
        }
        self.check_room(&req.owner, total, false).await?;
        let now = now_millis();
        let mut record = UploadRecord::new(
            req.owner.clone(),
            Some(total),
            req.metadata.clone(),
            Concat::Final(part_ids.to_vec()),
            now,
        );
        record.expires_at = Some(self.expiry(now));
        let lock = self
            .locks
            .try_lock(record.id.as_str())
            .await
            .ok_or_else(|| Error::internal("assembling a final upload", "a new ID is locked"))?;
        self.meta.insert(&record).await?;
        let service = self.clone();
        let task = tokio::spawn(async move {
            let assembled = service.assemble(&lock, &mut record, &parts).await;
            if let Err(e) = assembled {
                if let Err(e) = service.remove(&record).await {
                    tracing::error!(id = %record.id, "removing a final upload that failed: {e}");
                }
                return Err(e);
            }
            tracing::info!(id = %record.id, parts = parts.len(), length = total, "final upload assembled");
            service.announce_new(&record).await;
            Ok(record)
        });
        task.await
            .map_err(|e| Error::internal("assembling a final upload", e))?
    }

    /// Copies the parts into a final upload's blob and completes its record.
    async fn assemble(
        &self,
        lock: &UploadLock,
        record: &mut UploadRecord,
        parts: &[UploadRecord],
    ) -> Result<()> {
        let key = record.blob_key.clone();
        self.blobs
            .create(&key)
            .await
            .map_err(storage("creating a blob"))?;
        let mut writer = self
            .blobs
            .append_at(&key, 0, None)
            .await
            .map_err(storage("opening a blob"))?;
        let mut hasher = ResumableSha256::new();
        let copied = async {
            for part in parts {
                let gone = || {
                    Error::new(
                        ErrorCode::InvalidConcatPart,
                        format!(
                            "Part {} was deleted while the final upload was being assembled.",
                            part.id
                        ),
                    )
                };
                let mut stream = match self.blobs.read(&part.blob_key, 0..part.offset).await {
                    Ok(s) => s,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(gone()),
                    Err(e) => return Err(Error::storage("reading a part", e)),
                };
                while let Some(chunk) = stream.next().await {
                    if lock.is_preempted() {
                        return Err(Error::new(
                            ErrorCode::UploadLocked,
                            "The final upload was deleted while it was being assembled.",
                        ));
                    }
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(gone()),
                        Err(e) => return Err(Error::storage("reading a part", e)),
                    };
                    hasher.update(&chunk);
                    writer
                        .write(chunk)
                        .await
                        .map_err(storage("writing a final upload"))?;
                }
            }
            writer
                .commit(self.durable(), true)
                .await
                .map_err(storage("writing a final upload"))?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = copied {
            let _ = writer.discard().await;
            return Err(e);
        }
        let _ = writer.settle().await;
        if hasher.len() != record.length.unwrap_or(0) {
            return Err(Error::internal(
                "assembling a final upload",
                "a part's bytes fall short of its record",
            ));
        }
        let now = now_millis();
        record.offset = hasher.len();
        record.updated_at = now;
        complete(record, &hasher, now);
        self.meta.update(record).await
    }

    /// Removes a record and, when no other record shares them, its bytes.
    /// The caller holds the upload's lock.
    async fn remove(&self, record: &UploadRecord) -> Result<bool> {
        let Some(deleted) = self.meta.delete(&record.id).await? else {
            return Ok(false);
        };
        if !deleted.blob_in_use {
            self.blobs
                .delete(&deleted.blob_key, record.blob_state.as_deref())
                .await
                .map_err(storage("deleting a blob"))?;
        }
        Ok(true)
    }

    /// The record of an upload that exists and has not expired.
    pub async fn get(&self, id: &UploadId) -> Result<UploadRecord> {
        let record = self.meta.get(id).await?.ok_or_else(Error::not_found)?;
        let expired = record.state == UploadState::Expired
            || (record.state == UploadState::Active
                && record.expires_at.is_some_and(|t| t <= now_millis()));
        if expired {
            return Err(Error::new(
                ErrorCode::UploadExpired,
                "This upload was left unfinished for too long and has been removed.",
            ));
        }
        Ok(record)
    }

    /// Appends a request body at the upload's current offset. The body is
    /// streamed to the `BlobStore` through a bounded buffer; whatever
    /// happens to the request (the client drops, the server is asked to
    /// stop), the bytes that were made durable are recorded.
    pub async fn append(
        &self,
        id: &UploadId,
        req: AppendRequest,
        body: BodyStream,
    ) -> Result<UploadRecord> {
        let lock = self.locks.try_lock(id.as_str()).await.ok_or_else(|| {
            Error::new(
                ErrorCode::UploadLocked,
                "Another request is writing this upload right now; retry once it is done.",
            )
        })?;
        let mut record = self.get(id).await?;
        if matches!(record.concat, Concat::Final(_)) {
            return Err(Error::new(
                ErrorCode::ConcatFinalImmutable,
                "A final upload is assembled from its parts and takes no bytes of its own.",
            ));
        }
        if req.offset != record.offset {
            return Err(Error::new(
                ErrorCode::OffsetMismatch,
                format!(
                    "This request starts at byte {} but the upload is at byte {}.",
                    req.offset, record.offset
                ),
            ));
        }
        if let Some(length) = req.declare_length {
            match record.length {
                Some(known) if known != length => {
                    return Err(Error::new(
                        ErrorCode::LengthAlreadySet,
                        format!("The upload's length is already {known} bytes."),
                    ))
                }
                Some(_) => {}
                None if length < record.offset => {
                    return Err(Error::header(
                        "Upload-Length",
                        format!(
                            "{length} is less than the {} bytes already received",
                            record.offset
                        ),
                    ))
                }
                None if length > self.config.max_size => return Err(self.too_large(length)),
                None => {
                    self.check_room(&record.owner, length - record.offset, false)
                        .await?;
                    record.length = Some(length);
                }
            }
        }
        if record.is_complete() {
            if req.content_length == Some(0) {
                return Ok(record);
            }
            return Err(Error::new(
                ErrorCode::UploadComplete,
                "This upload is already complete.",
            ));
        }
        let limit = match record.length {
            Some(length) => length,
            None => self.open_limit(&record).await?,
        };
        if let Some(cl) = req.content_length {
            if record.offset.checked_add(cl).is_none_or(|end| end > limit) {
                return Err(self.overflow(&record, limit));
            }
        }

        let opened = self
            .blobs
            .append_at(
                &record.blob_key,
                record.offset,
                record.blob_state.as_deref(),
            )
            .await;
        let mut writer = match opened {
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // The bytes on disk fall short of the record (a power cut
                // without fsync): fall back to what is really there and let
                // the client resume from it.
                self.reconcile(&mut record).await?;
                return Err(Error::new(
                    ErrorCode::OffsetMismatch,
                    format!(
                        "The upload is at byte {}; resume from there.",
                        record.offset
                    ),
                ));
            }
            Err(e) => return Err(Error::storage("opening a blob", e)),
        };
        let hasher = self.running_hash(&record).await?;

        // The writing runs in its own task, so that it finishes and records
        // what arrived even when the request's future is dropped because
        // the client went away.
        let service = self.clone();
        let task = tokio::spawn(async move {
            let outcome = service
                .write_body(lock, &mut record, writer.as_mut(), hasher, req, body, limit)
                .await;
            outcome.map(|()| record)
        });
        task.await.map_err(|e| Error::internal("upload task", e))?
    }

    /// How far an upload of unknown length may grow in one request: the
    /// largest upload, the owner's quota and the disk's reserve.
    async fn open_limit(&self, record: &UploadRecord) -> Result<u64> {
        let mut limit = self.config.max_size;
        if let Some((reserve, space)) = self.reserve_and_space().await {
            limit = limit.min(record.offset + space.free.saturating_sub(reserve));
        }
        if let Some(max) = self.config.max_bytes_per_owner {
            // The owner's usage counts this upload's bytes so far.
            let used = self.meta.usage(&record.owner).await?.bytes;
            limit = limit.min(record.offset + max.saturating_sub(used));
        }
        Ok(limit)
    }

    fn overflow(&self, record: &UploadRecord, limit: u64) -> Error {
        match record.length {
            Some(length) => Error::new(
                ErrorCode::BodyExceedsLength,
                format!("The body goes past the upload's length of {length} bytes; nothing of it was stored."),
            ),
            None if limit < self.config.max_size => Error::new(
                ErrorCode::QuotaExceeded,
                format!("This upload cannot grow past {limit} bytes: your quota or the server's free space is used up. The bytes before were kept."),
            ),
            None => self.too_large(self.config.max_size.saturating_add(1)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_body(
        &self,
        lock: UploadLock,
        record: &mut UploadRecord,
        writer: &mut dyn BlobWriter,
        mut hasher: ResumableSha256,
        req: AppendRequest,
        mut body: BodyStream,
        limit: u64,
    ) -> Result<()> {
        let mut chunk_hasher = req.checksum.as_ref().map(|c| ChunkHasher::new(c.algorithm));
        // With a checksum nothing may count before the whole chunk is
        // verified, so there are no checkpoints, and the bytes are not to
        // be recovered after a crash either.
        let checkpoints = chunk_hasher.is_none();
        if !checkpoints {
            if let Err(e) = writer.hold_back().await {
                return Err(Error::storage("opening a blob", e));
            }
        }
        let checkpoint_bytes = req
            .checkpoint_bytes
            .unwrap_or(self.config.checkpoint_bytes)
            .max(1);
        let interval = self.config.checkpoint_interval;
        let idle = self.config.body_idle_timeout;
        let hook = req.on_commit.as_ref();
        let mut position = record.offset;
        let mut since_checkpoint: u64 = 0;
        let mut last_byte = Instant::now();
        let mut last_checkpoint = Instant::now();
        // The body stalled: the server's own timer, or the connection's.
        let stalled = || {
            Error::new(
                ErrorCode::RequestTimeout,
                format!(
                    "No bytes arrived for {} seconds; the bytes before were kept.",
                    idle.as_secs()
                ),
            )
        };

        enum End {
            Done,
            Broken(Error),
        }
        let end = loop {
            // Wake for the next chunk, a checkpoint that falls due while the
            // client is slow, or the end of its patience.
            let idle_at = last_byte + idle;
            let checkpoint_at =
                (checkpoints && since_checkpoint > 0).then_some(last_checkpoint + interval);
            let wake = checkpoint_at.map_or(idle_at, |c| c.min(idle_at));
            let next = tokio::select! {
                biased;
                _ = lock.preempted() => {
                    break End::Broken(Error::new(ErrorCode::UploadLocked, "Another request took over this upload."));
                }
                next = tokio::time::timeout_at(wake, body.next()) => next,
            };
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break End::Done,
                Ok(Some(Err(e))) if e.kind() == io::ErrorKind::TimedOut => {
                    break End::Broken(stalled())
                }
                Ok(Some(Err(e))) => {
                    tracing::info!(id = %record.id, "request body ended early: {e}");
                    break End::Broken(Error::new(
                        ErrorCode::BodyIncomplete,
                        "The request body ended before it was complete.",
                    ));
                }
                Err(_) if Instant::now() < idle_at => {
                    self.commit(record, writer, &hasher, position, hook).await?;
                    since_checkpoint = 0;
                    last_checkpoint = Instant::now();
                    continue;
                }
                Err(_) => break End::Broken(stalled()),
            };
            last_byte = Instant::now();
            if position + chunk.len() as u64 > limit {
                let _ = writer.discard().await;
                return Err(self.overflow(record, limit));
            }
            hasher.update(&chunk);
            if let Some(h) = chunk_hasher.as_mut() {
                h.update(&chunk);
            }
            let len = chunk.len() as u64;
            if let Err(e) = writer.write(chunk).await {
                let _ = writer.discard().await;
                return Err(Error::storage("writing upload bytes", e));
            }
            position += len;
            since_checkpoint += len;
            let due = since_checkpoint >= checkpoint_bytes || last_checkpoint.elapsed() >= interval;
            if checkpoints && due {
                self.commit(record, writer, &hasher, position, hook).await?;
                since_checkpoint = 0;
                last_checkpoint = Instant::now();
            }
        };

        match end {
            End::Done => {
                if let (Some(h), Some(expected)) = (chunk_hasher, req.checksum.as_ref()) {
                    if h.finalize() != expected.expected {
                        let _ = writer.discard().await;
                        return Err(Error::new(
                            ErrorCode::ChecksumMismatch,
                            "The bytes received do not match Upload-Checksum; they were discarded.",
                        ));
                    }
                }
                if req.length_at_end && record.length.is_none() {
                    record.length = Some(position);
                }
                self.commit(record, writer, &hasher, position, hook).await
            }
            End::Broken(err) => {
                if checkpoints {
                    // Keep what arrived: the client resumes from it.
                    self.commit(record, writer, &hasher, position, hook).await?;
                } else {
                    let _ = writer.discard().await;
                }
                Err(err)
            }
        }
    }

    /// Makes the bytes up to `position` durable and records them, completing
    /// the upload when they are all there.
    async fn commit(
        &self,
        record: &mut UploadRecord,
        writer: &mut dyn BlobWriter,
        hasher: &ResumableSha256,
        position: u64,
        hook: Option<&CommitHook>,
    ) -> Result<()> {
        if record.is_complete() && record.offset == position {
            // A checkpoint finished the upload already (the body ended
            // right at it): nothing is left to store or announce.
            return Ok(());
        }
        let last = record.length == Some(position);
        // Store the bytes, then force them to disk while the record is
        // written: the two syncs overlap (and the file system may fold them
        // into one journal commit). Nothing is acknowledged before both are
        // done. A crash between them can leave the record of an unfinished
        // upload ahead of the bytes on disk, which opening the blob and the
        // start-up check notice and reconcile (a file's length never covers
        // bytes that were not written). The last commit syncs first: a
        // finished upload is never recorded ahead of its bytes.
        let overlap = self.durable() && !last;
        if let Err(e) = writer.commit(self.durable() && last, last).await {
            let _ = writer.discard().await;
            return Err(Error::storage("storing upload bytes", e));
        }
        debug_assert_eq!(writer.committed(), position);
        // What to take the record back to if the overlapped sync fails.
        let before = overlap.then(|| record.clone());
        let now = now_millis();
        record.offset = position;
        record.updated_at = now;
        record.blob_state = writer.state();
        if last {
            complete(record, hasher, now);
            tracing::info!(id = %record.id, length = position, sha256 = ?record.sha256, "upload complete");
        } else {
            record.hash_state = Some(hasher.to_bytes());
            record.expires_at = Some(self.expiry(now));
        }
        match before {
            None => self.meta.update(record).await?,
            Some(before) => {
                let (synced, updated) = tokio::join!(writer.sync(), self.meta.update(record));
                if let Err(e) = synced {
                    // The bytes may not be on disk: take the record back.
                    if updated.is_ok() {
                        if let Err(e) = self.meta.update(&before).await {
                            tracing::error!(id = %record.id, "taking a record back after a failed sync: {e}");
                        }
                    }
                    *record = before;
                    let _ = writer.discard().await;
                    return Err(Error::storage("making upload bytes durable", e));
                }
                updated?;
            }
        }
        if let Err(e) = writer.settle().await {
            tracing::warn!(id = %record.id, "cleaning up after a commit: {e}");
        }
        let kind = if record.is_complete() {
            EventKind::Completed
        } else {
            EventKind::Progress
        };
        self.events.record(kind, record).await;
        if let Some(hook) = hook {
            (hook.0)(record.offset);
        }
        Ok(())
    }

    /// The running SHA-256 at the record's offset: restored from the record,
    /// or rebuilt from the stored bytes when the record has none.
    async fn running_hash(&self, record: &UploadRecord) -> Result<ResumableSha256> {
        if let Some(h) = record
            .hash_state
            .as_deref()
            .and_then(ResumableSha256::from_bytes)
        {
            if h.len() == record.offset {
                return Ok(h);
            }
        }
        tracing::info!(id = %record.id, offset = record.offset, "rebuilding the running hash from stored bytes");
        let mut hasher = ResumableSha256::new();
        self.hash_stored(&mut hasher, &record.blob_key, 0..record.offset)
            .await?;
        if hasher.len() != record.offset {
            return Err(Error::internal(
                "re-reading upload bytes",
                "fewer bytes than recorded",
            ));
        }
        Ok(hasher)
    }

    /// Feeds the stored bytes of `range` to `hasher`.
    async fn hash_stored(
        &self,
        hasher: &mut ResumableSha256,
        key: &str,
        range: Range<u64>,
    ) -> Result<()> {
        let mut stream = self
            .blobs
            .read(key, range)
            .await
            .map_err(storage("re-reading upload bytes"))?;
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(storage("re-reading upload bytes"))?);
        }
        Ok(())
    }

    /// Brings a record in line with its stored bytes when they fall short
    /// of it. Answers whether anything changed.
    async fn reconcile(&self, record: &mut UploadRecord) -> Result<bool> {
        let stored = self
            .blobs
            .len(&record.blob_key, record.blob_state.as_deref())
            .await
            .map_err(storage("checking a blob"))?;
        let stored = match stored {
            Some(n) => n,
            None => {
                self.blobs
                    .create(&record.blob_key)
                    .await
                    .map_err(storage("creating a blob"))?;
                0
            }
        };
        if stored >= record.offset {
            return Ok(false);
        }
        tracing::warn!(id = %record.id, recorded = record.offset, stored, "stored bytes fall short of the record; resuming from what is stored");
        record.offset = stored;
        record.hash_state = None;
        record.updated_at = now_millis();
        self.meta.update(record).await?;
        Ok(true)
    }

    /// After a crash of the process: takes in the bytes a request wrote
    /// past the last checkpoint, when the store can prove they are exactly
    /// what the client sent (see `BlobStore::recoverable_len`). They are
    /// hashed, made durable and recorded like a checkpoint. Answers whether
    /// any were taken.
    async fn recover(&self, record: &mut UploadRecord) -> Result<bool> {
        let stored = match self.blobs.recoverable_len(&record.blob_key).await {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(false),
            Err(e) => return Err(Error::storage("checking a blob", e)),
        };
        let end = stored.min(record.length.unwrap_or(self.config.max_size));
        if end <= record.offset {
            return Ok(false);
        }
        let mut hasher = self.running_hash(record).await?;
        self.hash_stored(&mut hasher, &record.blob_key, record.offset..end)
            .await?;
        if hasher.len() != end {
            return Ok(false);
        }
        tracing::info!(id = %record.id, from = record.offset, to = end, "taking in bytes written before a crash");
        // Opened at `end`, the writer holds those bytes as its own: a commit
        // makes them durable and records them like any checkpoint.
        let mut writer = self
            .blobs
            .append_at(&record.blob_key, end, record.blob_state.as_deref())
            .await
            .map_err(storage("opening a blob"))?;
        self.commit(record, writer.as_mut(), &hasher, end, None)
            .await?;
        Ok(true)
    }

    /// Checks every unfinished upload against its stored bytes (on start):
    /// takes in bytes written before a crash, falls back to what is stored
    /// when it is less than recorded, and removes final uploads whose
    /// assembly the crash interrupted. Uploads another instance is writing
    /// are left alone. Then removes bytes that no record names.
    pub async fn reconcile_all(&self) -> Result<Reconciled> {
        let mut done = Reconciled::default();
        for mut record in self.meta.active().await? {
            let Some(_lock) = self.locks.try_lock(record.id.as_str()).await else {
                continue;
            };
            if matches!(record.concat, Concat::Final(_)) {
                if self.remove(&record).await? {
                    tracing::warn!(id = %record.id, "a final upload was being assembled when Ferry stopped; removed");
                    done.removed += 1;
                }
                continue;
            }
            if self.recover(&mut record).await? {
                done.recovered += 1;
            } else if self.reconcile(&mut record).await? {
                done.fell_back += 1;
            }
        }
        done.orphans = self.sweep_orphans().await?;
        Ok(done)
    }

    /// Removes stored bytes that no record names (left by a crash between
    /// a record's deletion and its bytes'). Answers how many blobs went.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        let keys = match self.blobs.keys().await {
            Ok(keys) => keys,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(0),
            Err(e) => return Err(Error::storage("listing blobs", e)),
        };
        let mut removed = 0;
        for batch in keys.chunks(500) {
            let known = self.meta.known_blobs(batch).await?;
            for key in batch.iter().filter(|k| !known.contains(*k)) {
                tracing::warn!(key, "removing bytes that no record names");
                self.blobs
                    .delete(key, None)
                    .await
                    .map_err(storage("deleting a blob"))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes an upload: a request writing it is stopped first. Its bytes
    /// go too, unless an instant upload still shares them. Like creation,
    /// it runs in a task of its own.
    pub async fn delete(&self, id: &UploadId) -> Result<()> {
        let (service, id) = (self.clone(), id.clone());
        tokio::spawn(async move { service.delete_whole(&id).await })
            .await
            .map_err(|e| Error::internal("deleting an upload", e))?
    }

    async fn delete_whole(&self, id: &UploadId) -> Result<()> {
        let _lock = self
            .locks
            .lock_preempting(id.as_str(), Duration::from_secs(10))
            .await
            .ok_or_else(|| Error::new(ErrorCode::UploadLocked, "The upload is busy; try again."))?;
        let record = self.meta.get(id).await?.ok_or_else(Error::not_found)?;
        if !self.remove(&record).await? {
            return Err(Error::not_found());
        }
        self.events.record(EventKind::Deleted, &record).await;
        tracing::info!(%id, "upload deleted");
        Ok(())
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

    /// Removes the bytes of uploads past their expiry (their records stay
    /// a while, answering 410) and forgets old expired records. Works in
    /// batches until none is left or `SWEEP_BUDGET` has passed, so it keeps
    /// up however fast uploads are abandoned. Answers how many expired.
    pub async fn sweep_expired(&self) -> Result<usize> {
        let started = Instant::now();
        let mut count = 0;
        loop {
            let now = now_millis();
            let batch = self.meta.expired(now, SWEEP_BATCH).await?;
            let full = batch.len() == SWEEP_BATCH as usize;
            let before = count;
            for record in batch {
                let Some(_lock) = self.locks.try_lock(record.id.as_str()).await else {
                    continue; // being written right now, so not abandoned
                };
                // Read again under the lock: a request (or another
                // instance's sweep) may have changed it since the listing.
                let Some(record) = self.meta.get(&record.id).await? else {
                    continue;
                };
                let due = record.state == UploadState::Active
                    && record.expires_at.is_some_and(|t| t <= now);
                if !due {
                    continue;
                }
                let Some(gone) = self.meta.expire(&record.id, now).await? else {
                    continue;
                };
                if !gone.blob_in_use {
                    self.blobs
                        .delete(&gone.blob_key, record.blob_state.as_deref())
                        .await
                        .map_err(storage("deleting an expired blob"))?;
                }
                tracing::info!(id = %record.id, "upload expired");
                self.events.record(EventKind::Expired, &record).await;
                count += 1;
            }
            // A full batch of which none expired (all being written) would
            // come back the same: the next sweep takes it.
            if !full || count == before || started.elapsed() >= SWEEP_BUDGET {
                break;
            }
        }
        let now = now_millis();
        self.meta
            .prune_expired(now.saturating_sub(millis(self.config.expired_retention)))
            .await?;
        self.events.prune().await?;
        Ok(count)
    }

    /// Runs `sweep_expired` every `every` (and `sweep_orphans` about once
    /// an hour), for as long as the process lives.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        let orphans_every = (3600 / every.as_secs().max(1)).max(1);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for round in 1u64.. {
                tick.tick().await;
                if let Err(e) = service.sweep_expired().await {
                    tracing::warn!("expiry sweep failed: {e}");
                }
                if round % orphans_every == 0 {
                    if let Err(e) = service.sweep_orphans().await {
                        tracing::warn!("sweep of unnamed bytes failed: {e}");
                    }
                }
            }
        })
    }
}

/// Most expired uploads one query of the sweep looks at.
const SWEEP_BATCH: u32 = 1000;
/// The longest one sweep goes on for.
const SWEEP_BUDGET: Duration = Duration::from_secs(20);

/// What the start-up check did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Uploads that took in bytes written before a crash.
    pub recovered: usize,
    /// Uploads that fell back to fewer stored bytes than recorded.
    pub fell_back: usize,
    /// Final uploads whose interrupted assembly was removed.
    pub removed: usize,
    /// Blobs that no record named, removed.
    pub orphans: usize,
}

fn complete(record: &mut UploadRecord, hasher: &ResumableSha256, now: i64) {
    record.state = UploadState::Complete;
    record.sha256 = Some(hasher.finalize_hex());
    record.hash_state = None;
    record.expires_at = None;
    record.completed_at = Some(now);
}
