#![cfg(feature = "ssr")]
//! Several instances serving one upload: two real `ferry` processes on one
//! PostgreSQL server and one S3-compatible server (s3s-fs), PATCH requests
//! alternating between them, one instance SIGKILLed in the middle of a
//! PATCH, a byte-identical file at the end, locks and deletions that hold
//! across instances, and events made on one instance seen on the other.

use crate::common;

use common::server::Server;
use common::services::{Postgres, S3, S3_ACCESS_KEY, S3_SECRET_KEY};
use common::{bytes, path_of, sha256_hex};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const TOKEN: &str = "Bearer scale-out";
const AUTH_LINE: &str = "Authorization: Bearer scale-out";

fn instance(dir: &Path, name: &str, database: &str, storage: &str) -> Server {
    Server::start(
        &dir.join(name),
        &[
            "--database",
            database,
            "--storage",
            storage,
            "--s3-part-size",
            "5MiB",
            "--checkpoint-every",
            "1MiB",
        ],
    )
}

fn head_offset(server: &Server, path: &str) -> u64 {
    let resp = common::http()
        .head(server.url(path))
        .header("tus-resumable", "1.0.0")
        .header("authorization", TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "HEAD {path} on {}", server.base);
    resp.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn patch(server: &Server, path: &str, offset: usize, body: &[u8]) -> reqwest::StatusCode {
    common::http()
        .patch(server.url(path))
        .header("tus-resumable", "1.0.0")
        .header("authorization", TOKEN)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(body.to_vec())
        .send()
        .unwrap()
        .status()
}

fn create(server: &Server, length: usize) -> String {
    let resp = common::http()
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("authorization", TOKEN)
        .header("upload-length", length.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    path_of(resp.headers()["location"].to_str().unwrap())
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(server: &Server, after: u64, timeout: u64) -> serde_json::Value {
    let resp = common::http()
        .get(server.url(&format!("/events/poll?after={after}&timeout={timeout}")))
        .header("authorization", TOKEN)
        .timeout(Duration::from_secs(timeout + 30))
        .send()
        .unwrap();
    serde_json::from_slice(&resp.bytes().unwrap()).unwrap()
}

#[test]
fn two_instances_one_upload_one_killed() {
    let pg = Postgres::start();
    let s3 = S3::start();
    let database = pg.database("scaleout");
    let storage = s3.bucket("scaleout");
    // The instances' S3 credentials, from the usual variables.
    std::env::set_var("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY);
    let dir = tempfile::tempdir().unwrap();
    let a = instance(dir.path(), "a", &database, &storage);
    let b = instance(dir.path(), "b", &database, &storage);

    let size = 23 * MIB + 4321;
    let content = bytes(size, 8);
    let path = create(&a, size);

    // PATCH requests of uneven sizes, alternating between the instances;
    // each instance sees the offset the other reached.
    let mut offset = 0;
    let sizes = [MIB + 17, 3 * MIB, 2 * MIB - 5, 4 * MIB];
    for (i, n) in sizes.iter().enumerate() {
        let (to, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        assert_eq!(patch(to, &path, offset, &content[offset..offset + n]), 204);
        offset += n;
        assert_eq!(head_offset(other, &path), offset as u64);
    }

    // A PATCH to A that is half sent when A is SIGKILLed: what A had
    // checkpointed before it died is kept, B carries on from there at once
    // (A's lock went with its database session), and nothing is lost.
    let before = offset;
    let _conn = a.hanging_patch(&path, &[AUTH_LINE], &content, offset, 3 * MIB);
    wait_for(
        "A checkpoints part of the hanging PATCH",
        Duration::from_secs(20),
        || head_offset(&b, &path) >= (before + 2 * MIB) as u64,
    );
    a.kill9();
    let resumed = head_offset(&b, &path) as usize;
    assert!(
        resumed >= before + 2 * MIB && resumed <= before + 3 * MIB,
        "offset {resumed} after the kill (PATCH started at {before})"
    );
    offset = resumed;
    let n = 5 * MIB + 3;
    assert_eq!(
        patch(&b, &path, offset, &content[offset..offset + n]),
        204,
        "the killed instance's lock does not block the other"
    );
    offset += n;

    // A comes back (a new process) and the upload alternates on to the end.
    let a = instance(dir.path(), "a2", &database, &storage);
    let mut i = 0;
    while offset < size {
        let to = if i % 2 == 0 { &a } else { &b };
        let n = (3 * MIB + 1000 * i).min(size - offset);
        assert_eq!(patch(to, &path, offset, &content[offset..offset + n]), 204);
        offset += n;
        i += 1;
    }
    for server in [&a, &b] {
        let got = common::http().get(server.url(&path)).send().unwrap();
        assert_eq!(got.status(), 200);
        let body = got.bytes().unwrap();
        assert_eq!(body.len(), size);
        assert_eq!(
            sha256_hex(&body),
            sha256_hex(&content),
            "byte-identical on {}",
            server.base
        );
    }
    let ranged = common::http()
        .get(b.url(&path))
        .header("range", "bytes=10485750-10485769")
        .send()
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        &ranged.bytes().unwrap()[..],
        &content[10_485_750..10_485_770]
    );

    // Shared events: B lists what happened through A, in order.
    let page = events(&b, 0, 1);
    let kinds: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| path.ends_with(e["upload"]["id"].as_str().unwrap()))
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"upload.created"));
    assert_eq!(kinds.last(), Some(&"upload.completed"));
    // A long poll on A hears of an upload created through B.
    let cursor = page["cursor"].as_u64().unwrap();
    let started = Instant::now();
    let waiting = {
        let url = a.url(&format!("/events/poll?after={cursor}&timeout=20"));
        std::thread::spawn(move || {
            let resp = common::http()
                .get(url)
                .header("authorization", TOKEN)
                .timeout(Duration::from_secs(60))
                .send()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&resp.bytes().unwrap()).unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let second = create(&b, 2 * MIB);
    let page = waiting.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the long poll was woken, not timed out"
    );
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["upload"]["id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().any(|id| second.ends_with(id)), "{page}");

    // One writer per upload across instances: while A holds the upload,
    // B answers 423; a DELETE through B stops A's writer and removes it.
    let data2 = bytes(2 * MIB, 3);
    let _held = a.hanging_patch(&second, &[AUTH_LINE], &data2, 0, MIB / 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        patch(&b, &second, 0, &data2[..MIB]),
        423,
        "locked across instances"
    );
    let deleted = common::http()
        .delete(b.url(&second))
        .header("tus-resumable", "1.0.0")
        .header("authorization", TOKEN)
        .send()
        .unwrap();
    assert_eq!(
        deleted.status(),
        204,
        "a DELETE makes the other instance's writer give way"
    );
    for server in [&a, &b] {
        let gone = common::http()
            .head(server.url(&second))
            .header("tus-resumable", "1.0.0")
            .send()
            .unwrap();
        assert_eq!(gone.status(), 404);
    }

    // Nothing is left in the bucket but the finished file: no parts, no
    // tails, no multipart uploads of the deleted one.
    drop(a);
    drop(b);
    let left = s3.files("scaleout");
    assert_eq!(left.len(), 1, "{left:?}");
}
