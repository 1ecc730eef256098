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
        let from = record.offset;
        let state = record.blob_state.clone();
        if let Err(e) = self
            .commit(record, writer.as_mut(), &hasher, end, Default::default())
            .await
        {
            // The writer counts those bytes as written before it opened, so
            // its discard keeps them. They may not be on disk (a failed
            // sync): they go, so that no later check takes them in.
            drop(writer);
            if let Err(cut) = self
                .blobs
                .append_at(&record.blob_key, from, state.as_deref())
                .await
            {
                tracing::error!(id = %record.id, "dropping bytes whose sync failed: {cut}");
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Checks every unfinished upload an earlier run left against its
    /// stored bytes (on start): takes in bytes written before a crash,
    /// falls back to what is stored when it is less than recorded, and
    /// removes final uploads whose assembly the crash interrupted. Uploads
    /// someone holds the lock of are left to them, and one that cannot be
    /// checked (its store fails) is left for the next start, logged. Then
    /// removes bytes that no record names.
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
                let id = record.id.clone();
                if let Err(e) = self.check_listed(record, &mut done).await {
                    // One upload must not hold up the others' check.
                    tracing::error!(%id, "checking an unfinished upload at start-up: {e}");
                    done.failed += 1;
                }
            }
        }
        // The sweep runs again about hourly if it fails now.
        match self.sweep_orphans().await {
            Ok(n) => done.orphans = n,
            Err(e) => tracing::warn!("sweep of unnamed bytes at start-up failed: {e}"),
        }
        self.start_up.done();
        Ok(done)
    }

    /// The start-up check of an upload as a page of them listed it,
    /// unless this run wrote it or another request writes it now.
    async fn check_listed(&self, record: UploadRecord, done: &mut Reconciled) -> Result<()> {
        // What this run wrote needs no check (and is written later than
        // what the page says, never earlier).
        if !self.start_up.left_before(&record) {
            return Ok(());
        }
        let Some(_lock) = self.locks.try_lock(record.id.as_str()).await else {
            return Ok(());
        };
        if self.holds_what_it_records(&record).await? {
            done.checked += 1;
            return Ok(());
        }
        // Read again under the lock: what a request wrote since the page
        // was read is what counts.
        match self.meta.get(&record.id).await? {
            Some(record) if self.start_up.left_before(&record) => {
                self.check_one(record, done).await
            }
            _ => Ok(()),
        }
    }

    /// Whether an upload's stored bytes are exactly as many as `record`
    /// says, and so there is nothing to take in or fall back from: one
    /// look at the bytes, for most uploads the whole check. `record` may
    /// have been read before the lock was taken: if another request wrote
    /// it since, that request wrote both, and left nothing to check.
    async fn holds_what_it_records(&self, record: &UploadRecord) -> Result<bool> {
        if matches!(record.concat, Concat::Final(_)) {
            return Ok(false);
        }
        let stored = self
            .blobs
            .len(&record.blob_key, record.blob_state.as_deref())
            .await
            .map_err(storage("checking a blob"))?;
        Ok(stored == Some(record.offset))
    }

    /// The start-up check of one unfinished upload, whose lock the caller
    /// holds and whose record it read under that lock.
    pub(super) async fn check_one(
        &self,
        mut record: UploadRecord,
        done: &mut Reconciled,
    ) -> Result<()> {
        done.checked += 1;
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
    /// Unfinished uploads checked.
    pub checked: usize,
    /// Unfinished uploads whose check failed (each is logged).
    pub failed: usize,
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
    use super::Reconciled;
    use crate::core::blob::KEY_BATCH;
    use crate::core::error::ErrorCode;
    use crate::core::record::UploadRecord;
    use crate::core::UploadId;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_record_ahead_of_its_bytes_falls_back_to_them() {
        let f = fixture(|_| {}).await;
        let r = sent(&f, b"hello").await;
        // As if the machine lost the file's last bytes in a power cut.
        cut_short(&f, &r, 2);
        let service = restarted(&f).await;
        let done = service.reconcile_all().await.unwrap();
        assert_eq!(done.fell_back, 1);
        let after = service.get(&r.id).await.unwrap();
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
            let len = if n == 7 { 10 } else { 5 };
            uploads.push(sent(&f, &b"0123456789"[..len]).await);
        }
        assert!(uploads[7].is_complete());
        for r in &uploads[..7] {
            cut_short(&f, r, 3);
        }
        let done = restarted(&f).await.reconcile_in_pages(2).await.unwrap();
        assert_eq!(done.fell_back, 7, "{done:?}");
        let offsets = futures_util::future::join_all(
            uploads
                .iter()
                .map(|r| async { f.service.get(&r.id).await.unwrap().offset }),
        )
        .await;
        assert_eq!(offsets, [3, 3, 3, 3, 3, 3, 3, 10]);
    }

    /// Appends `data` to a new upload of 10 bytes.
    async fn sent(f: &Fixture, data: &[u8]) -> UploadRecord {
        let r = f.service.create(new_upload(Some(10), "s")).await.unwrap();
        let r = f
            .service
            .append(&r.id, AppendRequest::default(), body(data, data.len()))
            .await
            .unwrap();
        assert_eq!(r.offset, data.len() as u64);
        r
    }

    /// The last five bytes of an upload `sent` made, from where its client
    /// left off.
    async fn the_rest(
        service: &crate::core::UploadService,
        r: &UploadRecord,
    ) -> crate::core::error::Result<UploadRecord> {
        let from_5 = AppendRequest {
            offset: 5,
            ..AppendRequest::default()
        };
        service.append(&r.id, from_5, body(b"12345", 5)).await
    }

    /// Where an upload's bytes are.
    fn file_of(f: &Fixture, r: &UploadRecord) -> std::path::PathBuf {
        let key = &r.blob_key;
        f.dir.path().join("blobs").join(&key[..2]).join(key)
    }

    /// Cuts an upload's file to `len` bytes, as a power cut can.
    fn cut_short(f: &Fixture, r: &UploadRecord, len: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(file_of(f, r));
        file.unwrap().set_len(len).unwrap();
    }

    /// Appends `more` to an upload's file, as a request does before the
    /// process is killed between two commits.
    fn written_past_the_commit(f: &Fixture, r: &UploadRecord, more: &[u8]) {
        use std::io::Write;
        let file = file_of(f, r);
        let mut file = std::fs::OpenOptions::new().append(true).open(file).unwrap();
        file.write_all(more).unwrap();
    }

    /// Bytes a request with a checksum held back when the process died
    /// are never taken in, however often the upload is checked before its
    /// next PATCH drops them.
    #[tokio::test]
    async fn held_back_bytes_stay_out_however_often_the_upload_is_checked() {
        let f = fixture(|_| {}).await;
        let r = sent(&f, b"hello").await;
        written_past_the_commit(&f, &r, b"xy");
        std::fs::write(file_of(&f, &r).with_extension("held"), b"").unwrap();
        let service = restarted(&f).await;
        for _ in 0..3 {
            assert_eq!(service.get(&r.id).await.unwrap().offset, 5);
        }
        assert_eq!(service.reconcile_all().await.unwrap().recovered, 0);
        let done = the_rest(&service, &r).await.unwrap();
        assert_eq!(done.offset, 10);
        assert_eq!(stored(&service, &done).await, b"hello12345");
        assert!(!file_of(&f, &r).with_extension("held").exists());
    }

    /// An upload whose check fails (its store answers an error) is logged
    /// and left for the next start: the others are checked all the same,
    /// and the check ends.
    #[tokio::test]
    async fn one_failing_upload_does_not_hold_up_the_check() {
        let f = fixture(|_| {}).await;
        let good = sent(&f, b"hello").await;
        written_past_the_commit(&f, &good, b"12");
        // Its "file" is a folder, which cannot be read.
        let mut bad = good.clone();
        bad.id = UploadId::random();
        bad.blob_key = bad.id.to_string();
        assert!(f.service.meta.insert(&bad, &[]).await.unwrap());
        std::fs::create_dir_all(file_of(&f, &bad).join("in-the-way")).unwrap();
        let service = restarted(&f).await;
        let done = service.reconcile_all().await.unwrap();
        assert_eq!((done.failed, done.recovered), (1, 1), "{done:?}");
        let good = service.meta.get(&good.id).await.unwrap().unwrap();
        assert_eq!(good.offset, 7);
    }

    /// The server answers before the start-up check is done: a request
    /// that reads an upload the check has not reached checks it first, so
    /// a HEAD reports, and a PATCH starts from, what is really stored.
    #[tokio::test]
    async fn an_upload_read_before_the_check_reaches_it_is_checked_first() {
        let f = fixture(|_| {}).await;
        let (a, b) = (sent(&f, b"hello").await, sent(&f, b"hello").await);
        written_past_the_commit(&f, &a, b"12");
        written_past_the_commit(&f, &b, b"12");
        let service = restarted(&f).await;
        // A HEAD's read.
        assert_eq!(service.get(&a.id).await.unwrap().offset, 7);
        // A PATCH from where its client left off: the append reads the
        // record under the upload's lock, and checks it there.
        let e = the_rest(&service, &b).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::OffsetMismatch, "{e:?}");
        let b = service.get(&b.id).await.unwrap();
        assert_eq!(b.offset, 7);
        assert_eq!(stored(&service, &b).await, b"hello12");
        // The check itself then finds both done.
        let done = service.reconcile_all().await.unwrap();
        assert_eq!((done.checked, done.recovered), (0, 0), "{done:?}");
    }

    /// A request that finishes an upload between the page that lists it
    /// and the check's turn: the check goes by the record the request
    /// wrote, not by the page, and takes nothing in again.
    #[tokio::test]
    async fn the_check_goes_by_the_record_a_request_wrote_since_its_page() {
        let f = fixture(|_| {}).await;
        let r = sent(&f, b"hello").await;
        let service = restarted(&f).await;
        let listed = service.meta.get(&r.id).await.unwrap().unwrap();
        let finished = the_rest(&service, &r).await.unwrap();
        assert!(finished.is_complete());
        let mut done = Reconciled::default();
        service.check_listed(listed, &mut done).await.unwrap();
        assert_eq!(done, Reconciled::default());
        let after = service.meta.get(&r.id).await.unwrap().unwrap();
        assert_eq!(after.offset, 10);
        assert!(after.is_complete());
        assert_eq!(after.updated_at, finished.updated_at, "left as written");
    }

    /// While the start-up check runs, it holds each upload's lock for a
    /// moment: a PATCH that comes then waits, rather than being turned away
    /// as busy.
    #[tokio::test]
    async fn a_write_waits_for_the_check_to_let_go() {
        let f = fixture(|_| {}).await;
        let r = sent(&f, b"hello").await;
        let service = restarted(&f).await;
        let held = service.locks.try_lock(r.id.as_str()).await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            drop(held);
        });
        assert_eq!(the_rest(&service, &r).await.unwrap().offset, 10);
    }

    /// The check runs in the background, and says when it is done; what
    /// this run wrote itself (an upload being assembled, for one) it leaves
    /// alone.
    #[tokio::test]
    async fn the_background_check_leaves_this_runs_uploads_alone() {
        let f = fixture(|_| {}).await;
        let before = sent(&f, b"hello").await;
        written_past_the_commit(&f, &before, b"12");
        let service = restarted(&f).await;
        let now = sent(&f, b"hello").await;
        written_past_the_commit(&f, &now, b"12");
        service.check_in_background();
        tokio::time::timeout(std::time::Duration::from_secs(10), service.checked())
            .await
            .expect("the check ends");
        assert_eq!(service.get(&before.id).await.unwrap().offset, 7);
        assert_eq!(service.get(&now.id).await.unwrap().offset, 5);
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
