#![cfg(feature = "ssr")]
//! The tus 1.0.0 protocol, driven through `router()`: every status the
//! protocol and Ferry's extensions define, and what the bytes look like
//! afterwards.

use crate::common;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use common::*;
use futures_util::StreamExt;
use std::time::Duration;

#[tokio::test]
async fn options_announces_version_extensions_and_limits() {
    let app = TestApp::with(|c| c.max_size = 12345).await;
    let a = app.call("OPTIONS", "/files/", &[], Body::empty()).await;
    assert_eq!(a.status, StatusCode::OK, "200, which every client takes");
    assert_eq!(a.header("tus-version"), Some("1.0.0"));
    assert_eq!(a.header("tus-max-size"), Some("12345"));
    assert_eq!(a.header("tus-checksum-algorithm"), Some("sha1,sha256,md5"));
    let ext = a.header("tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
        "concatenation",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{e} missing from {ext}");
    }
    assert_eq!(
        a.header("tus-resumable"),
        None,
        "OPTIONS answers carry no Tus-Resumable"
    );
}

#[tokio::test]
async fn create_head_patch_complete_download() {
    let app = TestApp::new().await;
    let data = bytes(300_000, 1);
    let meta = format!(
        "filename {},filetype {}",
        b64("report 2026.pdf".as_bytes()),
        b64(b"application/pdf")
    );
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "300000"), ("upload-metadata", &meta)],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.header("tus-resumable"), Some("1.0.0"));
    assert!(a.header("upload-expires").unwrap().ends_with("GMT"));
    let path = a.location();
    let id = path.strip_prefix("/files/").unwrap();
    assert_eq!(id.len(), 22);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));

    let h = app.call("HEAD", &path, &[TUS], Body::empty()).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("upload-offset"), Some("0"));
    assert_eq!(h.header("upload-length"), Some("300000"));
    assert_eq!(h.header("upload-metadata"), Some(meta.as_str()));
    assert_eq!(h.header("cache-control"), Some("no-store"));

    let p = app.patch(&path, 0, data[..100_000].to_vec(), &[]).await;
    assert_eq!(p.status, StatusCode::NO_CONTENT, "{:?}", p.body);
    assert_eq!(p.header("upload-offset"), Some("100000"));
    assert_eq!(p.header("tus-resumable"), Some("1.0.0"));
    assert_eq!(app.offset(&path).await, 100_000);

    let early = app.download(&path).await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.code(), "upload_incomplete");

    let p = app
        .patch(&path, 100_000, data[100_000..].to_vec(), &[])
        .await;
    assert_eq!(p.status, StatusCode::NO_CONTENT);
    assert_eq!(p.header("upload-offset"), Some("300000"));
    assert_eq!(
        p.header("upload-expires"),
        None,
        "finished uploads do not expire"
    );

    let d = app.download(&path).await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(&d.body[..], &data[..]);
    assert_eq!(d.header("content-type"), Some("application/octet-stream"));
    assert_eq!(d.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(d.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        d.header("etag"),
        Some(format!("\"{}\"", sha256_hex(&data)).as_str())
    );
    let disp = d.header("content-disposition").unwrap();
    assert!(
        disp.starts_with("attachment; filename=\"report 2026.pdf\""),
        "{disp}"
    );
}

#[tokio::test]
async fn range_requests() {
    let app = TestApp::new().await;
    let data = bytes(1000, 2);
    let path = app.create(1000, &[]).await;
    app.patch(&path, 0, data.clone(), &[]).await;
    let r = app
        .call("GET", &path, &[("range", "bytes=10-19")], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(&r.body[..], &data[10..20]);
    let r = app
        .call("GET", &path, &[("range", "bytes=-5")], Body::empty())
        .await;
    assert_eq!(&r.body[..], &data[995..]);
    let r = app
        .call("GET", &path, &[("range", "bytes=5000-6000")], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
    assert_eq!(r.code(), "range_not_satisfiable");
    let r = app
        .call("GET", &path, &[("range", "pages=1")], Body::empty())
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a Range that cannot be parsed is ignored"
    );
    assert_eq!(r.body.len(), 1000);
}

#[tokio::test]
async fn wrong_offset_is_409_and_changes_nothing() {
    let app = TestApp::new().await;
    let path = app.create(100, &[]).await;
    app.patch(&path, 0, bytes(10, 3), &[]).await;
    for wrong in [0u64, 5, 11, 1000] {
        let a = app.patch(&path, wrong, bytes(10, 4), &[]).await;
        assert_eq!(a.status, StatusCode::CONFLICT, "offset {wrong}");
        assert_eq!(a.code(), "offset_mismatch");
    }
    assert_eq!(app.offset(&path).await, 10);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::new().await;
    let path = app.create(100, &[]).await;
    for ct in ["application/octet-stream", "text/plain", ""] {
        let a = app
            .call(
                "PATCH",
                &path,
                &[TUS, ("content-type", ct), ("upload-offset", "0")],
                vec![1u8; 10],
            )
            .await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(a.code(), "unsupported_content_type");
    }
    assert_eq!(app.offset(&path).await, 0);
}

#[tokio::test]
async fn unsupported_or_missing_version_is_412() {
    let app = TestApp::new().await;
    for headers in [
        vec![("tus-resumable", "0.2.2"), ("upload-length", "5")],
        vec![("upload-length", "5")],
    ] {
        let a = app.call("POST", "/files/", &headers, Body::empty()).await;
        assert_eq!(a.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(a.header("tus-version"), Some("1.0.0"));
        assert_eq!(a.code(), "unsupported_version");
    }
}

#[tokio::test]
async fn checksums_are_verified_and_a_bad_chunk_is_discarded() {
    use sha1::Digest as _;
    let app = TestApp::new().await;
    let data = bytes(4000, 5);
    let path = app.create(4000, &[]).await;
    let sha1 = b64(&sha1::Sha1::digest(&data[..1000]));
    let a = app
        .patch(
            &path,
            0,
            data[..1000].to_vec(),
            &[("upload-checksum", &format!("sha1 {sha1}"))],
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);

    let sha256 = b64(&sha2::Sha256::digest(&data[1000..2000]));
    let a = app
        .patch(
            &path,
            1000,
            data[1000..2000].to_vec(),
            &[("upload-checksum", &format!("sha256 {sha256}"))],
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);

    // The right digest of other bytes: 460, and the chunk is not kept.
    let md5_of_other = b64(&md5::Md5::digest(b"something else"));
    let a = app
        .patch(
            &path,
            2000,
            data[2000..3000].to_vec(),
            &[("upload-checksum", &format!("md5 {md5_of_other}"))],
        )
        .await;
    assert_eq!(a.status.as_u16(), 460);
    assert_eq!(a.code(), "checksum_mismatch");
    assert_eq!(app.offset(&path).await, 2000);

    let a = app
        .patch(
            &path,
            2000,
            data[2000..3000].to_vec(),
            &[("upload-checksum", "crc32 AAAAAA==")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "checksum_algorithm_unsupported");

    let md5 = b64(&md5::Md5::digest(&data[2000..]));
    let a = app
        .patch(
            &path,
            2000,
            data[2000..].to_vec(),
            &[("upload-checksum", &format!("md5 {md5}"))],
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(&app.download(&path).await.body[..], &data[..]);
}

#[tokio::test]
async fn size_limits_are_413() {
    let app = TestApp::with(|c| c.max_size = 1000).await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "1001")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.code(), "upload_too_large");

    // A body with a Content-Length past the length: refused before reading.
    let path = app.create(100, &[]).await;
    let a = app.patch(&path, 0, bytes(101, 6), &[]).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.code(), "body_exceeds_length");
    assert_eq!(app.offset(&path).await, 0);

    // A chunked body (no Content-Length) that runs past the length: cut,
    // and nothing of it stored.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..5).map(|i| Ok(Bytes::from(bytes(30, i)))).collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let a = app
        .call("PATCH", &path, &[TUS, OCTET, ("upload-offset", "0")], body)
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.offset(&path).await, 0);
    let blob = std::fs::read_dir(app.data_dir().join("blobs"))
        .unwrap()
        .count();
    assert!(blob >= 1);

    // Deferred uploads are bounded by the maximum size.
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-defer-length", "1")],
            Body::empty(),
        )
        .await;
    let deferred = a.location();
    let a = app
        .patch(&deferred, 0, bytes(10, 1), &[("upload-length", "5000")])
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn chunked_bodies_stream_in() {
    let app = TestApp::new().await;
    let data = bytes(200_000, 7);
    let path = app.create(200_000, &[]).await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(7_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let a = app
        .call("PATCH", &path, &[TUS, OCTET, ("upload-offset", "0")], body)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(&app.download(&path).await.body[..], &data[..]);
}

#[tokio::test]
async fn deferred_length_is_set_by_a_patch() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-defer-length", "1")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let path = a.location();
    let h = app.call("HEAD", &path, &[TUS], Body::empty()).await;
    assert_eq!(h.header("upload-defer-length"), Some("1"));
    assert_eq!(h.header("upload-length"), None);
    let data = bytes(5000, 8);
    assert_eq!(
        app.patch(&path, 0, data[..3000].to_vec(), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    let a = app
        .patch(
            &path,
            3000,
            data[3000..].to_vec(),
            &[("upload-length", "5000")],
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let h = app.call("HEAD", &path, &[TUS], Body::empty()).await;
    assert_eq!(h.header("upload-length"), Some("5000"));
    assert_eq!(h.header("upload-defer-length"), None);
    assert_eq!(&app.download(&path).await.body[..], &data[..]);
    // Once known, the length cannot change.
    let a = app
        .patch(&path, 5000, vec![], &[("upload-length", "6000")])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "length_already_set");

    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-defer-length", "2")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = app.call("POST", "/files/", &[TUS], Body::empty()).await;
    assert_eq!(a.code(), "length_required");
}

#[tokio::test]
async fn creation_with_upload() {
    let app = TestApp::new().await;
    let data = bytes(5000, 9);
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, OCTET, ("upload-length", "5000")],
            data[..2000].to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.header("upload-offset"), Some("2000"));
    assert_eq!(a.header("repr-digest"), None, "unfinished: no digest yet");
    let path = a.location();
    let done = app.patch(&path, 2000, data[2000..].to_vec(), &[]).await;
    assert_eq!(
        done.header("repr-digest"),
        Some(common::digest(&data).as_str())
    );
    assert_eq!(&app.download(&path).await.body[..], &data[..]);

    // A whole file in the request that creates it: one request, and its
    // answer says the SHA-256.
    let small = bytes(300, 10);
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, OCTET, ("upload-length", "300")],
            small.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.header("upload-offset"), Some("300"));
    assert_eq!(
        a.header("repr-digest"),
        Some(common::digest(&small).as_str())
    );
    assert_eq!(&app.download(&a.location()).await.body[..], &small[..]);
}

/// A creation request sent twice (a browser resends a POST whose
/// connection died before its answer came) makes one upload when it
/// carries an Idempotency-Key: the second answers the first's upload,
/// takes the bytes it did not have, and is counted once.
#[tokio::test]
async fn a_creation_sent_again_makes_one_upload() {
    let app = TestApp::new().await;
    let data = bytes(3000, 21);
    let key = (
        "idempotency-key",
        "\"page-7f3a-0123456789abcdef0123456789\"",
    );
    let post = |body: &[u8], length: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut headers = vec![TUS, OCTET, ("upload-length", length)];
        headers.extend_from_slice(extra);
        let body = body.to_vec();
        let app = &app;
        async move { app.call("POST", "/files/", &headers, body).await }
    };
    let first = post(&data[..1000], "3000", &[key]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.header("upload-offset"), Some("1000"));
    let path = first.location();

    // The same request again: the same upload, nothing appended twice.
    let again = post(&data[..1000], "3000", &[key]).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.location(), path);
    assert_eq!(again.header("upload-offset"), Some("1000"));
    // Sent again with more of the file: what the server has is passed
    // over, the rest appended.
    let more = post(&data[..2500], "3000", &[key]).await;
    assert_eq!(more.location(), path);
    assert_eq!(more.header("upload-offset"), Some("2500"));
    app.patch(&path, 2500, data[2500..].to_vec(), &[]).await;
    assert_eq!(&app.download(&path).await.body[..], &data[..]);
    // Finished, the same request still answers it, whole.
    let done = post(&data[..1000], "3000", &[key]).await;
    assert_eq!(done.location(), path);
    assert_eq!(done.header("upload-offset"), Some("3000"));
    assert_eq!(
        done.header("repr-digest"),
        Some(common::digest(&data).as_str())
    );

    // The key with another length is a mistake, said as such.
    let other = post(&data[..10], "10", &[key]).await;
    assert_eq!(other.status.as_u16(), 422);
    assert_eq!(other.code(), "idempotency_key_reused");
    // Without a key, or with another, a new upload.
    assert_ne!(post(&data[..10], "3000", &[]).await.location(), path);
    let fresh = post(
        &data[..10],
        "3000",
        &[(
            "idempotency-key",
            "\"page-other-0123456789abcdef012345678\"",
        )],
    )
    .await;
    assert_ne!(fresh.location(), path);
    // Keys are the owner's: another session's same key is its own.
    let cookie = app.session("BBBBBBBBBBBBBBBBBBBBBw");
    let theirs = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "3000"), key, (cookie.0, &cookie.1)],
            Body::empty(),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.location(), path);

    // Two at once with a new key: one upload between them.
    let k = (
        "idempotency-key",
        "\"page-race-0123456789abcdef0123456789\"",
    );
    let (a, b) = tokio::join!(
        post(&data[..500], "3000", &[k]),
        post(&data[..500], "3000", &[k])
    );
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
    assert_eq!(b.status, StatusCode::CREATED, "{:?}", b.json());
    assert_eq!(a.location(), b.location());
    assert_eq!(app.offset(&a.location()).await, 500);
    // Without a session or token, everyone is one owner: a key short
    // enough to guess is not taken as anyone's.
    let short = ("idempotency-key", "\"k1\"");
    let one = post(&data[..10], "3000", &[short]).await;
    let two = post(&data[..10], "3000", &[short]).await;
    assert_ne!(one.location(), two.location());
    let metrics = app.call("GET", "/metrics", &[], Body::empty()).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.contains(r#"ferry_uploads_total{event="created"} 7"#),
        "{text}"
    );
}

#[tokio::test]
async fn termination_then_404() {
    let app = TestApp::new().await;
    let path = app.create(100, &[]).await;
    app.patch(&path, 0, bytes(50, 1), &[]).await;
    let a = app.call("DELETE", &path, &[TUS], Body::empty()).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let h = app.call("HEAD", &path, &[TUS], Body::empty()).await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);
    let a = app.patch(&path, 50, bytes(50, 1), &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), "not_found");
    let a = app.call("DELETE", &path, &[TUS], Body::empty()).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // No file is left behind.
    let files: usize = count_files(&app.data_dir().join("blobs"));
    assert_eq!(files, 0);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = TestApp::new().await;
    for path in [
        "/files/AAAAAAAAAAAAAAAAAAAAAA",
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/x",
    ] {
        let a = app.call("HEAD", path, &[TUS], Body::empty()).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        let a = app.patch(path, 0, vec![1], &[]).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.code(), "not_found");
    }
}

#[tokio::test]
async fn expired_uploads_are_410_and_swept() {
    let app = TestApp::with(|c| c.expire_after = Duration::from_millis(50)).await;
    let path = app.create(100, &[]).await;
    app.patch(&path, 0, bytes(10, 1), &[]).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let a = app.patch(&path, 10, bytes(10, 1), &[]).await;
    assert_eq!(a.status, StatusCode::GONE);
    assert_eq!(a.code(), "upload_expired");
    assert_eq!(app.state.uploads.sweep_expired().await.unwrap(), 1);
    assert_eq!(
        count_files(&app.data_dir().join("blobs")),
        0,
        "the bytes are removed"
    );
    let h = app.call("HEAD", &path, &[TUS], Body::empty()).await;
    assert_eq!(h.status, StatusCode::GONE);
}

#[tokio::test]
async fn method_override() {
    let app = TestApp::new().await;
    let path = app.create(10, &[]).await;
    let a = app
        .call(
            "POST",
            &path,
            &[
                TUS,
                OCTET,
                ("upload-offset", "0"),
                ("x-http-method-override", "PATCH"),
            ],
            bytes(10, 1),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(app.offset(&path).await, 10);
    let a = app
        .call(
            "GET",
            &path,
            &[TUS, ("x-http-method-override", "DELETE")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "invalid_method_override");
    let a = app
        .call(
            "POST",
            &path,
            &[TUS, ("x-http-method-override", "PUT")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.code(), "invalid_method_override");
    let a = app
        .call(
            "POST",
            &path,
            &[TUS, ("x-http-method-override", "DELETE")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(app.download(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concatenation() {
    let app = TestApp::new().await;
    let cookie = ("authorization", "Bearer BBBBBBBBBBBBBBBBBBBBBA");
    let a_data = bytes(3000, 10);
    let b_data = bytes(5000, 11);
    let a = app
        .create(3000, &[("upload-concat", "partial"), cookie])
        .await;
    let b = app
        .create(5000, &[("upload-concat", "partial"), cookie])
        .await;
    app.patch(&a, 0, a_data.clone(), &[]).await;
    // An unfinished part cannot be concatenated.
    let fin = format!("final;{a} {b}");
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-concat", &fin), cookie],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_concat_part");
    app.patch(&b, 0, b_data.clone(), &[]).await;
    // Someone else cannot use these parts.
    let other = ("authorization", "Bearer CCCCCCCCCCCCCCCCCCCCCA");
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-concat", &fin), other],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-concat", &fin), cookie],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let f = r.location();
    let h = app.call("HEAD", &f, &[TUS], Body::empty()).await;
    assert_eq!(h.header("upload-offset"), Some("8000"));
    assert_eq!(
        h.header("upload-concat"),
        Some(format!("final;{a} {b}").as_str())
    );
    let h = app.call("HEAD", &a, &[TUS], Body::empty()).await;
    assert_eq!(h.header("upload-concat"), Some("partial"));
    let d = app.download(&f).await;
    assert_eq!(&d.body[..], &[a_data, b_data].concat()[..]);
    // The final upload takes no bytes of its own.
    let p = app.patch(&f, 8000, vec![1], &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(p.code(), "concat_final_immutable");
    // A normal upload is not a part.
    let n = app.create(1, &[cookie]).await;
    app.patch(&n, 0, vec![1], &[]).await;
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-concat", &format!("final;{n}")), cookie],
            Body::empty(),
        )
        .await;
    assert_eq!(r.code(), "invalid_concat_part");
}

#[tokio::test]
async fn instant_upload_of_identical_bytes() {
    let app = TestApp::new().await;
    let data = bytes(10_000, 12);
    let digest = sha256_hex(&data);
    let meta = format!(
        "filename {},sha256 {}",
        b64(b"a.bin"),
        b64(digest.as_bytes())
    );
    let cookie = ("authorization", "Bearer DDDDDDDDDDDDDDDDDDDDDA");
    let first = app
        .create(10_000, &[("upload-metadata", &meta), cookie])
        .await;
    app.patch(&first, 0, data.clone(), &[]).await;

    let r = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "10000"),
                ("upload-metadata", &meta),
                cookie,
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("upload-offset"), Some("10000"), "complete at once");
    let second = r.location();
    assert_ne!(second, first);
    assert_eq!(&app.download(&second).await.body[..], &data[..]);
    assert_eq!(
        count_files(&app.data_dir().join("blobs")),
        1,
        "the bytes are stored once"
    );

    // Deleting one leaves the other whole.
    app.call("DELETE", &first, &[TUS], Body::empty()).await;
    assert_eq!(&app.download(&second).await.body[..], &data[..]);
    app.call("DELETE", &second, &[TUS], Body::empty()).await;
    assert_eq!(count_files(&app.data_dir().join("blobs")), 0);

    // Another owner, or nobody, never gets an instant upload.
    let third = app
        .create(10_000, &[("upload-metadata", &meta), cookie])
        .await;
    app.patch(&third, 0, data.clone(), &[]).await;
    let other = ("authorization", "Bearer EEEEEEEEEEEEEEEEEEEEEA");
    for who in [vec![other], vec![]] {
        let mut headers = vec![
            TUS,
            ("upload-length", "10000"),
            ("upload-metadata", meta.as_str()),
        ];
        headers.extend(who);
        let r = app.call("POST", "/files/", &headers, Body::empty()).await;
        assert_eq!(r.header("upload-offset"), None);
        assert_eq!(app.offset(&r.location()).await, 0);
    }
    // A claimed hash that is wrong matches nothing.
    let wrong = format!("sha256 {}", b64(sha256_hex(b"other").as_bytes()));
    let r = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "10000"),
                ("upload-metadata", &wrong),
                cookie,
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(app.offset(&r.location()).await, 0);
}

#[tokio::test]
async fn simultaneous_patches_at_one_offset_give_exactly_one_success() {
    let app = TestApp::new().await;
    let path = app.create(8 * 100_000, &[]).await;
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let router = app.router.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            // Each body trickles in, so that the requests overlap.
            let data = bytes(100_000, i);
            let chunks: Vec<Bytes> = data.chunks(10_000).map(Bytes::copy_from_slice).collect();
            let stream = futures_util::stream::iter(chunks).then(|c| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok::<_, std::io::Error>(c)
            });
            let req = axum::http::Request::patch(&path)
                .header("tus-resumable", "1.0.0")
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", "0")
                .body(Body::from_stream(stream))
                .unwrap();
            use tower::ServiceExt;
            let resp = router.oneshot(req).await.unwrap();
            (i, resp.status())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, status) = t.await.unwrap();
        match status.as_u16() {
            204 => winners.push(i),
            409 | 423 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one PATCH wins");
    assert_eq!(app.offset(&path).await, 100_000);
    let rest = bytes(700_000, 99);
    app.patch(&path, 100_000, rest.clone(), &[]).await;
    let d = app.download(&path).await;
    assert_eq!(&d.body[..100_000], &bytes(100_000, winners[0])[..]);
    assert_eq!(&d.body[100_000..], &rest[..]);
}

#[tokio::test]
async fn a_dropped_body_keeps_what_arrived() {
    let app = TestApp::new().await;
    let path = app.create(100_000, &[]).await;
    let data = bytes(100_000, 13);
    let first = Bytes::copy_from_slice(&data[..40_000]);
    let stream = futures_util::stream::iter(vec![
        Ok(first),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let a = app
        .call(
            "PATCH",
            &path,
            &[TUS, OCTET, ("upload-offset", "0")],
            Body::from_stream(stream),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "body_incomplete");
    assert_eq!(app.offset(&path).await, 40_000);
    app.patch(&path, 40_000, data[40_000..].to_vec(), &[]).await;
    assert_eq!(&app.download(&path).await.body[..], &data[..]);
}

#[tokio::test]
async fn state_survives_a_restart_and_unacknowledged_bytes_are_dropped() {
    let app = TestApp::new().await;
    let data = bytes(50_000, 14);
    let path = app.create(50_000, &[]).await;
    app.patch(&path, 0, data[..20_000].to_vec(), &[]).await;
    // Bytes that reached the file but were never acknowledged, when the
    // machine restarted since (its page cache may have lost or torn them),
    // are garbage to the protocol. (After a crash of the process alone,
    // they are taken in: tests/it/attack_socket.rs.)
    let id = path.strip_prefix("/files/").unwrap();
    let blob = app.data_dir().join("blobs").join(&id[..2]).join(id);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&blob)
            .unwrap();
        f.write_all(b"garbage that was never acknowledged").unwrap();
    }
    std::fs::write(app.data_dir().join("blobs/.boot_id"), "another boot").unwrap();
    let app = app.restart(|_| {}).await;
    assert_eq!(app.offset(&path).await, 20_000);
    let a = app.patch(&path, 20_000, data[20_000..].to_vec(), &[]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let d = app.download(&path).await;
    assert_eq!(&d.body[..], &data[..]);
    assert_eq!(
        d.header("etag"),
        Some(format!("\"{}\"", sha256_hex(&data)).as_str())
    );
}

#[tokio::test]
async fn a_record_ahead_of_its_bytes_is_reconciled_on_start() {
    let app = TestApp::with(|c| c.fsync = ferry::core::FsyncPolicy::Never).await;
    let data = bytes(30_000, 15);
    let path = app.create(30_000, &[]).await;
    app.patch(&path, 0, data[..20_000].to_vec(), &[]).await;
    // As after a power cut without fsync: the file lost its tail.
    let id = path.strip_prefix("/files/").unwrap();
    let blob = app.data_dir().join("blobs").join(&id[..2]).join(id);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_len(12_345)
        .unwrap();
    let app = app.restart(|_| {}).await;
    assert_eq!(app.offset(&path).await, 12_345);
    app.patch(&path, 12_345, data[12_345..].to_vec(), &[]).await;
    let d = app.download(&path).await;
    assert_eq!(&d.body[..], &data[..]);
    assert_eq!(
        d.header("etag"),
        Some(format!("\"{}\"", sha256_hex(&data)).as_str()),
        "hash rebuilt from disk"
    );
}

#[tokio::test]
async fn errors_are_json_with_stable_codes() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "-1")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(a.code(), "invalid_header");
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .contains("Upload-Length"));
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "5"), ("upload-metadata", "k !!")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.code(), "invalid_metadata");
    let a = app.call("PUT", "/files/", &[TUS], Body::empty()).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.code(), "method_not_allowed");
}

#[tokio::test]
async fn access_token_closes_the_server() {
    let app =
        TestApp::with(|c| c.access_token = Some(ferry::server::config::Secret::new("s3cret")))
            .await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-length", "5")],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "unauthorized");
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "5"),
                ("authorization", "Bearer wrong"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "5"),
                ("authorization", "Bearer s3cret"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        app.call("GET", "/healthz", &[], Body::empty()).await.status,
        StatusCode::OK
    );
    let page = app
        .call("GET", "/", &[("accept", "text/html")], Body::empty())
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.header("location"), Some("/signin"));

    // Signing in with the token opens the page for a new session only.
    let planted = app.session("FFFFFFFFFFFFFFFFFFFFFA");
    let session = planted.1.as_str();
    let bad = app
        .call(
            "POST",
            "/signin",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", session),
            ],
            "token=nope",
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let ok = app
        .call(
            "POST",
            "/signin",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", session),
            ],
            "token=s3cret",
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let set: Vec<String> = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let auth = set
        .iter()
        .find(|c| c.starts_with("ferry_auth="))
        .expect("an auth cookie");
    let fresh = set
        .iter()
        .find(|c| c.starts_with("ferry_session="))
        .expect("a fresh session");
    assert_ne!(
        fresh, session,
        "signing in never keeps the session it came with"
    );
    let cookies = format!("{fresh}; {auth}");
    let page = app
        .call(
            "GET",
            "/",
            &[("accept", "text/html"), ("cookie", &cookies)],
            Body::empty(),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // The same proof with another session, or with the planted one, is
    // worth nothing.
    let stolen = format!("{}; {auth}", app.session("GGGGGGGGGGGGGGGGGGGGGA").1);
    let page = app
        .call(
            "GET",
            "/",
            &[
                ("accept", "text/html"),
                ("cookie", &format!("{session}; {auth}")),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = app
        .call(
            "GET",
            "/",
            &[("accept", "text/html"), ("cookie", &stolen)],
            Body::empty(),
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn new_browsers_get_a_private_session_cookie() {
    let app = TestApp::new().await;
    let a = app.call("GET", "/", &[], Body::empty()).await;
    let cookie = a.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("ferry_session="));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    let again = app
        .call(
            "GET",
            "/",
            &[("cookie", cookie.split(';').next().unwrap())],
            Body::empty(),
        )
        .await;
    assert_eq!(again.header("set-cookie"), None);
}

#[tokio::test]
async fn cors_for_configured_origins() {
    let app = TestApp::with(|c| c.cors_origin = vec!["https://app.example".into()]).await;
    let pre = app
        .call(
            "OPTIONS",
            "/files/",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "PATCH"),
                (
                    "access-control-request-headers",
                    "tus-resumable,upload-offset,content-type",
                ),
            ],
            Body::empty(),
        )
        .await;
    assert!(pre.status.is_success());
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "5"),
                ("origin", "https://app.example"),
            ],
            Body::empty(),
        )
        .await;
    let exposed = a
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "location",
        "upload-offset",
        "upload-expires",
        "tus-resumable",
    ] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "5"),
                ("origin", "https://evil.example"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(a.header("access-control-allow-origin"), None);
}

async fn post(app: &TestApp, extra: Vec<(&'static str, &'static str)>) -> common::Answer {
    let mut headers = vec![TUS, ("upload-length", "5")];
    headers.extend(extra);
    app.call("POST", "/files/", &headers, Body::empty()).await
}

#[tokio::test]
async fn locations_are_absolute_from_the_host_asked() {
    let app = TestApp::new().await;
    let a = post(&app, vec![("host", "ferry.example:8080")]).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let location = a.location();
    assert!(
        location.starts_with("http://ferry.example:8080/files/"),
        "{location}"
    );
    assert_eq!(app.offset(&location).await, 0, "the absolute URL works");
    // A proxy's word counts only with --behind-proxy.
    let forwarded = vec![
        ("host", "10.0.0.5:3000"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "uploads.example"),
    ];
    let a = post(&app, forwarded.clone()).await;
    assert!(a.location().starts_with("http://10.0.0.5:3000/files/"));
    // Hosts that are not a plain authority leave the URL relative.
    for bad in ["evil.example/path", "user@evil.example", "a b"] {
        let a = post(&app, vec![("host", bad)]).await;
        assert!(
            a.location().starts_with("/files/"),
            "{bad}: {}",
            a.location()
        );
    }
    let a = post(&app, vec![]).await;
    assert!(a.location().starts_with("/files/"), "no host, relative");

    let proxied = TestApp::with(|c| c.behind_proxy = true).await;
    let a = post(&proxied, forwarded).await;
    assert!(
        a.location().starts_with("https://uploads.example/files/"),
        "{}",
        a.location()
    );
    let a = post(
        &proxied,
        vec![
            ("host", "10.0.0.5:3000"),
            (
                "forwarded",
                "for=192.0.2.1;proto=https;host=\"public.example\", for=10.0.0.1",
            ),
        ],
    )
    .await;
    assert!(
        a.location().starts_with("https://public.example/files/"),
        "{}",
        a.location()
    );
    let a = post(
        &proxied,
        vec![("host", "h.example"), ("x-forwarded-proto", "gopher")],
    )
    .await;
    assert!(a.location().starts_with("/files/"), "only http and https");
}

#[tokio::test]
async fn a_wrong_offset_answer_says_the_right_one() {
    let app = TestApp::new().await;
    let path = app.create(20, &[]).await;
    app.patch(&path, 0, bytes(7, 1), &[]).await;
    let a = app.patch(&path, 3, bytes(5, 2), &[]).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.code(), "offset_mismatch");
    assert_eq!(a.header("upload-offset"), Some("7"));
    assert_eq!(app.offset(&path).await, 7);
}

#[tokio::test]
async fn a_checksum_of_the_wrong_length_is_460_and_keeps_nothing() {
    let app = TestApp::new().await;
    let path = app.create(10, &[]).await;
    // A SHA-1 digest has 20 bytes; this one has 3, so it can never match.
    let a = app
        .patch(&path, 0, bytes(10, 1), &[("upload-checksum", "sha1 AAAA")])
        .await;
    assert_eq!(a.status.as_u16(), 460);
    assert_eq!(a.code(), "checksum_mismatch");
    assert_eq!(app.offset(&path).await, 0);
}

#[tokio::test]
async fn creation_with_a_body_of_the_wrong_type_is_415_and_creates_nothing() {
    let app = TestApp::new().await;
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "10"),
                ("content-type", "text/plain"),
                ("content-length", "5"),
            ],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(a.code(), "unsupported_content_type");
    assert!(a.header("location").is_none());
    // An empty body of any type is no body.
    let a = app
        .call(
            "POST",
            "/files/",
            &[
                TUS,
                ("upload-length", "10"),
                ("content-type", "text/plain"),
                ("content-length", "0"),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
}

#[tokio::test]
async fn parts_sent_without_a_session_can_be_joined_by_whoever_holds_their_urls() {
    let app = TestApp::new().await;
    // Parts made anonymously (a script without cookies), then the final
    // from a client that has since been given a session.
    let a = app.create(3, &[("upload-concat", "partial")]).await;
    let b = app.create(2, &[("upload-concat", "partial")]).await;
    app.patch(&a, 0, b"hel".to_vec(), &[]).await;
    app.patch(&b, 0, b"lo".to_vec(), &[]).await;
    let fin = format!("final;{a} {b}");
    let session = app.session("AAAAAAAAAAAAAAAAAAAAAw");
    let r = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-concat", &fin), (session.0, &session.1)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(app.download(&r.location()).await.body.as_ref(), b"hello");
}
