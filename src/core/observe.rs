//! The observing seam: what the core tells whoever watches it (metrics)
//! about uploads and storage, as plain facts. It must not know how they are
//! counted or exported; `server::metrics` implements it for Prometheus.

use crate::core::error::ErrorCode;
use crate::protocol::events::EventKind;
use crate::protocol::hooks::HookPoint;
use std::time::Duration;

/// A storage operation whose time is worth watching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageOp {
    /// Storing (and, when asked, syncing) an append's bytes in the blob store.
    StoreBytes,
    /// Writing an upload's record (offset, hash state, blob state).
    RecordUpdate,
    /// Sending one part of a multipart upload to S3.
    S3Part,
}

impl StorageOp {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageOp::StoreBytes => "store_bytes",
            StorageOp::RecordUpdate => "record_update",
            StorageOp::S3Part => "s3_part",
        }
    }
}

/// What watches the core. Every method has a default that does nothing.
pub trait Observer: Send + Sync + 'static {
    /// Something happened to an upload (created, completed, deleted,
    /// expired; progress is not reported here).
    fn upload(&self, _kind: EventKind) {}
    /// An append started (`+1`) or ended (`-1`).
    fn writing(&self, _delta: i64) {}
    /// Bytes an append made durable.
    fn received(&self, _bytes: u64) {}
    /// A storage operation took this long.
    fn storage(&self, _op: StorageOp, _took: Duration) {}
    /// A request was refused for lack of room (quota, unfinished uploads,
    /// free space).
    fn refused(&self, _code: ErrorCode) {}
    /// A hook was called (a pre-hook asked, or a post-hook delivered);
    /// `answered` is false when it could not be.
    fn hook(&self, _point: HookPoint, _answered: bool, _took: Duration) {}
    /// Post-hook deliveries waiting, and dead.
    fn deliveries(&self, _waiting: u64, _dead: u64) {}
}

/// Watches nothing.
pub struct Unobserved;

impl Observer for Unobserved {}
