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
use std::sync::Arc;

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

/// Appends to one blob. Bytes are buffered by `write`, and count only once
/// `commit` has returned.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Stores everything written so far and, when `durable`, forces it to
    /// stable storage. `last` says no byte will follow: the blob is
    /// finished. Returns the blob's committed length.
    async fn commit(&mut self, durable: bool, last: bool) -> io::Result<u64>;
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
}

/// How much a writer gathers before handing it to the file: large enough
/// that system calls are few, small enough that 64 uploads at once hold
/// 16 MiB of buffers.
const WRITE_BUFFER: usize = 256 * 1024;

impl FsBlobStore {
    /// A store under `data_dir/blobs`; `durable` syncs directory entries
    /// of new blobs so they survive a power loss.
    pub fn new(data_dir: &Path, durable: bool) -> io::Result<Self> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(&root)?;
        Ok(FsBlobStore {
            root: Arc::new(root),
            durable,
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
        let file = blocking(move || {
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            let len = file.metadata()?.len();
            if len > offset {
                file.set_len(offset)?;
            } else if len < offset {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("blob holds {len} bytes, fewer than the offset {offset}"),
                ));
            }
            Ok(file)
        })
        .await?;
        Ok(Box::new(FsBlobWriter {
            file: Some(file),
            buf: Vec::with_capacity(WRITE_BUFFER),
            flushed: offset,
            committed: offset,
            early_writeback: self.durable,
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

/// Appends through a bounded buffer with positioned writes, so a failed or
/// discarded write never moves a file cursor out of step.
struct FsBlobWriter {
    /// Taken while a blocking write runs.
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    /// Bytes in the file (written out, maybe not synced).
    flushed: u64,
    /// Bytes the last commit covered.
    committed: u64,
    /// Start writing flushed bytes to disk at once (when commits will sync),
    /// so a commit's sync finds little left to do.
    early_writeback: bool,
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk,
/// without waiting for it. A later `fdatasync` then waits only for what is
/// still in flight, instead of the request's whole body at once: receiving
/// and writing to disk overlap, as they do for a plain file copy.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: usize) {
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
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: usize) {}

impl FsBlobWriter {
    async fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("writer is broken"))?;
        let buf = std::mem::take(&mut self.buf);
        let at = self.flushed;
        let early_writeback = self.early_writeback;
        let (file, mut buf, result) = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let result = file.write_all_at(&buf, at);
            if result.is_ok() && early_writeback {
                start_writeback(&file, at, buf.len());
            }
            (file, buf, result)
        })
        .await
        .map_err(|e| io::Error::other(format!("blocking task failed: {e}")))?;
        self.file = Some(file);
        if result.is_ok() {
            self.flushed += buf.len() as u64;
        }
        buf.clear();
        self.buf = buf;
        result
    }
}

#[async_trait]
impl BlobWriter for FsBlobWriter {
    async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = WRITE_BUFFER - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == WRITE_BUFFER {
                self.flush_buf().await?;
            }
        }
        Ok(())
    }

    async fn commit(&mut self, durable: bool, _last: bool) -> io::Result<u64> {
        self.flush_buf().await?;
        if durable {
            let file = self
                .file
                .take()
                .ok_or_else(|| io::Error::other("writer is broken"))?;
            let (file, result) = tokio::task::spawn_blocking(move || {
                let r = file.sync_data();
                (file, r)
            })
            .await
            .map_err(|e| io::Error::other(format!("blocking task failed: {e}")))?;
            self.file = Some(file);
            result?;
        }
        self.committed = self.flushed;
        Ok(self.committed)
    }

    async fn discard(&mut self) -> io::Result<()> {
        self.buf.clear();
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("writer is broken"))?;
        let len = self.committed;
        let (file, result) = tokio::task::spawn_blocking(move || {
            let r = file.set_len(len);
            (file, r)
        })
        .await
        .map_err(|e| io::Error::other(format!("blocking task failed: {e}")))?;
        self.file = Some(file);
        result?;
        self.flushed = len;
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
        w.write(b"hello ").await.unwrap();
        assert_eq!(w.commit(true, false).await.unwrap(), 6);
        w.write(&vec![b'x'; WRITE_BUFFER + 10]).await.unwrap();
        w.discard().await.unwrap();
        w.write(b"world").await.unwrap();
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
