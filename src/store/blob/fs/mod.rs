//! `FsBlobStore`: blobs as files on local disk, the embedded default.
//!
//! Writes go through a bounded queue per writer that pooled blocking threads
//! drain only while there is work, so a stalled request holds no thread.
//! After a crash of the process (not the machine), bytes written past the
//! last checkpoint are still in the file; `recoverable_len` offers them when
//! the boot is the same and no checksum request was in flight.

use super::{check_key, shorter_than_offset};
use crate::core::blob::{
    BlobLocation, BlobStore, BlobWriter, ByteStream, KeyBatches, Space, KEY_BATCH,
};
use crate::core::UploadId;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use writer::{FileSide, FsBlobWriter, Queue, Shared, STORE_QUEUE, WRITER_QUEUE, WRITER_THREADS};

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

/// Where a listing of the store's keys has got to: the folder of folders,
/// and the folder of files being read.
struct KeyWalk {
    root: Arc<PathBuf>,
    folders: Option<std::fs::ReadDir>,
    files: Option<std::fs::ReadDir>,
}

impl KeyWalk {
    /// The next keys, at most `KEY_BATCH` of them, and the walk to go on
    /// with; `None` at the end.
    fn next_batch(mut self) -> io::Result<Option<(Vec<String>, Self)>> {
        let mut folders = match self.folders.take() {
            Some(folders) => folders,
            None => std::fs::read_dir(&*self.root)?,
        };
        let mut batch = Vec::new();
        while batch.len() < KEY_BATCH {
            if let Some(files) = &mut self.files {
                match files.next() {
                    Some(file) => {
                        // Only names Ferry makes.
                        let name = file?.file_name();
                        if let Some(key) = name.to_str().filter(|n| UploadId::parse(n).is_some()) {
                            batch.push(key.to_string());
                        }
                        continue;
                    }
                    None => self.files = None,
                }
            }
            let Some(folder) = folders.next() else { break };
            let folder = folder?;
            if !folder.file_type()?.is_dir() {
                continue;
            }
            match std::fs::read_dir(folder.path()) {
                Ok(files) => self.files = Some(files),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.folders = Some(folders);
        Ok((!batch.is_empty()).then_some((batch, self)))
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
            // Bytes past `offset` go now, and any hold on them after them
            // (not before: a crash between the two must not leave them
            // without their hold).
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            let len = file.metadata()?.len();
            if len > offset {
                file.set_len(offset)?;
            } else if len < offset {
                return Err(shorter_than_offset(len, offset));
            }
            let _ = std::fs::remove_file(&stale);
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
            synced: offset,
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

    fn keys(&self) -> KeyBatches {
        let walk = KeyWalk {
            root: self.root.clone(),
            folders: None,
            files: None,
        };
        // Each batch is read by a blocking call of its own, which hands the
        // walk on to the next.
        Box::pin(futures_util::stream::try_unfold(walk, |walk| {
            blocking(move || walk.next_batch())
        }))
    }

    fn location(&self, key: &str) -> Option<BlobLocation> {
        let path = std::path::absolute(self.path(key).ok()?).ok()?;
        Some(BlobLocation::File {
            path: path.to_string_lossy().into_owned(),
        })
    }

    async fn space(&self) -> Option<Space> {
        let root = self.root.clone();
        blocking(move || disk_space(&root)).await.ok()
    }

    async fn recoverable_len(&self, key: &str) -> io::Result<Option<u64>> {
        let path = self.path(key)?;
        let same_boot = self.same_boot;
        blocking(move || {
            if held_back_marker(&path).exists() {
                // Bytes not verified yet: the next writer drops them, and
                // the hold with them. It stays until then, however many
                // times the upload is checked.
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

mod writer;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::blob::{Commit, Durability};
    use bytes::Bytes;
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
        assert_eq!(
            w.commit(Commit::Checkpoint(Durability::Synced))
                .await
                .unwrap(),
            6
        );
        w.write(vec![b'x'; (5 << 20) + 10].into()).await.unwrap();
        w.discard().await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(
            w.commit(Commit::Checkpoint(Durability::Cached))
                .await
                .unwrap(),
            11
        );
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
    async fn written_bytes_reach_the_file_before_their_commit() {
        // What a crash of the process would find there: bytes are written
        // as they are queued, not held for the commit.
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path(), false).unwrap();
        let key = "AbCdEfGhIjKlMnOpQrStUw";
        store.create(key).await.unwrap();
        let mut w = store.append_at(key, 0, None).await.unwrap();
        for piece in [&b"hello "[..], b"world"] {
            w.write(Bytes::from_static(piece)).await.unwrap();
        }
        let path = store.path(key).unwrap();
        let started = std::time::Instant::now();
        while std::fs::metadata(&path).unwrap().len() < 11 {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(w.committed(), 0);
    }

    /// The keys come in batches of at most `KEY_BATCH`, every key once,
    /// and nothing but the names Ferry makes.
    #[tokio::test]
    async fn keys_are_listed_a_batch_at_a_time() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path(), false).unwrap();
        let mut made: Vec<String> = (0..KEY_BATCH * 2 + 34)
            .map(|_| UploadId::random().to_string())
            .collect();
        for key in &made {
            store.create(key).await.unwrap();
        }
        let marker = held_back_marker(&store.path(&made[0]).unwrap());
        std::fs::write(marker, b"").unwrap();
        std::fs::write(dir.path().join("blobs/stray-file"), b"").unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/xx/not-a-key")).unwrap();
        let mut listed = Vec::new();
        let mut sizes = Vec::new();
        let mut batches = store.keys();
        while let Some(batch) = batches.next().await {
            let batch = batch.unwrap();
            sizes.push(batch.len());
            listed.extend(batch);
        }
        assert!(sizes.iter().all(|&n| n <= KEY_BATCH), "{sizes:?}");
        assert!(sizes.len() >= 3, "{sizes:?}");
        listed.sort();
        made.sort();
        assert_eq!(listed, made);
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
