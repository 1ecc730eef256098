//! Appending bytes at an offset: the lock, the offset and length checks, the
//! body streamed into the blob writer with checkpoints by size and time, and
//! what a body that passes the upload's length gets (refused, nothing past
//! the length is written).

use super::commit::{Committing, Head};
use super::{BodyStream, UploadService};
use crate::core::blob::BlobWriter;
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::hash::{ChunkChecksum, ChunkHasher, ResumableSha256};
use crate::core::hooks::Caller;
use crate::core::id::UploadId;
use crate::core::lock::UploadLock;
use crate::core::observe::Observer;
use crate::core::record::{Concat, UploadRecord};
use futures_util::StreamExt;
use std::io;
use std::sync::Arc;
use tokio::time::Instant;

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
    /// Reaching the upload's length does not finish it: a later request
    /// says so (the IETF draft from interop 7, where only
    /// `Upload-Complete: ?1` completes an upload).
    pub hold_at_length: bool,
    /// The request that sends the bytes, for hooks.
    pub caller: Option<Caller>,
}

impl UploadService {
    /// Asks whoever writes this upload now to stop, and waits until it has
    /// (it commits what it received and lets go): for protocols in which a
    /// client's newest request wins over one it gave up on. Nothing to wait
    /// for when nobody writes.
    pub async fn stop_writer(&self, id: &UploadId) -> Result<()> {
        self.locks
            .lock_preempting(id.as_str(), std::time::Duration::from_secs(10))
            .await
            .map(drop)
            .ok_or_else(|| Error::new(ErrorCode::UploadLocked, "The upload is busy; try again."))
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
        let lock = self.lock_to_write(id).await.ok_or_else(|| {
            Error::new(
                ErrorCode::UploadLocked,
                "Another request is writing this upload right now; retry once it is done.",
            )
        })?;
        let _writing = Writing::start(self.observer.clone());
        let mut record = self.get_locked(id).await?;
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
                    return Err(Error::new(
                        ErrorCode::InvalidHeader,
                        format!(
                            "The length {length} is less than the {} bytes already received.",
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
                format!("The body goes past the upload's length of {length} bytes; nothing past it was stored."),
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
        let mut head = Head::new(record.offset);
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
                    self.commit(record, writer, &hasher, position, committing(&req, &head))
                        .await?;
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
            // Handed to the writer first, so that its thread copies the
            // bytes into the file while this task hashes them.
            let len = chunk.len() as u64;
            if let Err(e) = writer.write(chunk.clone()).await {
                let _ = writer.discard().await;
                return Err(Error::storage("writing upload bytes", e));
            }
            hasher.update(&chunk);
            head.take(&chunk);
            if let Some(h) = chunk_hasher.as_mut() {
                h.update(&chunk);
            }
            position += len;
            since_checkpoint += len;
            let due = since_checkpoint >= checkpoint_bytes || last_checkpoint.elapsed() >= interval;
            if checkpoints && due {
                self.commit(record, writer, &hasher, position, committing(&req, &head))
                    .await?;
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
                            "The bytes received do not match their checksum; none of them were kept.",
                        ));
                    }
                }
                if req.length_at_end && record.length.is_none() {
                    record.length = Some(position);
                }
                self.commit(record, writer, &hasher, position, committing(&req, &head))
                    .await
            }
            End::Broken(err) => {
                if checkpoints {
                    // Keep what arrived: the client resumes from it.
                    self.commit(record, writer, &hasher, position, committing(&req, &head))
                        .await?;
                } else {
                    let _ = writer.discard().await;
                }
                Err(err)
            }
        }
    }
}

fn committing<'a>(req: &'a AppendRequest, head: &'a Head) -> Committing<'a> {
    Committing {
        on_commit: req.on_commit.as_ref(),
        hold_at_length: req.hold_at_length,
        caller: req.caller.as_ref(),
        fresh: head.fresh(),
    }
}

/// An append in progress, as the observer counts them.
struct Writing(Arc<dyn Observer>);

impl Writing {
    fn start(observer: Arc<dyn Observer>) -> Self {
        observer.writing(1);
        Writing(observer)
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.writing(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::AppendRequest;
    use crate::core::error::ErrorCode;

    #[tokio::test]
    async fn only_the_current_offset_is_appended_to() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(10), "a")).await.unwrap();
        let at = |offset| AppendRequest {
            offset,
            ..AppendRequest::default()
        };
        let e = f
            .service
            .append(&r.id, at(3), body(b"abc", 3))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::OffsetMismatch);
        let r = f
            .service
            .append(&r.id, at(0), body(b"abc", 2))
            .await
            .unwrap();
        assert_eq!(r.offset, 3);
        assert_eq!(stored(&f.service, &r).await, b"abc");
    }

    #[tokio::test]
    async fn nothing_past_the_length_is_written() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(4), "a")).await.unwrap();
        let e = f
            .service
            .append(&r.id, AppendRequest::default(), body(b"abcdefgh", 3))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BodyExceedsLength);
        let after = f.service.get(&r.id).await.unwrap();
        assert!(after.offset <= 4, "{}", after.offset);
        let bytes = stored(&f.service, &after).await;
        assert!(b"abcd".starts_with(&bytes), "{bytes:?}");
    }

    #[tokio::test]
    async fn a_broken_body_keeps_what_arrived() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(10), "a")).await.unwrap();
        let e = f
            .service
            .append(&r.id, AppendRequest::default(), broken_body(b"hello"))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BodyIncomplete);
        let after = f.service.get(&r.id).await.unwrap();
        assert_eq!(after.offset, 5);
        assert_eq!(stored(&f.service, &after).await, b"hello");
    }

    /// A request appending to a new upload of 10 bytes, under `configure`,
    /// whose body is fed by hand: what is sent on the sender arrives, and
    /// the body pauses in between.
    async fn fed_by_hand(
        configure: impl FnOnce(&mut crate::core::ServiceConfig),
    ) -> (
        Fixture,
        crate::core::UploadId,
        tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
        tokio::task::JoinHandle<crate::core::error::Result<crate::core::UploadRecord>>,
    ) {
        let f = fixture(configure).await;
        let r = f.service.create(new_upload(Some(10), "a")).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let body = Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let (service, id) = (f.service.clone(), r.id.clone());
        let patch =
            tokio::spawn(async move { service.append(&id, AppendRequest::default(), body).await });
        (f, r.id, tx, patch)
    }

    #[tokio::test]
    async fn a_pausing_body_is_recorded_by_the_clock_while_it_is_open() {
        let (f, id, tx, patch) = fed_by_hand(|c| {
            c.checkpoint_interval = std::time::Duration::from_millis(100);
            c.body_idle_timeout = std::time::Duration::from_secs(60);
        })
        .await;
        tx.send(Ok(bytes::Bytes::from_static(b"abc")))
            .await
            .unwrap();
        // Far from any checkpoint by size (64 MiB): only the clock records
        // the three bytes, while the request is still open.
        while f.service.get(&id).await.unwrap().offset < 3 {
            assert!(!patch.is_finished(), "the request ended first");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!patch.is_finished());
        for piece in [&b"defg"[..], b"hij"] {
            tx.send(Ok(bytes::Bytes::from_static(piece))).await.unwrap();
        }
        drop(tx);
        let done = patch.await.unwrap().unwrap();
        assert!(done.is_complete());
        assert_eq!(stored(&f.service, &done).await, b"abcdefghij");
    }

    #[tokio::test]
    async fn a_silent_body_ends_after_the_idle_timeout_keeping_what_arrived() {
        let (f, id, tx, patch) = fed_by_hand(|c| {
            c.checkpoint_interval = std::time::Duration::from_millis(50);
            c.body_idle_timeout = std::time::Duration::from_millis(300);
        })
        .await;
        tx.send(Ok(bytes::Bytes::from_static(b"ab"))).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        tx.send(Ok(bytes::Bytes::from_static(b"cd"))).await.unwrap();
        // Then nothing, with the connection still open: the service's own
        // timer ends the request, which keeps the four bytes.
        let e = patch.await.unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestTimeout);
        drop(tx);
        let after = f.service.get(&id).await.unwrap();
        assert_eq!(after.offset, 4);
        assert_eq!(stored(&f.service, &after).await, b"abcd");
    }

    #[tokio::test]
    async fn one_writer_at_a_time() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(10), "a")).await.unwrap();
        let _held = f.service.locks.try_lock(r.id.as_str()).await.unwrap();
        let e = f
            .service
            .append(&r.id, AppendRequest::default(), body(b"abc", 3))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UploadLocked);
        assert_eq!(f.service.get(&r.id).await.unwrap().offset, 0);
    }
}
