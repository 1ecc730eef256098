#![cfg(feature = "ssr")]
//! Durability against SIGKILL: the real binary is killed in the middle of a
//! PATCH, restarted over the same data folder, and the upload resumes from
//! the offset HEAD reports; the finished file is byte-identical.

use crate::common;

use common::server::Server;
use common::{bytes, path_of, sha256_hex};
use std::net::TcpStream;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// Starts a PATCH that sends `send` bytes of `data[offset..]` and hangs,
/// and lets the server take in what was sent.
fn start_patch(server: &Server, path: &str, data: &[u8], offset: usize, send: usize) -> TcpStream {
    let s = server.hanging_patch(path, &[], data, offset, send);
    std::thread::sleep(Duration::from_millis(300));
    s
}

#[test]
fn sigkill_mid_patch_then_resume_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let size = 24 * MIB;
    let content = bytes(size, 42);
    let flags = ["--checkpoint-every", "1MiB"];

    let mut server = Server::start(&data_dir, &flags);
    let created = common::http()
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", size.to_string())
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let path = path_of(created.headers()["location"].to_str().unwrap());

    let mut offset = 0usize;
    for round in 0..3 {
        let send = 5 * MIB + round * 123_457;
        let conn = start_patch(&server, &path, &content, offset, send);
        server.kill9();
        drop(conn);
        server = Server::start(&data_dir, &flags);
        let now = server.offset(&path) as usize;
        assert!(
            now >= offset,
            "round {round}: offset went back from {offset} to {now}"
        );
        assert!(
            now <= offset + send,
            "round {round}: offset {now} is past the {} bytes sent",
            offset + send
        );
        assert!(
            now > offset,
            "round {round}: checkpoints every MiB keep some of the {send} bytes sent"
        );
        offset = now;
    }

    let resp = common::http()
        .patch(server.url(&path))
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(content[offset..].to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let got = common::http().get(server.url(&path)).send().unwrap();
    assert_eq!(got.status(), 200);
    let etag = got.headers()["etag"].to_str().unwrap().to_string();
    let body = got.bytes().unwrap();
    assert_eq!(
        body.len(),
        size,
        "no upload ends larger or smaller than its source"
    );
    assert_eq!(sha256_hex(&body), sha256_hex(&content));
    assert_eq!(
        etag,
        format!("\"{}\"", sha256_hex(&content)),
        "the recorded SHA-256 is right"
    );
}
