//! The record of one upload, as the `MetaStore` keeps it, and who owns it.

use crate::core::id::UploadId;
use crate::protocol::metadata::Metadata;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: how records store time.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Who an upload belongs to: the browser session or bearer token that
/// created it, or nobody in particular. Listings, events and instant-upload
/// matching are scoped to it; an upload's URL stays its capability.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    /// Requests with neither a session nor a token. Such uploads are never
    /// listed and never matched for instant upload.
    pub fn anonymous() -> Self {
        Owner("anonymous".to_string())
    }

    /// A browser session, by its (random, secret) session ID.
    pub fn session(session_id: &str) -> Self {
        Owner(format!("session:{}", short_hash(session_id)))
    }

    /// A bearer token, by a hash of it: the token itself is never stored.
    pub fn token(token: &str) -> Self {
        Owner(format!("token:{}", short_hash(token)))
    }

    /// A person a host page embedding the uploader names in a signed
    /// embed token (`http/embed_token.rs`): the same owner whichever token
    /// named them.
    pub fn embedded(name: &str) -> Self {
        Owner(format!("embed:{name}"))
    }

    /// Restores an owner read back from storage.
    pub fn from_stored(s: String) -> Self {
        Owner(s)
    }

    pub fn is_anonymous(&self) -> bool {
        self.0 == "anonymous"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn short_hash(secret: &str) -> String {
    use sha2::Digest;
    super::hash::hex(&sha2::Sha256::digest(secret.as_bytes())[..16])
}

/// Where an upload is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    /// Taking bytes.
    Active,
    /// Every byte arrived and the SHA-256 is recorded.
    Complete,
    /// Abandoned past its expiry: bytes removed, the record kept for a
    /// while so requests get 410 rather than 404.
    Expired,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Active => "active",
            UploadState::Complete => "complete",
            UploadState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UploadState::Active),
            "complete" => Some(UploadState::Complete),
            "expired" => Some(UploadState::Expired),
            _ => None,
        }
    }
}

/// The tus concatenation role of an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Concat {
    /// An ordinary upload.
    None,
    /// A part meant to be concatenated into a final upload.
    Partial,
    /// Assembled from these parts, in order.
    Final(Vec<UploadId>),
}

/// One upload's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: UploadId,
    pub owner: Owner,
    /// The key of the bytes in the `BlobStore`: the upload's own ID, or
    /// another upload's when an instant upload shares identical bytes.
    pub blob_key: String,
    /// Total length in bytes; `None` while deferred.
    pub length: Option<u64>,
    /// Bytes received and made durable.
    pub offset: u64,
    pub metadata: Metadata,
    pub concat: Concat,
    pub state: UploadState,
    /// SHA-256 of the whole file (lowercase hex), once complete.
    pub sha256: Option<String>,
    /// The running SHA-256 state at `offset` (see `ResumableSha256`), so
    /// hashing resumes without re-reading the bytes.
    pub hash_state: Option<Vec<u8>>,
    /// The `BlobStore`'s own state of the unfinished blob at `offset` (see
    /// `BlobWriter::state`), recorded in the same update as the offset.
    pub blob_state: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When the upload will be removed unless it moves on: set while it is
    /// unfinished, cleared when it completes, unless it is a part of a
    /// concatenation (`can_expire`).
    pub expires_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    /// The `Idempotency-Key` of the request that created it: the same
    /// request again answers this upload (unique per owner while the
    /// upload is not expired).
    pub idempotency_key: Option<String>,
}

impl UploadRecord {
    /// A new upload: active, empty, with a blob of its own named by its
    /// new ID, and no expiry yet.
    pub fn new(
        owner: Owner,
        length: Option<u64>,
        metadata: Metadata,
        concat: Concat,
        now: Millis,
    ) -> Self {
        let id = UploadId::random();
        UploadRecord {
            blob_key: id.to_string(),
            id,
            owner,
            length,
            offset: 0,
            metadata,
            concat,
            state: UploadState::Active,
            sha256: None,
            hash_state: Some(super::hash::ResumableSha256::new().to_bytes()),
            blob_state: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            completed_at: None,
            idempotency_key: None,
        }
    }

    /// This new record under another ID (one chosen before it was made,
    /// and already shown to hooks), with its own blob named alike.
    pub fn with_id(mut self, id: UploadId) -> Self {
        if self.blob_key == self.id.as_str() {
            self.blob_key = id.to_string();
        }
        self.id = id;
        self
    }

    pub fn is_complete(&self) -> bool {
        self.state == UploadState::Complete
    }

    /// Whether the upload expires when `expires_at` passes: while it is
    /// unfinished, and a part of a concatenation even once finished. A
    /// part is not a file: its final upload holds a copy of its bytes, so
    /// a part left behind (joined, or never joined) goes like an abandoned
    /// upload.
    pub fn can_expire(&self) -> bool {
        match self.state {
            UploadState::Active => true,
            UploadState::Complete => self.concat == Concat::Partial,
            UploadState::Expired => false,
        }
    }
}
