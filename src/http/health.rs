//! `GET /healthz`: a liveness answer for load balancers and people.

use axum::Json;
use serde_json::{json, Value};

/// Answers `{"status":"ok","version":"..."}` with 200.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "version": crate::VERSION }))
}
