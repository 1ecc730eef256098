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
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use tokio::sync::{oneshot, Semaphore};

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
    /// Bytes queued to writer threads and not yet written, over all writers.
    queue: Arc<Semaphore>,
}

impl FsBlobStore {
    /// A store under `data_dir/blobs`; `durable` syncs directory entries
    /// of new blobs so they survive a power loss.
    pub fn new(data_dir: &Path, durable: bool) -> io::Result<Self> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(&root)?;
        Ok(FsBlobStore {
            root: Arc::new(root),
            durable,
            queue: Arc::new(Semaphore::new(STORE_QUEUE)),
        })
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(&key[..2]).join(key))
    }
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
        let (ops, queue) = std::sync::mpsc::channel();
        let pending = Arc::new(Semaphore::new(WRITER_QUEUE as usize));
        let closed = Arc::new(AtomicBool::new(false));
        let (opened_tx, opened) = oneshot::channel();
        let early_writeback = self.durable;
        // The writer's own budget first: the thread closes it when it ends.
        let budgets = [pending.clone(), self.queue.clone()];
        let thread_closed = closed.clone();
        // The thread opens the file, then serves the writer until it is
        // dropped (a pooled blocking thread, reused across requests).
        tokio::task::spawn_blocking(move || {
            let open = || {
                let file = std::fs::OpenOptions::new().write(true).open(&path)?;
                let len = file.metadata()?.len();
                if len > offset {
                    file.set_len(offset)?;
                } else if len < offset {
                    return Err(shorter_than_offset(len, offset));
                }
                Ok(file)
            };
            match open() {
                Ok(file) => {
                    let _ = opened_tx.send(Ok(()));
                    let side = FileSide {
                        file,
                        at: offset,
                        unsent: offset,
                        early_writeback,
                        error: None,
                    };
                    side.run(queue, budgets, thread_closed);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            }
        });
        opened.await.map_err(|_| thread_gone())??;
        Ok(Box::new(FsBlobWriter {
            ops,
            pending,
            shared: self.queue.clone(),
            closed,
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
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Appends through a writer thread, so that receiving and hashing the
/// next bytes overlap with copying the last ones into the file: two cores
/// work on one upload, as they do for a plain file copy. The request's task
/// hands over the body's own buffers (no copy) and waits only when more
/// than a bounded amount is still unwritten; commits and discards go down
/// the same queue, so they see every byte queued before them.
///
/// Every writer ends with a commit or a discard, which waits for the
/// thread; once dropped, the thread writes nothing more. So no stale write
/// can land after the upload's lock is released.
struct FsBlobWriter {
    ops: std::sync::mpsc::Sender<Op>,
    /// Bytes queued for this writer and not yet written.
    pending: Arc<Semaphore>,
    /// The store's bound on queued bytes over all writers.
    shared: Arc<Semaphore>,
    /// Set when the writer is dropped: the thread skips what is queued.
    closed: Arc<AtomicBool>,
    /// Bytes the last commit covered.
    committed: u64,
}

/// An answer from the writer thread: the file's length after the operation.
type Reply = oneshot::Sender<io::Result<u64>>;

/// Work for a writer thread, done in order.
enum Op {
    /// Bytes to append, with the permits they hold in both budgets.
    Write(Bytes, u32),
    /// Make everything before durable (when asked) and answer the length.
    Commit(bool, Reply),
    /// Drop everything after this length and answer it.
    Truncate(u64, Reply),
}

/// Most bytes one writer may have queued: enough to keep its thread busy
/// while the next bytes arrive.
const WRITER_QUEUE: u32 = 4 << 20;

/// Most bytes all writers of a store may have queued, so that memory stays
/// bounded however many uploads run at once.
const STORE_QUEUE: usize = 16 << 20;

/// Writeback is started every this many bytes (when commits will sync).
const WRITEBACK_EVERY: u64 = 256 * 1024;

/// The writer thread's side: the file, where it is, and the first error
/// since the last commit or truncate.
struct FileSide {
    file: std::fs::File,
    at: u64,
    /// Where the bytes not yet handed to writeback start.
    unsent: u64,
    early_writeback: bool,
    error: Option<io::Error>,
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
        Ok(self.at)
    }

    fn truncate(&mut self, len: u64) -> io::Result<u64> {
        self.error = None;
        self.file.set_len(len)?;
        self.at = len;
        self.unsent = len;
        Ok(len)
    }

    /// Serves the queue until the writer is dropped.
    fn run(mut self, ops: Receiver<Op>, budgets: [Arc<Semaphore>; 2], closed: Arc<AtomicBool>) {
        // However the thread ends, a writer waiting for room in its queue
        // hears of it instead of waiting forever.
        struct CloseOnExit(Arc<Semaphore>);
        impl Drop for CloseOnExit {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = CloseOnExit(budgets[0].clone());
        while let Ok(op) = ops.recv() {
            match op {
                Op::Write(data, permits) => {
                    if !closed.load(Ordering::Acquire) {
                        self.write(&data);
                    }
                    drop(data);
                    for budget in &budgets {
                        budget.add_permits(permits as usize);
                    }
                }
                Op::Commit(durable, reply) => {
                    let _ = reply.send(self.commit(durable));
                }
                Op::Truncate(len, reply) => {
                    let _ = reply.send(self.truncate(len));
                }
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
    /// Queues an operation that answers, and waits for the answer.
    async fn ask(&mut self, op: impl FnOnce(Reply) -> Op) -> io::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(op(tx)).map_err(|_| thread_gone())?;
        rx.await.map_err(|_| thread_gone())?
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
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
        for budget in [&self.pending, &self.shared] {
            budget
                .acquire_many(permits)
                .await
                .map_err(|_| thread_gone())?
                .forget();
        }
        self.ops
            .send(Op::Write(data, permits))
            .map_err(|_| thread_gone())
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
