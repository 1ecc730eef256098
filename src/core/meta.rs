//! The records seam: `MetaStore` keeps upload records and answers the few
//! questions the service asks of them. It knows nothing of HTTP or bytes;
//! `store::sql` implements it for SQLite and PostgreSQL.

use crate::core::error::Result;
use crate::core::hooks::Delivery;
use crate::core::id::UploadId;
use crate::core::record::{Millis, Owner, UploadRecord};
use async_trait::async_trait;

/// What deleting a record leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The deleted record's blob.
    pub blob_key: String,
    /// Whether another record still uses that blob (an instant upload).
    pub blob_in_use: bool,
}

/// What an owner holds, for quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of the owner's own blobs (shared ones count for the upload
    /// that stored them): declared lengths of unfinished uploads, received
    /// bytes of those without a length yet, sizes of finished ones.
    pub bytes: u64,
    /// Unfinished uploads.
    pub unfinished: u64,
}

/// Where a listing goes on from: the last record of the page before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: Millis,
    pub id: UploadId,
}

/// Where upload records live.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Every change that reports to hooks takes `news`: the post-hook
    /// deliveries that tell of it, stored in the same transaction (an
    /// outbox, see `core::hooks`), so no change is made without them.
    ///
    /// Stores a new record and takes a reference on its blob, in one
    /// transaction: a record of its own blob (`blob_key` is its ID) starts
    /// the blob's count; one that shares another's blob (an instant upload)
    /// adds to it, but only while the blob is still in use. Answers false,
    /// storing nothing, when the blob it would share is gone.
    async fn insert(&self, rec: &UploadRecord, news: &[Delivery]) -> Result<bool>;
    /// The record with this ID, if any.
    async fn get(&self, id: &UploadId) -> Result<Option<UploadRecord>>;
    /// Stores the mutable fields of an existing record (offset, length,
    /// state, hashes, times).
    async fn update(&self, rec: &UploadRecord) -> Result<()> {
        self.update_with(rec, &[]).await
    }
    /// `update`, with the deliveries that tell of it.
    async fn update_with(&self, rec: &UploadRecord, news: &[Delivery]) -> Result<()>;
    /// A writer's commit: `update_with`, only while the stored record is
    /// still active at `from`, the offset this writer opened it at.
    /// Otherwise another writer moved it on (possible only once a writer's
    /// lock was lost, as when an instance's lock session ends while it
    /// writes): nothing is stored, and the answer is `offset_mismatch`, so
    /// a stale writer can never take back an offset that was acknowledged.
    async fn advance_with(&self, rec: &UploadRecord, from: u64, news: &[Delivery]) -> Result<()>;
    /// Removes a record and gives back its blob reference, atomically
    /// telling whether the blob is still used.
    async fn delete(&self, id: &UploadId, news: &[Delivery]) -> Result<Option<Deleted>>;
    /// Marks a record that can expire (an active one, or a finished part)
    /// expired, its bytes about to go, and gives back its blob reference;
    /// `None` when it is expired or gone already.
    async fn expire(
        &self,
        id: &UploadId,
        now: Millis,
        news: &[Delivery],
    ) -> Result<Option<Deleted>>;
    /// Which of these blob keys some record still references.
    async fn known_blobs(&self, keys: &[String]) -> Result<std::collections::HashSet<String>>;
    /// What an owner holds.
    async fn usage(&self, owner: &Owner) -> Result<Usage>;
    /// A complete upload of this owner with this SHA-256 and length.
    async fn find_complete(
        &self,
        owner: &Owner,
        sha256: &str,
        length: u64,
    ) -> Result<Option<UploadRecord>>;
    /// The upload (active or complete) of this owner created by a request
    /// with this `Idempotency-Key`.
    async fn find_by_idempotency_key(
        &self,
        owner: &Owner,
        key: &str,
    ) -> Result<Option<UploadRecord>>;
    /// This owner's uploads (active and complete), newest first, after
    /// `after` when given.
    async fn list_by_owner(
        &self,
        owner: &Owner,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<UploadRecord>>;
    /// This owner's uploads (active and complete) of one of these lengths,
    /// newest first.
    async fn find_by_lengths(
        &self,
        owner: &Owner,
        lengths: &[u64],
        limit: u32,
    ) -> Result<Vec<UploadRecord>>;
    /// Records whose expiry time has passed and that are not expired yet.
    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<UploadRecord>>;
    /// Active uploads in order of ID, at most `limit` after `after` (to
    /// reconcile records with bytes on start, a page at a time).
    async fn active(&self, after: Option<&UploadId>, limit: u32) -> Result<Vec<UploadRecord>>;
    /// Forgets expired records older than `before`; answers how many.
    async fn prune_expired(&self, before: Millis) -> Result<u64>;
}
