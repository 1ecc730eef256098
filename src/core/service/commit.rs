//! The commit protocol: what the blob store made durable is recorded with
//! the running hash and the store's state in one update; an upload whose
//! last byte is committed gets its whole-file SHA-256 and is announced
//! complete.

use super::append::CommitHook;
use super::{storage, UploadService};
use crate::core::blob::{BlobWriter, Commit, Durability};
use crate::core::error::{Error, Result};
use crate::core::hash::ResumableSha256;
use crate::core::hooks::{Caller, HookPoint, Then, Verdict, FIRST_BYTES};
use crate::core::observe::StorageOp;
use crate::core::record::{now_millis, Concat, UploadRecord, UploadState};
use crate::protocol::events::EventKind;
use futures_util::StreamExt;
use std::ops::Range;

/// What a commit needs to know of the request it belongs to.
#[derive(Clone, Copy, Default)]
pub(super) struct Committing<'a> {
    /// Hears the durable offset after the commit.
    pub on_commit: Option<&'a CommitHook>,
    /// Reaching the length does not finish the upload.
    pub hold_at_length: bool,
    /// The request, for hooks.
    pub caller: Option<&'a Caller>,
    /// The request's bytes within the file's first `FIRST_BYTES`, and
    /// where they start, for hooks that tell types.
    pub fresh: Option<(u64, &'a [u8])>,
}

/// Keeps the bytes of a request that fall within the file's first
/// `FIRST_BYTES`.
#[derive(Default)]
pub(super) struct Head {
    start: u64,
    bytes: Vec<u8>,
}

impl Head {
    pub(super) fn new(start: u64) -> Self {
        Head {
            start,
            bytes: Vec::new(),
        }
    }

    pub(super) fn take(&mut self, chunk: &[u8]) {
        let end = self.start + self.bytes.len() as u64;
        if end < FIRST_BYTES {
            let room = (FIRST_BYTES - end) as usize;
            self.bytes
                .extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
    }

    pub(super) fn fresh(&self) -> Option<(u64, &[u8])> {
        (self.start < FIRST_BYTES).then_some((self.start, self.bytes.as_slice()))
    }
}

impl UploadService {
    /// Makes the bytes up to `position` durable and records them, completing
    /// the upload when they are all there (and `pre-finish` allows).
    pub(super) async fn commit(
        &self,
        record: &mut UploadRecord,
        writer: &mut dyn BlobWriter,
        hasher: &ResumableSha256,
        position: u64,
        at: Committing<'_>,
    ) -> Result<()> {
        let (hook, hold_at_length) = (at.on_commit, at.hold_at_length);
        if record.is_complete() && record.offset == position {
            // A checkpoint finished the upload already (the body ended
            // right at it): nothing is left to store or announce.
            return Ok(());
        }
        let last = record.length == Some(position) && !hold_at_length;
        // Store the bytes, then force them to disk while the record is
        // written: the two syncs overlap (and the file system may fold them
        // into one journal commit). Nothing is acknowledged before both are
        // done. A crash between them can leave the record of an unfinished
        // upload ahead of the bytes on disk, which opening the blob and the
        // start-up check notice and reconcile (a file's length never covers
        // bytes that were not written). The last commit syncs first: a
        // finished upload is never recorded ahead of its bytes.
        if last {
            self.ask_pre_finish(record, writer, position, &at).await?;
        }
        let overlap = self.durable() && !last;
        let how = match (last, self.durable()) {
            (true, true) => Commit::Finish(Durability::Synced),
            (true, false) => Commit::Finish(Durability::Cached),
            (false, _) => Commit::Checkpoint(Durability::Cached),
        };
        let started = std::time::Instant::now();
        if let Err(e) = writer.commit(how).await {
            let _ = writer.discard().await;
            return Err(Error::storage("storing upload bytes", e));
        }
        self.observer
            .storage(StorageOp::StoreBytes, started.elapsed());
        let received = position.saturating_sub(record.offset);
        debug_assert_eq!(writer.committed(), position);
        // What to take the record back to if the overlapped sync fails.
        let before = overlap.then(|| record.clone());
        // The record moves on only from where this writer found it.
        let from = record.offset;
        let now = now_millis();
        record.offset = position;
        record.updated_at = now;
        record.blob_state = writer.state();
        if last {
            self.complete(record, hasher, now);
            tracing::info!(id = %record.id, length = position, sha256 = ?record.sha256, "upload complete");
        } else {
            record.hash_state = Some(hasher.to_bytes());
            record.expires_at = Some(self.expiry(now));
        }
        let news = match last {
            true => {
                self.hooks.forget(record.id.as_str());
                self.news(&[HookPoint::PostFinish], record, at.caller).await
            }
            false if self.hooks.progress_due(record.id.as_str()) => {
                self.news(&[HookPoint::PostReceive], record, at.caller)
                    .await
            }
            false => Vec::new(),
        };
        let started = std::time::Instant::now();
        match before {
            None => self.meta.advance_with(record, from, &news).await?,
            Some(before) => {
                let (synced, updated) =
                    tokio::join!(writer.sync(), self.meta.advance_with(record, from, &news));
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
        self.observer
            .storage(StorageOp::RecordUpdate, started.elapsed());
        if !news.is_empty() {
            self.hooks.wake();
        }
        self.observer.received(received);
        if let Err(e) = writer.settle().await {
            tracing::warn!(id = %record.id, "cleaning up after a commit: {e}");
        }
        let kind = if record.is_complete() {
            EventKind::Completed
        } else {
            EventKind::Progress
        };
        self.note(kind, record).await;
        if let Some(hook) = hook {
            (hook.0)(record.offset);
        }
        Ok(())
    }

    /// Asks the `pre-finish` hook before the last bytes are committed. A
    /// refusal drops this request's uncommitted bytes and either removes
    /// the upload or keeps it unfinished at its recorded offset (the client
    /// sending the bytes again asks again).
    async fn ask_pre_finish(
        &self,
        record: &UploadRecord,
        writer: &mut dyn BlobWriter,
        position: u64,
        at: &Committing<'_>,
    ) -> Result<()> {
        // A part of a concatenation is not a file: the final upload is
        // asked about instead, once assembled.
        if !self.hooks.calls(HookPoint::PreFinish) || record.concat == Concat::Partial {
            return Ok(());
        }
        // The upload as it would be: every byte there, not yet finished.
        let mut whole = record.clone();
        whole.offset = position;
        let (e, then) = match self.ask_pre_finish_of(&whole, at.caller, at.fresh).await {
            Ok(Verdict::Allow(_)) => return Ok(()),
            Ok(Verdict::Refuse(e, then)) => (e, then),
            // Not asked: the client may try again once it can be.
            Err(e) => (e, Then::Keep),
        };
        let _ = writer.discard().await;
        if then == Then::Remove {
            // The application heard of the upload: it hears it went.
            let news = self
                .news(&[HookPoint::PostTerminate], record, at.caller)
                .await;
            if self.remove(record, &news).await? {
                self.hooks.wake();
                self.hooks.forget(record.id.as_str());
                self.note(EventKind::Deleted, record).await;
                tracing::info!(id = %record.id, "upload removed: pre-finish refused it");
            }
        }
        Err(e)
    }

    /// Asks `pre-finish` about an upload whose bytes are all stored already
    /// and that nobody else knows yet (empty, instant or assembled from
    /// parts): a refusal, whatever it says, means it is not made.
    pub(super) async fn ask_pre_finish_whole(
        &self,
        record: &UploadRecord,
        caller: Option<&Caller>,
    ) -> Result<()> {
        if !self.hooks.calls(HookPoint::PreFinish) {
            return Ok(());
        }
        let mut whole = record.clone();
        whole.state = UploadState::Active;
        whole.sha256 = None;
        whole.completed_at = None;
        match self.ask_pre_finish_of(&whole, caller, None).await? {
            Verdict::Allow(_) => Ok(()),
            Verdict::Refuse(e, _) => Err(e),
        }
    }

    /// Asks `pre-finish` about `whole` (every byte there, not finished yet),
    /// with its first bytes: what the store has, followed by `fresh`.
    async fn ask_pre_finish_of(
        &self,
        whole: &UploadRecord,
        caller: Option<&Caller>,
        fresh: Option<(u64, &[u8])>,
    ) -> Result<Verdict> {
        let mut upload = self.hook_upload(whole, caller);
        upload.first_bytes = self.first_bytes(whole, fresh).await;
        self.hooks.ask(HookPoint::PreFinish, &upload).await
    }

    /// The running SHA-256 at the record's offset: restored from the record,
    /// or rebuilt from the stored bytes when the record has none.
    pub(super) async fn running_hash(&self, record: &UploadRecord) -> Result<ResumableSha256> {
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
    pub(super) async fn hash_stored(
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
}

impl UploadService {
    /// Finishes a record whose last byte is stored, with its SHA-256. A
    /// finished file never expires; a finished part expires `--expire-after`
    /// from now (`UploadRecord::can_expire`).
    pub(super) fn complete(&self, record: &mut UploadRecord, hasher: &ResumableSha256, now: i64) {
        record.state = UploadState::Complete;
        record.sha256 = Some(hasher.finalize_hex());
        record.hash_state = None;
        record.completed_at = Some(now);
        record.expires_at = record.can_expire().then(|| self.expiry(now));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::AppendRequest;
    use crate::core::error::ErrorCode;
    use crate::core::hash::{ChecksumAlgorithm, ChunkChecksum};
    use crate::core::record::UploadState;

    #[tokio::test]
    async fn the_last_byte_completes_the_upload_with_its_hash() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(5), "a")).await.unwrap();
        let first = AppendRequest::default();
        let r = f
            .service
            .append(&r.id, first, body(b"hel", 3))
            .await
            .unwrap();
        assert_eq!((r.state, r.sha256.as_deref()), (UploadState::Active, None));
        let rest = AppendRequest {
            offset: 3,
            ..AppendRequest::default()
        };
        let r = f.service.append(&r.id, rest, body(b"lo", 1)).await.unwrap();
        assert_eq!(r.state, UploadState::Complete);
        assert_eq!(
            r.sha256.as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
            "the SHA-256 of \"hello\", hashed across both requests"
        );
        assert_eq!(r.expires_at, None, "a finished upload never expires");
    }

    #[tokio::test]
    async fn a_chunk_that_fails_its_checksum_is_not_kept() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(5), "a")).await.unwrap();
        let wrong = AppendRequest {
            checksum: Some(ChunkChecksum {
                algorithm: ChecksumAlgorithm::Sha1,
                expected: vec![0; 20],
            }),
            ..AppendRequest::default()
        };
        let e = f
            .service
            .append(&r.id, wrong, body(b"hello", 2))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ChecksumMismatch);
        let after = f.service.get(&r.id).await.unwrap();
        assert_eq!(after.offset, 0);
        assert!(stored(&f.service, &after).await.is_empty());
    }
}
