#![cfg(feature = "ssr")]
//! The findings of the outside review ("Trust under attack"), each tried
//! the way it was found, through `router()`: races that must never lose an
//! acknowledged byte, and requests that must be refused in bounded
//! resources. Attacks that need a real socket or a SIGKILL are in
//! `tests/it/attack_socket.rs`.

use crate::common;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const ME: (&str, &str) = ("authorization", "Bearer attack-me");

fn sha_meta(data: &[u8]) -> String {
    format!("sha256 {}", b64(sha256_hex(data).as_bytes()))
}

/// Uploads `data` whole; answers the upload's path.
async fn upload(app: &TestApp, data: &[u8], extra: &[(&str, &str)]) -> String {
    let path = app.create(data.len() as u64, extra).await;
    let r = app.patch(&path, 0, data.to_vec(), extra).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_uploads_racing_a_delete_never_lose_acknowledged_bytes() {
    let app = Arc::new(TestApp::new().await);
    let mut acknowledged = 0;
    for round in 0..25u8 {
        let data = bytes(50_000 + round as usize, round);
        let meta = sha_meta(&data);
        let original = upload(&app, &data, &[ME]).await;
        let mut racers = Vec::new();
        for _ in 0..16 {
            let (app, meta, len) = (app.clone(), meta.clone(), data.len().to_string());
            racers.push(tokio::spawn(async move {
                app.call(
                    "POST",
                    "/files/",
                    &[TUS, ME, ("upload-length", &len), ("upload-metadata", &meta)],
                    Body::empty(),
                )
                .await
            }));
        }
        let deleter = {
            let (app, original) = (app.clone(), original.clone());
            tokio::spawn(async move { app.call("DELETE", &original, &[TUS], Body::empty()).await })
        };
        assert_eq!(deleter.await.unwrap().status, StatusCode::NO_CONTENT);
        for racer in racers {
            let created = racer.await.unwrap();
            assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
            let path = created.location();
            if created.header("upload-offset") == Some(&data.len().to_string()) {
                // Acknowledged complete: its bytes must be there, exactly.
                acknowledged += 1;
                let got = app.download(&path).await;
                assert_eq!(
                    got.status,
                    StatusCode::OK,
                    "round {round}: {path} lost its bytes"
                );
                assert_eq!(sha256_hex(&got.body), sha256_hex(&data));
            } else {
                // Not acknowledged: it became an ordinary upload to send.
                assert_eq!(app.offset(&path).await, 0);
                let r = app.patch(&path, 0, data.clone(), &[]).await;
                assert_eq!(r.status, StatusCode::NO_CONTENT);
                assert_eq!(
                    sha256_hex(&app.download(&path).await.body),
                    sha256_hex(&data)
                );
            }
        }
    }
    println!("instant uploads acknowledged complete during deletes: {acknowledged}");
    assert!(acknowledged > 0, "the race ran both ways");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_of_records_sharing_bytes_remove_them_once_all_are_gone() {
    let app = Arc::new(TestApp::new().await);
    for round in 0..10u8 {
        let data = bytes(10_000, round);
        let meta = sha_meta(&data);
        let len = data.len().to_string();
        let first = upload(&app, &data, &[ME]).await;
        let mut all = vec![first];
        for _ in 0..3 {
            let twin = app
                .call(
                    "POST",
                    "/files/",
                    &[TUS, ME, ("upload-length", &len), ("upload-metadata", &meta)],
                    Body::empty(),
                )
                .await;
            assert_eq!(twin.header("upload-offset"), Some(len.as_str()));
            all.push(twin.location());
        }
        let deletes: Vec<_> = all
            .into_iter()
            .map(|p| {
                let app = app.clone();
                tokio::spawn(async move { app.call("DELETE", &p, &[TUS], Body::empty()).await })
            })
            .collect();
        for d in deletes {
            assert_eq!(d.await.unwrap().status, StatusCode::NO_CONTENT);
        }
        assert_eq!(
            count_files(&app.data_dir().join("blobs")),
            0,
            "round {round}: the shared bytes went with the last record"
        );
    }
}

#[tokio::test]
async fn concatenation_refuses_a_part_named_twice() {
    let app = TestApp::new().await;
    let part = app.create(1000, &[("upload-concat", "partial"), ME]).await;
    app.patch(&part, 0, bytes(1000, 1), &[ME]).await;
    let twice = format!("final;{part} {part}");
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ME, ("upload-concat", &twice)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_concat_part");
}

#[tokio::test]
async fn quotas_refuse_what_one_owner_may_not_store() {
    let app = TestApp::with(|c| {
        c.max_bytes_per_owner = ferry::server::config::Share::Bytes(1 << 20);
        c.max_unfinished_per_owner = 2;
    })
    .await;
    // Bytes: declared lengths count at creation.
    let a = app.create(600_000, &[ME]).await;
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ME, ("upload-length", "600000")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status.as_u16(), 507);
    assert_eq!(r.code(), "quota_exceeded");
    // A final concatenation counts like any other upload.
    let part = app
        .create(300_000, &[("upload-concat", "partial"), ME])
        .await;
    app.patch(&part, 0, bytes(300_000, 2), &[ME]).await;
    let fin = format!("final;{part}");
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ME, ("upload-concat", &fin)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.code(), "quota_exceeded");
    // Deferred lengths stop growing at the quota, keeping what came.
    let open = app
        .call(
            "POST",
            "/files/",
            &[TUS, ME, ("upload-defer-length", "1")],
            Body::empty(),
        )
        .await
        .location();
    let r = app.patch(&open, 0, bytes(200_000, 3), &[ME]).await;
    assert_eq!(r.code(), "quota_exceeded", "{:?}", r.body);
    // Unfinished uploads are counted too.
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ME, ("upload-length", "10")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.code(), "too_many_unfinished");
    // Another owner is not affected, and deleting makes room.
    let other = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("authorization", "Bearer other"),
                ("upload-length", "600000"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    app.call("DELETE", &a, &[TUS], Body::empty()).await;
    app.call("DELETE", &open, &[TUS], Body::empty()).await;
    app.create(600_000, &[ME]).await;
}

#[tokio::test]
async fn uploads_are_refused_before_the_disk_is_full() {
    let app =
        TestApp::with(|c| c.min_free_space = ferry::server::config::Share::Percent(100.0)).await;
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "10")],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status.as_u16(), 507);
    assert_eq!(r.code(), "storage_full");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("nearly full"));
}

#[tokio::test]
async fn bytes_no_record_names_are_removed_at_start() {
    let app = TestApp::new().await;
    let kept = upload(&app, &bytes(1000, 1), &[]).await;
    // What a crash between a record's deletion and its bytes' leaves.
    let stray = app.data_dir().join("blobs/Zz/ZzZzZzZzZzZzZzZzZzZzZw");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"orphan").unwrap();
    let app = app.restart(|_| {}).await;
    assert!(!stray.exists(), "bytes without a record are removed");
    assert_eq!(app.download(&kept).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_final_upload_is_assembled_even_when_its_client_goes_away() {
    let app = TestApp::new().await;
    let data = bytes(3 << 20, 7);
    let part = app
        .create(data.len() as u64, &[("upload-concat", "partial"), ME])
        .await;
    app.patch(&part, 0, data.clone(), &[ME]).await;
    let fin = format!("final;{part}");
    let router = app.router.clone();
    let request = axum::http::Request::post("/files/")
        .header("tus-resumable", "1.0.0")
        .header("authorization", "Bearer attack-me")
        .header("upload-concat", fin)
        .body(Body::empty())
        .unwrap();
    // The client hangs up almost at once.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(2),
        tower::ServiceExt::oneshot(router, request),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Every blob has its record, and every final record is whole.
    let records = app
        .state
        .uploads
        .list(&ferry::core::Owner::token("attack-me"), None, 100)
        .await
        .unwrap();
    assert_eq!(count_files(&app.data_dir().join("blobs")), records.len());
    for r in records
        .iter()
        .filter(|r| matches!(r.concat, ferry::core::Concat::Final(_)))
    {
        assert!(r.is_complete(), "an assembled final upload is complete");
        let got = app
            .download(&ferry::protocol::upload_url(r.id.as_str()))
            .await;
        assert_eq!(sha256_hex(&got.body), sha256_hex(&data));
    }
}

#[tokio::test]
async fn a_form_cut_off_inside_a_file_stores_nothing_complete() {
    let app = TestApp::new().await;
    let data = bytes(2 << 20, 9);
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
    );
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    for cut in [200, 70_000, 1 << 20, body.len() - 20, body.len() - 3] {
        let head = Bytes::from(body[..cut].to_vec());
        // The body breaks (as when the client hangs up) after `cut` bytes.
        let stream = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(head),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "gone",
            )),
        ]);
        let r = app
            .call(
                "POST",
                "/upload/form",
                &[("content-type", "multipart/form-data; boundary=XyZ"), ME],
                Body::from_stream(stream),
            )
            .await;
        assert_ne!(r.status, StatusCode::SEE_OTHER, "cut at {cut}");
    }
    let records = app
        .state
        .uploads
        .list(&ferry::core::Owner::token("attack-me"), None, 100)
        .await
        .unwrap();
    assert!(records.is_empty(), "nothing stored: {records:?}");
}

/// A body that counts how much of it the server pulled.
fn endless(pulled: Arc<AtomicU64>, piece: &'static [u8]) -> Body {
    let stream = futures_util::stream::repeat_with(move || {
        pulled.fetch_add(piece.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(Bytes::from_static(piece))
    });
    // 160 MiB at most: far more than the server may read.
    Body::from_stream(futures_util::StreamExt::take(stream, 40_000))
}

#[tokio::test]
async fn a_form_with_no_boundary_in_sight_is_refused_early() {
    let app = TestApp::new().await;
    static JUNK: [u8; 4096] = [b'x'; 4096];
    static HEADER: [u8; 4096] = [b'h'; 4096];
    for (what, content_type, piece) in [
        (
            "a boundary that never comes",
            "multipart/form-data; boundary=NeVeR",
            &JUNK[..],
        ),
        ("no boundary at all", "multipart/form-data", &JUNK[..]),
        (
            "an endless part header",
            "multipart/form-data; boundary=B",
            &HEADER[..],
        ),
    ] {
        let pulled = Arc::new(AtomicU64::new(0));
        let body = if what == "an endless part header" {
            // A part that opens and then never ends its header.
            let start = Bytes::from_static(
                b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\nX-Long: ",
            );
            let rest = endless(pulled.clone(), piece);
            Body::from_stream(futures_util::stream::StreamExt::chain(
                futures_util::stream::once(async move { Ok::<_, axum::Error>(start) }),
                rest.into_data_stream(),
            ))
        } else {
            endless(pulled.clone(), piece)
        };
        let r = app
            .call(
                "POST",
                "/upload/form",
                &[("content-type", content_type), ME],
                body,
            )
            .await;
        assert!(r.status.is_client_error(), "{what}: {}", r.status);
        let read = pulled.load(Ordering::Relaxed);
        assert!(
            read < 4 << 20,
            "{what}: the server read {read} bytes before refusing"
        );
    }
}

#[tokio::test]
async fn listings_come_in_pages_and_metadata_is_held_to_real_sizes() {
    let app = TestApp::new().await;
    let long_type = format!("filetype {}", b64("x".repeat(12_000).as_bytes()));
    let r = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ME,
                ("upload-length", "1"),
                ("upload-metadata", &long_type),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(r.code(), "invalid_metadata");
    for _ in 0..230 {
        app.create(5, &[ME]).await;
    }
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let body = match &after {
            None => String::new(),
            Some(a) => format!("after={a}"),
        };
        let r = app
            .call(
                "POST",
                "/api/list_uploads",
                &[("content-type", "application/x-www-form-urlencoded"), ME],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let page = r.json();
        let uploads = page["uploads"].as_array().unwrap();
        assert!(uploads.len() <= 100);
        for u in uploads {
            assert!(
                seen.insert(u["id"].as_str().unwrap().to_string()),
                "no repeats"
            );
        }
        pages += 1;
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (230, 3));
}

#[tokio::test]
async fn tiny_patches_keep_one_progress_event_per_upload() {
    let app = TestApp::with(|c| c.progress_every = std::time::Duration::ZERO).await;
    let path = app.create(200, &[ME]).await;
    for i in 0..100u64 {
        let r = app.patch(&path, i, vec![1], &[ME]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let events = app
        .state
        .uploads
        .events()
        .after(&ferry::core::Owner::token("attack-me"), 0, 1000)
        .await
        .unwrap();
    let progress = events
        .iter()
        .filter(|e| e.kind.as_str() == "upload.progress")
        .count();
    assert_eq!(progress, 1, "{events:?}");
    assert_eq!(events.last().unwrap().upload.offset, 100);
}

#[tokio::test]
async fn a_poll_without_a_cursor_tells_nothing_of_other_owners() {
    let app = TestApp::new().await;
    for _ in 0..5 {
        app.create(5, &[("authorization", "Bearer busy-neighbour")])
            .await;
    }
    let r = app.call("GET", "/events/poll", &[ME], Body::empty()).await;
    assert_eq!(
        r.json()["cursor"],
        0,
        "a new owner starts at its own beginning"
    );
    app.create(5, &[ME]).await;
    let r = app.call("GET", "/events/poll", &[ME], Body::empty()).await;
    let mine = app
        .state
        .uploads
        .events()
        .after(&ferry::core::Owner::token("attack-me"), 0, 10)
        .await
        .unwrap();
    assert_eq!(r.json()["cursor"], mine.last().unwrap().id);
}

#[tokio::test]
async fn event_streams_are_capped_per_owner() {
    let app = TestApp::with(|c| c.max_streams_per_owner = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let resp = tower::ServiceExt::oneshot(
            app.router.clone(),
            axum::http::Request::get("/events")
                .header(ME.0, ME.1)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        open.push(resp);
    }
    let r = app.call("GET", "/events", &[ME], Body::empty()).await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.code(), "too_many_streams");
    drop(open.pop());
    let resp = tower::ServiceExt::oneshot(
        app.router.clone(),
        axum::http::Request::get("/events")
            .header(ME.0, ME.1)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "a closed stream gives its place back"
    );
}

#[tokio::test]
async fn disguised_file_names_are_stored_clean() {
    let app = TestApp::new().await;
    let meta = format!("filename {}", b64("invoice\u{202e}fdp.exe".as_bytes()));
    let path = app.create(5, &[ME, ("upload-metadata", &meta)]).await;
    let head = app.call("HEAD", &path, &[TUS], Body::empty()).await;
    let echoed = head.header("upload-metadata").unwrap().to_string();
    assert_eq!(echoed, format!("filename {}", b64(b"invoicefdp.exe")));
    let listed = app
        .state
        .uploads
        .list(&ferry::core::Owner::token("attack-me"), None, 10)
        .await
        .unwrap();
    assert_eq!(listed[0].metadata.filename(), Some("invoicefdp.exe"));
}

#[tokio::test]
async fn deleting_someone_elses_upload_is_403_not_500() {
    let app = TestApp::new().await;
    let path = app.create(5, &[("authorization", "Bearer owner")]).await;
    let id = path.trim_start_matches("/files/");
    let r = app
        .call(
            "POST",
            "/api/delete_upload",
            &[("content-type", "application/x-www-form-urlencoded"), ME],
            format!("id={id}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(app.offset(&path).await, 0, "still there");
}

#[tokio::test]
async fn planted_session_ids_are_ignored() {
    let app = TestApp::new().await;
    let planted = ("cookie", "ferry_session=AAAAAAAAAAAAAAAAAAAAAA");
    let r = app.call("GET", "/", &[planted], Body::empty()).await;
    let issued = r
        .header("set-cookie")
        .expect("a session of the server's own");
    assert!(!issued.contains("AAAAAAAAAAAAAAAAAAAAAA"), "{issued}");
    // A planted ID owns nothing: it is anonymous.
    let path = app.create(5, &[planted]).await;
    let listed = app
        .call(
            "POST",
            "/api/list_uploads",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                planted,
            ],
            "",
        )
        .await;
    assert_eq!(listed.json()["uploads"].as_array().unwrap().len(), 0);
    assert_eq!(app.offset(&path).await, 0);
}

#[tokio::test]
async fn the_expiry_sweep_keeps_up_with_many_abandoned_uploads() {
    let app = TestApp::with(|c| c.expire_after = std::time::Duration::from_millis(1)).await;
    for _ in 0..1_200 {
        app.create(5, &[]).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(
        app.state.uploads.sweep_expired().await.unwrap(),
        1_200,
        "all in one sweep"
    );
}

#[tokio::test]
async fn server_functions_answer_bad_bodies_with_their_own_errors() {
    let app = TestApp::new().await;
    let form = ("content-type", "application/x-www-form-urlencoded");
    let huge = format!("after={}", "a".repeat(3 << 20));
    let r = app
        .call("POST", "/api/list_uploads", &[form, ME], huge)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (413, "request_too_large".to_string())
    );
    let broken = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(Bytes::from_static(b"after=")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "gone",
        )),
    ]);
    let r = app
        .call(
            "POST",
            "/api/check_files",
            &[form, ME],
            Body::from_stream(broken),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "body_incomplete".to_string())
    );
    let r = app
        .call("POST", "/api/delete_upload", &[form, ME], "nothing=here")
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (400, "invalid_arguments".to_string())
    );
    // Arguments read, but not ones the server can take: the client's
    // mistake too, each with its code (in the server function's own
    // error, `<kind>|<code>: <message>`, which the page's client reads).
    let said = |r: &common::Answer| String::from_utf8_lossy(&r.body).into_owned();
    let r = app
        .call("POST", "/api/list_uploads", &[form, ME], "after=nonsense")
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", said(&r));
    assert!(said(&r).contains("invalid_arguments: "), "{}", said(&r));
    let many: Vec<String> = (0..=ferry::api::MAX_CHECK_FILES)
        .map(|i| {
            format!("files[{i}][name]=a&files[{i}][size]=1&files[{i}][last_modified]=0&files[{i}][mime]=")
        })
        .collect();
    let r = app
        .call("POST", "/api/check_files", &[form, ME], many.join("&"))
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", said(&r));
    assert!(said(&r).contains("too_many_files: "), "{}", said(&r));
}

#[tokio::test]
async fn a_part_deleted_during_assembly_is_a_clear_refusal() {
    let app = Arc::new(TestApp::new().await);
    for round in 0..8u8 {
        let part = app
            .create(2 << 20, &[("upload-concat", "partial"), ME])
            .await;
        app.patch(&part, 0, bytes(2 << 20, round), &[ME]).await;
        let fin = format!("final;{part}");
        let concat = {
            let app = app.clone();
            tokio::spawn(async move {
                app.call(
                    "POST",
                    "/files/",
                    &[TUS, ME, ("upload-concat", &fin)],
                    Body::empty(),
                )
                .await
            })
        };
        let deleted = app.call("DELETE", &part, &[TUS], Body::empty()).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        let r = concat.await.unwrap();
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::BAD_REQUEST,
            "round {round}: {} {:?}",
            r.status,
            r.body
        );
        if r.status == StatusCode::CREATED {
            let got = app.download(&r.location()).await;
            assert_eq!(sha256_hex(&got.body), sha256_hex(&bytes(2 << 20, round)));
        }
    }
}

#[tokio::test]
async fn media_types_are_listed_without_control_characters() {
    let app = TestApp::new().await;
    let meta = format!("filetype {}", b64(b"text/html\r\nX-Evil: 1"));
    app.create(5, &[ME, ("upload-metadata", &meta)]).await;
    let r = app
        .call(
            "POST",
            "/api/list_uploads",
            &[("content-type", "application/x-www-form-urlencoded"), ME],
            "",
        )
        .await;
    assert_eq!(r.json()["uploads"][0]["mime"], "text/htmlX-Evil: 1");
}

#[tokio::test]
async fn listening_for_events_takes_no_body() {
    let app = TestApp::new().await;
    for route in ["/events", "/events/poll?after=0&timeout=1"] {
        let r = app
            .call(
                "GET",
                route,
                &[ME, ("content-length", "1000")],
                vec![0u8; 1000],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{route}");
        assert_eq!(r.code(), "invalid_header");
    }
}
