//! `/admin`: what operators see and do that uploaders must not. Only a
//! request with `Authorization: Bearer <--access-token>` gets in (never a
//! browser session, so no other site can make a signed-in browser call
//! these); without an access token set, there is no admin.
//!
//! - `GET /admin/hooks/dead?after=SEQ&limit=N`: post-hook deliveries that
//!   failed for their whole retry window, oldest first, with why.
//! - `POST /admin/hooks/dead/{id}/retry`: sends one again.

use super::error::ApiError;
use crate::core::error::{Error, ErrorCode};
use crate::server::state::AppState;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/hooks/dead", get(dead))
        .route("/admin/hooks/dead/{id}/retry", post(retry))
        .layer(from_fn_with_state(state.clone(), operator_only))
}

async fn operator_only(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(required) = state.config.access_token.as_ref().map(|t| t.expose()) else {
        return ApiError(Error::new(
            ErrorCode::Forbidden,
            "Admin routes are open only when Ferry runs with --access-token.",
        ))
        .into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if super::session::same_secret(token.trim(), required) => next.run(req).await,
        // Guesses are slowed down like sign-in attempts.
        _ if !state
            .limits
            .may_sign_in(super::guard::client_ip(req.extensions())) =>
        {
            super::session::too_many_attempts()
        }
        _ => ApiError(Error::new(
            ErrorCode::Unauthorized,
            "Send Authorization: Bearer with Ferry's access token.",
        ))
        .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Page {
    after: Option<i64>,
    limit: Option<u32>,
}

/// Most deliveries in one answer.
const MOST: u32 = 500;

async fn dead(State(state): State<AppState>, Query(page): Query<Page>) -> Response {
    let limit = page.limit.unwrap_or(100).clamp(1, MOST);
    match state
        .uploads
        .hooks()
        .dead(page.after.unwrap_or(0), limit)
        .await
    {
        Ok(deliveries) => {
            let next = (deliveries.len() == limit as usize)
                .then(|| deliveries.last().map(|d| d.seq))
                .flatten();
            Json(serde_json::json!({ "deliveries": deliveries, "next": next })).into_response()
        }
        Err(e) => ApiError(e).into_response(),
    }
}

async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.uploads.hooks().revive(&id).await {
        Ok(true) => StatusCode::ACCEPTED.into_response(),
        Ok(false) => ApiError(Error::new(
            ErrorCode::NotFound,
            "No dead delivery has this ID.",
        ))
        .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}
