//! The start-up check beside the requests: the server serves at once while
//! `reconcile_all` (`recover.rs`) goes through the uploads an earlier run
//! left unfinished. Until it is done, a request that reads such an upload
//! checks it first, and a PATCH waits out a lock the check holds.

use super::recover::Reconciled;
use super::UploadService;
use crate::core::error::{Error, Result};
use crate::core::id::UploadId;
use crate::core::lock::UploadLock;
use crate::core::record::{now_millis, UploadRecord, UploadState};
use tokio::sync::watch;

impl UploadService {
    /// Runs `reconcile_all` beside the requests, which are served from the
    /// start: an upload the check has not reached yet is checked when a
    /// request reads it first (`get`). A failed check is tried again until
    /// it goes through.
    pub fn check_in_background(&self) {
        let service = self.clone();
        tokio::spawn(async move {
            let began = std::time::Instant::now();
            let done = loop {
                match service.reconcile_all().await {
                    Ok(done) => break done,
                    Err(e) => {
                        tracing::error!(
                            "the start-up check failed; trying again in {RETRY_CHECK:?}: {e}"
                        );
                        tokio::time::sleep(RETRY_CHECK).await;
                    }
                }
            };
            if done.fell_back > 0 {
                tracing::warn!(
                    "{} unfinished uploads had fewer stored bytes than recorded; they resume from what is stored",
                    done.fell_back
                );
            }
            if done.recovered > 0 {
                tracing::info!(
                    "{} unfinished uploads took in bytes written before Ferry stopped",
                    done.recovered
                );
            }
            if done.failed > 0 {
                tracing::error!(
                    "{} unfinished uploads could not be checked; they are checked again at the next start",
                    done.failed
                );
            }
            tracing::info!(
                checked = done.checked,
                "start-up check done in {:.1?}",
                began.elapsed()
            );
        });
    }

    /// Waits until the start-up check has gone through every upload.
    pub async fn checked(&self) {
        let mut checking = self.start_up.checking.subscribe();
        // The sender lives as long as the service.
        let _ = checking.wait_for(|going| !going).await;
    }

    /// The start-up check of `record`, read before the check got to it;
    /// answers the record after.
    pub(super) async fn check_early(
        &self,
        mut record: UploadRecord,
        locked: bool,
    ) -> Result<UploadRecord> {
        let id = record.id.clone();
        let mut waited = 0;
        let _lock = loop {
            if locked {
                break None;
            }
            if let Some(lock) = self.locks.try_lock(id.as_str()).await {
                break Some(lock);
            }
            // Someone holds it: the check (for a few milliseconds), or a
            // writer, which checked it under the lock. Whichever it is, a
            // record it changed is no longer pending. Past the wait, the
            // record is answered as it is (a PATCH from its offset still
            // finds the bytes short, if they are, and falls back then).
            if waited == EARLY_CHECK_WAITS {
                return Ok(record);
            }
            waited += 1;
            tokio::time::sleep(EARLY_CHECK_PAUSE).await;
            record = self.meta.get(&id).await?.ok_or_else(Error::not_found)?;
            if !self.start_up.pending(&record) {
                return Ok(record);
            }
        };
        let fresh = self.meta.get(&id).await?.ok_or_else(Error::not_found)?;
        if !self.start_up.pending(&fresh) {
            return Ok(fresh);
        }
        self.check_one(fresh, &mut Reconciled::default()).await?;
        self.meta.get(&id).await?.ok_or_else(Error::not_found)
    }

    /// The upload's lock, for a request that writes it. While the start-up
    /// check runs, it holds each upload's lock for a few milliseconds: a
    /// request that finds it taken waits that out rather than being turned
    /// away as busy.
    pub(super) async fn lock_to_write(&self, id: &UploadId) -> Option<UploadLock> {
        for _ in 0..EARLY_CHECK_WAITS {
            if let Some(lock) = self.locks.try_lock(id.as_str()).await {
                return Some(lock);
            }
            if !self.start_up.running() {
                return None;
            }
            tokio::time::sleep(EARLY_CHECK_PAUSE).await;
        }
        self.locks.try_lock(id.as_str()).await
    }
}

/// How often, and how long each time, a request waits for a lock the
/// start-up check may hold (200 ms in all).
const EARLY_CHECK_WAITS: u32 = 40;
const EARLY_CHECK_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a failed start-up check waits before it starts again.
const RETRY_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The start-up check, while it runs beside the requests: a record of an
/// unfinished upload last written before this process started may not
/// match its bytes (a crash, a power cut) until it is checked.
pub(super) struct StartUp {
    /// When this run began, in milliseconds: a record written since was
    /// written by this run (or by another instance, which serves it).
    began: i64,
    /// True until the check has gone through every upload.
    checking: watch::Sender<bool>,
}

impl StartUp {
    pub(super) fn new() -> Self {
        StartUp {
            began: now_millis(),
            checking: watch::channel(true).0,
        }
    }

    /// Whether `record` is of an upload an earlier run left unfinished
    /// (what this run writes, the check leaves alone: an upload being
    /// assembled, for one).
    pub(super) fn left_before(&self, record: &UploadRecord) -> bool {
        record.state == UploadState::Active && record.updated_at < self.began
    }

    /// Marks the check done: nothing is pending any more.
    pub(super) fn done(&self) {
        self.checking.send_replace(false);
    }

    /// Whether the check is still going.
    fn running(&self) -> bool {
        *self.checking.borrow()
    }

    /// Whether `record` is still to be checked.
    pub(super) fn pending(&self, record: &UploadRecord) -> bool {
        self.left_before(record) && self.running()
    }
}
