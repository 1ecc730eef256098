//! The one application state, passed explicitly to every handler and server
//! function (no globals).

use crate::config::{Config, Storage};
use crate::error::{Error, ErrorCode};
use crate::upload::pg::{spawn_listener, PgLocker};
use crate::upload::s3::S3BlobStore;
use crate::upload::{
    Backend, BlobStore, Events, FsBlobStore, FsyncPolicy, LocalLocker, Locker, SqlStore,
    UploadService,
};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a request handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Leptos' view of the site (asset folder, output name, environment).
    pub leptos_options: LeptosOptions,
    /// When this state was built, for uptime reports.
    pub started: Instant,
    /// The domain core of uploads.
    pub uploads: UploadService,
    /// The per-client rate limit, when one is set.
    pub rate_limit: Option<crate::http::guard::RateLimit>,
    /// What clients hold (streams, sockets) and try (sign-ins).
    pub limits: Arc<crate::http::limits::Limits>,
    /// The key that signs session cookies, the same on every instance.
    pub session_key: Arc<String>,
}

impl AppState {
    /// Builds the state for a configuration: creates the data folder, opens
    /// the stores (migrating the database) and reconciles every unfinished
    /// upload's record with its stored bytes. With PostgreSQL, locks are
    /// taken in the database and this instance listens to the others.
    pub async fn new(config: Config) -> Result<Self, Error> {
        let io = |e: std::io::Error| Error::storage("preparing the data folder", e);
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .map_err(io)?;
        let mut service_config = config.service();
        let durable = service_config.fsync == FsyncPolicy::Request;
        let bad_config = |m: String| Error::new(ErrorCode::Internal, m);
        let blobs: Arc<dyn BlobStore> = match config.storage().map_err(bad_config)? {
            Storage::Folder(dir) => Arc::new(FsBlobStore::new(&dir, durable).map_err(io)?),
            Storage::S3(location) => {
                let part_size = usize::try_from(config.s3_part_size).unwrap_or(usize::MAX);
                let store = S3BlobStore::new(&location, part_size)
                    .map_err(|e| bad_config(format!("--storage: {e}")))?;
                store.check().await.map_err(|e| {
                    bad_config(format!("cannot reach the bucket {}: {e}", location.bucket))
                })?;
                Arc::new(store)
            }
        };
        // Quotas and the reserve may be shares of the data disk.
        let disk = blobs.space().await.map(|s| s.total);
        service_config.max_bytes_per_owner = config.max_bytes_per_owner.bytes(disk);
        service_config.min_free_space = config.min_free_space.bytes(disk);
        let url = config.database_url();
        let meta = Arc::new(SqlStore::open(&url, durable).await?);
        let session_key = Arc::new(meta.secret("session_key").await?);
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
        let uploads = UploadService::new(blobs, meta, locks, events, service_config);
        let done = uploads.reconcile_all().await?;
        if done.fell_back > 0 {
            tracing::warn!("{} unfinished uploads had fewer stored bytes than recorded; they resume from what is stored", done.fell_back);
        }
        if done.recovered > 0 {
            tracing::info!(
                "{} unfinished uploads took in bytes written before Ferry stopped",
                done.recovered
            );
        }
        let leptos_options = LeptosOptions::builder()
            .output_name("ferry")
            .site_root(config.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(config.addr)
            .env(leptos_env())
            .reload_port(reload_port())
            .build();
        Ok(AppState {
            rate_limit: crate::http::guard::RateLimit::new(config.rate_limit, config.rate_burst),
            limits: Arc::new(crate::http::limits::Limits::new(&config)),
            session_key,
            config: Arc::new(config),
            leptos_options,
            started: Instant::now(),
            uploads,
        })
    }
}

/// `DEV` only when cargo-leptos says so (watch mode wants the live-reload
/// script); a binary started on its own is in production mode.
fn leptos_env() -> leptos::config::Env {
    match std::env::var("LEPTOS_ENV").as_deref() {
        Ok("DEV") | Ok("dev") | Ok("development") => leptos::config::Env::DEV,
        _ => leptos::config::Env::PROD,
    }
}

fn reload_port() -> u32 {
    std::env::var("LEPTOS_RELOAD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001)
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
