//! `UploadService`: the domain core. It validates every operation (offsets,
//! lengths, checksums, locks, limits, ownership, expiry), drives the
//! `BlobStore` and `MetaStore`, and decides what is durable. It knows
//! nothing of HTTP.

use super::blob::{BlobStore, BlobWriter, ByteStream};
use super::events::{EventKind, Events};
use super::hash::{ChunkChecksum, ChunkHasher, ResumableSha256};
use super::id::UploadId;
use super::lock::{Locker, UploadLock};
use super::meta::MetaStore;
use super::metadata::Metadata;
use super::record::{now_millis, Concat, Owner, UploadRecord, UploadState};
use crate::error::{Error, ErrorCode, Result};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

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
    /// final concatenation of finished partial uploads.
    pub async fn create(&self, req: CreateRequest) -> Result<UploadRecord> {
        if let Concat::Final(parts) = &req.concat {
            return self.create_final(&req, parts).await;
        }
        if let Some(length) = req.length {
            if length > self.config.max_size {
                return Err(self.too_large(length));
            }
        }
        let now = now_millis();
        let id = UploadId::random();
        if let (Some(length), Some(sha256), false) =
            (req.length, req.metadata.sha256(), req.owner.is_anonymous())
        {
            if req.concat == Concat::None {
                if let Some(twin) = self.meta.find_complete(&req.owner, &sha256, length).await? {
                    let record = UploadRecord {
                        id,
                        owner: req.owner,
                        blob_key: twin.blob_key,
                        length: Some(length),
                        offset: length,
                        metadata: req.metadata,
                        concat: Concat::None,
                        state: UploadState::Complete,
                        sha256: twin.sha256,
                        hash_state: None,
                        blob_state: None,
                        created_at: now,
                        updated_at: now,
                        expires_at: None,
                        completed_at: Some(now),
                    };
                    self.meta.insert(&record).await?;
                    tracing::info!(id = %record.id, "instant upload: identical bytes already stored");
                    self.announce_new(&record).await;
                    return Ok(record);
                }
            }
        }
        let mut record = UploadRecord {
            blob_key: id.to_string(),
            id,
            owner: req.owner,
            length: req.length,
            offset: 0,
            metadata: req.metadata,
            concat: req.concat,
            state: UploadState::Active,
            sha256: None,
            hash_state: Some(ResumableSha256::new().to_bytes()),
            blob_state: None,
            created_at: now,
            updated_at: now,
            expires_at: Some(now.saturating_add(millis(self.config.expire_after))),
            completed_at: None,
        };
        if record.length == Some(0) {
            complete(&mut record, &ResumableSha256::new(), now);
        }
        self.blobs
            .create(&record.blob_key)
            .await
            .map_err(storage("creating a blob"))?;
        if let Err(e) = self.meta.insert(&record).await {
            let _ = self.blobs.delete(&record.blob_key, None).await;
            return Err(e);
        }
        tracing::info!(id = %record.id, length = ?record.length, "upload created");
        self.announce_new(&record).await;
        Ok(record)
    }

    async fn create_final(
        &self,
        req: &CreateRequest,
        part_ids: &[UploadId],
    ) -> Result<UploadRecord> {
        let bad = |msg: String| Error::new(ErrorCode::InvalidConcatPart, msg);
        if part_ids.is_empty() {
            return Err(bad("A final upload needs at least one part.".into()));
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
        let now = now_millis();
        let id = UploadId::random();
        let key = id.to_string();
        self.blobs
            .create(&key)
            .await
            .map_err(storage("creating a blob"))?;
        let assembled = async {
            let mut writer = self
                .blobs
                .append_at(&key, 0, None)
                .await
                .map_err(storage("opening a blob"))?;
            let mut hasher = ResumableSha256::new();
            let copied = async {
                for part in &parts {
                    let mut stream = self
                        .blobs
                        .read(&part.blob_key, 0..part.offset)
                        .await
                        .map_err(storage("reading a part"))?;
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(storage("reading a part"))?;
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
            Ok::<_, Error>(hasher)
        }
        .await;
        let hasher = match assembled {
            Ok(h) => h,
            Err(e) => {
                let _ = self.blobs.delete(&key, None).await;
                return Err(e);
            }
        };
        let mut record = UploadRecord {
            id,
            owner: req.owner.clone(),
            blob_key: key,
            length: Some(total),
            offset: total,
            metadata: req.metadata.clone(),
            concat: Concat::Final(part_ids.to_vec()),
            state: UploadState::Active,
            sha256: None,
            hash_state: None,
            blob_state: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            completed_at: None,
        };
        complete(&mut record, &hasher, now);
        if let Err(e) = self.meta.insert(&record).await {
            let _ = self.blobs.delete(&record.blob_key, None).await;
            return Err(e);
        }
        tracing::info!(id = %record.id, parts = parts.len(), length = total, "final upload assembled");
        self.announce_new(&record).await;
        Ok(record)
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
                None => record.length = Some(length),
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
        let limit = record.length.unwrap_or(self.config.max_size);
        if let Some(cl) = req.content_length {
            if record.offset.checked_add(cl).is_none_or(|end| end > limit) {
                return Err(self.overflow(&record));
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
                .write_body(lock, &mut record, writer.as_mut(), hasher, req, body)
                .await;
            outcome.map(|()| record)
        });
        task.await.map_err(|e| Error::internal("upload task", e))?
    }

    fn overflow(&self, record: &UploadRecord) -> Error {
        match record.length {
            Some(length) => Error::new(
                ErrorCode::BodyExceedsLength,
                format!("The body goes past the upload's length of {length} bytes; nothing of it was stored."),
            ),
            None => self.too_large(self.config.max_size.saturating_add(1)),
        }
    }

    async fn write_body(
        &self,
        lock: UploadLock,
        record: &mut UploadRecord,
        writer: &mut dyn BlobWriter,
        mut hasher: ResumableSha256,
        req: AppendRequest,
        mut body: BodyStream,
    ) -> Result<()> {
        let limit = record.length.unwrap_or(self.config.max_size);
        let mut chunk_hasher = req.checksum.as_ref().map(|c| ChunkHasher::new(c.algorithm));
        // With a checksum nothing may count before the whole chunk is
        // verified, so there are no checkpoints.
        let checkpoints = chunk_hasher.is_none();
        let checkpoint_bytes = req
            .checkpoint_bytes
            .unwrap_or(self.config.checkpoint_bytes)
            .max(1);
        let hook = req.on_commit.as_ref();
        let mut position = record.offset;
        let mut since_checkpoint: u64 = 0;

        enum End {
            Done,
            Broken(Error),
        }
        let end = loop {
            let next = tokio::select! {
                biased;
                _ = lock.preempted() => {
                    break End::Broken(Error::new(ErrorCode::UploadLocked, "Another request took over this upload."));
                }
                next = tokio::time::timeout(self.config.body_idle_timeout, body.next()) => next,
            };
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break End::Done,
                Ok(Some(Err(e))) => {
                    tracing::info!(id = %record.id, "request body ended early: {e}");
                    break End::Broken(Error::new(
                        ErrorCode::BodyIncomplete,
                        "The request body ended before it was complete.",
                    ));
                }
                Err(_) => {
                    break End::Broken(Error::new(
                        ErrorCode::RequestTimeout,
                        format!(
                            "No bytes arrived for {} seconds; the bytes before were kept.",
                            self.config.body_idle_timeout.as_secs()
                        ),
                    ))
                }
            };
            if position + chunk.len() as u64 > limit {
                let _ = writer.discard().await;
                return Err(self.overflow(record));
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
            if checkpoints && since_checkpoint >= checkpoint_bytes {
                self.commit(record, writer, &hasher, position, hook).await?;
                since_checkpoint = 0;
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
            record.expires_at = Some(now.saturating_add(millis(self.config.expire_after)));
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
        let mut stream = self
            .blobs
            .read(&record.blob_key, 0..record.offset)
            .await
            .map_err(storage("re-reading upload bytes"))?;
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(storage("re-reading upload bytes"))?);
        }
        if hasher.len() != record.offset {
            return Err(Error::internal(
                "re-reading upload bytes",
                "fewer bytes than recorded",
            ));
        }
        Ok(hasher)
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

    /// Checks every active upload against its stored bytes (on start).
    pub async fn reconcile_all(&self) -> Result<usize> {
        let mut fixed = 0;
        for mut record in self.meta.active().await? {
            if self.reconcile(&mut record).await? {
                fixed += 1;
            }
        }
        Ok(fixed)
    }

    /// Deletes an upload: a request writing it is stopped first. Its bytes
    /// go too, unless an instant upload still shares them.
    pub async fn delete(&self, id: &UploadId) -> Result<()> {
        let _lock = self
            .locks
            .lock_preempting(id.as_str(), Duration::from_secs(10))
            .await
            .ok_or_else(|| Error::new(ErrorCode::UploadLocked, "The upload is busy; try again."))?;
        let before = self.meta.get(id).await?;
        let deleted = self.meta.delete(id).await?.ok_or_else(Error::not_found)?;
        if let Some(record) = &before {
            self.events.record(EventKind::Deleted, record).await;
        }
        let blob_state = before.as_ref().and_then(|r| r.blob_state.as_deref());
        if !deleted.blob_in_use {
            self.blobs
                .delete(&deleted.blob_key, blob_state)
                .await
                .map_err(storage("deleting a blob"))?;
        }
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

    /// This owner's uploads, newest first; nothing for anonymous requests.
    pub async fn list(&self, owner: &Owner) -> Result<Vec<UploadRecord>> {
        if owner.is_anonymous() {
            return Ok(Vec::new());
        }
        self.meta.list_by_owner(owner, 1000).await
    }

    /// Removes the bytes of uploads past their expiry (their records stay
    /// a while, answering 410) and forgets old expired records. Answers how
    /// many uploads expired.
    pub async fn sweep_expired(&self) -> Result<usize> {
        let now = now_millis();
        let mut count = 0;
        for mut record in self.meta.expired(now, 1000).await? {
            let Some(_lock) = self.locks.try_lock(record.id.as_str()).await else {
                continue; // being written right now, so not abandoned
            };
            // Read again under the lock: a request (or another instance's
            // sweep) may have changed it since the listing.
            match self.meta.get(&record.id).await? {
                Some(now_stored)
                    if now_stored.state == UploadState::Active
                        && now_stored.expires_at.is_some_and(|t| t <= now) =>
                {
                    record = now_stored;
                }
                _ => continue,
            }
            let blob_state = record.blob_state.take();
            record.state = UploadState::Expired;
            record.hash_state = None;
            record.updated_at = now;
            self.meta.update(&record).await?;
            self.blobs
                .delete(&record.blob_key, blob_state.as_deref())
                .await
                .map_err(storage("deleting an expired blob"))?;
            tracing::info!(id = %record.id, "upload expired");
            self.events.record(EventKind::Expired, &record).await;
            count += 1;
        }
        self.meta
            .prune_expired(now.saturating_sub(millis(self.config.expired_retention)))
            .await?;
        self.events.prune().await?;
        Ok(count)
    }

    /// Runs `sweep_expired` every `every`, for as long as the process lives.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = service.sweep_expired().await {
                    tracing::warn!("expiry sweep failed: {e}");
                }
            }
        })
    }
}

fn complete(record: &mut UploadRecord, hasher: &ResumableSha256, now: i64) {
    record.state = UploadState::Complete;
    record.sha256 = Some(hasher.finalize_hex());
    record.hash_state = None;
    record.expires_at = None;
    record.completed_at = Some(now);
}
