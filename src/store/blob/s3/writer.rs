//! `S3BlobWriter`: appends to one S3 blob, sending every full part as it
//! fills and storing, at each commit, the bytes that arrived since the last
//! as one more piece of the tail.

use super::*;
use crate::core::blob::{BlobWriter, Commit};
use crate::core::observe::StorageOp;
use async_trait::async_trait;
use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use std::io;

/// Appends to one S3 blob.
pub(super) struct S3BlobWriter {
    pub(super) store: S3BlobStore,
    pub(super) key: String,
    /// The state as of the last commit (what the record will hold).
    pub(super) recorded: State,
    /// The state with the parts sent since.
    pub(super) working: State,
    /// Bytes after the last part: the committed tail and what followed.
    pub(super) buf: Rope,
    /// How many of `buf`'s first bytes `working.pieces` holds.
    pub(super) stored: usize,
    pub(super) committed: u64,
    /// Pieces to delete once the state that replaced them is recorded.
    pub(super) garbage: Vec<String>,
    /// Tail objects of Ferry 0.1 to delete likewise.
    pub(super) old_garbage: Vec<String>,
    /// Whether this writer started the multipart upload.
    pub(super) created_upload: bool,
    pub(super) finished: bool,
    pub(super) broken: bool,
    /// This writer's room in the store's memory, reserved as bytes arrive.
    pub(super) reserved: Reserved,
    /// Whether the blob was opened from an earlier version's state, with a
    /// tail object in the bucket.
    pub(super) legacy: bool,
}

/// The most pieces a tail is made of.
const MAX_PIECES: usize = 64;

impl S3BlobWriter {
    pub(super) fn path(&self) -> ObjectPath {
        self.store.object(&self.key)
    }

    pub(super) async fn upload_id(&mut self) -> io::Result<String> {
        if let Some(id) = &self.working.upload {
            return Ok(id.clone());
        }
        let id = self
            .store
            .store
            .create_multipart(&self.path())
            .await
            .map_err(|e| other("starting a multipart upload", e))?;
        self.working.upload = Some(id.clone());
        self.created_upload = true;
        Ok(id)
    }

    pub(super) async fn send_part(&mut self, mut part: Rope) -> io::Result<()> {
        let upload = self.upload_id().await?;
        let index = self.working.parts.len();
        if index >= MAX_PARTS {
            return Err(io::Error::other("the upload needs more than 10,000 parts"));
        }
        let size = part.len() as u64;
        let started = std::time::Instant::now();
        let PartId { content_id } = self
            .store
            .store
            .put_part(&self.path(), &upload, index, part.payload())
            .await
            .map_err(|e| other("sending a part", e))?;
        self.store
            .observer
            .storage(StorageOp::S3Part, started.elapsed());
        self.working.parts.push((content_id, size));
        Ok(())
    }

    pub(super) fn check(&self) -> io::Result<()> {
        if self.broken || self.finished {
            Err(io::Error::other("the writer is closed"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl BlobWriter for S3BlobWriter {
    async fn write(&mut self, data: Bytes) -> io::Result<()> {
        self.check()?;
        if !data.is_empty() {
            let size = self.store.part_size(self.working.parts.len());
            if let Err(e) = self
                .store
                .memory
                .reserve(&mut self.reserved, size as u64)
                .await
            {
                self.broken = true;
                return Err(e);
            }
        }
        self.buf.push(data);
        loop {
            let size = self.store.part_size(self.working.parts.len());
            if self.buf.len() < size {
                return Ok(());
            }
            let part = self.buf.take(size);
            if let Err(e) = self.send_part(part).await {
                self.broken = true;
                return Err(e);
            }
            // The part took the tail's first bytes: its pieces hold less.
            self.working.consume_pieces(size as u64);
            self.stored = self.stored.saturating_sub(size);
        }
    }

    async fn commit(&mut self, how: Commit) -> io::Result<u64> {
        // A successful S3 PUT is durable: `Durability::Synced` asks nothing
        // more.
        let last = how.is_finish();
        self.check()?;
        let length = self.working.parts_len() + self.buf.len() as u64;
        let result = async {
            if last {
                let mut rest = std::mem::take(&mut self.buf);
                match self.working.upload.clone() {
                    None => {
                        self.store
                            .store
                            .put(&self.path(), rest.payload())
                            .await
                            .map_err(|e| other("storing an object", e))?;
                    }
                    Some(upload) => {
                        if !rest.is_empty() || self.working.parts.is_empty() {
                            self.send_part(rest).await?;
                        }
                        let parts = self
                            .working
                            .parts
                            .iter()
                            .map(|(etag, _)| PartId {
                                content_id: etag.clone(),
                            })
                            .collect();
                        self.store
                            .store
                            .complete_multipart(&self.path(), &upload, parts)
                            .await
                            .map_err(|e| other("completing a multipart upload", e))?;
                    }
                }
                self.working.pieces.clear();
                self.working.old_tail = None;
                self.finished = true;
                return Ok(());
            }
            if self.buf.len() > self.stored {
                // Only what arrived since the last commit is stored; but a
                // tail of many pieces (a trickling client commits every
                // second) is stored again whole, as one piece, so that no
                // tail has more than MAX_PIECES.
                if self.working.pieces.len() + 1 >= MAX_PIECES {
                    self.working.pieces.clear();
                    self.stored = 0;
                }
                let mut fresh = self.buf.clone();
                fresh.skip(self.stored);
                let name = format!("{:032x}", rand::random::<u128>());
                self.store
                    .pieces
                    .put_piece(&self.key, &name, fresh.clone().into_vec())
                    .await?;
                let size = fresh.len() as u64;
                self.store.cache.put(&name, fresh);
                self.working.pieces.push((name, 0, size));
                self.stored = self.buf.len();
            }
            // An old whole tail object is now in parts and pieces.
            self.working.old_tail = None;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.broken = true;
            return Err(e);
        }
        let dropped = self.recorded.pieces_dropped_by(&self.working);
        self.garbage.extend(dropped);
        if let Some((old, _)) = self.recorded.old_tail.take() {
            self.old_garbage.push(old);
        }
        self.recorded = self.working.clone();
        self.committed = length;
        Ok(length)
    }

    async fn discard(&mut self) -> io::Result<()> {
        self.buf = Rope::default();
        self.broken = true;
        // Parts sent since the last commit are sent again by the next
        // writer, under the same numbers; a multipart upload nobody
        // recorded is given up.
        if self.created_upload && self.recorded.upload.is_none() {
            if let Some(upload) = self.working.upload.take() {
                ignore_missing(
                    self.store
                        .store
                        .abort_multipart(&self.path(), &upload)
                        .await,
                    "aborting a multipart upload",
                )?;
            }
        }
        Ok(())
    }

    fn committed(&self) -> u64 {
        self.committed
    }

    fn state(&self) -> Option<String> {
        if self.finished || self.recorded == State::default() {
            return None;
        }
        serde_json::to_string(&self.recorded).ok()
    }

    async fn settle(&mut self) -> io::Result<()> {
        // Each clean-up is tried even when one before it failed; the first
        // failure is reported.
        let garbage = std::mem::take(&mut self.garbage);
        for name in &garbage {
            self.store.cache.forget(name);
        }
        let mut first_error = None;
        let mut note = |r: io::Result<()>| {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        };
        for name in std::mem::take(&mut self.old_garbage) {
            note(ignore_missing(
                self.store
                    .store
                    .delete(&self.store.tail(&self.key, &name))
                    .await,
                "deleting a tail object",
            ));
        }
        if self.finished {
            if self.legacy {
                // Tail objects of requests an earlier version never
                // recorded.
                note(self.store.delete_old_tails(&self.key).await);
            }
            // Every piece, with any that a failed request left unrecorded.
            note(self.store.pieces.delete_blob_pieces(&self.key).await);
        } else if !garbage.is_empty() {
            note(self.store.pieces.delete_pieces(&self.key, &garbage).await);
        }
        first_error.map_or(Ok(()), Err)
    }
}
