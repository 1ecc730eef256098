//! Bytes in S3-compatible object storage (AWS S3, MinIO, Ceph, Garage, R2,
//! s3s), for several Ferry instances sharing one bucket.
//!
//! An unfinished upload is an S3 multipart upload. Bytes arriving are
//! gathered into one part in memory; every full part is sent as it fills,
//! so a PATCH never holds more than one part per upload. What is left over
//! when a request ends (less than a part, since S3 refuses parts under
//! 5 MiB but the last) is the "tail": each commit stores the bytes that
//! arrived since the last one as a piece in the `TailStore` (the records'
//! database, see `tails`), so every byte reaches the bucket once, in its
//! part, however small the requests. The upload ID, the parts' ETags and
//! the tail's pieces are the blob's state, recorded with the offset in the
//! same database update; so an interrupted part is simply sent again under
//! the same part number, and a piece written by a request that never got
//! recorded is never used. Completion sends the tail as the last part and
//! assembles the object; termination aborts the multipart upload. Files
//! smaller than a part never start one: they are stored with a single PUT.
//!
//! Part sizes: `part_size` (at least 5 MiB) for the first 1,000 parts,
//! doubling every 1,000 after up to 256 MiB (or `part_size`, if larger):
//! each writer holds one part in memory, and S3 allows 10,000 parts, so
//! the largest blob is `largest_blob()` (about 1.4 TiB with 8 MiB parts).

use crate::core::blob::{BlobLocation, BlobStore, BlobWriter, ByteStream, KeyBatches, KEY_BATCH};
use crate::core::observe::{Observer, Unobserved};
use crate::store::blob::{check_key, shorter_than_offset};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

mod location;
mod memory;
mod parts;
mod rope;
mod state;
mod tail_cache;
mod tails;
mod writer;

pub use location::S3Location;
use memory::{Memory, Reserved};
pub use memory::{DEFAULT_MEMORY, MEMORY_WAIT};
pub use parts::largest_part;
use parts::{largest_blob, part_size};
pub use parts::{LARGEST_GROWN_PART, MAX_CONFIGURED_PART, MAX_PARTS};
use rope::Rope;
use state::State;
use tail_cache::TailCache;
pub use tails::TailStore;
use writer::S3BlobWriter;

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// Blobs as S3 objects.
#[derive(Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    part_size: usize,
    observer: Arc<dyn Observer>,
    /// Where tails are kept.
    pieces: Arc<dyn TailStore>,
    /// The pieces this instance stored last.
    cache: Arc<TailCache>,
    /// The memory for parts being gathered, over all writers.
    memory: Arc<Memory>,
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

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3BlobStore {
    /// A store for `location`, with credentials from the usual environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`, ...), keeping tails in `tails`.
    /// Nothing is contacted yet.
    pub fn new(
        location: &S3Location,
        part_size: usize,
        tails: Arc<dyn TailStore>,
    ) -> io::Result<Self> {
        Self::build(AmazonS3Builder::from_env(), location, part_size, tails)
    }

    /// A store for `location` with these credentials (and nothing from the
    /// environment).
    pub fn with_keys(
        location: &S3Location,
        part_size: usize,
        access_key: &str,
        secret_key: &str,
        tails: Arc<dyn TailStore>,
    ) -> io::Result<Self> {
        let builder = AmazonS3Builder::new()
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key);
        Self::build(builder, location, part_size, tails)
    }

    fn build(
        builder: AmazonS3Builder,
        location: &S3Location,
        part_size: usize,
        tails: Arc<dyn TailStore>,
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
        crate::store::tls::install_crypto();
        let store = builder
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            bucket: location.bucket.clone(),
            observer: Arc::new(Unobserved),
            prefix: location.prefix.clone(),
            part_size: part_size.clamp(MIN_PART_SIZE, MAX_CONFIGURED_PART),
            pieces: tails,
            cache: Arc::default(),
            memory: Arc::new(Memory::new(DEFAULT_MEMORY, MEMORY_WAIT)),
        })
    }

    /// This store, gathering parts in at most `bytes` of memory over all
    /// writers, each writer waiting at most `wait` for room before failing
    /// with `ErrorKind::ResourceBusy`. Give at least `largest_part()` (the
    /// configuration checks it): a part that can never fit is refused.
    pub fn with_memory(mut self, bytes: u64, wait: Duration) -> Self {
        let bytes = bytes.max(self.part_size as u64);
        self.memory = Arc::new(Memory::new(bytes, wait));
        self
    }

    /// The size of the part at `index` (from 0).
    pub(super) fn part_size(&self, index: usize) -> usize {
        part_size(self.part_size, index)
    }

    /// The largest part this store sends (parts grow up to it).
    pub fn largest_part(&self) -> u64 {
        largest_part(self.part_size) as u64
    }

    /// The largest blob this store can hold: S3's 10,000 parts, as large as
    /// they grow.
    pub fn largest_blob(&self) -> u64 {
        largest_blob(self.part_size)
    }

    /// This store, telling `observer` how long parts take to send.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
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
        let keep = offset - parts_len;
        let mut reserved = Reserved::default();
        if keep > 0 {
            let size = self.part_size(state.parts.len());
            self.memory.reserve(&mut reserved, size as u64).await?;
        }
        let buf = self.read_tail(key, &state, keep).await?;
        // Bytes past the offset were never acknowledged: forget them (their
        // pieces are deleted once the next commit is recorded).
        let mut recorded = state.clone();
        recorded.truncate_pieces(keep);
        let garbage = state.pieces_dropped_by(&recorded);
        let mut old_garbage = Vec::new();
        if let Some((name, size)) = &mut recorded.old_tail {
            *size = keep;
            if keep == 0 {
                old_garbage.push(name.clone());
                recorded.old_tail = None;
            }
        }
        // The pieces hold the whole tail, except an old one stored whole in
        // the bucket: that is stored again, as a piece, at the next commit.
        let stored = if recorded.old_tail.is_some() {
            0
        } else {
            buf.len()
        };
        Ok(Box::new(S3BlobWriter {
            store: self.clone(),
            key: key.to_string(),
            working: recorded.clone(),
            recorded,
            buf,
            stored,
            committed: offset,
            garbage,
            old_garbage,
            created_upload: false,
            finished: false,
            broken: false,
            reserved,
            legacy: state.old_tail.is_some(),
        }))
    }

    fn location(&self, key: &str) -> Option<BlobLocation> {
        check_key(key).ok()?;
        Some(BlobLocation::S3 {
            bucket: self.bucket.clone(),
            key: self.object(key).to_string(),
        })
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
        if state.old_tail.is_some() || state == State::default() {
            // (Without a state, this may be an orphan of Ferry 0.1.)
            self.delete_old_tails(key).await?;
        }
        self.pieces.delete_blob_pieces(key).await
    }

    fn keys(&self) -> KeyBatches {
        // Finished blobs are objects named by their key; unfinished ones
        // have pieces in the tail store (or, from Ferry 0.1, a folder of
        // tails, `<key>.tail/`). (A multipart upload whose tail is empty has
        // neither: the bucket's lifecycle rule for incomplete multipart
        // uploads clears those a crash abandons.) The bucket is listed a
        // page at a time, and the tail store a batch at a time.
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let listed = self.store.list(prefix.as_ref());
        // The listing is in order, so a key's object and its old folder of
        // tails come one after the other: the second is left out.
        let mut last = None;
        let objects = listed
            .map_err(|e| other("listing the bucket", e))
            .try_filter_map(move |meta| {
                let key = key_named_by(&meta.location, prefix.as_ref())
                    .filter(|key| last.as_ref() != Some(key))
                    .inspect(|key| last = Some(key.clone()));
                futures_util::future::ready(Ok(key))
            })
            .chunks(KEY_BATCH)
            .map(|batch| batch.into_iter().collect());
        let pieces = self.pieces.clone();
        let with_pieces = futures_util::stream::try_unfold(String::new(), move |after| {
            let pieces = pieces.clone();
            async move {
                let batch = pieces.keys_with_pieces(&after, KEY_BATCH as u32).await?;
                Ok::<_, io::Error>(batch.last().cloned().map(|last| (batch, last)))
            }
        });
        Box::pin(objects.chain(with_pieces))
    }
}

/// The key a listed object belongs to, when it is one Ferry makes: its
/// first name under the prefix, less `.tail`. Other objects are not its
/// own.
fn key_named_by(location: &ObjectPath, prefix: Option<&ObjectPath>) -> Option<String> {
    let first = match prefix {
        Some(prefix) => location.prefix_match(prefix)?.next()?,
        None => location.parts().next()?,
    };
    let name = first.as_ref();
    let key = name.strip_suffix(".tail").unwrap_or(name);
    crate::core::UploadId::parse(key).map(|_| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::rope::SMALL_CHUNK;
    use super::*;
    use bytes::Bytes;

    /// A listed object counts as its key's when it is the key's object or
    /// in its old folder of tails, under the prefix; nothing else does.
    #[test]
    fn listed_objects_name_their_keys() {
        let key = crate::core::UploadId::random().to_string();
        let named = |path: &str, prefix: Option<&str>| {
            let prefix = prefix.map(ObjectPath::from);
            key_named_by(&ObjectPath::from(path), prefix.as_ref())
        };
        for prefix in [None, Some("ferry/prod")] {
            let at = |rest: &str| match prefix {
                Some(p) => format!("{p}/{rest}"),
                None => rest.to_string(),
            };
            assert_eq!(named(&at(&key), prefix), Some(key.clone()));
            assert_eq!(
                named(&at(&format!("{key}.tail/p1")), prefix),
                Some(key.clone())
            );
            assert_eq!(named(&at("notes.txt"), prefix), None);
            assert_eq!(named(&at(&format!("{key}x")), prefix), None);
        }
        assert_eq!(
            named(&format!("ferry/production/{key}"), Some("ferry/prod")),
            None
        );
        assert_eq!(named(&format!("other/{key}"), Some("ferry/prod")), None);
    }

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
            pieces: vec![("a".into(), 2, 5), ("b".into(), 0, 4)],
            old_tail: None,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(State::parse(Some(&text)).unwrap(), s);
        assert_eq!(s.parts_len(), 16);
        assert_eq!(s.len(), 23);
        assert_eq!(State::parse(None).unwrap().len(), 0);
        assert!(State::parse(Some("{")).is_err());
        assert!(State::parse(Some(r#"{"s":[["a",5,2]]}"#)).is_err());
        // The state Ferry 0.1 recorded, with its tail object.
        let old = State::parse(Some(r#"{"u":"u1","p":[["e1",8]],"t":["t",3]}"#)).unwrap();
        assert_eq!(old.old_tail, Some(("t".into(), 3)));
        assert_eq!(old.len(), 11);
    }

    #[test]
    fn parts_and_truncation_take_bytes_off_the_pieces() {
        let mut s = State {
            pieces: vec![("a".into(), 0, 4), ("b".into(), 0, 3), ("c".into(), 1, 6)],
            ..State::default()
        };
        s.consume_pieces(5);
        assert_eq!(s.pieces, vec![("b".into(), 1, 3), ("c".into(), 1, 6)]);
        let mut t = s.clone();
        t.truncate_pieces(4);
        assert_eq!(t.pieces, vec![("b".into(), 1, 3), ("c".into(), 1, 3)]);
        t.truncate_pieces(0);
        assert!(t.pieces.is_empty());
        s.consume_pieces(100);
        assert!(s.pieces.is_empty());
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
        // A clone's take leaves the rope whole.
        assert_eq!(contents(&mut rope.clone().take(100_004)), &data[..100_004]);
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
