//! Creating an upload: the length checked against the server's limit and
//! the owner's room (quotas, unfinished uploads, the disk's reserve), the
//! record written before its bytes, and an instant upload when the same
//! content is already stored.

use super::UploadService;
use crate::core::blob::Space;
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::hash::ResumableSha256;
use crate::core::hooks::{Caller, HookPoint, Verdict};
use crate::core::id::UploadId;
use crate::core::record::{now_millis, Concat, Millis, Owner, UploadRecord, UploadState};
use crate::protocol::metadata::Metadata;

/// The shortest `Idempotency-Key` taken from a request without a session
/// or token (all such requests are one owner): 32 characters, as 128
/// random bits in hex. A shorter one is ignored there.
pub const ANONYMOUS_KEY: usize = 32;

/// What a new upload is to be.
#[derive(Clone, Debug)]
pub struct CreateRequest {
    pub owner: Owner,
    /// The total length; `None` defers it (or, for a final concatenation,
    /// lets it follow from the parts).
    pub length: Option<u64>,
    pub metadata: Metadata,
    pub concat: Concat,
    /// The request that asks, for hooks.
    pub caller: Option<Caller>,
    /// The client's `Idempotency-Key`: the same key again (a request sent
    /// twice) answers the upload the first made.
    pub idempotency_key: Option<String>,
}

impl CreateRequest {
    /// A new record of this request, keyed as it is.
    pub(super) fn record(
        &self,
        length: Option<u64>,
        concat: Concat,
        now: Millis,
        id: &UploadId,
    ) -> UploadRecord {
        let mut record = UploadRecord::new(
            self.owner.clone(),
            length,
            self.metadata.clone(),
            concat,
            now,
        )
        .with_id(id.clone());
        record.idempotency_key = self.idempotency_key.clone();
        record
    }
}

impl UploadService {
    pub(super) fn too_large(&self, length: u64) -> Error {
        Error::new(
            ErrorCode::UploadTooLarge,
            format!(
                "This file is {length} bytes; the server accepts at most {} bytes per upload.",
                self.config.max_size
            ),
        )
    }

    /// Creates an upload: an empty one, an instant one (complete at once,
    /// sharing the bytes of an identical upload of the same owner), or a
    /// final concatenation of finished partial uploads. It runs in a task
    /// of its own, so a client that goes away cannot stop it half-way
    /// (a record without its bytes, or bytes without their record).
    ///
    /// A request with the `Idempotency-Key` of one that created an upload
    /// answers that upload, as it is now, and creates nothing.
    pub async fn create(&self, req: CreateRequest) -> Result<UploadRecord> {
        let service = self.clone();
        tokio::spawn(async move { service.create_once(req).await })
            .await
            .map_err(|e| Error::internal("creating an upload", e))?
    }

    async fn create_once(&self, mut req: CreateRequest) -> Result<UploadRecord> {
        if req.owner.is_anonymous()
            && req
                .idempotency_key
                .as_ref()
                .is_some_and(|k| k.len() < ANONYMOUS_KEY)
        {
            req.idempotency_key = None;
        }
        if let Some(made) = self.made_by(&req).await? {
            return Ok(made);
        }
        let key = req.idempotency_key.is_some();
        let asked = req.clone();
        match self.create_whole(req).await {
            // The same request, at the same time: one of the two stored its
            // record (the key is unique), and both answer it. Any other
            // failure is told as it is.
            Err(e) if key => match self.made_by(&asked).await {
                Ok(Some(made)) => Ok(made),
                _ => Err(e),
            },
            other => other,
        }
    }

    /// The upload a request with this request's idempotency key made; an
    /// error when that request asked for another length or kind. Without
    /// a session or token, everyone is one owner: only a key too long to
    /// guess (`ANONYMOUS_KEY`) is taken as the request's own.
    async fn made_by(&self, req: &CreateRequest) -> Result<Option<UploadRecord>> {
        let Some(key) = &req.idempotency_key else {
            return Ok(None);
        };
        let Some(made) = self.meta.find_by_idempotency_key(&req.owner, key).await? else {
            return Ok(None);
        };
        // Past its expiry but not swept yet: expired now, its key free.
        let now = now_millis();
        if made.can_expire()
            && made.expires_at.is_some_and(|t| t <= now)
            && self.expire_if_due(&made.id, now).await?
        {
            return Ok(None);
        }
        // (A final upload: of the same parts, in the same order.)
        let same_kind = made.concat == req.concat;
        // A final upload's length follows from its parts.
        let same_length = match &req.concat {
            Concat::Final(_) => req.length.is_none() || made.length == req.length,
            _ => made.length == req.length,
        };
        if !same_kind || !same_length {
            return Err(Error::new(
                ErrorCode::IdempotencyKeyReused,
                format!(
                    "The Idempotency-Key {key:?} created another upload ({}); use a new key for a new upload.",
                    made.length.map_or("of a deferred length".into(), |l| format!("of {l} bytes"))
                ),
            ));
        }
        tracing::info!(id = %made.id, "a creation request came again: its upload answers");
        Ok(Some(made))
    }

    async fn create_whole(&self, mut req: CreateRequest) -> Result<UploadRecord> {
        crate::core::names::clean_names(&mut req.metadata);
        self.check_type(&req)?;
        // Chosen now, so hooks know the upload by the ID it will have.
        let id = UploadId::random();
        if let Some(length) = req.length {
            if length > self.config.max_size {
                return Err(self.too_large(length));
            }
        }
        self.ask_pre_create(&mut req, &id).await?;
        if let Concat::Final(parts) = &req.concat {
            let parts = parts.clone();
            return self.create_final(&req, &parts, id).await;
        }
        let now = now_millis();
        if let Some(record) = self.create_instant(&req, now, &id).await? {
            return Ok(record);
        }
        self.check_room(&req.owner, req.length.unwrap_or(0), true)
            .await?;
        let mut record = req.record(req.length, req.concat.clone(), now, &id);
        record.expires_at = Some(self.expiry(now));
        if record.length == Some(0) {
            self.ask_pre_finish_whole(&record, req.caller.as_ref())
                .await?;
            self.complete(&mut record, &ResumableSha256::new(), now);
        }
        // The record first, then its bytes: a crash in between leaves a
        // record whose empty blob the start-up check makes, never bytes
        // that no record names. An empty upload is finished at once: its
        // post-hooks are written with the record.
        let points: &[HookPoint] = match record.is_complete() {
            true => &[HookPoint::PostCreate, HookPoint::PostFinish],
            false => &[HookPoint::PostCreate],
        };
        let caller = req.caller.as_ref();
        let news = self.news(points, &record, caller).await;
        self.meta.insert(&record, &news).await?;
        if let Err(e) = self.blobs.create(&record.blob_key).await {
            // The application heard of the upload: it hears it went.
            let news = self
                .news(&[HookPoint::PostTerminate], &record, caller)
                .await;
            let _ = self.meta.delete(&record.id, &news).await;
            self.hooks.wake();
            return Err(Error::storage("creating a blob", e));
        }
        self.hooks.wake();
        tracing::info!(id = %record.id, length = ?record.length, "upload created");
        self.announce_new(&record).await;
        Ok(record)
    }

    /// An upload complete at once, when the owner already has a finished
    /// upload with the SHA-256 and length that the metadata announces: it
    /// shares those bytes. `None` when there is no such upload, or when it
    /// is deleted before its bytes could be shared (the bytes are then sent
    /// again, never lost).
    async fn create_instant(
        &self,
        req: &CreateRequest,
        now: Millis,
        id: &UploadId,
    ) -> Result<Option<UploadRecord>> {
        let (Some(length), Some(sha256)) = (req.length, req.metadata.sha256()) else {
            return Ok(None);
        };
        if req.owner.is_anonymous() || req.concat != Concat::None {
            return Ok(None);
        }
        let Some(twin) = self.meta.find_complete(&req.owner, &sha256, length).await? else {
            return Ok(None);
        };
        let mut record = req.record(Some(length), Concat::None, now, id);
        record.blob_key = twin.blob_key;
        record.offset = length;
        record.state = UploadState::Complete;
        record.sha256 = twin.sha256;
        record.hash_state = None;
        record.completed_at = Some(now);
        self.ask_pre_finish_whole(&record, req.caller.as_ref())
            .await?;
        let news = self
            .news(
                &[HookPoint::PostCreate, HookPoint::PostFinish],
                &record,
                req.caller.as_ref(),
            )
            .await;
        if !self.meta.insert(&record, &news).await? {
            tracing::info!(id = %record.id, "the identical upload went away meanwhile; its bytes will be sent");
            return Ok(None);
        }
        self.hooks.wake();
        tracing::info!(id = %record.id, "instant upload: identical bytes already stored");
        self.announce_new(&record).await;
        Ok(Some(record))
    }

    /// Refuses a file of a kind the server does not accept
    /// (`--allow-types`), by its name or media type as the client gave
    /// them. A part of a concatenation is not a file: its final upload is
    /// checked instead.
    fn check_type(&self, req: &CreateRequest) -> Result<()> {
        let allow = &self.config.allow_types;
        let (name, mime) = (req.metadata.filename(), req.metadata.filetype());
        // A part says nothing of itself, usually: its final upload is
        // checked. One that names itself is checked like a file.
        let anonymous_part = req.concat == Concat::Partial && name.is_none() && mime.is_none();
        if allow.is_empty() || anonymous_part {
            return Ok(());
        }
        // The name as it will be shown and downloaded (cut, cleaned), so
        // that a long name cannot hide its real ending.
        let name = crate::core::names::sanitize_filename(name.unwrap_or(""));
        let mime = mime.unwrap_or("");
        if crate::protocol::rules::type_allowed(allow, &name, mime) {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::TypeNotAllowed,
            format!(
                "This server accepts only these kinds of file: {}.",
                allow.join(", ")
            ),
        ))
    }

    /// What is left of this owner's share of the server, when it has one.
    pub async fn room_left(&self, owner: &Owner) -> Result<Option<u64>> {
        let Some(max) = self.config.max_bytes_per_owner else {
            return Ok(None);
        };
        let used = self.meta.usage(owner).await?.bytes;
        Ok(Some(max.saturating_sub(used)))
    }

    /// Asks the `pre-create` hook about a new upload (seen as an empty
    /// record with the request's length and metadata); it may refuse, or
    /// give the upload other metadata.
    async fn ask_pre_create(&self, req: &mut CreateRequest, id: &UploadId) -> Result<()> {
        if !self.hooks.calls(HookPoint::PreCreate) {
            return Ok(());
        }
        let draft = UploadRecord::new(
            req.owner.clone(),
            req.length,
            req.metadata.clone(),
            req.concat.clone(),
            now_millis(),
        )
        .with_id(id.clone());
        let upload = self.hook_upload(&draft, req.caller.as_ref());
        match self.hooks.ask(HookPoint::PreCreate, &upload).await? {
            Verdict::Allow(Some(metadata)) => {
                req.metadata = metadata;
                crate::core::names::clean_names(&mut req.metadata);
                self.check_type(req)
            }
            Verdict::Allow(None) => Ok(()),
            Verdict::Refuse(e, _) => Err(e),
        }
    }

    /// The disk's reserve and its space now, when a reserve is kept (the
    /// disk is not asked otherwise).
    pub(super) async fn reserve_and_space(&self) -> Option<(u64, Space)> {
        let reserve = self.config.min_free_space?;
        Some((reserve, self.blobs.space().await?))
    }

    /// Refuses a new upload (or new bytes) that would leave the data disk
    /// with less than its reserve, or take the owner past a quota.
    pub(super) async fn check_room(
        &self,
        owner: &Owner,
        bytes: u64,
        new_upload: bool,
    ) -> Result<()> {
        let checked = self.room_for(owner, bytes, new_upload).await;
        if let Err(e) = &checked {
            if matches!(
                e.code,
                ErrorCode::StorageFull | ErrorCode::TooManyUnfinished | ErrorCode::QuotaExceeded
            ) {
                self.observer.refused(e.code);
            }
        }
        checked
    }

    async fn room_for(&self, owner: &Owner, bytes: u64, new_upload: bool) -> Result<()> {
        if let Some((reserve, space)) = self.reserve_and_space().await {
            if space.free < reserve.saturating_add(bytes) {
                tracing::warn!(
                    free = space.free,
                    reserve,
                    bytes,
                    "refusing an upload: the disk is nearly full"
                );
                return Err(Error::new(
                    ErrorCode::StorageFull,
                    "The server's storage is nearly full; this upload was refused before it started. Try again later.",
                ));
            }
        }
        let (max_bytes, max_unfinished) = (
            self.config.max_bytes_per_owner,
            self.config.max_unfinished_per_owner,
        );
        if max_bytes.is_none() && max_unfinished.is_none() {
            return Ok(());
        }
        let usage = self.meta.usage(owner).await?;
        if let Some(max) = max_unfinished.filter(|m| new_upload && usage.unfinished >= *m) {
            return Err(Error::new(
                ErrorCode::TooManyUnfinished,
                format!("You have {max} unfinished uploads, the most allowed; finish or delete some first."),
            ));
        }
        if let Some(max) = max_bytes.filter(|m| usage.bytes.saturating_add(bytes) > *m) {
            return Err(Error::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "This would take your uploads to {} bytes; the limit is {max} bytes. Delete some to make room.",
                    usage.bytes.saturating_add(bytes)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::core::error::ErrorCode;
    use crate::core::record::UploadState;
    use crate::protocol::metadata::Metadata;

    #[tokio::test]
    async fn an_upload_is_recorded_with_an_empty_blob() {
        let f = fixture(|_| {}).await;
        let r = f
            .service
            .create(new_upload(Some(10), "a.txt"))
            .await
            .unwrap();
        assert_eq!((r.offset, r.length), (0, Some(10)));
        assert_eq!(r.state, UploadState::Active);
        assert_eq!(f.service.get(&r.id).await.unwrap().id, r.id);
        assert!(stored(&f.service, &r).await.is_empty());
    }

    #[tokio::test]
    async fn too_large_and_too_many_are_refused() {
        let f = fixture(|c| {
            c.max_size = 100;
            c.max_unfinished_per_owner = Some(1);
        })
        .await;
        let e = f
            .service
            .create(new_upload(Some(101), "big"))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UploadTooLarge);
        f.service.create(new_upload(Some(10), "one")).await.unwrap();
        let e = f
            .service
            .create(new_upload(Some(10), "two"))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyUnfinished);
    }

    #[tokio::test]
    async fn the_same_content_again_is_an_instant_upload() {
        let f = fixture(|_| {}).await;
        let first = f.service.create(new_upload(Some(5), "a")).await.unwrap();
        let done = f
            .service
            .append(&first.id, Default::default(), body(b"hello", 2))
            .await
            .unwrap();
        let sha = done.sha256.clone().unwrap();
        let mut again = new_upload(Some(5), "b");
        again.metadata = Metadata::from_pairs([("filename", "b"), ("sha256", sha.as_str())]);
        let twin = f.service.create(again).await.unwrap();
        assert_eq!(twin.state, UploadState::Complete, "no byte needs sending");
        assert_eq!(
            (twin.offset, twin.sha256.as_deref()),
            (5, Some(sha.as_str()))
        );
        assert_eq!(stored(&f.service, &twin).await, b"hello");
    }
}
