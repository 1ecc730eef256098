//! Start-up and repair: records reconciled with the bytes actually stored,
//! bytes written after the last checkpoint taken in when provably exact,
//! interrupted assemblies removed, and blobs no record names swept.

use super::{storage, UploadService};
use crate::core::error::{Error, Result};
use crate::core::hooks::HookPoint;
use crate::core::record::{now_millis, Concat, UploadRecord};
use futures_util::StreamExt;
use std::io;

impl UploadService {
    /// Brings a record in line with its stored bytes when they fall short
    /// of it. Answers whether anything changed.
    pub(super) async fn reconcile(&self, record: &mut UploadRecord) -> Result<bool> {
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
    pub(super) async fn recover(&self, record: &mut UploadRecord) -> Result<bool> {
        let stored = match self.blobs.recoverable_len(&record.blob_key).await {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(false),
            Err(e) => return Err(Error::storage("checking a blob", e)),
        };
        let mut end = stored.min(record.length.unwrap_or(self.config.max_size));
        if record.length == Some(end) && self.hooks.calls(HookPoint::PreFinish) {
            // Finishing needs `pre-finish`, which a client's request asks:
            // the last byte is left for the client to send again.
            end = end.saturating_sub(1);
        }
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
        self.commit(record, writer.as_mut(), &hasher, end, Default::default())
            .await?;
        Ok(true)
    }

    /// Checks every unfinished upload against its stored bytes (on start):
    /// takes in bytes written before a crash, falls back to what is stored
    /// when it is less than recorded, and removes final uploads whose
    /// assembly the crash interrupted. Uploads another instance is writing
    /// are left alone. Then removes bytes that no record names.
    pub async fn reconcile_all(&self) -> Result<Reconciled> {
        self.reconcile_in_pages(RECONCILE_PAGE).await
    }

    /// `reconcile_all`, reading `size` records at a time: memory stays
    /// bounded however many uploads are unfinished (200,000 of them, read
    /// at once, took 434 MiB).
    async fn reconcile_in_pages(&self, size: u32) -> Result<Reconciled> {
        let mut done = Reconciled::default();
        let mut after = None;
        loop {
            let page = self.meta.active(after.as_ref(), size).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for record in page {
                self.reconcile_one(record, &mut done).await?;
            }
        }
        done.orphans = self.sweep_orphans().await?;
        Ok(done)
    }

    /// The start-up check of one active upload, unless another instance
    /// is writing it.
    async fn reconcile_one(&self, mut record: UploadRecord, done: &mut Reconciled) -> Result<()> {
        let Some(_lock) = self.locks.try_lock(record.id.as_str()).await else {
            return Ok(());
        };
        if matches!(record.concat, Concat::Final(_)) {
            if self.remove(&record, &[]).await? {
                tracing::warn!(id = %record.id, "a final upload was being assembled when Ferry stopped; removed");
                done.removed += 1;
            }
            return Ok(());
        }
        if self.recover(&mut record).await? {
            done.recovered += 1;
        } else if self.reconcile(&mut record).await? {
            done.fell_back += 1;
        }
        Ok(())
    }

    /// Removes stored bytes that no record names (left by a crash between
    /// a record's deletion and its bytes'). Answers how many blobs went.
    /// The store lists its keys a batch at a time, and each batch is
    /// checked against the records before the next is read.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        let mut batches = self.blobs.keys();
        let mut removed = 0;
        while let Some(batch) = batches.next().await {
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) if e.kind() == io::ErrorKind::Unsupported => return Ok(0),
                Err(e) => return Err(Error::storage("listing blobs", e)),
            };
            batch.sort_unstable();
            batch.dedup();
            let known = self.meta.known_blobs(&batch).await?;
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
}

/// Active records the start-up check reads at a time.
const RECONCILE_PAGE: u32 = 500;

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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::AppendRequest;
    use crate::core::blob::KEY_BATCH;
    use crate::core::record::UploadRecord;
    use crate::core::UploadId;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_record_ahead_of_its_bytes_falls_back_to_them() {
        let f = fixture(|_| {}).await;
        let r = f.service.create(new_upload(Some(10), "a")).await.unwrap();
        let r = f
            .service
            .append(&r.id, AppendRequest::default(), body(b"hello", 5))
            .await
            .unwrap();
        // As if the machine lost the file's last bytes in a power cut.
        let key = &r.blob_key;
        let file = f.dir.path().join("blobs").join(&key[..2]).join(key);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(2)
            .unwrap();
        let done = f.service.reconcile_all().await.unwrap();
        assert_eq!(done.fell_back, 1);
        let after = f.service.get(&r.id).await.unwrap();
        assert_eq!(after.offset, 2);
        assert_eq!(stored(&f.service, &after).await, b"he");
    }

    /// Pages of two over seven unfinished uploads, each with fewer bytes
    /// than recorded: every one is checked, whichever page it falls in,
    /// and the finished one is left be.
    #[tokio::test]
    async fn the_check_goes_through_every_page() {
        let f = fixture(|_| {}).await;
        let mut uploads = Vec::new();
        for n in 0..8 {
            let r = f.service.create(new_upload(Some(10), "p")).await.unwrap();
            let len = if n == 7 { 10 } else { 5 };
            let data = &b"0123456789"[..len];
            let r = f
                .service
                .append(&r.id, AppendRequest::default(), body(data, len))
                .await
                .unwrap();
            uploads.push(r);
        }
        assert!(uploads[7].is_complete());
        let file = |r: &UploadRecord| {
            let key = &r.blob_key;
            f.dir.path().join("blobs").join(&key[..2]).join(key)
        };
        let open = |r| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(file(r))
                .unwrap()
        };
        for r in &uploads[..7] {
            open(r).set_len(3).unwrap();
        }
        let done = f.service.reconcile_in_pages(2).await.unwrap();
        assert_eq!(done.fell_back, 7, "{done:?}");
        let offsets = futures_util::future::join_all(
            uploads
                .iter()
                .map(|r| async { f.service.get(&r.id).await.unwrap().offset }),
        )
        .await;
        assert_eq!(offsets, [3, 3, 3, 3, 3, 3, 3, 10]);
    }

    #[tokio::test]
    async fn bytes_no_record_names_are_swept() {
        let f = fixture(|_| {}).await;
        let kept = f.service.create(new_upload(Some(3), "kept")).await.unwrap();
        let orphan = UploadId::random();
        f.service.blobs.create(orphan.as_str()).await.unwrap();
        assert_eq!(f.service.sweep_orphans().await.unwrap(), 1);
        assert_eq!(
            f.service.blobs.len(orphan.as_str(), None).await.unwrap(),
            None
        );
        assert_eq!(
            f.service.blobs.len(&kept.blob_key, None).await.unwrap(),
            Some(0),
            "a recorded blob stays"
        );
    }

    /// Past one batch of keys, every batch is checked: the orphans in all
    /// of them go, and the recorded blobs among them stay.
    #[tokio::test]
    async fn the_sweep_goes_through_every_batch_of_keys() {
        let f = fixture(|_| {}).await;
        let orphans = KEY_BATCH * 2 + 100;
        for _ in 0..orphans {
            let key = UploadId::random();
            f.service.blobs.create(key.as_str()).await.unwrap();
        }
        let mut kept = Vec::new();
        for i in 0..20 {
            let name = format!("kept-{i}");
            kept.push(f.service.create(new_upload(Some(3), &name)).await.unwrap());
        }
        assert_eq!(f.service.sweep_orphans().await.unwrap(), orphans);
        let mut left = Vec::new();
        let mut batches = f.service.blobs.keys();
        while let Some(batch) = batches.next().await {
            left.extend(batch.unwrap());
        }
        left.sort();
        let mut recorded: Vec<String> = kept.iter().map(|r| r.blob_key.clone()).collect();
        recorded.sort();
        assert_eq!(left, recorded);
    }
}
