#![cfg(feature = "ssr")]
//! The findings of the outside review that need the real binary: a form
//! whose client hangs up, SIGKILL in the middle of a long PATCH, floods of
//! idle requests and connections, stalled bodies on every route, sign-in
//! guessing, and flags that must be refused at start-up.

use crate::common;

use common::server::Server;
use common::{bytes, path_of, sha256_hex};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

fn client() -> reqwest::blocking::Client {
    common::http_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn create(server: &Server, len: usize, token: &str) -> String {
    let r = client()
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("authorization", format!("Bearer {token}"))
        .header("upload-length", len.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    path_of(r.headers()["location"].to_str().unwrap())
}

fn healthz(server: &Server) -> Duration {
    let started = Instant::now();
    let r = client().get(server.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    started.elapsed()
}

/// Whether the server closes `s` within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_form_whose_client_hangs_up_is_never_complete_or_short() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let data = bytes(8 * MIB, 5);
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
    );
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    for cut in [MIB, 4 * MIB, body.len() - 100, body.len() - 2] {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        let head = format!(
            "POST /upload/form HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer hangup\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
            server.addr(),
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body[..cut]).unwrap();
        drop(s); // the client hangs up
    }
    // The server removes what each cut left unfinished; give it time.
    let list = || {
        let listed = client()
            .post(server.url("/api/list_uploads"))
            .header("authorization", "Bearer hangup")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&listed).unwrap()
    };
    std::thread::sleep(Duration::from_millis(1500));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut listed = list();
    while Instant::now() < deadline
        && listed["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["complete"] != true)
    {
        std::thread::sleep(Duration::from_millis(200));
        listed = list();
    }
    // The cut after the file's closing delimiter leaves it whole; every
    // other cut leaves nothing. Nothing complete is ever short.
    let uploads = listed["uploads"].as_array().unwrap();
    for u in uploads {
        assert_eq!(
            u["complete"], true,
            "unfinished form uploads are removed: {u}"
        );
        assert_eq!(u["size"], data.len() as u64, "{u}");
        assert_eq!(u["sha256"], sha256_hex(&data).as_str(), "{u}");
    }
    assert!(uploads.len() <= 1, "{uploads:?}");
}

#[test]
fn sigkill_in_a_long_patch_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let content = bytes(64 * MIB, 11);
    let mut server = Server::start(&data_dir, &[]);
    let path = create(&server, content.len(), "killed");
    let mut offset = 0usize;
    for round in 0..3 {
        // A PATCH at about 20 MB/s, killed after a fraction of a second.
        let mut s = TcpStream::connect(server.addr()).unwrap();
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {}\r\n\r\n",
            content.len() - offset
        );
        s.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        let mut sent = 0;
        while started.elapsed() < Duration::from_millis(400 + 100 * round) {
            let end = (offset + sent + 256 * 1024).min(content.len());
            s.write_all(&content[offset + sent..end]).unwrap();
            sent = end - offset;
            std::thread::sleep(Duration::from_millis(12));
        }
        std::thread::sleep(Duration::from_millis(100));
        server.kill9();
        drop(s);
        server = Server::start(&data_dir, &[]);
        let now = server.offset(&path) as usize;
        println!(
            "round {round}: sent {sent} bytes, kept {} after SIGKILL",
            now - offset
        );
        assert!(now > offset, "round {round}: progress kept across SIGKILL");
        assert!(now <= offset + sent, "never more than was sent");
        offset = now;
    }
    let r = client()
        .patch(server.url(&path))
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(content[offset..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let got = client().get(server.url(&path)).send().unwrap();
    let etag = got.headers()["etag"].to_str().unwrap().to_string();
    let body = got.bytes().unwrap();
    assert_eq!(body.len(), content.len());
    assert_eq!(sha256_hex(&body), sha256_hex(&content));
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&content)));
}

#[test]
fn hundreds_of_idle_patches_starve_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--body-timeout", "60s"]);
    // Opened as an attacker would, many at once: eight clients of 75.
    let idle: Vec<TcpStream> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..8u8)
            .map(|c| {
                let server = &server;
                scope.spawn(move || {
                    (0..75)
                        .map(|_| {
                            let path = create(server, 1000, "idle");
                            // Headers and one byte, then nothing.
                            server.hanging_patch(&path, &[], &bytes(1000, c), 0, 1)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    assert_eq!(idle.len(), 600);
    std::thread::sleep(Duration::from_millis(500));
    let took = server.upload_whole(256 * 1024, 1);
    assert!(
        took < Duration::from_secs(5),
        "a normal upload took {took:?}"
    );
    assert!(healthz(&server) < Duration::from_secs(5));
    drop(idle);
}

#[test]
fn idle_and_slow_connections_are_closed_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--header-timeout",
            "1s",
            "--body-timeout",
            "1s",
            "--max-connections",
            "64",
        ],
    );
    // Says nothing at all.
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    // Starts a request head and never ends it.
    let mut partial = TcpStream::connect(server.addr()).unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // An HTTP/2 preface and nothing after it.
    let mut h2 = TcpStream::connect(server.addr()).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    // Stalled bodies on routes that read them.
    let stalled: Vec<TcpStream> = [
        ("/signin", "application/x-www-form-urlencoded"),
        ("/api/list_uploads", "application/x-www-form-urlencoded"),
        ("/upload/form", "multipart/form-data; boundary=B"),
    ]
    .iter()
    .map(|(route, ct)| {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        let head = format!("POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: 100000\r\n\r\nab");
        s.write_all(head.as_bytes()).unwrap();
        s
    })
    .collect();
    for (what, s) in [
        ("silent", &mut silent),
        ("partial head", &mut partial),
        ("h2 preface", &mut h2),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(4)),
            "{what} connection stays open"
        );
    }
    for mut s in stalled {
        assert!(
            closed_within(&mut s, Duration::from_secs(4)),
            "a stalled body stays open"
        );
    }
    // More idle connections than allowed: the oldest make room.
    let crowd: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.upload_whole(256 * 1024, 2) < Duration::from_secs(5));
    drop(crowd);
}

#[test]
fn sign_in_guessing_is_slowed_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--access-token", "right"]);
    let mut refused = 0;
    for i in 0..40 {
        let r = client()
            .post(server.url("/signin"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token=guess{i}"))
            .send()
            .unwrap();
        match r.status().as_u16() {
            401 => {}
            429 => refused += 1,
            other => panic!("sign-in answered {other}"),
        }
    }
    assert!(refused >= 25, "only {refused} of 40 guesses were refused");
    // Guessing by bearer token counts the same. One guess a while is let
    // through (one every 6 s), and on a busy machine the loop above can
    // take that long: of two guesses in a row, at least one is refused.
    let statuses: Vec<u16> = (0..2)
        .map(|_| {
            client()
                .get(server.url("/events/poll"))
                .header("authorization", "Bearer guess")
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert!(
        statuses.contains(&429),
        "bearer guesses answered {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn bad_flags_stop_the_server_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for flags in [
        &["--sweep-every", "0s"][..],
        &["--expire-after", "10000years"],
        &["--cors-origin", "not an origin"],
        &["--header-timeout", "0s"],
        &["--body-timeout", "0s"],
        &["--max-size", "0"],
        &["--max-header-bytes", "10"],
        &["--max-connections", "0"],
        &["--min-free-space", "150%"],
        &["--log", "ferry=[[["],
        &["--storage", "gs://bucket"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?} was accepted");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            said.contains(flags[0]) || said.contains("error"),
            "{flags:?}: {said}"
        );
    }
    // `*` is a valid CORS origin: the server starts.
    let server = Server::start(
        &dir.path().join("data"),
        &["--cors-origin", "*", "--expire-after", "99years"],
    );
    let path = create(&server, 5, "flags");
    assert_eq!(server.offset(&path) as usize, 0);
}
