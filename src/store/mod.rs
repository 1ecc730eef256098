//! The adapters behind the core's seams, by role (server only): bytes on
//! local disk or S3 (`blob`), records and events in SQLite or PostgreSQL
//! (`sql`), locks in memory or PostgreSQL (`lock`), and what several
//! instances tell each other (`cluster`).
//!
//! A store only stores: it reports exactly what it made durable and never
//! decides whether an offset, length or checksum is right. It must not know
//! HTTP, configuration flags, or `UploadService`.

pub mod blob;
pub mod cluster;
pub mod lock;
pub mod sql;
pub mod tls;

pub use blob::{FsBlobStore, S3BlobStore, S3Location};
pub use lock::{LocalLocker, PgLocker};
pub use sql::{Backend, SqlStore};
