//! `/metrics` and the middleware that counts requests. The counting is by
//! route pattern (`/files/:id`), never by path, so the number of series
//! stays bounded whatever clients ask for. (Patterns are written with
//! `:name`, not axum's `{name}`: some Prometheus parsers stumble on braces
//! inside label values.)

use crate::server::metrics::Metrics;
use crate::server::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// The OpenMetrics content type Prometheus asks for.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    render(&state.metrics)
}

/// The metrics as an answer.
pub fn render(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render()).into_response()
}

/// Middleware: counts every routed request and times it.
pub async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().replace('{', ":").replace('}', ""))
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    state.metrics.request(
        &route,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// Serves only `/metrics` on its own listener (`--metrics-addr`).
pub async fn serve_alone(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { render(&metrics) }
        }),
    );
    axum::serve(listener, app).await
}
