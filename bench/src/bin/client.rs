//! The one client every server is measured with, so that differences are
//! the servers'. Bytes come from a 64 MiB buffer in memory (repeated), and
//! go out with plain `write_all` on a TCP socket, with HTTP/1.1 written by
//! hand for tus.
//!
//!   client raw  <addr> <bytes> [ack-every] [careful] one upload to the receiver
//!                                                   (careful: with early write-back)
//!   client tus  <base-url> <bytes> <chunk> [sha256] one tus upload in PATCHes of <chunk>
//!   client many <base-url> <uploads> <bytes> <chunk> concurrent tus uploads
//!   client http <base-url> <bytes> <chunk>          plain PATCHes to <base-url>/upload (the sink)
//!   client dump <path> <bytes>                      the same bytes, to a file
//!
//! Prints one JSON line: seconds, bytes, and PATCH latencies.

use ferry_bench::{block, read_head, spans, Head, BLOCK};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// Writes a request head in one piece, as an HTTP client library does
/// (`write!` on the socket would send each formatted fragment as a packet
/// of its own).
fn send_head(s: &mut TcpStream, head: String) {
    s.write_all(head.as_bytes()).expect("send");
}

/// Writes `len` bytes of the repeated block starting at `from`.
fn send_bytes(s: &mut TcpStream, data: &[u8], from: u64, len: u64) {
    for span in spans(from, len) {
        s.write_all(&data[span]).expect("send");
    }
}

struct Reply {
    status: u16,
    head: Head,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

fn read_reply(r: &mut BufReader<TcpStream>) -> Reply {
    let head = read_head(r).expect("reply").expect("status line");
    let status = head
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut line = String::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).expect("chunk size");
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).expect("chunk");
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0u8; head.content_length() as usize];
        r.read_exact(&mut body).expect("body");
    }
    Reply { status, head }
}

fn host_of(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// One tus upload; answers the PATCH latencies in seconds.
fn tus_upload(base: &str, data: &[u8], total: u64, chunk: u64, checksum: bool) -> Vec<f64> {
    let host = host_of(base);
    let stream = TcpStream::connect(&host).expect("connect");
    stream.set_nodelay(true).ok();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    send_head(
        &mut w,
        format!("POST /files/ HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\nUpload-Length: {total}\r\nUpload-Metadata: filename YmVuY2guYmlu\r\nContent-Length: 0\r\n\r\n"),
    );
    let created = read_reply(&mut r);
    assert_eq!(created.status, 201, "create");
    let location = created.header("location").expect("Location").to_string();
    let path = match location.find("://") {
        Some(i) => {
            let rest = &location[i + 3..];
            rest[rest.find('/').unwrap_or(rest.len())..].to_string()
        }
        None => location,
    };
    let mut latencies = Vec::new();
    let mut offset = 0u64;
    while offset < total {
        let n = chunk.min(total - offset);
        let extra = if checksum {
            format!(
                "Upload-Checksum: sha256 {}\r\n",
                chunk_sha256(data, offset, n)
            )
        } else {
            String::new()
        };
        let started = Instant::now();
        send_head(
            &mut w,
            format!("PATCH {path} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {n}\r\n{extra}\r\n"),
        );
        send_bytes(&mut w, data, offset, n);
        let reply = read_reply(&mut r);
        assert_eq!(reply.status, 204, "PATCH at {offset}");
        latencies.push(started.elapsed().as_secs_f64());
        offset += n;
    }
    latencies
}

/// The base64 SHA-256 of a chunk, computed before the clock starts
/// mattering (the client's cost is the same for every server).
fn chunk_sha256(data: &[u8], from: u64, len: u64) -> String {
    // A tiny SHA-256 would be a dependency; shell out once per chunk to
    // keep this client dependency-free is too slow, so the checksum scenario
    // uses chunks aligned to the block and caches per block offset.
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: Mutex<Option<HashMap<(u64, u64), String>>> = Mutex::new(None);
    let key = (from % BLOCK as u64, len);
    let mut cache = CACHE.lock().unwrap();
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(v) = map.get(&key) {
        return v.clone();
    }
    let mut bytes = Vec::with_capacity(len as usize);
    for span in spans(from, len) {
        bytes.extend_from_slice(&data[span]);
    }
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let b64 = base64(&raw);
    map.insert(key, b64.clone());
    b64
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = block();
    match args[0].as_str() {
        "raw" => {
            let total: u64 = args[2].parse().unwrap();
            let every: u64 = args.get(3).map_or(0, |a| a.parse().unwrap());
            let flags: u64 = u64::from(args.get(4).is_some_and(|a| a == "careful"));
            let started = Instant::now();
            let mut s = TcpStream::connect(&args[1]).expect("connect");
            s.set_nodelay(true).ok();
            s.write_all(&total.to_le_bytes()).unwrap();
            s.write_all(&every.to_le_bytes()).unwrap();
            s.write_all(&flags.to_le_bytes()).unwrap();
            // Like a tus client: the next piece goes once the last one is
            // acknowledged.
            let step = if every == 0 { total } else { every };
            let mut at = 0;
            let mut k = [0u8; 1];
            while at < total {
                let n = step.min(total - at);
                send_bytes(&mut s, &data, at, n);
                s.read_exact(&mut k).expect("answer");
                at += n;
            }
            println!(
                "{{\"seconds\":{},\"bytes\":{total}}}",
                started.elapsed().as_secs_f64()
            );
        }
        "tus" => {
            let total: u64 = args[2].parse().unwrap();
            let chunk: u64 = args[3].parse().unwrap();
            let checksum = args.get(4).map(|s| s == "sha256").unwrap_or(false);
            if checksum {
                // Warm the checksum cache outside the timed run.
                let mut o = 0;
                while o < total.min(BLOCK as u64 * 2) {
                    chunk_sha256(&data, o, chunk.min(total - o));
                    o += chunk;
                }
            }
            let started = Instant::now();
            let lat = tus_upload(&args[1], &data, total, chunk, checksum);
            println!(
                "{{\"seconds\":{},\"bytes\":{total},\"patches\":{}}}",
                started.elapsed().as_secs_f64(),
                lat.len()
            );
        }
        "http" => {
            let total: u64 = args[2].parse().unwrap();
            let chunk: u64 = args[3].parse().unwrap();
            let host = host_of(&args[1]);
            let started = Instant::now();
            let stream = TcpStream::connect(&host).expect("connect");
            stream.set_nodelay(true).ok();
            let mut w = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            let mut offset = 0u64;
            while offset < total {
                let n = chunk.min(total - offset);
                send_head(
                    &mut w,
                    format!(
                        "PATCH /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {n}\r\n\r\n"
                    ),
                );
                send_bytes(&mut w, &data, offset, n);
                assert_eq!(read_reply(&mut r).status, 204, "PATCH at {offset}");
                offset += n;
            }
            println!(
                "{{\"seconds\":{},\"bytes\":{total}}}",
                started.elapsed().as_secs_f64()
            );
        }
        "many" => {
            let uploads: usize = args[2].parse().unwrap();
            let total: u64 = args[3].parse().unwrap();
            let chunk: u64 = args[4].parse().unwrap();
            let data = std::sync::Arc::new(data);
            let base = args[1].clone();
            let started = Instant::now();
            let handles: Vec<_> = (0..uploads)
                .map(|_| {
                    let data = data.clone();
                    let base = base.clone();
                    std::thread::spawn(move || {
                        std::panic::catch_unwind(|| tus_upload(&base, &data, total, chunk, false))
                    })
                })
                .collect();
            let mut lat = Vec::new();
            let mut errors = 0;
            // FERRY_BENCH_LATENCIES=<file>: every upload's PATCH latencies,
            // in order, a line each, to see where the slow ones fall.
            let mut each = Vec::new();
            for h in handles {
                match h.join().unwrap() {
                    Ok(l) => {
                        each.push(format!("{l:?}"));
                        lat.extend(l)
                    }
                    Err(_) => errors += 1,
                }
            }
            if let Ok(path) = std::env::var("FERRY_BENCH_LATENCIES") {
                std::fs::write(path, each.join("\n")).expect("writing the latencies");
            }
            let seconds = started.elapsed().as_secs_f64();
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let pct = |p: f64| {
                if lat.is_empty() {
                    0.0
                } else {
                    lat[((lat.len() - 1) as f64 * p).round() as usize]
                }
            };
            println!(
                "{{\"seconds\":{seconds},\"bytes\":{},\"p50\":{},\"p99\":{},\"errors\":{errors}}}",
                total * uploads as u64,
                pct(0.5),
                pct(0.99)
            );
        }
        "dump" => {
            let total: u64 = args[2].parse().unwrap();
            let mut f = std::fs::File::create(&args[1]).expect("create");
            let mut at = 0u64;
            while at < total {
                let n = (BLOCK as u64).min(total - at) as usize;
                f.write_all(&data[..n]).unwrap();
                at += n as u64;
            }
            println!("{{\"bytes\":{total}}}");
        }
        other => panic!("unknown mode {other}"),
    }
}
