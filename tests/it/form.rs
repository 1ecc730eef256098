#![cfg(feature = "ssr")]
//! The no-JavaScript form upload through `router()`: several files in one
//! `multipart/form-data` body, stored and listed.

use crate::common;

use axum::http::StatusCode;
use common::*;

fn multipart(boundary: &str, files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, mime, data) in files {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    // A text field and the empty file part of an unused input are ignored.
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn form_upload_stores_every_file_and_lists_them() {
    let app = TestApp::new().await;
    let session = app.session("AAAAAAAAAAAAAAAAAAAAAw");
    let cookie = (session.0, session.1.as_str());
    let a = bytes(3 * 1024 * 1024 + 5, 1);
    let b = b"plain text file\n".to_vec();
    let body = multipart(
        "XyZ",
        &[
            ("photo 1.jpg", "image/jpeg", &a),
            ("notes.txt", "text/plain", &b),
        ],
    );
    let r = app
        .call(
            "POST",
            "/upload/form",
            &[
                ("content-type", "multipart/form-data; boundary=XyZ"),
                cookie,
            ],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/?uploaded=2"));

    // The page (rendered whole on the server) lists both, with their hashes.
    let page = app
        .call("GET", "/?uploaded=2", &[cookie], axum::body::Body::empty())
        .await;
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains("photo 1.jpg") && html.contains("notes.txt"),
        "{html}"
    );
    assert!(html.contains(&sha256_hex(&a)) && html.contains(&sha256_hex(&b)));
    assert!(html.contains("data-testid=\"uploaded-notice\""));

    // Their bytes are exactly what was sent.
    let uploads = app
        .state
        .uploads
        .list(
            &ferry::core::Owner::session("AAAAAAAAAAAAAAAAAAAAAw"),
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(uploads.len(), 2);
    for u in uploads {
        let d = app.download(&format!("/files/{}", u.id)).await;
        let expected: &[u8] = if u.metadata.filename() == Some("notes.txt") {
            &b
        } else {
            &a
        };
        assert_eq!(&d.body[..], expected);
        assert_eq!(u.sha256.as_deref(), Some(sha256_hex(expected).as_str()));
    }
}

#[tokio::test]
async fn a_broken_form_is_refused_with_a_page() {
    let app = TestApp::new().await;
    let body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.bin\"\r\n\r\nabc"
            .to_vec();
    let r = app
        .call(
            "POST",
            "/upload/form",
            &[("content-type", "multipart/form-data; boundary=XyZ")],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&r.body).contains("Upload failed"));
    // Nothing half-stored is left behind.
    assert_eq!(
        count_files(&app.data_dir().join("blobs")),
        0,
        "the partial file was removed"
    );
}
