//! The bytes seam: `BlobStore` keeps each upload's bytes under a key and
//! knows nothing of offsets, protocols or records. It writes, reports how
//! much it made durable, reads ranges back and deletes. `FsBlobStore` is the
//! embedded implementation on local disk; `S3BlobStore` (in `s3`) keeps
//! bytes in S3-compatible object storage.
//!
//! A store may need a little state of its own about an unfinished blob (the
//! S3 multipart upload and its parts). It hands that state out after each
//! commit as an opaque string, the service records it in the same update as
//! the offset, and gives it back when the blob is opened again: the record
//! is the one source of truth, on whichever instance the next request
//! lands.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// A stream of bytes read back from a blob.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Where upload bytes live.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Creates an empty blob under a new key.
    async fn create(&self, key: &str) -> io::Result<()>;
    /// The stored length, or `None` when there is no such blob. `state` is
    /// what the last recorded commit handed out.
    async fn len(&self, key: &str, state: Option<&str>) -> io::Result<Option<u64>>;
    /// Opens the blob to append at `offset`; anything stored past `offset`
    /// (bytes that were never acknowledged) is dropped.
    async fn append_at(
        &self,
        key: &str,
        offset: u64,
        state: Option<&str>,
    ) -> io::Result<Box<dyn BlobWriter>>;
    /// Streams the bytes in `range` of a finished blob (or, for stores that
    /// can, of an unfinished one).
    async fn read(&self, key: &str, range: Range<u64>) -> io::Result<ByteStream>;
    /// Removes the blob and whatever its state holds; a missing blob is not
    /// an error.
    async fn delete(&self, key: &str, state: Option<&str>) -> io::Result<()>;
    /// Every key of the store's own making (an upload ID) that has bytes
    /// stored, to find blobs no record names. Stores that cannot list
    /// answer `Unsupported`.
    async fn keys(&self) -> io::Result<Vec<String>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// The size and free space of the disk under the store, when it has one.
    async fn space(&self) -> Option<Space> {
        None
    }
    /// After a crash of the process (not of the machine): how many bytes
    /// the blob holds that are exactly the ones appended, in order, past
    /// its last commit included. `None` when the store cannot prove it (a
    /// restart of the machine, bytes held back by `BlobWriter::hold_back`,
    /// a store that keeps unfinished bytes in memory).
    async fn recoverable_len(&self, _key: &str) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

/// A disk's size and free space, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// What an unprivileged writer may still use.
    pub free: u64,
}

/// Appends to one blob. Bytes are queued or buffered by `write`, and count
/// only once `commit` has returned.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: Bytes) -> io::Result<()>;
    /// Stores everything written so far and, when `durable`, forces it to
    /// stable storage. `last` says no byte will follow: the blob is
    /// finished. Returns the blob's committed length.
    async fn commit(&mut self, durable: bool, last: bool) -> io::Result<u64>;
    /// Forces what the last commit stored to stable storage, for a commit
    /// made with `durable` false. Stores whose commits are durable anyway
    /// have nothing to do.
    async fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Drops everything written since the last commit (or since opening).
    async fn discard(&mut self) -> io::Result<()>;
    /// The bytes written from now until the next commit or discard are not
    /// to be recovered after a crash (they are not verified yet).
    async fn hold_back(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The committed length.
    fn committed(&self) -> u64;
    /// The store's state of this blob as of the last commit, to be recorded
    /// with the offset (`None` when the store keeps none).
    fn state(&self) -> Option<String> {
        None
    }
    /// Called once the last commit's state is recorded: whatever only the
    /// state before it needed can go.
    async fn settle(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Blobs as files under `<root>/blobs/<first two characters>/<key>`. Keys are
/// server-generated IDs, never names a client chose.
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    root: Arc<PathBuf>,
    /// Whether directory entries are synced when files are created.
    durable: bool,
    /// Bytes queued to writers and not yet written, over all writers.
    queue: Arc<Semaphore>,
    /// Threads copying queued bytes into files, over all writers.
    threads: Arc<Semaphore>,
    /// Whether the machine has run without a restart since the last time
    /// a store was opened here: then every byte written to a file before a
    /// crash of the process is still in it, exactly.
    same_boot: bool,
}

impl FsBlobStore {
    /// A store under `data_dir/blobs`; `durable` syncs directory entries
    /// of new blobs so they survive a power loss.
    pub fn new(data_dir: &Path, durable: bool) -> io::Result<Self> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(&root)?;
        let same_boot = same_boot_as_last_time(&root);
        Ok(FsBlobStore {
            root: Arc::new(root),
            durable,
            queue: Arc::new(Semaphore::new(STORE_QUEUE)),
            threads: Arc::new(Semaphore::new(WRITER_THREADS)),
            same_boot,
        })
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(&key[..2]).join(key))
    }
}

/// The file beside a blob that says its bytes past the last commit are
/// held back (`BlobWriter::hold_back`).
fn held_back_marker(path: &Path) -> PathBuf {
    path.with_extension("held")
}

/// Compares the machine's boot ID with the one recorded in `root` by the
/// last start, and records the current one. True only when both are known
/// and equal: the page cache, and so every byte written before a crash of
/// the process, survived.
fn same_boot_as_last_time(root: &Path) -> bool {
    let Ok(now) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        return false;
    };
    let now = now.trim();
    let file = root.join(".boot_id");
    let before = std::fs::read_to_string(&file).unwrap_or_default();
    if before.trim() != now {
        // Written and synced, so a later restart compares with this boot.
        let written =
            std::fs::write(&file, now).and_then(|()| std::fs::File::open(&file)?.sync_all());
        if let Err(e) = written {
            tracing::warn!("recording the boot ID: {e}");
        }
        return false;
    }
    !now.is_empty()
}

/// Refuses any key but the server's own IDs (letters, digits, `-`, `_`,
/// at least 4 characters), so no key can name a path or object of its own.
pub(crate) fn check_key(key: &str) -> io::Result<()> {
    let valid = key.len() >= 4
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid blob key",
        ))
    }
}

/// What `append_at` answers when the blob holds fewer bytes than the
/// offset (the service reconciles the record on `UnexpectedEof`).
pub(crate) fn shorter_than_offset(len: u64, offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the blob holds {len} bytes, fewer than the offset {offset}"),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("blocking task failed: {e}")))?
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn create(&self, key: &str) -> io::Result<()> {
        let path = self.path(key)?;
        let durable = self.durable;
        blocking(move || {
            let dir = path.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(dir)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            if durable {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
    }

    async fn len(&self, key: &str, _state: Option<&str>) -> io::Result<Option<u64>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn append_at(
        &self,
        key: &str,
        offset: u64,
        _state: Option<&str>,
    ) -> io::Result<Box<dyn BlobWriter>> {
        let path = self.path(key)?;
        let marker = held_back_marker(&path);
        let stale = marker.clone();
        let file = blocking(move || {
            // Bytes past `offset` go now, so any hold on them goes too.
            let _ = std::fs::remove_file(&stale);
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            let len = file.metadata()?.len();
            if len > offset {
                file.set_len(offset)?;
            } else if len < offset {
                return Err(shorter_than_offset(len, offset));
            }
            Ok(file)
        })
        .await?;
        let pending = Arc::new(Semaphore::new(WRITER_QUEUE as usize));
        let side = FileSide {
            file,
            at: offset,
            unsent: offset,
            early_writeback: self.durable,
            error: None,
            marker,
            held_back: false,
        };
        Ok(Box::new(FsBlobWriter {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    ops: VecDeque::new(),
                    side: Some(side),
                }),
                more: std::sync::Condvar::new(),
                closed: AtomicBool::new(false),
                budgets: [pending.clone(), self.queue.clone()],
            }),
            pending,
            shared_budget: self.queue.clone(),
            threads: self.threads.clone(),
            committed: offset,
        }))
    }

    async fn read(&self, key: &str, range: Range<u64>) -> io::Result<ByteStream> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(key)?;
        let mut file = tokio::fs::File::open(&path).await?;
        file.seek(io::SeekFrom::Start(range.start)).await?;
        let reader = file.take(range.end.saturating_sub(range.start));
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader,
            256 * 1024,
        )))
    }

    async fn delete(&self, key: &str, _state: Option<&str>) -> io::Result<()> {
        let path = self.path(key)?;
        let _ = tokio::fs::remove_file(held_back_marker(&path)).await;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn keys(&self) -> io::Result<Vec<String>> {
        let root = self.root.clone();
        blocking(move || {
            let mut keys = Vec::new();
            for dir in std::fs::read_dir(&*root)? {
                let dir = dir?;
                if !dir.file_type()?.is_dir() {
                    continue;
                }
                for file in std::fs::read_dir(dir.path())? {
                    let name = file?.file_name();
                    // Only names Ferry makes.
                    if let Some(name) = name.to_str() {
                        if super::id::UploadId::parse(name).is_some() {
                            keys.push(name.to_string());
                        }
                    }
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn space(&self) -> Option<Space> {
        let root = self.root.clone();
        blocking(move || disk_space(&root)).await.ok()
    }

    async fn recoverable_len(&self, key: &str) -> io::Result<Option<u64>> {
        let path = self.path(key)?;
        let same_boot = self.same_boot;
        blocking(move || {
            let marker = held_back_marker(&path);
            if marker.exists() {
                // Bytes not verified yet: the next writer drops them.
                std::fs::remove_file(&marker)?;
                return Ok(None);
            }
            if !same_boot {
                return Ok(None);
            }
            match std::fs::metadata(&path) {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }
}

#[cfg(unix)]
fn disk_space(path: &Path) -> io::Result<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs writes only into the struct we pass, and reads the
    // NUL-terminated path, which outlives the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = stat.f_frsize as u64;
    Ok(Space {
        total: (stat.f_blocks as u64).saturating_mul(unit),
        free: (stat.f_bavail as u64).saturating_mul(unit),
    })
}

#[cfg(not(unix))]
fn disk_space(_path: &Path) -> io::Result<Space> {
    Err(io::ErrorKind::Unsupported.into())
}

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
struct FsBlobWriter {
    shared: Arc<Shared>,
    /// Bytes queued for this writer and not yet written.
    pending: Arc<Semaphore>,
    /// The store's bound on queued bytes over all writers.
    shared_budget: Arc<Semaphore>,
    /// The store's bound on threads writing at once.
    threads: Arc<Semaphore>,
    /// Bytes the last commit covered.
    committed: u64,
}

/// What the writer and the thread draining its queue share.
struct Shared {
    queue: Mutex<Queue>,
    /// Rung when an operation is queued, for a thread lingering on it.
    more: std::sync::Condvar,
    /// Set when the writer is dropped: queued bytes are skipped.
    closed: AtomicBool,
    /// The writer's own byte budget, then the store's.
    budgets: [Arc<Semaphore>; 2],
}

struct Queue {
    ops: VecDeque<Op>,
    /// The file, when no thread is draining the queue (a draining thread
    /// holds it, and puts it back when the queue is empty).
    side: Option<FileSide>,
}

/// An answer from the draining thread: the file's length after the operation.
type Reply = oneshot::Sender<io::Result<u64>>;

/// Work on the file, done in order.
enum Op {
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
const WRITER_QUEUE: u32 = 4 << 20;

/// Most bytes all writers of a store may have queued, so that memory stays
/// bounded however many uploads run at once.
const STORE_QUEUE: usize = 16 << 20;

/// Most threads copying bytes into files at once, over all writers (well
/// below tokio's pool of blocking threads, which downloads and other file
/// work share).
const WRITER_THREADS: usize = 32;

/// How long a thread that emptied its writer's queue waits for more work
/// before it goes back to the pool.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Writeback is started every this many bytes (when commits will sync).
const WRITEBACK_EVERY: u64 = 256 * 1024;

/// The file's side: the file, where it is, and the first error since the
/// last commit or truncate.
struct FileSide {
    file: std::fs::File,
    at: u64,
    /// Where the bytes not yet handed to writeback start.
    unsent: u64,
    early_writeback: bool,
    error: Option<io::Error>,
    /// The file that marks bytes as held back, and whether it exists.
    marker: PathBuf,
    held_back: bool,
}

impl FileSide {
    fn write(&mut self, data: &[u8]) {
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

    fn commit(&mut self, durable: bool) -> io::Result<u64> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if durable {
            self.file.sync_data()?;
        }
        self.release_hold();
        Ok(self.at)
    }

    fn truncate(&mut self, len: u64) -> io::Result<u64> {
        self.error = None;
        self.file.set_len(len)?;
        self.at = len;
        self.unsent = len;
        self.release_hold();
        Ok(len)
    }

    fn hold_back(&mut self) -> io::Result<u64> {
        std::fs::File::create(&self.marker)?;
        self.held_back = true;
        Ok(self.at)
    }

    fn release_hold(&mut self) {
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
fn drain(shared: Arc<Shared>, mut side: FileSide, _thread: OwnedSemaphorePermit) {
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
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
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
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

fn thread_gone() -> io::Error {
    io::Error::other("the blob's writer thread stopped")
}

impl FsBlobWriter {
    /// Queues an operation, and starts a thread on the queue when none is
    /// draining it.
    async fn queue(&mut self, op: Op) -> io::Result<()> {
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
    async fn ask(&mut self, op: impl FnOnce(Reply) -> Op) -> io::Result<u64> {
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

    async fn commit(&mut self, durable: bool, _last: bool) -> io::Result<u64> {
        let len = self.ask(|tx| Op::Commit(durable, tx)).await?;
        self.committed = len;
        Ok(len)
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.ask(|tx| Op::Commit(true, tx)).await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    async fn read_all(store: &FsBlobStore, key: &str, range: Range<u64>) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .read(key, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn write_commit_discard_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path(), true).unwrap();
        let key = "AbCdEfGhIjKlMnOpQrStUv";
        store.create(key).await.unwrap();
        assert!(store.create(key).await.is_err(), "keys are never reused");
        let mut w = store.append_at(key, 0, None).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        assert_eq!(w.commit(true, false).await.unwrap(), 6);
        w.write(vec![b'x'; (5 << 20) + 10].into()).await.unwrap();
        w.discard().await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(w.commit(false, false).await.unwrap(), 11);
        drop(w);
        assert_eq!(store.len(key, None).await.unwrap(), Some(11));
        assert_eq!(read_all(&store, key, 0..11).await, b"hello world");
        assert_eq!(read_all(&store, key, 6..9).await, b"wor");
        // Re-opening at an earlier offset drops what was never acknowledged.
        let w = store.append_at(key, 5, None).await.unwrap();
        assert_eq!(w.committed(), 5);
        assert_eq!(store.len(key, None).await.unwrap(), Some(5));
        assert!(store.append_at(key, 6, None).await.is_err());
        store.delete(key, None).await.unwrap();
        store.delete(key, None).await.unwrap();
        assert_eq!(store.len(key, None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path(), false).unwrap();
        for key in ["../../etc/passwd", "..", "a/b/c/d", "", "ab"] {
            assert!(store.create(key).await.is_err(), "{key:?}");
        }
    }
}
