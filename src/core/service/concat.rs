//! Concatenation (tus `Upload-Concat: final;...`): the final upload is
//! recorded first, then assembled from its finished parts in a task of its
//! own, so an interrupted assembly is found and removed on start.

use super::create::CreateRequest;
use super::{storage, UploadService};
use crate::core::blob::{Commit, Durability};
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::hash::ResumableSha256;
use crate::core::hooks::{Caller, HookPoint};
use crate::core::id::UploadId;
use crate::core::lock::UploadLock;
use crate::core::record::{now_millis, Concat, UploadRecord};
use futures_util::StreamExt;
use std::io;

impl UploadService {
    /// A final upload: its record is written first (unfinished, so HEAD
    /// shows no offset yet), then the parts are copied into its blob by a
    /// task of its own, which finishes (or cleans up) even when the client
    /// goes away. A crash meanwhile leaves an unfinished final record, which
    /// the start-up check removes with its bytes.
    pub(super) async fn create_final(
        &self,
        req: &CreateRequest,
        part_ids: &[UploadId],
        id: UploadId,
    ) -> Result<UploadRecord> {
        let bad = |msg: String| Error::new(ErrorCode::InvalidConcatPart, msg);
        if part_ids.is_empty() {
            return Err(bad("A final upload needs at least one part.".into()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = part_ids.iter().find(|p| !seen.insert(*p)) {
            return Err(bad(format!("Part {twice} is named more than once.")));
        }
        let mut parts = Vec::with_capacity(part_ids.len());
        let mut total: u64 = 0;
        for pid in part_ids {
            let part = match self.get(pid).await {
                Ok(p) => p,
                Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::UploadExpired) => {
                    return Err(bad(format!("Part {pid} does not exist.")))
                }
                Err(e) => return Err(e),
            };
            // A part uploaded without a session or token is anyone's who
            // holds its URL (the URL is the capability, as in tusd); a
            // part with an owner is only its owner's.
            if !part.owner.is_anonymous() && part.owner != req.owner {
                return Err(Error::new(
                    ErrorCode::Forbidden,
                    format!("Part {pid} belongs to someone else."),
                ));
            }
            if part.concat != Concat::Partial {
                return Err(bad(format!("Upload {pid} is not a partial upload.")));
            }
            if !part.is_complete() {
                return Err(bad(format!("Part {pid} is not finished.")));
            }
            total = total
                .checked_add(part.offset)
                .ok_or_else(|| self.too_large(u64::MAX))?;
            parts.push(part);
        }
        if total > self.config.max_size {
            return Err(self.too_large(total));
        }
        if let Some(length) = req.length {
            if length != total {
                return Err(Error::new(
                    ErrorCode::InvalidHeader,
                    format!("The parts add up to {total} bytes, not {length}."),
                ));
            }
        }
        self.check_room(&req.owner, total, false).await?;
        let now = now_millis();
        let mut record = req.record(Some(total), Concat::Final(part_ids.to_vec()), now, &id);
        record.expires_at = Some(self.expiry(now));
        let lock = self
            .locks
            .try_lock(record.id.as_str())
            .await
            .ok_or_else(|| Error::internal("assembling a final upload", "a new ID is locked"))?;
        // Its post-hooks are written when it is assembled: an assembly that
        // fails leaves nothing to tell.
        self.meta.insert(&record, &[]).await?;
        let service = self.clone();
        let caller = req.caller.clone();
        let task = tokio::spawn(async move {
            let assembled = service
                .assemble(&lock, &mut record, &parts, caller.as_ref())
                .await;
            if let Err(e) = assembled {
                if let Err(e) = service.remove(&record, &[]).await {
                    tracing::error!(id = %record.id, "removing a final upload that failed: {e}");
                }
                return Err(e);
            }
            tracing::info!(id = %record.id, parts = parts.len(), length = total, "final upload assembled");
            service.announce_new(&record).await;
            Ok(record)
        });
        task.await
            .map_err(|e| Error::internal("assembling a final upload", e))?
    }

    /// Copies the parts into a final upload's blob and completes its record.
    async fn assemble(
        &self,
        lock: &UploadLock,
        record: &mut UploadRecord,
        parts: &[UploadRecord],
        caller: Option<&Caller>,
    ) -> Result<()> {
        let key = record.blob_key.clone();
        self.blobs
            .create(&key)
            .await
            .map_err(storage("creating a blob"))?;
        let mut writer = self
            .blobs
            .append_at(&key, 0, None)
            .await
            .map_err(storage("opening a blob"))?;
        let mut hasher = ResumableSha256::new();
        let copied = async {
            for part in parts {
                let gone = || {
                    Error::new(
                        ErrorCode::InvalidConcatPart,
                        format!(
                            "Part {} was deleted while the final upload was being assembled.",
                            part.id
                        ),
                    )
                };
                let mut stream = match self.blobs.read(&part.blob_key, 0..part.offset).await {
                    Ok(s) => s,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(gone()),
                    Err(e) => return Err(Error::storage("reading a part", e)),
                };
                while let Some(chunk) = stream.next().await {
                    if lock.is_preempted() {
                        return Err(Error::new(
                            ErrorCode::UploadLocked,
                            "The final upload was deleted while it was being assembled.",
                        ));
                    }
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(gone()),
                        Err(e) => return Err(Error::storage("reading a part", e)),
                    };
                    hasher.update(&chunk);
                    writer
                        .write(chunk)
                        .await
                        .map_err(storage("writing a final upload"))?;
                }
            }
            writer
                .commit(Commit::Finish(if self.durable() {
                    Durability::Synced
                } else {
                    Durability::Cached
                }))
                .await
                .map_err(storage("writing a final upload"))?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = copied {
            let _ = writer.discard().await;
            return Err(e);
        }
        let _ = writer.settle().await;
        if hasher.len() != record.length.unwrap_or(0) {
            return Err(Error::internal(
                "assembling a final upload",
                "a part's bytes fall short of its record",
            ));
        }
        let now = now_millis();
        record.offset = hasher.len();
        record.updated_at = now;
        self.ask_pre_finish_whole(record, caller).await?;
        self.complete(record, &hasher, now);
        let points = [HookPoint::PostCreate, HookPoint::PostFinish];
        let news = self.news(&points, record, caller).await;
        self.meta.update_with(record, &news).await?;
        self.hooks.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::AppendRequest;
    use crate::core::error::ErrorCode;
    use crate::core::record::{Concat, UploadState};

    async fn partial(f: &Fixture, data: &[u8]) -> crate::core::UploadId {
        let mut req = new_upload(Some(data.len() as u64), "part");
        req.concat = Concat::Partial;
        let r = f.service.create(req).await.unwrap();
        f.service
            .append(&r.id, AppendRequest::default(), body(data, 2))
            .await
            .unwrap();
        r.id
    }

    #[tokio::test]
    async fn a_final_upload_is_its_parts_in_order() {
        let f = fixture(|_| {}).await;
        let (a, b) = (partial(&f, b"hel").await, partial(&f, b"lo").await);
        let mut req = new_upload(None, "whole");
        req.concat = Concat::Final(vec![a, b]);
        let r = f.service.create(req).await.unwrap();
        assert_eq!(r.state, UploadState::Complete);
        assert_eq!((r.offset, r.length), (5, Some(5)));
        assert_eq!(stored(&f.service, &r).await, b"hello");
    }

    #[tokio::test]
    async fn a_part_named_twice_is_refused() {
        let f = fixture(|_| {}).await;
        let a = partial(&f, b"abc").await;
        let mut req = new_upload(None, "twice");
        req.concat = Concat::Final(vec![a.clone(), a]);
        let e = f.service.create(req).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConcatPart);
    }
}
