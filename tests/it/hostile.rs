#![cfg(feature = "ssr")]
//! Hostile input: a table of malformed and abusive requests, each with the
//! status and error code it must get. After every one, the server must
//! still serve a fresh upload correctly, and the uploads the request aimed
//! at must be unchanged.

use crate::common;

use axum::body::{Body, Bytes};
use common::*;

const ME: (&str, &str) = ("authorization", "Bearer AAAAAAAAAAAAAAAAAAAABA");
const OTHER: (&str, &str) = ("authorization", "Bearer AAAAAAAAAAAAAAAAAAAACA");

/// The uploads the table's requests aim at.
struct Targets {
    fresh: String,
    deferred: String,
    done: String,
    final_: String,
    partial_open: String,
    partial_done: String,
    others_part: String,
}

async fn targets(app: &TestApp) -> Targets {
    let fresh = app.create(100, &[ME]).await;
    app.patch(&fresh, 0, bytes(10, 1), &[]).await;
    let deferred = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-defer-length", "1"), ME],
            Body::empty(),
        )
        .await
        .location();
    app.patch(&deferred, 0, bytes(50, 2), &[]).await;
    let done = app.create(20, &[ME]).await;
    app.patch(&done, 0, bytes(20, 3), &[]).await;
    let partial_done = app.create(30, &[("upload-concat", "partial"), ME]).await;
    app.patch(&partial_done, 0, bytes(30, 4), &[]).await;
    let final_ = app
        .call(
            "POST",
            "/files/",
            &[TUS, ("upload-concat", &format!("final;{partial_done}")), ME],
            Body::empty(),
        )
        .await
        .location();
    let partial_open = app.create(30, &[("upload-concat", "partial"), ME]).await;
    let others_part = app.create(5, &[("upload-concat", "partial"), OTHER]).await;
    app.patch(&others_part, 0, bytes(5, 5), &[]).await;
    Targets {
        fresh,
        deferred,
        done,
        final_,
        partial_open,
        partial_done,
        others_part,
    }
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Body,
    status: u16,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
        status,
        code,
    }
}

fn chunked(total: usize) -> Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes(total, 9)
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

#[rustfmt::skip] // one case per line reads as the table it is
fn table(t: &Targets) -> Vec<Case> {
    let long_name = format!("filename {}", b64("名前".repeat(3000).as_bytes()));
    let huge_value = format!("k {}", b64(&[b'x'; 20_000]));
    let traversal_name = format!("filename {}", b64(b"../../../../etc/passwd"));
    let control_name = format!("filename {}", b64(b"evil\r\nSet-Cookie: x=1\0.html"));
    let sha1_of_other = format!("sha1 {}", b64(&[0u8; 20]));
    let e = "";
    vec![
        // Lengths and offsets.
        case("negative length", "POST", "/files/", &[TUS, ME, ("upload-length", "-1")], e, 400, "invalid_header"),
        case("non-numeric length", "POST", "/files/", &[TUS, ME, ("upload-length", "ten")], e, 400, "invalid_header"),
        case("overflowing length", "POST", "/files/", &[TUS, ME, ("upload-length", "99999999999999999999999")], e, 400, "invalid_header"),
        case("idempotency key with a space", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("idempotency-key", "a b")], e, 400, "invalid_header"),
        case("idempotency key too long", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("idempotency-key", &"k".repeat(300))], e, 400, "invalid_header"),
        case("length past i64", "POST", "/files/", &[TUS, ME, ("upload-length", "9223372036854775808")], e, 400, "invalid_header"),
        case("exponent length", "POST", "/files/", &[TUS, ME, ("upload-length", "1e3")], e, 400, "invalid_header"),
        case("length with sign", "POST", "/files/", &[TUS, ME, ("upload-length", "+5")], e, 400, "invalid_header"),
        case("length over the maximum", "POST", "/files/", &[TUS, ME, ("upload-length", "2000000")], e, 413, "upload_too_large"),
        case("length and deferral", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-defer-length", "1")], e, 400, "invalid_header"),
        case("deferral not 1", "POST", "/files/", &[TUS, ME, ("upload-defer-length", "yes")], e, 400, "invalid_header"),
        case("no length at all", "POST", "/files/", &[TUS, ME], e, 400, "length_required"),
        case("negative offset", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "-10")], vec![1u8; 5], 400, "invalid_header"),
        case("non-numeric offset", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "zero")], vec![1u8; 5], 400, "invalid_header"),
        case("overflowing offset", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "18446744073709551616")], vec![1u8; 5], 400, "invalid_header"),
        case("missing offset", "PATCH", &t.fresh, &[TUS, OCTET], vec![1u8; 5], 400, "invalid_header"),
        case("offset in the past", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "0")], vec![1u8; 5], 409, "offset_mismatch"),
        case("offset in the future", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "50")], vec![1u8; 5], 409, "offset_mismatch"),
        case("length shrunk below the offset", "PATCH", &t.deferred, &[TUS, OCTET, ("upload-offset", "50"), ("upload-length", "10")], e, 400, "invalid_header"),
        case("length changed once set", "PATCH", &t.done, &[TUS, OCTET, ("upload-offset", "20"), ("upload-length", "21")], e, 400, "length_already_set"),
        // Metadata.
        case("metadata not base64", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", "filename ***")], e, 400, "invalid_metadata"),
        case("metadata duplicate keys", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", "a YQ==,a Yg==")], e, 400, "invalid_metadata"),
        case("metadata empty key", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", ",a YQ==")], e, 400, "invalid_metadata"),
        case("metadata huge value", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", &huge_value)], e, 400, "invalid_metadata"),
        case("metadata non-ASCII key", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", "n\u{e4}me YQ==")], e, 400, "invalid_header"),
        case("filename with path traversal", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", &traversal_name)], e, 201, ""),
        case("filename with control characters", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", &control_name)], e, 201, ""),
        case("very long Unicode filename", "POST", "/files/", &[TUS, ME, ("upload-length", "5"), ("upload-metadata", &long_name)], e, 400, "invalid_metadata"),
        // Checksums and content.
        case("unknown checksum algorithm", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "10"), ("upload-checksum", "crc32 AAAAAA==")], vec![1u8; 5], 400, "checksum_algorithm_unsupported"),
        case("checksum without digest", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "10"), ("upload-checksum", "sha1")], vec![1u8; 5], 400, "invalid_header"),
        case("checksum of the wrong size", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "10"), ("upload-checksum", "sha256 AAAA")], vec![1u8; 5], 460, "checksum_mismatch"),
        case("checksum that does not match", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "10"), ("upload-checksum", &sha1_of_other)], vec![1u8; 5], 460, "checksum_mismatch"),
        case("wrong content type", "PATCH", &t.fresh, &[TUS, ("content-type", "application/json"), ("upload-offset", "10")], vec![1u8; 5], 415, "unsupported_content_type"),
        case("no content type", "PATCH", &t.fresh, &[TUS, ("upload-offset", "10")], vec![1u8; 5], 415, "unsupported_content_type"),
        case("body longer than declared", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "10")], vec![1u8; 91], 413, "body_exceeds_length"),
        case("chunked body longer than declared", "PATCH", &t.fresh, &[TUS, OCTET, ("upload-offset", "10")], chunked(200), 413, "body_exceeds_length"),
        case("PATCH on a finished upload", "PATCH", &t.done, &[TUS, OCTET, ("upload-offset", "20")], vec![1u8; 1], 409, "upload_complete"),
        case("PATCH on a final upload", "PATCH", &t.final_, &[TUS, OCTET, ("upload-offset", "30")], vec![1u8; 1], 403, "concat_final_immutable"),
        // IDs and paths.
        case("ID with path traversal", "PATCH", "/files/..%2F..%2Fetc%2Fpasswd", &[TUS, OCTET, ("upload-offset", "0")], vec![1u8; 1], 404, "not_found"),
        case("ID of the wrong length", "HEAD", "/files/AAAA", &[TUS], e, 404, ""),
        case("ID with bad characters", "DELETE", "/files/AAAAAAAAAAAAAAAAAAAA%00A", &[TUS], e, 404, "not_found"),
        case("ID that does not exist", "DELETE", "/files/AAAAAAAAAAAAAAAAAAAAAA", &[TUS], e, 404, "not_found"),
        // Concatenation.
        case("concat of an unfinished part", "POST", "/files/", &[TUS, ME, ("upload-concat", &format!("final;{}", t.partial_open))], e, 400, "invalid_concat_part"),
        case("concat of someone else's part", "POST", "/files/", &[TUS, ME, ("upload-concat", &format!("final;{}", t.others_part))], e, 403, "forbidden"),
        case("concat of a normal upload", "POST", "/files/", &[TUS, ME, ("upload-concat", &format!("final;{}", t.done))], e, 400, "invalid_concat_part"),
        case("concat with a traversal", "POST", "/files/", &[TUS, ME, ("upload-concat", "final;/files/../../../etc/passwd")], e, 400, "invalid_concat_part"),
        case("concat of nothing", "POST", "/files/", &[TUS, ME, ("upload-concat", "final;")], e, 400, "invalid_concat_part"),
        case("concat nonsense", "POST", "/files/", &[TUS, ME, ("upload-concat", "everything")], e, 400, "invalid_header"),
        // Methods and versions.
        case("override on GET", "GET", &t.fresh, &[TUS, ("x-http-method-override", "DELETE")], e, 400, "invalid_method_override"),
        case("override to TRACE", "POST", &t.fresh, &[TUS, ("x-http-method-override", "TRACE")], e, 400, "invalid_method_override"),
        case("override to PUT", "POST", &t.partial_done, &[TUS, ("x-http-method-override", "PUT")], e, 400, "invalid_method_override"),
        case("unsupported method", "PUT", &t.fresh, &[TUS], vec![1u8; 3], 405, "method_not_allowed"),
        case("old protocol version", "PATCH", &t.fresh, &[("tus-resumable", "0.2.2"), OCTET, ("upload-offset", "10")], vec![1u8; 3], 412, "unsupported_version"),
        case("no protocol version", "DELETE", &t.fresh, &[], e, 412, "unsupported_version"),
        // Downloads.
        case("download of an unfinished upload", "GET", &t.fresh, &[], e, 409, "upload_incomplete"),
        case("range outside the file", "GET", &t.done, &[("range", "bytes=100-200")], e, 416, "range_not_satisfiable"),
    ]
}

#[tokio::test]
async fn every_hostile_request_gets_its_answer_and_harms_nothing() {
    let app = TestApp::with(|c| c.max_size = 1_000_000).await;
    let t = targets(&app).await;
    let cases = table(&t);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let watched = [&t.fresh, &t.deferred, &t.done, &t.final_, &t.partial_done];
    let before: Vec<u64> = {
        let mut v = Vec::new();
        for p in watched {
            v.push(app.offset(p).await);
        }
        v
    };
    let done_bytes = app.download(&t.done).await.body;
    let mut tried = 0;
    for c in cases {
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let a = app.call(c.method, &c.path, &headers, c.body).await;
        assert_eq!(
            a.status.as_u16(),
            c.status,
            "{}: {:?}",
            c.name,
            String::from_utf8_lossy(&a.body)
        );
        if !c.code.is_empty() {
            assert_eq!(a.code(), c.code, "{}", c.name);
            assert!(
                !a.json()["message"].as_str().unwrap_or("").is_empty(),
                "{}: a message for people",
                c.name
            );
        }
        // The server still does its job.
        let canary = bytes(1000, tried as u8);
        let p = app.create(1000, &[]).await;
        assert_eq!(
            app.patch(&p, 0, canary.clone(), &[]).await.status.as_u16(),
            204,
            "after {}",
            c.name
        );
        assert_eq!(
            &app.download(&p).await.body[..],
            &canary[..],
            "after {}",
            c.name
        );
        tried += 1;
    }
    // The targets are as they were.
    for (p, off) in watched.iter().zip(before) {
        assert_eq!(app.offset(p).await, off, "{p} changed");
    }
    assert_eq!(app.download(&t.done).await.body, done_bytes);
    // No file escaped the blob folder.
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            name == "blobs" || name.starts_with("ferry.db"),
            "unexpected {name}"
        );
    }
    println!("hostile inputs tried: {tried}, bytes lost: 0");
}

#[tokio::test]
async fn hostile_file_names_never_reach_the_filesystem_or_the_page() {
    let app = TestApp::new().await;
    let name = format!(
        "filename {}",
        b64(b"../../x\r\n<script>alert(1)</script>.html")
    );
    let p = app.create(3, &[("upload-metadata", &name), ME]).await;
    app.patch(&p, 0, b"abc".to_vec(), &[]).await;
    let d = app.download(&p).await;
    let disposition = d.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        !disposition.contains('\r') && !disposition.contains('/') && !disposition.contains('<')
    );
    assert_eq!(d.header("content-type"), Some("application/octet-stream"));
    assert!(d
        .header("content-security-policy")
        .unwrap()
        .contains("sandbox"));
    let id = p.trim_start_matches("/files/");
    let stored = app.data_dir().join("blobs").join(&id[..2]).join(id);
    assert!(
        stored.exists(),
        "bytes are stored under the ID, never the name"
    );
    let page = app.call("GET", "/", &[ME], Body::empty()).await;
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        !html.contains("<script>alert(1)"),
        "names are escaped in the page"
    );
}
