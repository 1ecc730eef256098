//! `FsBlobWriter`: one open file's writer. Bytes go to a bounded queue that a
//! pooled blocking thread drains while there is work (lingering briefly for
//! the next chunk), so an idle request holds no thread; commits sync what
//! was written and answer the durable length.

use crate::core::blob::{BlobWriter, Commit};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Appends through a queue that a blocking thread drains, so that
/// receiving and hashing the next bytes overlap with copying the last ones
/// into the file: two cores work on one upload, as they do for a plain file
/// copy. The request's task hands over the body's own buffers (no copy) and
/// waits only when more than a bounded amount is still unwritten; commits
/// and discards go down the same queue, so they see every byte queued
/// before them.
///
/// A thread serves a writer only while its queue has work: a request that
/// sends nothing holds no thread, so any number of idle requests cannot
/// starve the others, and at most `WRITER_THREADS` threads write at once.
///
/// Every writer ends with a commit or a discard, which waits for the
/// queue; once dropped, nothing more is written. So no stale write can
/// land after the upload's lock is released.
pub(super) struct FsBlobWriter {
    pub(super) shared: Arc<Shared>,
    /// Bytes queued for this writer and not yet written.
    pub(super) pending: Arc<Semaphore>,
    /// The store's bound on queued bytes over all writers.
    pub(super) shared_budget: Arc<Semaphore>,
    /// The store's bound on threads writing at once.
    pub(super) threads: Arc<Semaphore>,
    /// Bytes the last commit covered.
    pub(super) committed: u64,
    /// Bytes the last sync covered (or the offset the writer opened at).
    pub(super) synced: u64,
}

/// What the writer and the thread draining its queue share.
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    /// Rung when an operation is queued, for a thread lingering on it.
    pub(super) more: std::sync::Condvar,
    /// Set when the writer is dropped: queued bytes are skipped.
    pub(super) closed: AtomicBool,
    /// The writer's own byte budget, then the store's.
    pub(super) budgets: [Arc<Semaphore>; 2],
}

pub(super) struct Queue {
    pub(super) ops: VecDeque<Op>,
    /// The file, when no thread is draining the queue (a draining thread
    /// holds it, and puts it back when the queue is empty).
    pub(super) side: Option<FileSide>,
}

/// An answer from the draining thread: the file's length after the operation.
pub(super) type Reply = oneshot::Sender<io::Result<u64>>;

/// Work on the file, done in order.
pub(super) enum Op {
    /// Bytes to append, with the permits they hold in both budgets.
    Write(Bytes, u32),
    /// Make everything before durable (when asked) and answer the length.
    Commit(bool, Reply),
    /// Drop everything after this length and answer it.
    Truncate(u64, Reply),
    /// Mark the bytes from here to the next commit or truncate as held back.
    HoldBack(Reply),
}

/// Most bytes one writer may have queued: enough to keep its thread busy
/// while the next bytes arrive.
pub(super) const WRITER_QUEUE: u32 = 4 << 20;

/// Most bytes all writers of a store may have queued, so that memory stays
/// bounded however many uploads run at once.
pub(super) const STORE_QUEUE: usize = 16 << 20;

/// Most threads copying bytes into files at once, over all writers (well
/// below tokio's pool of blocking threads, which downloads and other file
/// work share).
pub(super) const WRITER_THREADS: usize = 32;

/// How long a thread that emptied its writer's queue waits for more work
/// before it goes back to the pool.
pub(super) const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Writeback is started every this many bytes (when commits will sync).
pub(super) const WRITEBACK_EVERY: u64 = 256 * 1024;

/// The file's side: the file, where it is, and the first error since the
/// last commit or truncate.
pub(super) struct FileSide {
    pub(super) file: std::fs::File,
    pub(super) at: u64,
    /// Where the bytes not yet handed to writeback start.
    pub(super) unsent: u64,
    pub(super) early_writeback: bool,
    pub(super) error: Option<io::Error>,
    /// The file that marks bytes as held back, and whether it exists.
    pub(super) marker: PathBuf,
    pub(super) held_back: bool,
}

impl FileSide {
    pub(super) fn write(&mut self, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        if self.error.is_some() {
            return;
        }
        match self.file.write_all_at(data, self.at) {
            Ok(()) => {
                self.at += data.len() as u64;
                if self.early_writeback && self.at - self.unsent >= WRITEBACK_EVERY {
                    start_writeback(&self.file, self.unsent, self.at - self.unsent);
                    self.unsent = self.at;
                }
            }
            Err(e) => self.error = Some(e),
        }
    }

    pub(super) fn commit(&mut self, durable: bool) -> io::Result<u64> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if durable {
            self.file.sync_data()?;
        }
        self.release_hold();
        Ok(self.at)
    }

    pub(super) fn truncate(&mut self, len: u64) -> io::Result<u64> {
        self.error = None;
        self.file.set_len(len)?;
        self.at = len;
        self.unsent = len;
        self.release_hold();
        Ok(len)
    }

    pub(super) fn hold_back(&mut self) -> io::Result<u64> {
        std::fs::File::create(&self.marker)?;
        self.held_back = true;
        Ok(self.at)
    }

    pub(super) fn release_hold(&mut self) {
        if self.held_back {
            self.held_back = false;
            if let Err(e) = std::fs::remove_file(&self.marker) {
                tracing::warn!("removing {}: {e}", self.marker.display());
            }
        }
    }
}

/// Drains a writer's queue on a blocking thread until it is empty, then
/// puts the file back. If the thread dies, the writer's budget is closed,
/// so a writer waiting for room hears of it instead of waiting forever.
pub(super) fn drain(shared: Arc<Shared>, mut side: FileSide, _thread: OwnedSemaphorePermit) {
    struct CloseUnlessDone<'a>(&'a Semaphore, bool);
    impl Drop for CloseUnlessDone<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.close();
            }
        }
    }
    let mut guard = CloseUnlessDone(&shared.budgets[0], false);
    loop {
        let op = {
            let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.ops.is_empty() {
                // A body streaming in sends its next chunk within moments:
                // wait that long before giving the thread back.
                queue = shared
                    .more
                    .wait_timeout(queue, LINGER)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            match queue.ops.pop_front() {
                Some(op) => op,
                None => {
                    queue.side = Some(side);
                    guard.1 = true;
                    return;
                }
            }
        };
        match op {
            Op::Write(data, permits) => {
                if !shared.closed.load(Ordering::Acquire) {
                    side.write(&data);
                }
                drop(data);
                for budget in &shared.budgets {
                    budget.add_permits(permits as usize);
                }
            }
            Op::Commit(durable, reply) => {
                let _ = reply.send(side.commit(durable));
            }
            Op::Truncate(len, reply) => {
                let _ = reply.send(side.truncate(len));
            }
            Op::HoldBack(reply) => {
                let _ = reply.send(side.hold_back());
            }
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk,
/// without waiting for it. A later `fdatasync` then waits only for what is
/// still in flight, instead of the request's whole body at once: receiving
/// and writing to disk overlap, as they do for a plain file copy.
#[cfg(target_os = "linux")]
pub(super) fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: the descriptor is open for as long as `file` is borrowed;
    // sync_file_range reads nothing from our memory.
    let _ = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

#[cfg(not(target_os = "linux"))]
pub(super) fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

pub(super) fn thread_gone() -> io::Error {
    io::Error::other("the blob's writer thread stopped")
}

impl FsBlobWriter {
    /// Queues an operation, and starts a thread on the queue when none is
    /// draining it.
    pub(super) async fn queue(&mut self, op: Op) -> io::Result<()> {
        let idle = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.ops.push_back(op);
            queue.side.is_some()
        };
        self.shared.more.notify_one();
        if idle {
            // Only this writer queues, and only a thread takes the file: it
            // is still there after the wait.
            let thread = self
                .threads
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| thread_gone())?;
            let side = {
                let mut queue = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
                queue.side.take()
            };
            if let Some(side) = side {
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || drain(shared, side, thread));
            }
        }
        Ok(())
    }

    /// Queues an operation that answers, and waits for the answer.
    pub(super) async fn ask(&mut self, op: impl FnOnce(Reply) -> Op) -> io::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.queue(op(tx)).await?;
        rx.await.map_err(|_| thread_gone())?
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

#[async_trait]
impl BlobWriter for FsBlobWriter {
    async fn write(&mut self, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // A chunk counts at least 4 KiB (a slow or hostile client's tiny
        // chunks cannot pile up), and one larger than the budget takes all.
        let permits = u32::try_from(data.len())
            .unwrap_or(u32::MAX)
            .clamp(4096, WRITER_QUEUE);
        for budget in [&self.pending, &self.shared_budget] {
            budget
                .acquire_many(permits)
                .await
                .map_err(|_| thread_gone())?
                .forget();
        }
        self.queue(Op::Write(data, permits)).await
    }

    async fn commit(&mut self, how: Commit) -> io::Result<u64> {
        let len = self.ask(|tx| Op::Commit(how.is_synced(), tx)).await?;
        self.committed = len;
        if how.is_synced() {
            self.synced = len;
        }
        Ok(len)
    }

    async fn sync(&mut self) -> io::Result<()> {
        match self.ask(|tx| Op::Commit(true, tx)).await {
            Ok(_) => {
                self.synced = self.committed;
                Ok(())
            }
            Err(e) => {
                // The bytes since the last sync may never reach the disk
                // (after a failed fsync, a later one can succeed without
                // them): a discard drops them, so that nothing takes them
                // in later as written.
                self.committed = self.synced;
                Err(e)
            }
        }
    }

    async fn discard(&mut self) -> io::Result<()> {
        let len = self.committed;
        self.ask(|tx| Op::Truncate(len, tx)).await?;
        Ok(())
    }

    async fn hold_back(&mut self) -> io::Result<()> {
        self.ask(Op::HoldBack).await?;
        Ok(())
    }

    fn committed(&self) -> u64 {
        self.committed
    }
}
