#![cfg(feature = "ssr")]
//! Abuse that only a real socket shows: clients that send headers or bodies
//! a byte at a time, oversized headers, floods; and secrets kept out of the
//! log. Other uploads carry on throughout.

use crate::common;

use common::bytes;
use common::server::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads until the server closes (or `limit` passes); answers what came.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[test]
fn slow_headers_are_cut_off_while_others_upload() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--header-timeout", "1s"]);
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    let request = b"POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n";
    let started = Instant::now();
    // A byte every 100 ms: the whole request would take far longer than 1 s.
    let mut cut = false;
    for b in request.iter().cycle().take(100) {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_millis(1500) {
            server.upload_whole(100_000, 1); // others carry on meanwhile
        }
        let (_, closed) = {
            slow.set_nonblocking(true).unwrap();
            let mut probe = [0u8; 512];
            let r = match slow.read(&mut probe) {
                Ok(0) => (String::new(), true),
                Ok(n) => (String::from_utf8_lossy(&probe[..n]).into_owned(), true),
                Err(_) => (String::new(), false),
            };
            slow.set_nonblocking(false).unwrap();
            r
        };
        if closed {
            cut = true;
            break;
        }
    }
    assert!(cut, "the slow client was cut off");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "by the header timeout"
    );
    server.upload_whole(100_000, 2);
}

#[test]
fn oversized_headers_get_431() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-header-bytes", "16KiB"]);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let big = "a".repeat(40_000);
    let req = format!("POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 5\r\nUpload-Metadata: k {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    server.upload_whole(10_000, 3);
}

/// One answer on a kept-alive connection: its status and its body.
fn read_answer(r: &mut std::io::BufReader<TcpStream>) -> (u16, String) {
    use std::io::BufRead;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "closed in a head: {head:?}"
        );
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A tus creation whose head is `size` bytes long (padded with a header).
fn creation_of_size(size: usize) -> String {
    let head = |pad: &str| {
        format!("POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 5\r\nX-Padding: {pad}\r\n\r\n")
    };
    let pad = "a".repeat(size - head("").len());
    head(&pad)
}

/// Bodies are read in pieces of up to `--read-buffer`, much larger than
/// `--max-header-bytes`; heads are still held to the latter as they are
/// read, on a fresh connection and on one whose read buffer a large body
/// has grown, and a head over it is answered 431 with its code.
#[test]
fn heads_are_held_to_their_limit_whatever_the_read_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--max-header-bytes", "16KiB", "--read-buffer", "4MiB"],
    );
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    // A head of exactly the limit is served.
    s.write_all(creation_of_size(16 * 1024).as_bytes()).unwrap();
    assert_eq!(read_answer(&mut r).0, 201);
    // A large body on the same connection, with the next request's head
    // in the same writes: the read buffer grows past the limit, and the
    // next head is read in a piece that holds body and head.
    let path = server.create(3 << 20);
    let data = bytes(3 << 20, 7);
    let mut requests = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .into_bytes();
    requests.extend_from_slice(&data);
    requests.extend_from_slice(creation_of_size(16 * 1024 - 100).as_bytes());
    s.write_all(&requests).unwrap();
    assert_eq!(read_answer(&mut r).0, 204);
    assert_eq!(read_answer(&mut r).0, 201);
    assert_eq!(server.offset(&path), 3 << 20);
    // One byte over the limit, on that connection: 431, then closed.
    s.write_all(creation_of_size(16 * 1024 + 1).as_bytes())
        .unwrap();
    let (status, body) = read_answer(&mut r);
    assert_eq!(status, 431);
    assert!(body.contains("headers_too_large"), "{body}");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing follows the 431: {rest:?}");
    // And on a fresh one, with far more than the limit sent at once.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let _ = s.write_all(creation_of_size(1 << 20).as_bytes());
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(closed);
    // A request line that starts like HTTP/2's preface is still HTTP/1.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let pad = "a".repeat(40_000);
    let _ = s.write_all(
        format!("PRI /files/ HTTP/1.1\r\nHost: x\r\nX-Padding: {pad}\r\n\r\n").as_bytes(),
    );
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    server.upload_whole(100_000, 3);
}

/// HTTP/2 goes past the HTTP/1 head count (its connections are told by
/// their preface): an upload over HTTP/2 with prior knowledge, from curl,
/// goes through whole, its bytes far more than the head limit.
#[test]
fn an_upload_over_http2_goes_through_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--max-header-bytes", "16KiB"]);
    let data = bytes(3 << 20, 11);
    let path = server.create(data.len());
    let file = dir.path().join("body");
    std::fs::write(&file, &data).unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-X",
            "PATCH",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code} %{http_version}"])
        .args(["-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0"])
        .args(["-H", "Content-Type: application/offset+octet-stream"])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(server.url(&path))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204 2", "{out:?}");
    assert_eq!(server.offset(&path), data.len() as u64);
}

#[test]
fn a_stalled_body_ends_with_408_and_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--body-timeout", "1s"]);
    let path = server.create(1000);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 1000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&bytes(10, 4)).unwrap();
    server.upload_whole(50_000, 5); // meanwhile
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"));
    let head = common::http()
        .head(server.url(&path))
        .header("tus-resumable", "1.0.0")
        .send()
        .unwrap();
    assert_eq!(
        head.headers()["upload-offset"],
        "10",
        "the bytes before the stall are kept"
    );
}

#[test]
fn floods_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--rate-limit", "5", "--rate-burst", "5"],
    );
    let client = common::http();
    let mut limited = 0;
    for _ in 0..40 {
        let r = client.get(server.url("/healthz")).send().unwrap();
        if r.status() == 429 {
            limited += 1;
            assert!(r.headers().contains_key("retry-after"));
            let body: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
            assert_eq!(body["error"], "rate_limited");
        }
    }
    assert!(limited > 20, "{limited} of 40 refused");
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cr3t-t0ken-value";
    let server = Server::start(
        &dir.path().join("data"),
        &["--access-token", token, "--log", "debug"],
    );
    let client = common::http();
    let wrong = client
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "5")
        .header("authorization", "Bearer guessed-wrong-token")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "5")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(right.status(), 201);
    let no_redirects = common::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signin = no_redirects
        .post(server.url("/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .unwrap();
    assert_eq!(signin.status(), 303, "signed in");
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("listening"), "the log was captured");
    assert!(!log.contains(token), "the access token is not logged");
    assert!(
        !log.contains("guessed-wrong-token"),
        "bearer values are not logged"
    );
}
