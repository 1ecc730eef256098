//! The locking seam: at most one writer per upload. A lock can be asked to
//! give way (a DELETE during a PATCH), which the holder notices through its
//! cancellation token. Implementations live in `store::lock`: `LocalLocker`
//! serves one process; `PgLocker` adds PostgreSQL advisory locks on top of
//! it for several instances.

use async_trait::async_trait;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Hands out per-upload locks.
#[async_trait]
pub trait Locker: Send + Sync + 'static {
    /// The lock, if nobody holds it; never waits.
    async fn try_lock(&self, key: &str) -> Option<UploadLock>;
    /// The lock, asking a current holder to give way and waiting up to
    /// `wait` for it to do so.
    async fn lock_preempting(&self, key: &str, wait: Duration) -> Option<UploadLock>;
}

/// A held lock; released when dropped.
pub struct UploadLock {
    cancel: CancellationToken,
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl UploadLock {
    /// A lock that `cancel` asks to give way and that runs `release` when
    /// it is let go (for `Locker` implementations).
    pub fn new(cancel: CancellationToken, release: impl FnOnce() + Send + Sync + 'static) -> Self {
        UploadLock {
            cancel,
            release: Some(Box::new(release)),
        }
    }

    /// Completes when someone asks this holder to give way.
    pub fn preempted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub fn is_preempted(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// This lock, also running `release` when it is let go (before the
    /// release it had).
    pub fn also_on_release(mut self, release: impl FnOnce() + Send + Sync + 'static) -> Self {
        let inner = self.release.take();
        self.release = Some(Box::new(move || {
            release();
            if let Some(inner) = inner {
                inner();
            }
        }));
        self
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}
