//! The domain core of uploads (server only): `UploadService` and the seams
//! it stands on, `BlobStore` for bytes, `MetaStore` for records and
//! `Locker` for exclusive writers. Nothing here knows HTTP.

pub mod blob;
pub mod events;
pub mod hash;
pub mod id;
pub mod lock;
pub mod meta;
pub mod metadata;
pub mod record;
pub mod service;

pub use blob::{BlobStore, BlobWriter, ByteStream, FsBlobStore};
pub use events::{EventKind, EventStore, Events};
pub use hash::{ChecksumAlgorithm, ChunkChecksum, ResumableSha256};
pub use id::UploadId;
pub use lock::{LocalLocker, Locker, UploadLock};
pub use meta::{MetaStore, SqliteMetaStore};
pub use metadata::{sanitize_filename, Metadata};
pub use record::{Concat, Owner, UploadRecord, UploadState};
pub use service::{
    AppendRequest, BodyStream, CommitHook, CreateRequest, FsyncPolicy, ServiceConfig, UploadService,
};
