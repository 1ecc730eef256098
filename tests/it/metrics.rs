#![cfg(feature = "ssr")]
//! `/metrics`, read with a real Prometheus text-format parser
//! (`prometheus-parse`): counters move as uploads run, the endpoint is not
//! behind the uploader's token, and `--metrics-addr` moves it off the main
//! address.

use crate::common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use prometheus_parse::{Scrape, Value};

fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("a valid exposition")
}

/// The value of the sample `name` whose labels include all of `labels`
/// (0 when there is none).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn metrics_of(app: &TestApp) -> Scrape {
    let a = app.call("GET", "/metrics", &[], Body::empty()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    scrape(std::str::from_utf8(&a.body).unwrap())
}

#[tokio::test]
async fn counters_move_as_uploads_run() {
    let app = TestApp::with(|c| {
        c.max_bytes_per_owner = ferry::server::config::Share::Bytes(1 << 20);
        c.access_token = Some(ferry::server::config::Secret::new("s3cret"));
    })
    .await;
    let auth = ("authorization", "Bearer s3cret");
    let before = metrics_of(&app).await;
    assert_eq!(
        value(&before, "ferry_uploads_total", &[("event", "created")]),
        0.0
    );

    // A tus upload, finished.
    let path = app.create(3000, &[auth]).await;
    let a = app.patch(&path, 0, bytes(3000, 1), &[auth]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    // An IETF upload, finished in its creation.
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                ("upload-draft-interop-version", "8"),
                ("upload-complete", "?1"),
                ("content-length", "500"),
                auth,
            ],
            bytes(500, 2),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    // One refused for the owner's quota, one deleted.
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "2000000"), auth],
            Body::empty(),
        )
        .await;
    assert_eq!(a.code(), "quota_exceeded");
    let gone = app.create(10, &[auth]).await;
    let a = app.call("DELETE", &gone, &[TUS, auth], Body::empty()).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);

    let after = metrics_of(&app).await;
    assert_eq!(
        value(&after, "ferry_uploads_total", &[("event", "created")]),
        3.0
    );
    assert_eq!(
        value(&after, "ferry_uploads_total", &[("event", "completed")]),
        2.0
    );
    assert_eq!(
        value(&after, "ferry_uploads_total", &[("event", "deleted")]),
        1.0
    );
    assert_eq!(
        value(&after, "ferry_upload_stored_bytes_total", &[]),
        3500.0
    );
    assert_eq!(
        value(
            &after,
            "ferry_refusals_total",
            &[("code", "quota_exceeded")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "ferry_http_requests_total",
            &[
                ("route", "/files/:id"),
                ("method", "PATCH"),
                ("status", "204")
            ]
        ),
        1.0,
        "requests are counted by route pattern, not path"
    );
    assert!(
        value(
            &after,
            "ferry_http_request_duration_seconds",
            &[("route", "/files/"), ("method", "POST")]
        ) >= 4.0
    );
    assert!(
        value(
            &after,
            "ferry_storage_duration_seconds_count",
            &[("op", "store_bytes")]
        ) >= 2.0
    );
    assert!(
        value(
            &after,
            "ferry_storage_duration_seconds_count",
            &[("op", "record_update")]
        ) >= 2.0
    );
    assert_eq!(value(&after, "ferry_uploads_in_progress", &[]), 0.0);
    assert!(
        after.samples.iter().all(|s| !s
            .labels
            .values()
            .any(|v| v.contains(gone.trim_start_matches("/files/")))),
        "no upload ID ever becomes a label"
    );
}

#[test]
fn metrics_can_live_on_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server =
        common::server::Server::start(&dir.path().join("data"), &["--metrics-addr", &metrics_addr]);
    server.upload_whole(1 << 20, 3);
    let client = common::http();
    let main = client.get(server.url("/metrics")).send().unwrap();
    assert_eq!(main.status(), 404, "not on the main address");
    let url = format!("http://{metrics_addr}/metrics");
    let mut text = String::new();
    for _ in 0..50 {
        if let Ok(r) = client.get(&url).send() {
            text = r.text().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let s = scrape(&text);
    assert!(
        value(&s, "ferry_received_bytes_total", &[]) >= (1 << 20) as f64,
        "{text}"
    );
    assert!(value(&s, "ferry_sent_bytes_total", &[]) > 0.0);
    assert_eq!(
        value(&s, "ferry_uploads_total", &[("event", "completed")]),
        1.0
    );
    assert!(value(&s, "ferry_open_connections", &[]) >= 0.0);
}

/// The metrics of the distributed path and of hooks, read by the parser:
/// S3 part latencies, hook calls by point and outcome, and deliveries.
#[test]
fn s3_parts_and_hooks_are_measured() {
    let s3 = common::services::S3::start();
    std::env::set_var("AWS_ACCESS_KEY_ID", common::services::S3_ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", common::services::S3_SECRET_KEY);
    let dir = tempfile::tempdir().unwrap();
    // A hook program that allows everything (and answers nothing).
    let hook = common::program(dir.path(), "hook.sh", "#!/bin/sh\ncat > /dev/null\n");
    let storage = s3.bucket("measured");
    let server = common::server::Server::start(
        &dir.path().join("data"),
        &[
            "--storage",
            &storage,
            "--s3-part-size",
            "5MiB",
            "--hooks-command",
            hook.to_str().unwrap(),
        ],
    );
    server.upload_whole(11 << 20, 4);
    let client = common::http();
    let read = || {
        scrape(
            &client
                .get(server.url("/metrics"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
        )
    };
    let start = std::time::Instant::now();
    let mut s = read();
    // Post-hooks are delivered a moment later.
    while value(&s, "ferry_hook_calls_total", &[("point", "post-finish")]) < 1.0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "post-finish delivered"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        s = read();
    }
    assert!(value(&s, "ferry_storage_duration_seconds", &[("op", "s3_part")]) >= 2.0);
    for point in ["pre-create", "post-create", "pre-finish", "post-finish"] {
        assert_eq!(
            value(
                &s,
                "ferry_hook_calls_total",
                &[("point", point), ("outcome", "answered")]
            ),
            1.0,
            "{point}"
        );
        assert_eq!(
            value(&s, "ferry_hook_duration_seconds", &[("point", point)]),
            1.0
        );
    }
    assert_eq!(
        value(&s, "ferry_hook_calls_total", &[("outcome", "failed")]),
        0.0
    );
    assert_eq!(value(&s, "ferry_hook_deliveries_dead", &[]), 0.0);
}
