//! The one place that wires Ferry together: from a `Config` to the stores it
//! names (disk or S3, SQLite or PostgreSQL), the locker and event log that
//! go with them, the `UploadService` over them, and the `AppState` that
//! handlers receive. Start-up repair (`reconcile_all`) starts here, and runs
//! beside the requests.

use super::config::{Config, Storage};
use super::limits::{Limits, RateLimit};
use super::metrics::Metrics;
use super::state::AppState;
use crate::core::error::{Error, ErrorCode};
use crate::core::{BlobStore, Events, FsyncPolicy, Locker, UploadService};
use crate::store::blob::s3::MEMORY_WAIT;
use crate::store::cluster::spawn_listener;
use crate::store::{Backend, FsBlobStore, LocalLocker, PgLocker, S3BlobStore, SqlStore};
use leptos::config::LeptosOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds the state for a configuration: creates the data folder, opens
/// the stores (migrating the database) and starts reconciling every
/// unfinished upload's record with its stored bytes. With PostgreSQL, locks are taken
/// in the database and this instance listens to the others.
pub async fn state(config: Config) -> Result<AppState, Error> {
    if config.cors_origin.len() > 1 && config.cors_origin.iter().any(|o| o == "*") {
        return Err(Error::new(
            ErrorCode::Internal,
            "--cors-origin: give either * (any page, without the browser's credentials) or a list of origins, not both",
        ));
    }
    let metrics = Arc::new(Metrics::new());
    let (uploads, session_key) = uploads(&config, metrics.clone()).await?;
    let uploads = uploads.observed_by(metrics.clone());
    let leptos_options = LeptosOptions::builder()
        .output_name("ferry")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .env(if config.leptos_dev() {
            leptos::config::Env::DEV
        } else {
            leptos::config::Env::PROD
        })
        .reload_port(config.leptos_reload_port)
        .build();
    Ok(AppState {
        rate_limit: RateLimit::new(config.rate_limit, config.rate_burst),
        limits: Arc::new(Limits::new(&config)),
        session_key: Arc::new(session_key),
        metrics,
        config: Arc::new(config),
        leptos_options,
        started: Instant::now(),
        uploads,
    })
}

/// The service over the stores the configuration names, repaired after
/// whatever stopped the last run, and the key that signs session cookies
/// (kept in the database, so every instance shares it).
async fn uploads(config: &Config, metrics: Arc<Metrics>) -> Result<(UploadService, String), Error> {
    let io = |e: std::io::Error| Error::storage("preparing the data folder", e);
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .map_err(io)?;
    let mut service_config = config.service();
    let durable = service_config.fsync == FsyncPolicy::Request;
    let bad_config = |m: String| Error::new(ErrorCode::Internal, m);
    let url = config.database_url();
    let meta = Arc::new(SqlStore::open(&url, durable).await?);
    let blobs: Arc<dyn BlobStore> = match config.storage().map_err(bad_config)? {
        Storage::Folder(dir) => Arc::new(FsBlobStore::new(&dir, durable).map_err(io)?),
        Storage::S3(location) => {
            let part_size = usize::try_from(config.s3_part_size).unwrap_or(usize::MAX);
            // Tails are kept in the records' database.
            let store = S3BlobStore::new(&location, part_size, meta.clone())
                .map_err(|e| bad_config(format!("--storage: {e}")))?
                .with_memory(config.s3_memory, MEMORY_WAIT)
                .observed_by(metrics.clone());
            store.check().await.map_err(|e| {
                bad_config(format!("cannot reach the bucket {}: {e}", location.bucket))
            })?;
            let largest = store.largest_blob();
            if service_config.max_size > largest {
                tracing::warn!(
                    "uploads are limited to {} with --s3-part-size {} (S3 takes 10,000 parts); \
                     a larger part size allows more",
                    bytesize::ByteSize(largest),
                    bytesize::ByteSize(config.s3_part_size),
                );
                service_config.max_size = largest;
            }
            Arc::new(store)
        }
    };
    // Quotas and the reserve may be shares of the data disk.
    let disk = blobs.space().await.map(|s| s.total);
    service_config.max_bytes_per_owner = config.max_bytes_per_owner.bytes(disk);
    service_config.min_free_space = config.min_free_space.bytes(disk);
    let session_key = meta.secret("session_key").await?;
    let mut events =
        Events::new(meta.clone(), config.progress_every, config.events_retention).await?;
    if meta.backend() == Backend::Postgres {
        // A safety net under NOTIFY, which a lost connection can miss.
        events = events.with_polling(Duration::from_secs(30));
    }
    let locks: Arc<dyn Locker> = match meta.backend() {
        Backend::Sqlite => Arc::new(LocalLocker::new()),
        Backend::Postgres => {
            let locker = PgLocker::connect(&url).await?;
            spawn_listener(url, locker.clone(), events.clone());
            Arc::new(locker)
        }
    };
    let hooks = super::hooks::build(&config.hooks, meta.clone(), metrics)
        .map_err(|e| Error::new(ErrorCode::Internal, e))?;
    let uploads = UploadService::new(blobs, meta, locks, events, service_config).with_hooks(hooks);
    uploads.check_in_background();
    Ok((uploads, session_key))
}
