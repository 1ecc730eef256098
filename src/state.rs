//! The one application state, passed explicitly to every handler and server
//! function (no globals).

use crate::config::Config;
use crate::upload::{
    Events, FsBlobStore, FsyncPolicy, LocalLocker, SqliteMetaStore, UploadService,
};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;
use std::time::Instant;

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
}

impl AppState {
    /// Builds the state for a configuration: creates the data folder, opens
    /// the stores (migrating the database) and reconciles every unfinished
    /// upload's record with its stored bytes.
    pub async fn new(config: Config) -> Result<Self, crate::error::Error> {
        let io = |e: std::io::Error| crate::error::Error::storage("preparing the data folder", e);
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .map_err(io)?;
        let service_config = config.service();
        let durable = service_config.fsync == FsyncPolicy::Request;
        let blobs = FsBlobStore::new(&config.data_dir, durable).map_err(io)?;
        let meta =
            Arc::new(SqliteMetaStore::open(&config.data_dir.join("ferry.db"), durable).await?);
        let events =
            Events::new(meta.clone(), config.progress_every, config.events_retention).await?;
        let uploads = UploadService::new(
            Arc::new(blobs),
            meta,
            Arc::new(LocalLocker::new()),
            events,
            service_config,
        );
        let fixed = uploads.reconcile_all().await?;
        if fixed > 0 {
            tracing::warn!("{fixed} unfinished uploads had fewer stored bytes than recorded; they resume from what is stored");
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
