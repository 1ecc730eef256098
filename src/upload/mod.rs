//! The domain core of uploads (server only): `UploadService` and the seams
//! it stands on, `BlobStore` for bytes, `MetaStore` for records and
//! `Locker` for exclusive writers, each with an embedded implementation
//! (local disk, SQLite, in-process locks) and a distributed one (S3,
//! PostgreSQL, advisory locks). Nothing here knows HTTP.

pub mod blob;
pub mod events;
pub mod hash;
pub mod id;
pub mod lock;
pub mod meta;
pub mod metadata;
pub mod pg;
pub mod record;
pub mod s3;
pub mod service;

pub use blob::{BlobStore, BlobWriter, ByteStream, FsBlobStore, Space};
pub use events::{EventKind, EventStore, Events};
pub use hash::{ChecksumAlgorithm, ChunkChecksum, ResumableSha256};
pub use id::UploadId;
pub use lock::{LocalLocker, Locker, UploadLock};
pub use meta::{Backend, ListCursor, MetaStore, SqlStore, Usage};
pub use metadata::{sanitize_filename, Metadata};
pub use record::{Concat, Owner, UploadRecord, UploadState};
pub use service::{
    AppendRequest, BodyStream, CommitHook, CreateRequest, FsyncPolicy, ServiceConfig, UploadService,
};
