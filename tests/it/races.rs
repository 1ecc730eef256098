#![cfg(feature = "ssr")]
//! Races: DELETE during a PATCH, HEAD during a PATCH, a retried PATCH
//! whose first attempt did arrive, and a writer that lost its lock.
//! (Simultaneous PATCHes at one offset are in tests/it/tus.rs.)

use crate::common;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use common::*;
use std::time::Duration;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// A request whose body the test feeds by hand; answers the channel to
/// feed it and the task that ends with the response status and, for a
/// PATCH, its body, for a POST, its Location.
type Feed = mpsc::Sender<Result<Bytes, std::io::Error>>;
type Answer = tokio::task::JoinHandle<(StatusCode, String)>;

fn fed(app: &TestApp, req: axum::http::request::Builder) -> (Feed, Answer) {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let req = req
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .body(Body::from_stream(stream))
        .unwrap();
    let router = app.router.clone();
    let task = tokio::spawn(async move {
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status();
        if let Some(location) = resp.headers().get("location") {
            return (status, path_of(location.to_str().unwrap()));
        }
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    (tx, task)
}

fn slow_patch(app: &TestApp, path: &str, offset: u64) -> (Feed, Answer) {
    fed(
        app,
        Request::patch(path).header("upload-offset", offset.to_string()),
    )
}

#[tokio::test]
async fn delete_during_a_patch_wins_and_leaves_nothing() {
    let app = TestApp::new().await;
    let path = app.create(10_000_000, &[]).await;
    let (tx, patch) = slow_patch(&app, &path, 0);
    tx.send(Ok(Bytes::from(bytes(100_000, 1)))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deleted = tokio::time::timeout(
        Duration::from_secs(5),
        app.call("DELETE", &path, &[TUS], Body::empty()),
    )
    .await
    .expect("DELETE does not wait for the PATCH to end");
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let (status, body) = patch.await.unwrap();
    assert!(
        status.is_client_error(),
        "the PATCH is stopped: {status} {body}"
    );
    drop(tx);
    assert_eq!(
        app.call("HEAD", &path, &[TUS], Body::empty()).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        count_files(&app.data_dir().join("blobs")),
        0,
        "no bytes are left behind"
    );
}

#[tokio::test]
async fn head_during_a_patch_answers_at_once_with_a_durable_offset() {
    let app = TestApp::with(|c| c.checkpoint_every = 64 * 1024).await;
    let data = bytes(1_000_000, 2);
    let path = app.create(1_000_000, &[]).await;
    let (tx, patch) = slow_patch(&app, &path, 0);
    let mut sent = 0;
    let mut seen = Vec::new();
    for piece in data.chunks(100_000) {
        tx.send(Ok(Bytes::copy_from_slice(piece))).await.unwrap();
        sent += piece.len() as u64;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let h = tokio::time::timeout(
            Duration::from_secs(2),
            app.call("HEAD", &path, &[TUS], Body::empty()),
        )
        .await
        .expect("HEAD does not wait for the PATCH");
        assert_eq!(h.status, StatusCode::OK);
        let offset: u64 = h.header("upload-offset").unwrap().parse().unwrap();
        assert!(
            offset <= sent,
            "HEAD never reports bytes that did not arrive"
        );
        seen.push(offset);
    }
    drop(tx);
    assert_eq!(patch.await.unwrap().0, StatusCode::NO_CONTENT);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "offsets only grow: {seen:?}"
    );
    assert!(
        seen.iter().any(|&o| o > 0 && o < 1_000_000),
        "progress is visible mid-request: {seen:?}"
    );
    assert_eq!(&app.download(&path).await.body[..], &data[..]);
}

#[tokio::test]
async fn a_retried_patch_that_had_arrived_duplicates_nothing() {
    let app = TestApp::new().await;
    let data = bytes(3000, 3);
    let path = app.create(3000, &[]).await;
    assert_eq!(
        app.patch(&path, 0, data[..1000].to_vec(), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    // The client never saw the 204 and sends the same chunk again.
    let retry = app.patch(&path, 0, data[..1000].to_vec(), &[]).await;
    assert_eq!(retry.status, StatusCode::CONFLICT);
    assert_eq!(retry.code(), "offset_mismatch");
    assert_eq!(
        app.offset(&path).await,
        1000,
        "it asks, and resumes from 1000"
    );
    app.patch(&path, 1000, data[1000..].to_vec(), &[]).await;
    // And a retry of the last chunk after completion changes nothing either.
    let again = app.patch(&path, 1000, data[1000..].to_vec(), &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let d = app.download(&path).await;
    assert_eq!(d.body.len(), 3000, "never larger than the source");
    assert_eq!(&d.body[..], &data[..]);
}

/// A writer whose lock is gone (as when an instance's PostgreSQL lock
/// session ends while it writes) while another writer records and
/// acknowledges bytes: the stale writer's commit is refused, and the
/// acknowledged offset stands. Two instances over one database, each with
/// its own locks, play the two writers.
#[tokio::test]
async fn a_writer_that_lost_its_lock_cannot_take_back_an_acknowledged_offset() {
    let a = TestApp::new().await;
    let mut config = ferry::server::config::Config::for_data_dir(a.data_dir());
    config.site_root = a.site.path().to_string_lossy().into_owned();
    config.min_free_space = ferry::server::config::Share::Bytes(0);
    let state = ferry::server::bootstrap::state(config).await.unwrap();
    let b = TestApp::from_parts(
        ferry::router(state.clone()),
        state,
        tempfile::tempdir().unwrap(),
    );

    let data = bytes(20, 7);
    let path = a.create(20, &[]).await;
    let (tx, stale) = slow_patch(&b, &path, 0);
    tx.send(Ok(Bytes::copy_from_slice(&data[..5])))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let acked = a.patch(&path, 0, data[..10].to_vec(), &[]).await;
    assert_eq!(acked.status, StatusCode::NO_CONTENT, "{:?}", acked.body);
    assert_eq!(acked.header("upload-offset"), Some("10"));
    // The stale writer goes on, and ends short of what was acknowledged.
    tx.send(Ok(Bytes::copy_from_slice(&data[5..8])))
        .await
        .unwrap();
    drop(tx);
    let (status, body) = stale.await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("offset_mismatch"), "{body}");
    assert_eq!(a.offset(&path).await, 10, "the acknowledged offset stands");
    assert_eq!(b.offset(&path).await, 10);
    let rest = a.patch(&path, 10, data[10..].to_vec(), &[]).await;
    assert_eq!(rest.status, StatusCode::NO_CONTENT, "{:?}", rest.body);
    assert_eq!(a.download(&path).await.body.as_ref(), data.as_slice());
}

/// A creation request with its file's first bytes, fed by hand, keyed.
fn slow_post(app: &TestApp, key: &str, length: usize) -> (Feed, Answer) {
    let req = Request::post("/files/")
        .header("upload-length", length.to_string())
        .header("content-length", length.to_string())
        .header("idempotency-key", key);
    fed(app, req)
}

/// A browser sends a creation request again when the connection it used
/// dies before the answer, while the server may still be taking in the
/// first: the two (and a third) meet at every moment, cut at random
/// points, and the upload they make is one, and its bytes the file's.
#[tokio::test]
async fn creations_sent_again_while_the_first_is_sending_keep_the_file_whole() {
    // Offsets recorded every few KiB, so that a request sent again finds
    // the first one's bytes while it still sends.
    let app = TestApp::with(|c| c.checkpoint_every = 16 * 1024).await;
    let data = bytes(200_000, 5);
    let mut seed = 0x2545_f491_u64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..40 {
        let key = format!("\"race-{round:03}-0123456789abcdef0123456789\"");
        let mut sends = Vec::new();
        for _ in 0..3 {
            let (tx, answer) = slow_post(&app, &key, data.len());
            // Each sends its body in pieces, with pauses, and is cut at a
            // random byte (or not at all).
            let cut = match random(3) {
                0 => data.len(),
                _ => random(data.len() as u64) as usize,
            };
            let pieces: Vec<usize> = (0..4).map(|_| random(60_000) as usize + 1).collect();
            let pauses: Vec<u64> = (0..4).map(|_| random(4)).collect();
            let data = data.clone();
            sends.push(tokio::spawn(async move {
                let mut at = 0;
                let mut i = 0;
                while at < cut {
                    let end = (at + pieces[i % 4]).min(cut);
                    if tx
                        .send(Ok(Bytes::copy_from_slice(&data[at..end])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(pauses[i % 4])).await;
                    at = end;
                    i += 1;
                }
                if cut < data.len() {
                    let _ = tx.send(Err(std::io::Error::other("cut"))).await;
                }
                drop(tx);
                answer.await.unwrap()
            }));
            tokio::time::sleep(Duration::from_millis(random(6))).await;
        }
        let mut locations = std::collections::HashSet::new();
        for send in sends {
            let (status, location) = send.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "round {round}");
            locations.insert(location);
        }
        assert_eq!(locations.len(), 1, "round {round}: {locations:?}");
        // The client asks where its upload is, and finishes it.
        let again = app
            .call(
                "POST",
                "/files/",
                &[
                    TUS,
                    OCTET,
                    ("upload-length", "200000"),
                    ("idempotency-key", &key),
                ],
                Vec::new(),
            )
            .await;
        let path = again.location();
        let offset = app.offset(&path).await as usize;
        if offset < data.len() {
            let done = app
                .patch(&path, offset as u64, data[offset..].to_vec(), &[])
                .await;
            assert_eq!(
                done.status,
                StatusCode::NO_CONTENT,
                "round {round}: {:?}",
                done.body
            );
        }
        let body = app.download(&path).await.body;
        assert!(
            body[..] == data[..],
            "round {round}: the file differs (offset {offset})"
        );
        assert!(locations.contains(&path), "round {round}");
    }
    let metrics = app.call("GET", "/metrics", &[], Body::empty()).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains(r#"ferry_uploads_total{event="created"} 40"#),
        "{text}"
    );
}
