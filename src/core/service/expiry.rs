//! Ending an upload: when an unfinished one expires (`expiry`: set at
//! creation and at every commit, cleared when it completes unless it is a
//! part of a concatenation, checked by `get`), deletion (taking the writer's lock away), and the sweep that
//! expires abandoned uploads in bounded batches.

use super::{millis, storage, UploadService};
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::hooks::{Caller, Delivery, HookPoint, Verdict};
use crate::core::id::UploadId;
use crate::core::record::{now_millis, Millis, UploadRecord};
use crate::protocol::events::EventKind;
use std::time::Duration;
use tokio::time::Instant;

impl UploadService {
    /// When an unfinished upload touched at `now` expires: `--expire-after`
    /// of idleness.
    pub(super) fn expiry(&self, now: Millis) -> Millis {
        now.saturating_add(millis(self.config.expire_after))
    }

    /// Removes a record and, when no other record shares them, its bytes.
    /// The caller holds the upload's lock.
    pub(super) async fn remove(&self, record: &UploadRecord, news: &[Delivery]) -> Result<bool> {
        let Some(deleted) = self.meta.delete(&record.id, news).await? else {
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

    /// Deletes an upload: a request writing it is stopped first. Its bytes
    /// go too, unless an instant upload still shares them. Like creation,
    /// it runs in a task of its own. Ferry's own clean-ups call this; a
    /// client's request calls `terminate`.
    pub async fn delete(&self, id: &UploadId) -> Result<()> {
        self.terminate(id, None).await
    }

    /// Deletes an upload at a client's request: `delete`, once the
    /// `pre-terminate` hook allows it.
    pub async fn terminate(&self, id: &UploadId, caller: Option<Caller>) -> Result<()> {
        let (service, id) = (self.clone(), id.clone());
        tokio::spawn(async move { service.delete_whole(&id, caller.as_ref()).await })
            .await
            .map_err(|e| Error::internal("deleting an upload", e))?
    }

    async fn delete_whole(&self, id: &UploadId, caller: Option<&Caller>) -> Result<()> {
        if caller.is_some() && self.hooks.calls(HookPoint::PreTerminate) {
            // Asked before the lock is taken: a slow hook holds no writer up.
            let record = self.meta.get(id).await?.ok_or_else(Error::not_found)?;
            let upload = self.hook_upload(&record, caller);
            if let Verdict::Refuse(e, _) = self.hooks.ask(HookPoint::PreTerminate, &upload).await? {
                return Err(e);
            }
        }
        let _lock = self
            .locks
            .lock_preempting(id.as_str(), Duration::from_secs(10))
            .await
            .ok_or_else(|| Error::new(ErrorCode::UploadLocked, "The upload is busy; try again."))?;
        let record = self.meta.get(id).await?.ok_or_else(Error::not_found)?;
        let news = self
            .news(&[HookPoint::PostTerminate], &record, caller)
            .await;
        if !self.remove(&record, &news).await? {
            return Err(Error::not_found());
        }
        self.hooks.wake();
        self.hooks.forget(id.as_str());
        self.note(EventKind::Deleted, &record).await;
        tracing::info!(%id, "upload deleted");
        Ok(())
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
                if self.expire_if_due(&record.id, now).await? {
                    count += 1;
                }
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

    /// Expires one upload if it is still due at `now`: not being written,
    /// read again under its lock (a request, or another instance's sweep,
    /// may have changed it). Answers whether it expired.
    pub(super) async fn expire_if_due(&self, id: &UploadId, now: Millis) -> Result<bool> {
        let Some(_lock) = self.locks.try_lock(id.as_str()).await else {
            return Ok(false); // being written right now, so not abandoned
        };
        let Some(record) = self.meta.get(id).await? else {
            return Ok(false);
        };
        let due = record.can_expire() && record.expires_at.is_some_and(|t| t <= now);
        if !due {
            return Ok(false);
        }
        let news = self.news(&[HookPoint::PostExpire], &record, None).await;
        let Some(gone) = self.meta.expire(&record.id, now, &news).await? else {
            return Ok(false);
        };
        self.hooks.wake();
        self.hooks.forget(record.id.as_str());
        if !gone.blob_in_use {
            self.blobs
                .delete(&gone.blob_key, record.blob_state.as_deref())
                .await
                .map_err(storage("deleting an expired blob"))?;
        }
        tracing::info!(id = %record.id, "upload expired");
        self.note(EventKind::Expired, &record).await;
        Ok(true)
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
pub(super) const SWEEP_BATCH: u32 = 1000;

/// The longest one sweep goes on for.
pub(super) const SWEEP_BUDGET: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::core::error::ErrorCode;
    use std::time::Duration;

    #[tokio::test]
    async fn a_deleted_upload_and_its_bytes_are_gone() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(3), "a")).await.unwrap();
        f.service.delete(&r.id).await.unwrap();
        assert_eq!(
            f.service.get(&r.id).await.unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(f.service.blobs.len(&r.blob_key, None).await.unwrap(), None);
        let again = f.service.delete(&r.id).await.unwrap_err();
        assert_eq!(again.code, ErrorCode::NotFound);
    }

    #[tokio::test]
    async fn abandoned_uploads_expire() {
        let f = fixture(|c| c.expire_after = Duration::from_millis(1)).await;
        let r = f.service.create(new_upload(Some(3), "a")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(f.service.sweep_expired().await.unwrap(), 1);
        assert_eq!(
            f.service.get(&r.id).await.unwrap_err().code,
            ErrorCode::UploadExpired
        );
        assert_eq!(f.service.blobs.len(&r.blob_key, None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn finished_parts_expire_and_the_files_joined_from_them_do_not() {
        use crate::core::record::Concat;
        use crate::core::AppendRequest;
        let f = fixture(|c| c.expire_after = Duration::from_millis(1000)).await;
        let send = |id: crate::core::UploadId, data: &'static [u8]| {
            let service = f.service.clone();
            async move {
                let at = AppendRequest {
                    offset: 0,
                    ..AppendRequest::default()
                };
                service.append(&id, at, body(data, 2)).await.unwrap()
            }
        };
        let mut parts = Vec::new();
        for data in [&b"aaaaa"[..], b"bbb"] {
            let mut req = new_upload(Some(data.len() as u64), "part");
            req.concat = Concat::Partial;
            let part = f.service.create(req).await.unwrap();
            let done = send(part.id.clone(), data).await;
            assert!(done.is_complete());
            assert!(done.expires_at.is_some(), "a finished part still expires");
            parts.push(done);
        }
        let file = f.service.create(new_upload(Some(4), "file")).await.unwrap();
        let file = send(file.id.clone(), b"file").await;
        assert_eq!(file.expires_at, None, "a finished file never expires");
        let mut req = new_upload(None, "joined");
        req.concat = Concat::Final(parts.iter().map(|p| p.id.clone()).collect());
        let joined = f.service.create(req).await.unwrap();
        assert!(joined.is_complete());
        assert_eq!(joined.expires_at, None);

        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(f.service.sweep_expired().await.unwrap(), 2, "the two parts");
        for part in &parts {
            let gone = f.service.get(&part.id).await.unwrap_err();
            assert_eq!(gone.code, ErrorCode::UploadExpired);
            assert_eq!(
                f.service.blobs.len(&part.blob_key, None).await.unwrap(),
                None
            );
        }
        let joined = f.service.get(&joined.id).await.unwrap();
        assert_eq!(stored(&f.service, &joined).await, b"aaaaabbb");
        let file = f.service.get(&file.id).await.unwrap();
        assert_eq!(stored(&f.service, &file).await, b"file");
        assert_eq!(f.service.sweep_expired().await.unwrap(), 0);
    }
}
