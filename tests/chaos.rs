#![cfg(feature = "ssr")]
//! The crash test: clients upload a stream of files while the server is
//! killed with SIGKILL at random moments and restarted; every client resumes
//! from the offset HEAD reports. Every file must end byte-identical, never
//! larger or smaller than its source. `make test` kills 5 times,
//! `make chaos` 50 (FERRY_CHAOS_KILLS); FERRY_CHAOS_SEED replays a run.

mod common;

use common::server::Server;
use common::{bytes, sha256_hex};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const CHUNK: usize = 2 * MIB;

struct Done {
    path: String,
    content_sha: String,
    len: usize,
}

/// A resuming tus client: creates, then HEAD + PATCH until done, waiting
/// out every failure. Answers the upload's path.
fn upload_resiliently(addr: &str, data: &[u8], patches: &AtomicU64, deadline: Instant) -> String {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = |p: &str| format!("http://{addr}{p}");
    let path = loop {
        assert!(Instant::now() < deadline, "gave up creating");
        match client
            .post(url("/files/"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", data.len().to_string())
            .send()
        {
            Ok(r) if r.status() == 201 => {
                break r.headers()["location"].to_str().unwrap().to_string()
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    loop {
        assert!(Instant::now() < deadline, "gave up on {path}");
        let offset = match client
            .head(url(&path))
            .header("tus-resumable", "1.0.0")
            .send()
        {
            Ok(r) if r.status() == 200 => r.headers()["upload-offset"]
                .to_str()
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            Ok(r) => panic!("HEAD {path}: {}", r.status()),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        assert!(
            offset <= data.len(),
            "the server has more bytes than were sent"
        );
        if offset == data.len() {
            return path;
        }
        let end = (offset + CHUNK).min(data.len());
        patches.fetch_add(1, Ordering::Relaxed);
        let _ = client
            .patch(url(&path))
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(data[offset..end].to_vec())
            .send();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn uploads_survive_repeated_sigkill() {
    let kills: usize = std::env::var("FERRY_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("FERRY_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos: seed {seed} (FERRY_CHAOS_SEED={seed} replays the timing), {kills} kills");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let flags = ["--checkpoint-every", "512KiB"];
    let first = Server::start(&data_dir, &flags);
    let addr = first.addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let patches = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Mutex::new(Vec::<Done>::new()));
    let deadline = Instant::now() + Duration::from_secs(60 + 6 * kills as u64);

    let clients: Vec<_> = (0..3u64)
        .map(|c| {
            let (addr, stop, patches, done) =
                (addr.clone(), stop.clone(), patches.clone(), done.clone());
            let sizes: Vec<usize> = (0..200)
                .map(|_| rng.random_range(3 * MIB..14 * MIB) + rng.random_range(0..4096))
                .collect();
            std::thread::spawn(move || {
                for (i, size) in sizes.into_iter().enumerate() {
                    if stop.load(Ordering::Relaxed) && i > 0 {
                        break;
                    }
                    let content = bytes(size, (c * 31 + i as u64) as u8);
                    let path = upload_resiliently(&addr, &content, &patches, deadline);
                    done.lock().unwrap().push(Done {
                        path,
                        content_sha: sha256_hex(&content),
                        len: size,
                    });
                }
            })
        })
        .collect();

    let mut server = first;
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..900)));
        server.kill9();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
        server = Server::start_on(&data_dir, &addr, &flags);
        println!("chaos: kill {} of {kills} survived", k + 1);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client failed");
    }

    let done = done.lock().unwrap();
    assert!(done.len() >= 3, "uploads finished: {}", done.len());
    let mut total = 0;
    for d in done.iter() {
        let resp = reqwest::blocking::get(server.url(&d.path)).unwrap();
        assert_eq!(resp.status(), 200, "{}", d.path);
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        let body = resp.bytes().unwrap();
        assert_eq!(
            body.len(),
            d.len,
            "{}: not larger or smaller than its source",
            d.path
        );
        assert_eq!(
            sha256_hex(&body),
            d.content_sha,
            "{}: byte-identical",
            d.path
        );
        assert_eq!(
            etag,
            format!("\"{}\"", d.content_sha),
            "{}: the recorded SHA-256 is right",
            d.path
        );
        total += d.len;
    }
    println!(
        "chaos: kills survived {kills}, uploads {}, bytes {total}, PATCH requests {}, bytes lost 0",
        done.len(),
        patches.load(Ordering::Relaxed)
    );
}
