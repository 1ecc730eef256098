//! The bytes seam: `BlobStore` keeps each upload's bytes under a key and
//! knows nothing of offsets, protocols or records. It writes, reports how
//! much it made durable, reads ranges back and deletes. Its implementations live in
//! `store::blob`: `FsBlobStore` on local disk, `S3BlobStore` in
//! S3-compatible object storage.
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
use std::pin::Pin;

/// A stream of bytes read back from a blob.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A store's keys, listed a batch of at most `KEY_BATCH` at a time, so
/// that listing a million blobs holds no more than a batch.
pub type KeyBatches = Pin<Box<dyn Stream<Item = io::Result<Vec<String>>> + Send>>;

/// The most keys in one batch of `BlobStore::keys`.
pub const KEY_BATCH: usize = 500;

/// Where a blob's bytes can be found by the operator's own programs
/// (hooks get it, to inspect or move finished files).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BlobLocation {
    /// A file on the server's disk.
    File { path: String },
    /// An object in an S3 bucket (the object exists once the upload is
    /// finished).
    S3 { bucket: String, key: String },
}

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
    /// stored, to find blobs no record names, read as the stream is. A key
    /// may come twice. Stores that cannot list answer `Unsupported`.
    fn keys(&self) -> KeyBatches {
        Box::pin(futures_util::stream::once(async {
            Err(io::ErrorKind::Unsupported.into())
        }))
    }
    /// Where the blob under `key` is, for the operator's programs.
    fn location(&self, _key: &str) -> Option<BlobLocation> {
        None
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

/// Whether a commit forces its bytes to stable storage before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced: they survive a power cut.
    Synced,
    /// Left to the operating system's cache (to be synced later with
    /// `BlobWriter::sync`, or never under `--fsync never`).
    Cached,
}

/// What a commit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Everything written so far is stored; more may follow.
    Checkpoint(Durability),
    /// Everything written so far is the whole blob: no byte follows.
    Finish(Durability),
}

impl Commit {
    /// Whether the blob is finished by this commit.
    pub fn is_finish(self) -> bool {
        matches!(self, Commit::Finish(_))
    }

    /// Whether the bytes are synced before the commit returns.
    pub fn is_synced(self) -> bool {
        matches!(
            self,
            Commit::Checkpoint(Durability::Synced) | Commit::Finish(Durability::Synced)
        )
    }
}

/// Appends to one blob. Bytes are queued or buffered by `write`, and count
/// only once `commit` has returned.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: Bytes) -> io::Result<()>;
    /// Stores everything written so far, as `how` says (synced or cached; a
    /// checkpoint or the finished blob). Returns the blob's committed length.
    async fn commit(&mut self, how: Commit) -> io::Result<u64>;
    /// Forces what the last commit stored to stable storage, for a commit
    /// that left it `Durability::Cached`. Stores whose commits are durable anyway
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
