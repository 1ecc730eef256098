//! A service over real embedded seams in a temporary folder (files on disk,
//! SQLite, in-process locks), for the unit tests of each operation.

use super::{BodyStream, ServiceConfig, UploadService};
use crate::core::record::{Concat, Owner, UploadRecord};
use crate::core::{CreateRequest, Events};
use crate::protocol::metadata::Metadata;
use crate::store::{FsBlobStore, LocalLocker, SqlStore};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// A service and the folder it keeps its data in (removed when dropped).
pub struct Fixture {
    pub service: UploadService,
    pub dir: tempfile::TempDir,
}

/// A service with `configure` applied to the defaults.
pub async fn fixture(configure: impl FnOnce(&mut ServiceConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServiceConfig::default();
    configure(&mut config);
    let blobs = Arc::new(FsBlobStore::new(dir.path(), true).unwrap());
    let meta = Arc::new(
        SqlStore::open_sqlite(&dir.path().join("ferry.db"), true)
            .await
            .unwrap(),
    );
    let events = Events::new(meta.clone(), Duration::ZERO, Duration::from_secs(3600))
        .await
        .unwrap();
    let service = UploadService::new(blobs, meta, Arc::new(LocalLocker::new()), events, config);
    // As a server does on start: this one has nothing to check.
    service.reconcile_all().await.unwrap();
    Fixture { service, dir }
}

/// The same service as a new run of the process would make it: the
/// uploads written so far were left by an earlier run, and the start-up
/// check has not gone through them yet.
pub async fn restarted(f: &Fixture) -> UploadService {
    // Records written in the same millisecond would count as this run's.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut service = f.service.clone();
    // A store opened again on the same boot: the bytes a request wrote
    // past its last commit may be taken in.
    service.blobs = Arc::new(FsBlobStore::new(f.dir.path(), true).unwrap());
    service.start_up = Arc::new(super::StartUp::new());
    service
}

/// The owner the tests upload as.
pub fn owner() -> Owner {
    Owner::token("unit-test")
}

/// A request to create an upload of `length` bytes named `name`.
pub fn new_upload(length: Option<u64>, name: &str) -> CreateRequest {
    CreateRequest {
        owner: owner(),
        length,
        metadata: Metadata::from_pairs([("filename", name)]),
        concat: Concat::None,
        caller: None,
        idempotency_key: None,
    }
}

/// A body that sends `data` in chunks of `chunk` bytes.
pub fn body(data: &[u8], chunk: usize) -> BodyStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// A body that sends `data` and then fails, as a dropped connection does.
pub fn broken_body(data: &[u8]) -> BodyStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the client went away",
        )),
    ];
    Box::pin(futures_util::stream::iter(items))
}

/// Every byte stored for a finished or unfinished upload.
pub async fn stored(service: &UploadService, record: &UploadRecord) -> Vec<u8> {
    use futures_util::TryStreamExt;
    let len = service
        .blobs
        .len(&record.blob_key, record.blob_state.as_deref())
        .await
        .unwrap()
        .unwrap_or(0);
    let chunks: Vec<Bytes> = service
        .blobs
        .read(&record.blob_key, 0..len)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}
