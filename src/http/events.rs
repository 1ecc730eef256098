//! Live events: `GET /events` (Server-Sent Events, with replay after
//! `Last-Event-ID`) and `GET /events/poll` (long polling over the same log),
//! both scoped to the caller's uploads.

use crate::model::{EventPage, LiveEvent};
use crate::state::AppState;
use crate::upload::Owner;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

/// How long a waiting listener sleeps before looking again for events that
/// other instances stored.
const POLL_STORE: Duration = Duration::from_secs(1);
/// The longest a long poll waits.
pub const MAX_POLL_TIMEOUT: u64 = 60;
const BATCH: u32 = 200;

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    after: Option<u64>,
}

fn to_sse(e: &LiveEvent) -> Event {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(e.id.to_string())
        .event(e.kind.clone())
        .data(data)
}

/// `GET /events`: every event of the caller's uploads as it happens. A
/// reconnecting client sends `Last-Event-ID` (or `?after=`) and first gets
/// everything it missed.
pub async fn stream(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let events = state.uploads.events().clone();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.after);
    let cursor = match resume {
        Some(id) => id,
        None => events.latest().await,
    };
    struct S {
        events: crate::upload::Events,
        owner: Owner,
        cursor: u64,
        queue: VecDeque<LiveEvent>,
        greeted: bool,
    }
    let init = S {
        events,
        owner,
        cursor,
        queue: VecDeque::new(),
        greeted: false,
    };
    let body = futures_util::stream::unfold(init, |mut s| async move {
        if !s.greeted {
            s.greeted = true;
            // How long a browser waits before reconnecting.
            let hello = Event::default()
                .retry(Duration::from_secs(2))
                .comment("ferry events");
            return Some((Ok::<_, Infallible>(hello), s));
        }
        loop {
            if let Some(e) = s.queue.pop_front() {
                return Some((Ok(to_sse(&e)), s));
            }
            let seen = s.events.seen();
            match s.events.after(&s.owner, s.cursor, BATCH).await {
                Ok(list) if !list.is_empty() => {
                    s.cursor = list.last().map(|e| e.id).unwrap_or(s.cursor);
                    s.queue.extend(list);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reading events: {e}"),
            }
            s.events.wait(seen, POLL_STORE).await;
        }
    });
    let mut resp = Sse::new(body)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

#[derive(serde::Deserialize)]
pub struct PollQuery {
    after: Option<u64>,
    timeout: Option<u64>,
}

/// `GET /events/poll?after=ID&timeout=SECONDS`: the caller's events after
/// ID at once if there are any, otherwise waits up to the timeout (at most
/// 60 s) and answers an empty list. Without `after`, answers at once with
/// the current cursor.
pub async fn poll(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Query(q): Query<PollQuery>,
) -> Response {
    let events = state.uploads.events();
    let Some(after) = q.after else {
        let cursor = events.latest().await;
        return no_store(Json(EventPage {
            events: Vec::new(),
            cursor,
        }));
    };
    let timeout = Duration::from_secs(q.timeout.unwrap_or(25).min(MAX_POLL_TIMEOUT));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = events.seen();
        match events.after(&owner, after, BATCH).await {
            Ok(list) if !list.is_empty() => {
                let cursor = list.last().map(|e| e.id).unwrap_or(after);
                return no_store(Json(EventPage {
                    events: list,
                    cursor,
                }));
            }
            Ok(_) => {}
            Err(e) => return super::error::ApiError(e).into_response(),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return no_store(Json(EventPage {
                events: Vec::new(),
                cursor: after,
            }));
        }
        events.wait(seen, POLL_STORE.min(deadline - now)).await;
    }
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
