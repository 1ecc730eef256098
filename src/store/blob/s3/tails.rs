//! Where an unfinished S3 blob's tail is kept: the bytes after its last
//! part, which S3 cannot take as a part yet (parts but the last must hold
//! at least 5 MiB).
//!
//! Each commit stores only the bytes that arrived since the one before, as
//! one new piece, in a `TailStore` (the database the records are in, so
//! every instance reads what any instance wrote). The record's state lists
//! the pieces the tail is made of; when the tail fills a part, the part
//! goes to S3 and the pieces it used are deleted once the new state is
//! recorded. So every byte is written to the bucket once, whatever the
//! size of the requests, instead of the tail being stored again by every
//! request until its part is full.

use super::{ignore_missing, other, Rope, S3BlobStore, State};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use std::io;

/// Pieces of unfinished blobs' tails, by blob key and piece name (names are
/// random and never reused, so a piece never changes once stored).
#[async_trait]
pub trait TailStore: Send + Sync + 'static {
    /// Stores a piece, durably, before answering.
    async fn put_piece(&self, key: &str, name: &str, bytes: Vec<u8>) -> io::Result<()>;
    /// A piece's bytes, or `None` when there is no such piece.
    async fn piece(&self, key: &str, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Deletes these pieces of a blob (the ones missing are no error).
    async fn delete_pieces(&self, key: &str, names: &[String]) -> io::Result<()>;
    /// Deletes every piece of a blob (finished, or removed).
    async fn delete_blob_pieces(&self, key: &str) -> io::Result<()>;
    /// The keys of the blobs that have pieces, in order: at most `limit`
    /// of them, those after `after` (`""` for the first).
    async fn keys_with_pieces(&self, after: &str, limit: u32) -> io::Result<Vec<String>>;
}

impl S3BlobStore {
    /// The first `keep` bytes of a blob's tail, from this instance's cache
    /// or from where they are stored.
    pub(super) async fn read_tail(&self, key: &str, state: &State, keep: u64) -> io::Result<Rope> {
        let short = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the stored tail is shorter than recorded",
            )
        };
        let mut tail = Rope::default();
        let mut left = keep as usize;
        if let Some((name, _)) = &state.old_tail {
            if left > 0 {
                let got = self
                    .store
                    .get(&self.tail(key, name))
                    .await
                    .map_err(|e| other("reading the stored tail", e))?
                    .bytes()
                    .await
                    .map_err(|e| other("reading the stored tail", e))?;
                if got.len() < left {
                    return Err(short());
                }
                tail = Rope::from(got.slice(..left));
            }
            return Ok(tail);
        }
        for (name, from, to) in &state.pieces {
            if left == 0 {
                break;
            }
            let mut piece = match self.cache.get(name) {
                Some(cached) => cached,
                None => match self.pieces.piece(key, name).await? {
                    Some(bytes) => Rope::from(Bytes::from(bytes)),
                    None => return Err(short()),
                },
            };
            if (piece.len() as u64) < *to {
                return Err(short());
            }
            let n = ((to - from) as usize).min(left);
            piece.skip(*from as usize);
            tail.append(piece.take(n));
            left -= n;
        }
        if left > 0 {
            return Err(short());
        }
        Ok(tail)
    }

    /// The folder of a blob's tail objects.
    pub(super) fn tails(&self, key: &str) -> ObjectPath {
        self.object(&format!("{key}.tail"))
    }

    pub(super) fn tail(&self, key: &str, name: &str) -> ObjectPath {
        self.object(&format!("{key}.tail/{name}"))
    }

    /// Deletes every tail object a blob has in the bucket (Ferry 0.1 stored
    /// tails there whole; see `State::old_tail`).
    pub(super) async fn delete_old_tails(&self, key: &str) -> io::Result<()> {
        let found: Vec<_> = self
            .store
            .list(Some(&self.tails(key)))
            .try_collect()
            .await
            .map_err(|e| other("listing tail objects", e))?;
        for meta in found {
            ignore_missing(
                self.store.delete(&meta.location).await,
                "deleting a tail object",
            )?;
        }
        Ok(())
    }
}
