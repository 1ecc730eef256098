#![cfg(feature = "ssr")]
//! The server's rules for uploads (`--allow-types`, `--max-files-per-batch`,
//! `--max-size`, quotas): announced to the page by a server function, and
//! enforced on every route whatever a client says, with stable JSON errors.

use crate::common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;

async fn strict() -> TestApp {
    TestApp::with(|c| {
        c.allow_types = vec!["image/*".into(), ".txt".into()];
        c.max_files_per_batch = 2;
        c.max_size = 1 << 20;
        c.max_bytes_per_owner = ferry::server::config::Share::Bytes(10 << 20);
    })
    .await
}

fn meta(name: &str, mime: &str) -> String {
    format!(
        "filename {},filetype {}",
        b64(name.as_bytes()),
        b64(mime.as_bytes())
    )
}

/// A creation request (tus or the IETF draft, as the headers say).
async fn post_files(app: &TestApp, headers: &[(&str, &str)]) -> Answer {
    app.call("POST", "/files/", headers, Body::empty()).await
}

#[tokio::test]
async fn tus_creation_refuses_kinds_the_server_does_not_take() {
    let app = strict().await;
    let post = |m: Option<String>| {
        let app = &app;
        async move {
            let mut h = vec![TUS, ("upload-length", "10")];
            let m = m.unwrap_or_default();
            if !m.is_empty() {
                h.push(("upload-metadata", m.as_str()));
            }
            post_files(app, &h).await
        }
    };
    let a = post(Some(meta("setup.exe", "application/x-msdownload"))).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(a.code(), "type_not_allowed");
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .contains("image/*, .txt"));
    // A name that says nothing, with a type that does not match either.
    let a = post(Some(meta("photo", "application/octet-stream"))).await;
    assert_eq!(a.code(), "type_not_allowed");
    // No name and no type: nothing to show it is allowed.
    assert_eq!(post(None).await.code(), "type_not_allowed");
    // By ending, by media type pattern, any case.
    assert_eq!(
        post(Some(meta("NOTES.TXT", ""))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        post(Some(meta("x", "image/png"))).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn every_way_in_is_held_to_the_kinds() {
    let app = strict().await;
    // A part that names itself is checked like a file.
    let exe = meta("evil.exe", "");
    let a = post_files(
        &app,
        &[
            TUS,
            ("upload-length", "3"),
            ("upload-concat", "partial"),
            ("upload-metadata", exe.as_str()),
        ],
    )
    .await;
    assert_eq!(a.code(), "type_not_allowed");
    // A name long enough to be cut is judged as it will be shown.
    let long = meta(&format!("{}.exe.txt", "a".repeat(300)), "");
    let a = post_files(
        &app,
        &[
            TUS,
            ("upload-length", "3"),
            ("upload-metadata", long.as_str()),
        ],
    )
    .await;
    assert_eq!(a.code(), "type_not_allowed", "{:?}", a.body);
    // The IETF draft: its name comes from Content-Disposition.
    let a = post_files(
        &app,
        &[
            ("upload-draft-interop-version", "6"),
            ("upload-complete", "?0"),
            ("content-disposition", "attachment; filename=\"setup.exe\""),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{:?}", a.body);
}

#[tokio::test]
async fn a_concatenation_is_checked_as_its_final_file() {
    let app = strict().await;
    let part = app.create(5, &[("upload-concat", "partial")]).await;
    app.patch(&part, 0, b"hello".to_vec(), &[]).await;
    let parts = format!("final;{part}");
    let exe = meta("a.exe", "");
    let a = post_files(
        &app,
        &[
            TUS,
            ("upload-concat", parts.as_str()),
            ("upload-metadata", exe.as_str()),
        ],
    )
    .await;
    assert_eq!(a.code(), "type_not_allowed");
    let txt = meta("a.txt", "");
    let a = post_files(
        &app,
        &[
            TUS,
            ("upload-concat", parts.as_str()),
            ("upload-metadata", txt.as_str()),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
}

fn multipart(files: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, mime) in files {
        body.extend_from_slice(
            format!("--B\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\nsome bytes\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(b"--B--\r\n");
    body
}

#[tokio::test]
async fn the_form_keeps_to_the_kinds_and_the_batch_size() {
    let app = strict().await;
    let session = app.session("AAAAAAAAAAAAAAAAAAAAAw");
    let cookie = (session.0, session.1.as_str());
    let form = [("content-type", "multipart/form-data; boundary=B"), cookie];
    let a = app
        .call(
            "POST",
            "/upload/form",
            &form,
            multipart(&[("evil.exe", "application/x-msdownload")]),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = app
        .call(
            "POST",
            "/upload/form",
            &form,
            multipart(&[
                ("a.txt", "text/plain"),
                ("b.png", "image/png"),
                ("c.txt", "text/plain"),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&a.body).contains("at most 2 files"));
    let owner = ferry::core::Owner::session("AAAAAAAAAAAAAAAAAAAAAw");
    let stored = app.state.uploads.list(&owner, None, 10).await.unwrap();
    let mut names: Vec<_> = stored
        .iter()
        .filter(|r| r.is_complete())
        .map(|r| r.metadata.filename().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a.txt", "b.png"],
        "the first two were stored, whole"
    );
}

#[tokio::test]
async fn the_page_is_told_the_rules_and_the_room_left() {
    let app = strict().await;
    let auth = ("authorization", "Bearer someone");
    let path = app
        .create(1000, &[auth, ("upload-metadata", &meta("a.txt", ""))])
        .await;
    app.patch(&path, 0, bytes(1000, 1), &[auth]).await;
    let a = app
        .call(
            "POST",
            "/api/upload_rules",
            &[
                auth,
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let rules: ferry::protocol::rules::UploadRules = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(rules.max_size, 1 << 20);
    assert_eq!(rules.allow_types, ["image/*", ".txt"]);
    assert_eq!(rules.max_files, Some(2));
    assert_eq!(rules.room_left, Some((10 << 20) - 1000));
}

#[test]
fn a_bad_kind_of_file_stops_the_server_with_a_message() {
    use clap::Parser;
    let e =
        ferry::server::config::Config::try_parse_from(["ferry", "--allow-types", "image/*,pdf"])
            .unwrap_err()
            .to_string();
    assert!(e.contains("\"pdf\" is not a kind of file"), "{e}");
    let c =
        ferry::server::config::Config::try_parse_from(["ferry", "--allow-types", "IMAGE/*, .PDF"])
            .unwrap();
    assert_eq!(c.allow_types, ["image/*", ".pdf"]);
}
