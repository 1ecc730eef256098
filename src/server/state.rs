//! The one application state, passed explicitly to every handler and server
//! function (no globals). `bootstrap::state` builds it.

use super::config::Config;
use super::limits::{Limits, RateLimit};
use super::metrics::Metrics;
use crate::core::UploadService;
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
    pub rate_limit: Option<RateLimit>,
    /// What clients hold (streams, sockets) and try (sign-ins).
    pub limits: Arc<Limits>,
    /// The key that signs session cookies, the same on every instance.
    pub session_key: Arc<String>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// A request as hooks see it (`hooks::caller`: only the forwarded
    /// headers, without Ferry's own secrets); `None` when no hook is called.
    pub fn hook_caller(
        &self,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &axum::http::HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> Option<crate::core::Caller> {
        let token = self.config.access_token.as_ref().map(|t| t.expose());
        super::hooks::caller(&self.config.hooks, token, method, uri, headers, extensions)
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
