//! Bytes in S3-compatible object storage (AWS S3, MinIO, Ceph, Garage, R2,
//! s3s), for several Ferry instances sharing one bucket.
//!
//! An unfinished upload is an S3 multipart upload. Bytes arriving are
//! gathered into one part in memory; every full part is sent as it fills,
//! so a PATCH never holds more than one part per upload. What is left over
//! when a request ends (less than a part, since S3 refuses parts under
//! 5 MiB but the last) is stored as a small "tail" object, so the next
//! request, on this instance or another, reads it back and carries on. The
//! upload ID, the parts' ETags and the tail's name are the blob's state,
//! recorded with the offset in the same database update; so an interrupted
//! part is simply sent again under the same part number, and a tail written
//! by a request that never got recorded is never used. Completion sends
//! the tail as the last part and assembles the object; termination aborts
//! the multipart upload. Files smaller than a part never start one: they
//! are stored with a single PUT.
//!
//! Part sizes: `part_size` (at least 5 MiB) for the first 1,000 parts,
//! doubling every 1,000 after, so S3's 10,000-part limit allows more than
//! 1,000 × part_size × 1,023 bytes.

use super::blob::{check_key, shorter_than_offset, BlobStore, BlobWriter, ByteStream};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// S3's largest part.
const MAX_PART_SIZE: usize = 5 << 30;

/// Where `--storage s3://...` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// A folder inside the bucket (no leading or trailing slash), or "".
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Bucket-as-host addressing (`https://BUCKET.host/key`) instead of
    /// path-style (`https://host/BUCKET/key`).
    pub virtual_hosted: bool,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME&virtual_hosted=true]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} does not start with s3://"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket"));
        }
        let mut location = S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: None,
            region: None,
            virtual_hosted: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{name} in {url:?} is not UTF-8"))?
                .into_owned();
            match name {
                "endpoint" => location.endpoint = Some(value),
                "region" => location.region = Some(value),
                "virtual_hosted" => location.virtual_hosted = value == "true",
                other => return Err(format!("unknown setting {other:?} in {url:?}")),
            }
        }
        Ok(location)
    }
}

/// Blobs as S3 objects.
#[derive(Clone, Debug)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    prefix: String,
    part_size: usize,
    tails: Arc<TailCache>,
}

/// The tails this instance stored last, by name (names are random and
/// never reused, so an entry is never stale): when an upload's next request
/// lands on the same instance, its tail is not read back from S3.
#[derive(Debug, Default)]
struct TailCache {
    entries: std::sync::Mutex<VecDeque<(String, Rope)>>,
}

/// At most this much is kept in the tail cache.
const TAIL_CACHE_BYTES: usize = 32 << 20;

impl TailCache {
    fn put(&self, name: &str, bytes: Rope) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.push_back((name.to_string(), bytes));
        let mut total: usize = entries.iter().map(|(_, b)| b.len()).sum();
        while total > TAIL_CACHE_BYTES {
            match entries.pop_front() {
                Some((_, b)) => total -= b.len(),
                None => break,
            }
        }
    }

    fn get(&self, name: &str) -> Option<Rope> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    fn forget(&self, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(n, _)| n != name);
    }
}

/// Bytes not yet sent as a part, kept in the buffers they arrived in: a
/// request body's chunks go to S3 without being copied or gathered. Small
/// chunks (a slow or hostile client's) are gathered into one, so the rope
/// never holds more than a few pieces per 64 KiB.
#[derive(Clone, Debug, Default)]
struct Rope {
    chunks: VecDeque<Bytes>,
    /// Small chunks being gathered, after `chunks`.
    open: BytesMut,
    len: usize,
}

/// Chunks smaller than this are copied into the rope's open piece.
const SMALL_CHUNK: usize = 16 * 1024;

impl Rope {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if bytes.len() < SMALL_CHUNK {
            self.open.extend_from_slice(&bytes);
            if self.open.len() >= 4 * SMALL_CHUNK {
                self.seal();
            }
        } else {
            self.seal();
            self.chunks.push_back(bytes);
        }
    }

    /// Ends the open piece.
    fn seal(&mut self) {
        if !self.open.is_empty() {
            self.chunks.push_back(self.open.split().freeze());
        }
    }

    /// Takes the first `n` bytes (at most all) off the rope.
    fn take(&mut self, mut n: usize) -> Rope {
        self.seal();
        let mut taken = Rope::default();
        while n > 0 {
            let Some(mut chunk) = self.chunks.pop_front() else {
                break;
            };
            if chunk.len() > n {
                self.chunks.push_front(chunk.split_off(n));
            }
            n -= chunk.len();
            self.len -= chunk.len();
            taken.len += chunk.len();
            taken.chunks.push_back(chunk);
        }
        taken
    }

    /// The first `n` bytes (at most all), sharing the buffers.
    fn prefix(&mut self, n: usize) -> Rope {
        self.seal();
        self.clone().take(n)
    }

    fn payload(&mut self) -> PutPayload {
        self.seal();
        self.chunks.iter().cloned().collect()
    }
}

impl From<Bytes> for Rope {
    fn from(bytes: Bytes) -> Rope {
        Rope {
            len: bytes.len(),
            chunks: VecDeque::from([bytes]),
            open: BytesMut::new(),
        }
    }
}

/// What the store records of an unfinished blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// The S3 multipart upload, once the first part was sent.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    upload: Option<String>,
    /// ETag and size of every part sent, in order.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<(String, u64)>,
    /// The tail object's name and size.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    tail: Option<(String, u64)>,
}

impl State {
    fn parse(state: Option<&str>) -> io::Result<State> {
        match state {
            None => Ok(State::default()),
            Some(s) => serde_json::from_str(s).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad S3 blob state: {e}"),
                )
            }),
        }
    }

    fn parts_len(&self) -> u64 {
        self.parts.iter().map(|(_, n)| n).sum()
    }

    fn len(&self) -> u64 {
        self.parts_len() + self.tail.as_ref().map_or(0, |(_, n)| *n)
    }
}

fn other(context: &str, e: object_store::Error) -> io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{context}: {e}"))
}

fn ignore_missing(r: object_store::Result<()>, context: &str) -> io::Result<()> {
    match r {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(other(context, e)),
    }
}

impl S3BlobStore {
    /// A store for `location`, with credentials from the usual environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, ...). Nothing is contacted yet.
    pub fn new(location: &S3Location, part_size: usize) -> io::Result<Self> {
        Self::build(AmazonS3Builder::from_env(), location, part_size)
    }

    /// A store for `location` with these credentials (and nothing from the
    /// environment).
    pub fn with_keys(
        location: &S3Location,
        part_size: usize,
        access_key: &str,
        secret_key: &str,
    ) -> io::Result<Self> {
        let builder = AmazonS3Builder::new()
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key);
        Self::build(builder, location, part_size)
    }

    fn build(
        builder: AmazonS3Builder,
        location: &S3Location,
        part_size: usize,
    ) -> io::Result<Self> {
        let mut builder = builder
            .with_bucket_name(&location.bucket)
            .with_virtual_hosted_style_request(location.virtual_hosted);
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &location.region {
            builder = builder.with_region(region);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        let store = builder
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            prefix: location.prefix.clone(),
            part_size: part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE),
            tails: Arc::default(),
        })
    }

    /// Checks that the bucket answers (a listing of at most one object).
    pub async fn check(&self) -> io::Result<()> {
        let prefix = self.object(".check");
        let mut listing = self.store.list(Some(&prefix));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(other("reaching the bucket", e)),
        }
    }

    fn object(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The folder of a blob's tail objects.
    fn tails(&self, key: &str) -> ObjectPath {
        self.object(&format!("{key}.tail"))
    }

    fn tail(&self, key: &str, name: &str) -> ObjectPath {
        self.object(&format!("{key}.tail/{name}"))
    }

    /// Deletes every tail object of a blob (finished or abandoned).
    async fn delete_tails(&self, key: &str) -> io::Result<()> {
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

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn create(&self, key: &str) -> io::Result<()> {
        // Nothing to do until bytes arrive.
        check_key(key)
    }

    async fn len(&self, key: &str, state: Option<&str>) -> io::Result<Option<u64>> {
        check_key(key)?;
        if state.is_some() {
            return Ok(Some(State::parse(state)?.len()));
        }
        match self.store.head(&self.object(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(other("checking an object", e)),
        }
    }

    async fn append_at(
        &self,
        key: &str,
        offset: u64,
        state: Option<&str>,
    ) -> io::Result<Box<dyn BlobWriter>> {
        check_key(key)?;
        let state = State::parse(state)?;
        if offset > state.len() {
            return Err(shorter_than_offset(state.len(), offset));
        }
        let parts_len = state.parts_len();
        if offset < parts_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("offset {offset} is inside parts already sent ({parts_len} bytes)"),
            ));
        }
        let mut buf = Rope::default();
        if let Some((name, size)) = &state.tail {
            let keep = (offset - parts_len) as usize;
            if keep > 0 {
                let mut tail = match self.tails.get(name) {
                    Some(cached) => cached,
                    None => Rope::from(
                        self.store
                            .get(&self.tail(key, name))
                            .await
                            .map_err(|e| other("reading the stored tail", e))?
                            .bytes()
                            .await
                            .map_err(|e| other("reading the stored tail", e))?,
                    ),
                };
                if (tail.len() as u64) < *size || tail.len() < keep {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the stored tail is shorter than recorded",
                    ));
                }
                buf = tail.prefix(keep);
            }
        }
        let mut committed_state = state;
        if (offset - parts_len) as usize
            != committed_state.tail.as_ref().map_or(0, |t| t.1 as usize)
        {
            // Bytes past the offset were never acknowledged: forget them.
            committed_state.tail = None;
        }
        // Bytes in `buf` that no stored tail holds must be stored again.
        let dirty = committed_state.tail.is_none() && !buf.is_empty();
        Ok(Box::new(S3BlobWriter {
            store: self.clone(),
            key: key.to_string(),
            working: committed_state.clone(),
            recorded: committed_state,
            buf,
            committed: offset,
            dirty,
            garbage: Vec::new(),
            created_upload: false,
            finished: false,
            broken: false,
        }))
    }

    async fn read(&self, key: &str, range: Range<u64>) -> io::Result<ByteStream> {
        check_key(key)?;
        if range.is_empty() {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&self.object(key), options)
            .await
            .map_err(|e| other("reading an object", e))?;
        Ok(Box::pin(
            got.into_stream().map_err(|e| other("reading an object", e)),
        ))
    }

    async fn delete(&self, key: &str, state: Option<&str>) -> io::Result<()> {
        check_key(key)?;
        let state = State::parse(state)?;
        let path = self.object(key);
        if let Some(upload) = &state.upload {
            ignore_missing(
                self.store.abort_multipart(&path, upload).await,
                "aborting a multipart upload",
            )?;
        }
        ignore_missing(self.store.delete(&path).await, "deleting an object")?;
        self.delete_tails(key).await
    }

    async fn keys(&self) -> io::Result<Vec<String>> {
        // Finished blobs are objects named by their key; unfinished ones
        // have a folder of tails. (A multipart upload in progress has
        // neither until its first commit: the bucket's lifecycle rule for
        // incomplete multipart uploads clears those a crash abandons.)
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let listing = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| other("listing the bucket", e))?;
        let objects = listing.objects.iter().map(|o| o.location.clone());
        let folders = listing.common_prefixes.into_iter();
        let mut keys: Vec<String> = objects
            .chain(folders)
            .filter_map(|p| {
                let name = p.filename()?;
                let key = name.strip_suffix(".tail").unwrap_or(name);
                // Only names Ferry makes: other objects are not its own.
                super::id::UploadId::parse(key).map(|_| key.to_string())
            })
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// Appends to one S3 blob.
struct S3BlobWriter {
    store: S3BlobStore,
    key: String,
    /// The state as of the last commit (what the record will hold).
    recorded: State,
    /// The state with the parts sent since.
    working: State,
    /// Bytes after the last part: the committed tail and what followed.
    buf: Rope,
    committed: u64,
    /// Whether `buf` holds bytes no stored tail has.
    dirty: bool,
    /// Tail objects to delete once the state that replaced them is recorded.
    garbage: Vec<String>,
    /// Whether this writer started the multipart upload.
    created_upload: bool,
    finished: bool,
    broken: bool,
}

impl S3BlobWriter {
    fn part_size(&self, index: usize) -> usize {
        let doublings = (index / 1000).min(10) as u32;
        self.store
            .part_size
            .saturating_mul(1 << doublings)
            .min(MAX_PART_SIZE)
    }

    fn path(&self) -> ObjectPath {
        self.store.object(&self.key)
    }

    async fn upload_id(&mut self) -> io::Result<String> {
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

    async fn send_part(&mut self, mut part: Rope) -> io::Result<()> {
        let upload = self.upload_id().await?;
        let index = self.working.parts.len();
        if index >= 10_000 {
            return Err(io::Error::other("the upload needs more than 10,000 parts"));
        }
        let size = part.len() as u64;
        let PartId { content_id } = self
            .store
            .store
            .put_part(&self.path(), &upload, index, part.payload())
            .await
            .map_err(|e| other("sending a part", e))?;
        self.working.parts.push((content_id, size));
        Ok(())
    }

    fn check(&self) -> io::Result<()> {
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
        self.dirty |= !data.is_empty();
        self.buf.push(data);
        loop {
            let size = self.part_size(self.working.parts.len());
            if self.buf.len() < size {
                return Ok(());
            }
            let part = self.buf.take(size);
            if let Err(e) = self.send_part(part).await {
                self.broken = true;
                return Err(e);
            }
        }
    }

    async fn commit(&mut self, _durable: bool, last: bool) -> io::Result<u64> {
        // A successful S3 PUT is durable: `durable` asks nothing more.
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
                self.working.tail = None;
                self.finished = true;
                return Ok(());
            }
            if self.dirty {
                let tail = if self.buf.is_empty() {
                    None
                } else {
                    let name = format!("{:032x}", rand::random::<u128>());
                    self.store
                        .store
                        .put(&self.store.tail(&self.key, &name), self.buf.payload())
                        .await
                        .map_err(|e| other("storing the tail", e))?;
                    self.store.tails.put(&name, self.buf.clone());
                    Some((name, self.buf.len() as u64))
                };
                self.working.tail = tail;
                self.dirty = false;
            } else if self.buf.is_empty() {
                self.working.tail = None;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.broken = true;
            return Err(e);
        }
        if let Some((old, _)) = &self.recorded.tail {
            if self.working.tail.as_ref().map(|t| &t.0) != Some(old) {
                self.garbage.push(old.clone());
            }
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
        if self.finished {
            for name in std::mem::take(&mut self.garbage) {
                self.store.tails.forget(&name);
            }
            return self.store.delete_tails(&self.key).await;
        }
        for name in std::mem::take(&mut self.garbage) {
            self.store.tails.forget(&name);
            ignore_missing(
                self.store
                    .store
                    .delete(&self.store.tail(&self.key, &name))
                    .await,
                "deleting a tail object",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls() {
        let l = S3Location::parse(
            "s3://uploads/ferry/prod?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(l.bucket, "uploads");
        assert_eq!(l.prefix, "ferry/prod");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(l.region.as_deref(), Some("eu-west-1"));
        assert!(!l.virtual_hosted);
        let l = S3Location::parse("s3://b?endpoint=http://localhost:9000").unwrap();
        assert_eq!(l.endpoint.as_deref(), Some("http://localhost:9000"));
        assert_eq!(l.prefix, "");
        assert!(S3Location::parse("s3://").is_err());
        assert!(S3Location::parse("file:///tmp").is_err());
        assert!(S3Location::parse("s3://b?colour=blue").is_err());
    }

    #[test]
    fn state_round_trips_and_measures() {
        let s = State {
            upload: Some("u1".into()),
            parts: vec![("e1".into(), 8), ("e2".into(), 8)],
            tail: Some(("t".into(), 3)),
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(State::parse(Some(&text)).unwrap(), s);
        assert_eq!(s.parts_len(), 16);
        assert_eq!(s.len(), 19);
        assert_eq!(State::parse(None).unwrap().len(), 0);
        assert!(State::parse(Some("{")).is_err());
    }

    fn contents(rope: &mut Rope) -> Vec<u8> {
        rope.payload().iter().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn a_rope_keeps_order_across_takes_and_gathers_small_chunks() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut rope = Rope::default();
        // Large chunks are kept as they are, small ones gathered.
        let mut at = 0;
        for size in [100_000, 3, 5000, 1, 20_000, 70_000, 7, 104_989] {
            rope.push(Bytes::copy_from_slice(&data[at..at + size]));
            at += size;
        }
        assert_eq!(at, data.len());
        assert_eq!(rope.len(), data.len());
        assert_eq!(contents(&mut rope.clone()), data);
        assert!(rope.chunks.len() <= 6, "{} pieces", rope.chunks.len());
        // A prefix leaves the rope whole.
        assert_eq!(contents(&mut rope.prefix(100_004)), &data[..100_004]);
        assert_eq!(rope.len(), data.len());
        // Takes split chunks where they must.
        let mut first = rope.take(100_002);
        assert_eq!(first.len(), 100_002);
        assert_eq!(contents(&mut first), &data[..100_002]);
        let mut second = rope.take(150_000);
        assert_eq!(contents(&mut second), &data[100_002..250_002]);
        let mut rest = rope.take(usize::MAX);
        assert_eq!(contents(&mut rest), &data[250_002..]);
        assert!(rope.is_empty());
        assert_eq!(rope.take(10).len(), 0);
    }

    #[test]
    fn tiny_chunks_make_few_pieces() {
        let mut rope = Rope::default();
        for i in 0..1_000_000u32 {
            rope.push(Bytes::copy_from_slice(&[i as u8]));
        }
        assert_eq!(rope.len(), 1_000_000);
        assert!(rope.chunks.len() <= 1_000_000 / (4 * SMALL_CHUNK) + 1);
        let got = contents(&mut rope);
        assert!(got.iter().enumerate().all(|(i, b)| *b == i as u8));
    }
}
