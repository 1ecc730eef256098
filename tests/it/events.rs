#![cfg(feature = "ssr")]
//! The event log through `router()`: Server-Sent Events with replay after
//! `Last-Event-ID`, long polling, owner scoping and progress coalescing.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ALICE: (&str, &str) = ("authorization", "Bearer AAAAAAAAAAAAAAAAAAAAAQ");
const BOB: (&str, &str) = ("authorization", "Bearer AAAAAAAAAAAAAAAAAAAAAg");

/// One parsed Server-Sent Event.
#[derive(Debug, Default, Clone)]
struct Sse {
    id: Option<String>,
    event: Option<String>,
    data: String,
    retry: Option<String>,
}

/// Reads SSE messages from a streaming body until `want` with data arrived.
async fn read_events(body: &mut Body, want: usize, limit: Duration) -> (Vec<Sse>, Vec<Sse>) {
    let mut buf = String::new();
    let mut with_data = Vec::new();
    let mut control = Vec::new();
    let deadline = Instant::now() + limit;
    while with_data.len() < want && Instant::now() < deadline {
        let frame = tokio::time::timeout(Duration::from_millis(200), body.frame()).await;
        let Ok(Some(Ok(frame))) = frame else { continue };
        if let Some(data) = frame.data_ref() {
            buf.push_str(std::str::from_utf8(data).unwrap());
        }
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut e = Sse::default();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    e.id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("event:") {
                    e.event = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    e.data.push_str(v.trim());
                } else if let Some(v) = line.strip_prefix("retry:") {
                    e.retry = Some(v.trim().to_string());
                }
            }
            if e.data.is_empty() {
                control.push(e);
            } else {
                with_data.push(e);
            }
        }
    }
    (with_data, control)
}

async fn open_stream(
    app: &TestApp,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Body) {
    let mut req = Request::get("/events");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, body)
}

#[tokio::test]
async fn sse_replays_after_last_event_id_without_loss_or_repeats() {
    let app = TestApp::new().await;
    let (status, headers, mut body) = open_stream(&app, &[ALICE, ("last-event-id", "0")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-cache"));

    let first = app.create(10, &[ALICE]).await;
    app.patch(&first, 0, bytes(10, 1), &[]).await;
    let (seen, control) = read_events(&mut body, 2, Duration::from_secs(10)).await;
    assert!(
        control.iter().any(|c| c.retry.is_some()),
        "a retry hint comes first"
    );
    let kinds: Vec<_> = seen.iter().map(|e| e.event.clone().unwrap()).collect();
    assert_eq!(kinds, ["upload.created", "upload.completed"]);
    assert!(seen.iter().all(|e| e.id.is_some()), "every event has an id");
    let last_id = seen.last().unwrap().id.clone().unwrap();
    drop(body); // the connection drops

    // Meanwhile, more happens.
    let second = app.create(20, &[ALICE]).await;
    app.call("DELETE", &first, &[TUS], Body::empty()).await;

    let (_, _, mut body) = open_stream(&app, &[ALICE, ("last-event-id", &last_id)]).await;
    let (replayed, _) = read_events(&mut body, 2, Duration::from_secs(10)).await;
    let kinds: Vec<_> = replayed.iter().map(|e| e.event.clone().unwrap()).collect();
    assert_eq!(
        kinds,
        ["upload.created", "upload.deleted"],
        "exactly what was missed"
    );
    let ids: Vec<u64> = replayed
        .iter()
        .map(|e| e.id.clone().unwrap().parse().unwrap())
        .collect();
    assert!(ids[0] > last_id.parse::<u64>().unwrap() && ids[1] > ids[0]);
    let created: serde_json::Value = serde_json::from_str(&replayed[0].data).unwrap();
    assert_eq!(created["upload"]["url"], second.as_str());
    assert_eq!(created["type"], "upload.created");
}

#[tokio::test]
async fn events_are_scoped_to_their_owner() {
    let app = TestApp::new().await;
    let (_, _, mut bob_stream) = open_stream(&app, &[BOB, ("last-event-id", "0")]).await;
    app.create(10, &[ALICE]).await;
    let mine = app.create(10, &[BOB]).await;
    let (seen, _) = read_events(&mut bob_stream, 1, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 1);
    let data: serde_json::Value = serde_json::from_str(&seen[0].data).unwrap();
    assert_eq!(
        data["upload"]["url"],
        mine.as_str(),
        "Bob sees only his upload"
    );
    // Nobody-in-particular sees nothing at all.
    let page = app
        .call("GET", "/events/poll?after=0&timeout=0", &[], Body::empty())
        .await;
    assert_eq!(page.json()["events"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn long_poll_answers_at_once_waits_and_wakes() {
    let app = TestApp::new().await;
    let now = app
        .call("GET", "/events/poll", &[ALICE], Body::empty())
        .await;
    assert_eq!(now.status, StatusCode::OK);
    let cursor = now.json()["cursor"].as_u64().unwrap();

    // Nothing new: an empty answer after the timeout, with the same cursor.
    let started = Instant::now();
    let empty = app
        .call(
            "GET",
            &format!("/events/poll?after={cursor}&timeout=1"),
            &[ALICE],
            Body::empty(),
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    assert_eq!(empty.json()["events"].as_array().unwrap().len(), 0);
    assert_eq!(empty.json()["cursor"].as_u64().unwrap(), cursor);

    // A waiting poll wakes when an event arrives.
    let router = app.router.clone();
    let waiting = tokio::spawn(async move {
        let req = Request::get(format!("/events/poll?after={cursor}&timeout=30"))
            .header(ALICE.0, ALICE.1)
            .body(Body::empty())
            .unwrap();
        let started = Instant::now();
        let resp = router.oneshot(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (
            started.elapsed(),
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = app.create(5, &[ALICE]).await;
    let (waited, page) = waiting.await.unwrap();
    assert!(
        waited < Duration::from_secs(20),
        "woken by the event, not the timeout"
    );
    let events = page["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "upload.created");
    assert_eq!(events[0]["upload"]["url"], path.as_str());
    assert_eq!(page["cursor"], events.last().unwrap()["id"]);

    // Events already there are answered at once.
    let at_once = app
        .call(
            "GET",
            &format!("/events/poll?after={cursor}&timeout=30"),
            &[ALICE],
            Body::empty(),
        )
        .await;
    assert!(!at_once.json()["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn progress_events_are_coalesced() {
    let app = TestApp::with(|c| c.progress_every = Duration::from_secs(3600)).await;
    let path = app.create(100, &[ALICE]).await;
    for i in 0..9u64 {
        app.patch(&path, i * 10, bytes(10, i as u8), &[]).await;
    }
    app.patch(&path, 90, bytes(10, 9), &[]).await;
    let page = app
        .call(
            "GET",
            "/events/poll?after=0&timeout=0",
            &[ALICE],
            Body::empty(),
        )
        .await;
    let kinds: Vec<String> = page.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["upload.created", "upload.progress", "upload.completed"]
    );
}
