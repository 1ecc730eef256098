//! Live events: `GET /events` (Server-Sent Events, with replay after
//! `Last-Event-ID`) and `GET /events/poll` (long polling over the same log),
//! both scoped to the caller's uploads. A listener waits on its owner's
//! bell only, and holds one of a bounded number of places per owner and
//! per client address.

use super::error::ApiError;
use super::guard::ClientIp;
use crate::core::error::{Error, ErrorCode};
use crate::core::events::Subscription;
use crate::core::Owner;
use crate::protocol::events::{EventPage, LiveEvent};
use crate::server::limits::Place;
use crate::server::state::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

/// The longest a stream waits on its bell before it looks at the log again
/// (a safety net; bells wake it at once).
const IDLE_LOOK: Duration = Duration::from_secs(300);
/// The longest a long poll waits.
pub const MAX_POLL_TIMEOUT: u64 = 60;
/// Most events read (and held for a client) at once.
const BATCH: u32 = 50;

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    after: Option<u64>,
}

fn to_sse(e: &LiveEvent) -> Event {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(e.id.to_string())
        .event(e.kind.as_str())
        .data(data)
}

/// A place for one more listener of this owner from this address, or the
/// refusal to answer.
fn take_places(state: &AppState, owner: &Owner, peer: ClientIp) -> Result<Vec<Place>, ApiError> {
    let refuse = |why: &str| ApiError(Error::new(ErrorCode::TooManyStreams, why.to_string()));
    let mut places = Vec::with_capacity(2);
    match state.limits.streams_by_address.take(peer.0) {
        Some(p) => places.push(p),
        None => {
            return Err(refuse(
                "Too many event streams are open from this address; close some first.",
            ))
        }
    }
    if !owner.is_anonymous() {
        match state
            .limits
            .streams_by_owner
            .take(owner.as_str().to_string())
        {
            Some(p) => places.push(p),
            None => return Err(refuse(
                "Too many event streams are open for your uploads; close some (other tabs) first.",
            )),
        }
    }
    Ok(places)
}

/// A request to listen carries no body: one that announces a body would
/// hold its connection for as long as it listens with bytes unread.
fn refuse_a_body(headers: &HeaderMap) -> Option<Response> {
    let announced = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    announced.then(|| {
        ApiError(super::headers::header_error(
            "Content-Length",
            "listening for events takes no request body",
        ))
        .into_response()
    })
}

/// `GET /events`: every event of the caller's uploads as it happens. A
/// reconnecting client sends `Last-Event-ID` (or `?after=`) and first gets
/// everything it missed.
pub async fn stream(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    peer: ClientIp,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    if let Some(refused) = refuse_a_body(&headers) {
        return refused;
    }
    let places = match take_places(&state, &owner, peer) {
        Ok(p) => p,
        Err(refused) => return refused.into_response(),
    };
    let events = state.uploads.events().clone();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.after);
    let cursor = match resume {
        Some(id) => id,
        None => match events.latest_of(&owner).await {
            Ok(id) => id,
            Err(e) => return ApiError(e).into_response(),
        },
    };
    struct S {
        events: crate::core::Events,
        bell: Subscription,
        owner: Owner,
        cursor: u64,
        queue: VecDeque<LiveEvent>,
        greeted: bool,
        _places: Vec<Place>,
    }
    let init = S {
        bell: events.subscribe(&owner),
        events,
        owner,
        cursor,
        queue: VecDeque::new(),
        greeted: false,
        _places: places,
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
            s.bell.mark();
            match s.events.after(&s.owner, s.cursor, BATCH).await {
                Ok(list) if !list.is_empty() => {
                    s.cursor = list.last().map(|e| e.id).unwrap_or(s.cursor);
                    s.queue.extend(list);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("reading events: {e}"),
            }
            s.bell.wait(IDLE_LOOK).await;
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
/// the caller's own latest event ID as the cursor.
pub async fn poll(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    peer: ClientIp,
    headers: HeaderMap,
    Query(q): Query<PollQuery>,
) -> Response {
    if let Some(refused) = refuse_a_body(&headers) {
        return refused;
    }
    let events = state.uploads.events();
    let Some(after) = q.after else {
        return match events.latest_of(&owner).await {
            Ok(cursor) => no_store(Json(EventPage {
                events: Vec::new(),
                cursor,
            })),
            Err(e) => ApiError(e).into_response(),
        };
    };
    let _places = match take_places(&state, &owner, peer) {
        Ok(p) => p,
        Err(refused) => return refused.into_response(),
    };
    let timeout = Duration::from_secs(q.timeout.unwrap_or(25).min(MAX_POLL_TIMEOUT));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut bell = events.subscribe(&owner);
    loop {
        bell.mark();
        match events.after(&owner, after, BATCH).await {
            Ok(list) if !list.is_empty() => {
                let cursor = list.last().map(|e| e.id).unwrap_or(after);
                return no_store(Json(EventPage {
                    events: list,
                    cursor,
                }));
            }
            Ok(_) => {}
            Err(e) => return ApiError(e).into_response(),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return no_store(Json(EventPage {
                events: Vec::new(),
                cursor: after,
            }));
        }
        bell.wait(deadline - now).await;
    }
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
