//! The domain core of uploads (server only): `UploadService` and the seams
//! it stands on, `BlobStore` for bytes, `MetaStore` for records, `Locker`
//! for exclusive writers and `EventStore` for the event log.
//!
//! The core validates (offsets, lengths, checksums, locks, ownership,
//! quotas, expiry) and decides what is durable; the stores only store.
//! It must not know HTTP (no header names, no status codes, no URLs but
//! the protocol's), configuration flags, or which store implements a seam:
//! `store` implements them and `server::bootstrap` wires them together.

pub mod blob;
pub mod error;
pub mod events;
pub mod hash;
pub mod hooks;
pub mod id;
pub mod lock;
pub mod meta;
pub mod names;
pub mod observe;
pub mod record;
pub mod service;

pub use blob::{BlobLocation, BlobStore, BlobWriter, ByteStream, Commit, Durability, Space};
pub use error::{Error, ErrorCode, Result};
pub use events::{EventStore, Events};
pub use hash::{ChecksumAlgorithm, ChunkChecksum, ResumableSha256};
pub use hooks::{Caller, Hooks};
pub use id::UploadId;
pub use lock::{Locker, UploadLock};
pub use meta::{ListCursor, MetaStore, Usage};
pub use names::sanitize_filename;
pub use record::{Concat, Owner, UploadRecord, UploadState};
pub use service::{
    AppendRequest, BodyStream, CommitHook, CreateRequest, FsyncPolicy, ServiceConfig,
    UploadService, SAMPLED_PER_SIZE,
};
