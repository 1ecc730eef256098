#![cfg(feature = "ssr")]
//! The promises of SECURITY.md that are not tested elsewhere: unguessable
//! IDs, server functions and forms refusing cross-site requests, listings
//! that never cross owners. (Downloads that cannot render, hostile names,
//! limits, rate limits and secrets in logs: tests/it/hostile.rs,
//! tests/it/socket.rs, tests/it/tus.rs.)

use crate::common;

use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use std::collections::HashSet;

#[tokio::test]
async fn upload_ids_are_unguessable() {
    let app = TestApp::new().await;
    let mut seen = HashSet::new();
    let mut bits = [0u32; 128];
    for _ in 0..2000 {
        let path = app.create(1, &[]).await;
        let id = path.trim_start_matches("/files/").to_string();
        assert_eq!(id.len(), 22, "128 bits in 22 URL-safe characters");
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&id)
            .unwrap();
        for (i, bit) in bits.iter_mut().enumerate() {
            *bit += ((raw[i / 8] >> (i % 8)) & 1) as u32;
        }
        assert!(seen.insert(id), "an ID came twice");
    }
    // Every bit is a coin flip: none stuck at 0 or 1 (2000 draws; 3.5 % off
    // the mean is more than 6 standard deviations).
    for (i, ones) in bits.iter().enumerate() {
        assert!(
            (700..1300).contains(ones),
            "bit {i} is set {ones} times in 2000"
        );
    }
}

#[tokio::test]
async fn server_functions_and_forms_refuse_cross_site_requests() {
    let app = TestApp::new().await;
    let me = ("authorization", "Bearer AAAAAAAAAAAAAAAAAAAADA");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let host = ("host", "ferry.example");
    for (path, body) in [
        ("/api/list_uploads", ""),
        ("/api/delete_upload", "id=AAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        for evil in [
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "null"),
        ] {
            let a = app.call("POST", path, &[me, form, host, evil], body).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{path} with {evil:?}");
            assert_eq!(a.code(), "forbidden");
        }
    }
    let same = app
        .call(
            "POST",
            "/api/list_uploads",
            &[me, form, host, ("origin", "http://ferry.example")],
            "",
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "same-origin calls work");
    let multipart = ("content-type", "multipart/form-data; boundary=X");
    let a = app
        .call(
            "POST",
            "/upload/form",
            &[me, multipart, host, ("origin", "https://evil.example")],
            "--X--\r\n",
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = app
        .call(
            "POST",
            "/signin",
            &[form, host, ("sec-fetch-site", "cross-site")],
            "token=x",
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn listings_never_show_another_owners_uploads() {
    let app = TestApp::new().await;
    let alice = ("authorization", "Bearer AAAAAAAAAAAAAAAAAAAAEA");
    let bob = ("authorization", "Bearer AAAAAAAAAAAAAAAAAAAAFA");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let mine = app.create(5, &[alice]).await;
    app.patch(&mine, 0, bytes(5, 1), &[]).await;
    let list = |who| {
        let app = &app;
        async move {
            let a = app
                .call("POST", "/api/list_uploads", &[who, form], "")
                .await;
            assert_eq!(a.status, StatusCode::OK);
            a.json()["uploads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["url"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(alice).await, vec![mine.clone()]);
    assert!(list(bob).await.is_empty());
    // Bob cannot delete Alice's upload through the page's functions either.
    let id = mine.trim_start_matches("/files/");
    let a = app
        .call(
            "POST",
            "/api/delete_upload",
            &[bob, form],
            format!("id={id}"),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(app.download(&mine).await.status, StatusCode::OK);
    // Nor see it by claiming its hash for an instant upload (tests/it/tus.rs),
    // nor in events (tests/it/events.rs).
    let anonymous = app
        .call("POST", "/api/list_uploads", &[form], Body::empty())
        .await;
    assert_eq!(anonymous.json()["uploads"].as_array().unwrap().len(), 0);
}
