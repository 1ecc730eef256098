#![cfg(feature = "ssr")]
//! The IETF draft "Resumable Uploads for HTTP" on `/files/`, against
//! `router()`: every interop version Ferry speaks (3 to 8), its headers,
//! completeness, lengths, limits, problem details, and uploads that cross
//! from tus to the draft and back.

use crate::common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;

const PARTIAL: (&str, &str) = ("content-type", "application/partial-upload");

fn v(n: u8) -> (&'static str, &'static str) {
    let value: &'static str = match n {
        2 => "2",
        3 => "3",
        4 => "4",
        5 => "5",
        6 => "6",
        7 => "7",
        8 => "8",
        _ => "99",
    };
    ("upload-draft-interop-version", value)
}

/// The completeness header of version `n` saying `complete`.
fn complete(n: u8, complete: bool) -> (&'static str, &'static str) {
    match (n, complete) {
        (3, true) => ("upload-incomplete", "?0"),
        (3, false) => ("upload-incomplete", "?1"),
        (_, true) => ("upload-complete", "?1"),
        (_, false) => ("upload-complete", "?0"),
    }
}

/// Whether an answer says the upload is complete, in version `n`'s words.
fn says_complete(a: &Answer, n: u8) -> bool {
    if n == 3 {
        a.header("upload-incomplete") == Some("?0")
    } else {
        a.header("upload-complete") == Some("?1")
    }
}

fn problem(a: &Answer) -> serde_json::Value {
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    serde_json::from_slice(&a.body).unwrap()
}

#[tokio::test]
async fn every_version_creates_appends_and_completes() {
    let app = TestApp::new().await;
    let data = bytes(3000, 1);
    for n in 3..=8u8 {
        let total = data.len().to_string();
        let created = app
            .call(
                "POST",
                "/files/",
                &[v(n), complete(n, false), ("upload-length", &total)],
                Body::empty(),
            )
            .await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "v{n}: {:?}",
            created.body
        );
        assert!(!says_complete(&created, n), "v{n}");
        assert_eq!(created.header("upload-offset"), Some("0"), "v{n}");
        assert_eq!(created.header("upload-draft-interop-version"), Some(v(n).1));
        let limit = created.header("upload-limit").unwrap();
        assert!(limit.contains("max-size="), "v{n}: {limit}");
        assert!(
            limit.contains(if n <= 6 { "expires=" } else { "max-age=" }),
            "v{n}: {limit}"
        );
        let url = created.location();

        let head = app.call("HEAD", &url, &[v(n)], Body::empty()).await;
        assert_eq!(head.status, StatusCode::NO_CONTENT, "v{n}");
        assert_eq!(head.header("upload-offset"), Some("0"));
        assert_eq!(head.header("upload-length"), Some(total.as_str()));
        assert_eq!(head.header("cache-control"), Some("no-store"));
        assert!(!says_complete(&head, n));

        let first = app
            .call(
                "PATCH",
                &url,
                &[v(n), PARTIAL, ("upload-offset", "0"), complete(n, false)],
                data[..1000].to_vec(),
            )
            .await;
        let appended = if n <= 6 {
            StatusCode::CREATED
        } else {
            StatusCode::NO_CONTENT
        };
        assert_eq!(first.status, appended, "v{n}: {:?}", first.body);
        assert_eq!(first.header("upload-offset"), Some("1000"));
        assert!(!says_complete(&first, n));

        let last = app
            .call(
                "PATCH",
                &url,
                &[v(n), PARTIAL, ("upload-offset", "1000"), complete(n, true)],
                data[1000..].to_vec(),
            )
            .await;
        assert_eq!(last.status, appended, "v{n}: {:?}", last.body);
        assert_eq!(last.header("upload-offset"), Some(total.as_str()));
        assert!(says_complete(&last, n), "v{n}");
        assert_eq!(
            app.download(&url).await.body.as_ref(),
            data.as_slice(),
            "v{n}"
        );
    }
}

#[tokio::test]
async fn a_whole_file_in_the_creation_request_is_complete_with_its_length() {
    let app = TestApp::new().await;
    let data = bytes(5000, 2);
    for n in [3u8, 5, 8] {
        let a = app
            .call(
                "POST",
                "/files/",
                &[
                    v(n),
                    complete(n, true),
                    ("content-type", "image/png"),
                    ("content-disposition", "inline; filename=\"cat.png\""),
                    ("content-length", "5000"),
                ],
                data.clone(),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "v{n}: {:?}", a.body);
        assert!(says_complete(&a, n));
        assert_eq!(a.header("upload-offset"), Some("5000"));
        assert_eq!(a.header("upload-length"), Some("5000"));
        let url = a.location();
        let got = app.download(&url).await;
        assert_eq!(got.body.as_ref(), data.as_slice());
        assert!(got
            .header("content-disposition")
            .unwrap()
            .contains("cat.png"));
    }
    // An empty file, completed by its creation.
    let a = app
        .call("POST", "/files/", &[v(8), complete(8, true)], Body::empty())
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert!(says_complete(&a, 8));
    assert_eq!(a.header("upload-length"), Some("0"));
}

/// The same creation sent twice with an Idempotency-Key (a browser
/// resends a POST whose connection died): one upload, and the second
/// request's bytes past what the first left are taken.
#[tokio::test]
async fn a_creation_sent_again_makes_one_upload() {
    let app = TestApp::new().await;
    let data = bytes(4000, 8);
    let key = (
        "idempotency-key",
        "\"draft-1-0123456789abcdef0123456789ab\"",
    );
    let create = |body: &[u8], done: bool| {
        let body = body.to_vec();
        let app = &app;
        async move {
            app.call(
                "POST",
                "/files/",
                &[v(8), complete(8, done), ("upload-length", "4000"), key],
                body,
            )
            .await
        }
    };
    let first = create(&data[..1500], false).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = create(&data[..1500], false).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.location(), first.location());
    assert_eq!(again.header("upload-offset"), Some("1500"));
    let whole = create(&data, true).await;
    assert_eq!(whole.status, StatusCode::CREATED, "{:?}", whole.body);
    assert_eq!(whole.location(), first.location());
    assert!(says_complete(&whole, 8));
    assert_eq!(
        app.download(&first.location()).await.body.as_ref(),
        data.as_slice()
    );
}

#[tokio::test]
async fn a_wrong_offset_is_409_with_the_drafts_problem() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(6), complete(6, false)],
            Body::empty(),
        )
        .await;
    let url = a.location();
    app.call(
        "PATCH",
        &url,
        &[v(6), PARTIAL, ("upload-offset", "0"), complete(6, false)],
        bytes(10, 3),
    )
    .await;
    let a = app
        .call(
            "PATCH",
            &url,
            &[v(6), PARTIAL, ("upload-offset", "4"), complete(6, false)],
            bytes(10, 3),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.header("upload-offset"), Some("10"));
    assert_eq!(a.header("upload-complete"), Some("?0"));
    let p = problem(&a);
    assert_eq!(
        p["type"],
        "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    );
    assert_eq!(p["expected-offset"], 10);
    assert_eq!(p["provided-offset"], 4);
    assert_eq!(p["error"], "offset_mismatch");
    assert_eq!(p["status"], 409);
}

#[tokio::test]
async fn lengths_must_agree() {
    let app = TestApp::new().await;
    // Upload-Length against a completing Content-Length.
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                v(8),
                complete(8, true),
                ("upload-length", "10"),
                ("content-length", "5"),
            ],
            bytes(5, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        problem(&a)["type"],
        "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"
    );
    // A completing append that ends short of the known length.
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(8), complete(8, false), ("upload-length", "10")],
            Body::empty(),
        )
        .await;
    let url = a.location();
    let a = app
        .call(
            "PATCH",
            &url,
            &[
                v(8),
                PARTIAL,
                ("upload-offset", "0"),
                complete(8, true),
                ("content-length", "4"),
            ],
            bytes(4, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        problem(&a)["type"],
        "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"
    );
    assert_eq!(app.offset_of(&url, 8).await, 0, "nothing was appended");
    // Bytes past the length are refused and not kept.
    let a = app
        .call(
            "PATCH",
            &url,
            &[v(8), PARTIAL, ("upload-offset", "0"), complete(8, false)],
            bytes(15, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert!(app.offset_of(&url, 8).await <= 10);
}

#[tokio::test]
async fn completed_uploads_take_no_more_and_a_lost_answer_can_be_asked_again() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(7), complete(7, true), ("content-length", "6")],
            b"abcdef".to_vec(),
        )
        .await;
    let url = a.location();
    let more = app
        .call(
            "PATCH",
            &url,
            &[v(7), PARTIAL, ("upload-offset", "6"), complete(7, true)],
            b"gh".to_vec(),
        )
        .await;
    assert_eq!(more.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        problem(&more)["type"],
        "https://iana.org/assignments/http-problem-types#completed-upload"
    );
    let again = app
        .call(
            "PATCH",
            &url,
            &[v(7), PARTIAL, ("upload-offset", "6"), complete(7, true)],
            Body::empty(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "{:?}", again.body);
    assert_eq!(again.header("upload-complete"), Some("?1"));
    assert_eq!(app.download(&url).await.body.as_ref(), b"abcdef");
}

#[tokio::test]
async fn version_rules_are_enforced() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(8), complete(8, false)],
            Body::empty(),
        )
        .await;
    let url = a.location();
    // Interop 6 and later append application/partial-upload only.
    let a = app
        .call(
            "PATCH",
            &url,
            &[v(6), ("upload-offset", "0"), complete(6, false)],
            bytes(3, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(problem(&a)["error"], "unsupported_content_type");
    // Interop 7 and later: an append must say whether it completes.
    let a = app
        .call(
            "PATCH",
            &url,
            &[v(7), PARTIAL, ("upload-offset", "0")],
            bytes(3, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Interop 5 and earlier: no content type needed, and an append that
    // does not say is the last one.
    let a = app
        .call("PATCH", &url, &[v(5), ("upload-offset", "0")], bytes(3, 1))
        .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    assert_eq!(a.header("upload-complete"), Some("?1"));
    assert_eq!(app.download(&url).await.body.len(), 3);
    // A creation request must say whether it carries the whole upload.
    let a = app.call("POST", "/files/", &[v(8)], Body::empty()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // HEAD must not carry an append's headers (up to interop 6).
    let a = app
        .call("HEAD", &url, &[v(6), ("upload-offset", "0")], Body::empty())
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Versions Ferry does not speak are refused, as the draft's requests.
    for n in [2u8, 99] {
        let a = app
            .call("POST", "/files/", &[v(n), complete(8, true)], Body::empty())
            .await;
        assert_eq!(a.status.as_u16(), 412, "v{n}");
        assert_eq!(problem(&a)["error"], "unsupported_version");
    }
    // A tus client whose platform adds the draft's headers stays tus.
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, v(6), complete(6, true), ("upload-length", "3")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.header("tus-resumable"), Some("1.0.0"));
    assert_eq!(a.header("upload-draft-interop-version"), None);
}

#[tokio::test]
async fn an_upload_crosses_between_tus_and_the_draft() {
    let app = TestApp::new().await;
    let data = bytes(2000, 5);
    // Started with tus, finished with the draft.
    let url = app.create(2000, &[]).await;
    app.patch(&url, 0, data[..700].to_vec(), &[]).await;
    let head = app.call("HEAD", &url, &[v(6)], Body::empty()).await;
    assert_eq!(head.header("upload-offset"), Some("700"));
    assert_eq!(head.header("upload-complete"), Some("?0"));
    let a = app
        .call(
            "PATCH",
            &url,
            &[v(6), PARTIAL, ("upload-offset", "700"), complete(6, true)],
            data[700..].to_vec(),
        )
        .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    assert_eq!(app.download(&url).await.body.as_ref(), data.as_slice());
    // Started with the draft, inspected and finished with tus.
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                v(8),
                complete(8, false),
                ("upload-length", "2000"),
                ("content-length", "500"),
            ],
            data[..500].to_vec(),
        )
        .await;
    let url = a.location();
    assert_eq!(app.offset(&url).await, 500);
    let a = app.patch(&url, 500, data[500..].to_vec(), &[]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(app.download(&url).await.body.as_ref(), data.as_slice());
}

#[tokio::test]
async fn cancelling_removes_the_upload() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(8), complete(8, false)],
            Body::empty(),
        )
        .await;
    let url = a.location();
    let d = app.call("DELETE", &url, &[v(8)], Body::empty()).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let h = app.call("HEAD", &url, &[v(8)], Body::empty()).await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);
    let again = app.call("DELETE", &url, &[v(8)], Body::empty()).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(problem(&again)["error"], "not_found");
}

#[tokio::test]
async fn options_announce_the_drafts_limits() {
    let app = TestApp::with(|c| c.max_size = 4096).await;
    let a = app.call("OPTIONS", "/files/", &[v(8)], Body::empty()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("upload-limit"), Some("min-size=0, max-size=4096"));
    assert_eq!(a.header("accept-patch"), Some("application/partial-upload"));
    assert_eq!(
        a.header("tus-version"),
        Some("1.0.0"),
        "and tus's, for tus clients"
    );
    // The limit is enforced like tus's.
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(8), complete(8, false), ("upload-length", "5000")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(&a)["error"], "upload_too_large");
}

#[tokio::test]
async fn digests_are_checked() {
    let app = TestApp::new().await;
    let data = bytes(4000, 7);
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(8), complete(8, false), ("upload-length", "4000")],
            Body::empty(),
        )
        .await;
    let url = a.location();
    // Content-Digest: a request whose bytes do not match keeps none.
    let wrong = digest(b"something else");
    let a = app
        .call(
            "PATCH",
            &url,
            &[
                v(8),
                PARTIAL,
                ("upload-offset", "0"),
                complete(8, false),
                ("content-digest", &wrong),
            ],
            data[..1000].to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    assert_eq!(problem(&a)["error"], "checksum_mismatch");
    assert_eq!(app.offset_of(&url, 8).await, 0);
    let right = digest(&data[..1000]);
    let a = app
        .call(
            "PATCH",
            &url,
            &[
                v(8),
                PARTIAL,
                ("upload-offset", "0"),
                complete(8, false),
                ("content-digest", &right),
            ],
            data[..1000].to_vec(),
        )
        .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    assert_eq!(app.offset_of(&url, 8).await, 1000);

    // Repr-Digest: the finished file is held to it...
    let whole = digest(&data);
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                v(8),
                complete(8, true),
                ("content-length", "4000"),
                ("repr-digest", &whole),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let first = a.location();
    // ...which makes the same file again an instant upload...
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                v(8),
                complete(8, true),
                ("content-length", "4000"),
                ("repr-digest", &whole),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_ne!(a.location(), first);
    assert_eq!(
        app.download(&a.location()).await.body.as_ref(),
        data.as_slice()
    );
    // ...and a file that is not what it promised is removed.
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                v(8),
                complete(8, true),
                ("content-length", "4000"),
                ("repr-digest", &wrong),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    let gone = app
        .call("HEAD", &a.location(), &[v(8)], Body::empty())
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn from_interop_7_only_upload_complete_completes() {
    let app = TestApp::new().await;
    let data = bytes(100, 3);
    for n in [7u8, 8] {
        let a = app
            .call(
                "POST",
                "/files/",
                &[v(n), complete(n, false), ("upload-length", "100")],
                Body::empty(),
            )
            .await;
        let url = a.location();
        // All the bytes, but "more to come": held, not complete.
        let a = app
            .call(
                "PATCH",
                &url,
                &[v(n), PARTIAL, ("upload-offset", "0"), complete(n, false)],
                data.clone(),
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "v{n}: {:?}", a.body);
        assert_eq!(a.header("upload-complete"), Some("?0"), "v{n}");
        let head = app.call("HEAD", &url, &[v(n)], Body::empty()).await;
        assert_eq!(head.header("upload-offset"), Some("100"));
        assert_eq!(head.header("upload-complete"), Some("?0"));
        assert_eq!(
            app.download(&url).await.status,
            StatusCode::CONFLICT,
            "not yet a file"
        );
        // The request that says so completes it, with no more bytes.
        let a = app
            .call(
                "PATCH",
                &url,
                &[v(n), PARTIAL, ("upload-offset", "100"), complete(n, true)],
                Body::empty(),
            )
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "v{n}: {:?}", a.body);
        assert_eq!(a.header("upload-complete"), Some("?1"));
        assert_eq!(app.download(&url).await.body.as_ref(), data.as_slice());
    }
    // Up to interop 6 reaching the declared length completes (tusd's rule,
    // which tus-js-client 4.3 relies on).
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(6), complete(6, false), ("upload-length", "100")],
            Body::empty(),
        )
        .await;
    let url = a.location();
    let a = app
        .call(
            "PATCH",
            &url,
            &[v(6), PARTIAL, ("upload-offset", "0"), complete(6, false)],
            data.clone(),
        )
        .await;
    assert_eq!(a.header("upload-complete"), Some("?1"));
}

#[tokio::test]
async fn a_chunked_creation_body_is_read() {
    let app = TestApp::new().await;
    let data = bytes(3000, 4);
    for (n, done) in [(6u8, false), (8, true)] {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            data.chunks(1000).map(|c| Ok(c.to_vec())).collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let a = app
            .call("POST", "/files/", &[v(n), complete(n, done)], body)
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "v{n}: {:?}", a.body);
        assert_eq!(
            a.header("upload-offset"),
            Some("3000"),
            "v{n}: the body was read"
        );
        assert_eq!(says_complete(&a, n), done, "v{n}");
    }
}

#[tokio::test]
async fn from_interop_7_every_answer_says_the_request_did_not_complete() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "PATCH",
            "/files/AAAAAAAAAAAAAAAAAAAAAA",
            &[v(8), PARTIAL, ("upload-offset", "0"), complete(8, true)],
            bytes(3, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.header("upload-complete"), Some("?0"));
    let a = app
        .call(
            "PUT",
            "/files/AAAAAAAAAAAAAAAAAAAAAA",
            &[v(8)],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(a.header("allow").unwrap().contains("PATCH"));
    assert_eq!(problem(&a)["title"], "Method Not Allowed");
}

#[tokio::test]
async fn up_to_interop_6_a_head_ends_an_append_in_progress_too() {
    stalled_append_is_ended_by_a_head(5).await;
}

#[tokio::test]
async fn from_interop_7_a_new_request_ends_the_one_in_progress() {
    stalled_append_is_ended_by_a_head(8).await;
}

async fn stalled_append_is_ended_by_a_head(n: u8) {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[v(n), complete(n, false), ("upload-length", "100")],
            Body::empty(),
        )
        .await;
    let url = a.location();
    // An append whose client went quiet: 10 bytes, then nothing.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(bytes(10, 1))).await.unwrap();
    let stalled = Body::from_stream(tokio_stream_of(rx));
    let router = app.router.clone();
    let req = axum::http::Request::builder()
        .method("PATCH")
        .uri(&url)
        .header(v(n).0, v(n).1)
        .header(PARTIAL.0, PARTIAL.1)
        .header("upload-offset", "0")
        .header("upload-complete", "?0")
        .body(stalled)
        .unwrap();
    let pending = tokio::spawn(async move {
        use tower::ServiceExt;
        router.oneshot(req).await.unwrap()
    });
    // Once the stalled append has taken its bytes (the channel has room
    // again), and a moment to hand them to the writer, it goes quiet.
    let room = tx.reserve().await.unwrap();
    drop(room);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let head = app.call("HEAD", &url, &[v(8)], Body::empty()).await;
    assert_eq!(head.status, StatusCode::NO_CONTENT);
    assert_eq!(
        head.header("upload-offset"),
        Some("10"),
        "the old append was ended and kept its bytes"
    );
    let old = pending.await.unwrap();
    assert!(
        !old.status().is_success(),
        "the old append was ended: {}",
        old.status()
    );
    drop(tx);
    let a = app
        .call(
            "PATCH",
            &url,
            &[v(n), PARTIAL, ("upload-offset", "10"), complete(n, true)],
            bytes(90, 2),
        )
        .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    assert_eq!(app.download(&url).await.body.len(), 100);
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl TestApp {
    /// The offset a draft HEAD reports.
    async fn offset_of(&self, url: &str, n: u8) -> u64 {
        let a = self.call("HEAD", url, &[v(n)], Body::empty()).await;
        a.header("upload-offset").unwrap().parse().unwrap()
    }
}

/// Sends raw bytes to the real binary and reads the whole answer.
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    socket.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the final answer's head and its (empty or short) body are in.
    loop {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if !head.starts_with("HTTP/1.1 1") && answer.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn the_real_binary_speaks_the_draft_over_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::server::Server::start(&dir.path().join("data"), &[]);
    let addr = server.addr().to_string();
    let data = bytes(1000, 9);
    let mut request = format!(
        "POST /files/ HTTP/1.1\r\nHost: {addr}\r\nUpload-Draft-Interop-Version: 6\r\n\
         Upload-Complete: ?0\r\nUpload-Length: 3000\r\nContent-Length: 1000\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&data);
    let answer = raw_exchange(&addr, &request);
    // No informational answer comes first (see http::ietf on 104): the
    // final answer carries the upload's URL and where it stands.
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    let lower = answer.to_ascii_lowercase();
    let location = answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(": ")?;
            name.eq_ignore_ascii_case("location").then_some(value)
        })
        .expect("a Location")
        .trim()
        .to_string();
    assert!(
        location.starts_with(&format!("http://{addr}/files/")),
        "{location}"
    );
    assert!(lower.contains("upload-offset: 1000\r\n"), "{answer}");
    assert!(lower.contains("upload-complete: ?0\r\n"), "{answer}");
    assert!(lower.contains("upload-draft-interop-version: 6\r\n"));

    let path = common::path_of(&location);
    let rest = bytes(2000, 10);
    let mut request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nUpload-Draft-Interop-Version: 6\r\n\
         Upload-Offset: 1000\r\nUpload-Complete: ?1\r\n\
         Content-Type: application/partial-upload\r\nContent-Length: 2000\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&rest);
    let answer = raw_exchange(&addr, &request);
    assert!(
        answer.starts_with("HTTP/1.1 201 "),
        "interop 6 answers 201: {answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("upload-complete: ?1\r\n"),
        "{answer}"
    );
    let got = common::http()
        .get(server.url(&path))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(got.len(), 3000);
    assert_eq!(&got[..1000], data.as_slice());
    assert_eq!(&got[1000..], rest.as_slice());
}
