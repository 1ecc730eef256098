#![cfg(feature = "ssr")]
//! The crash test: clients upload a stream of files while the server is
//! killed with SIGKILL at random moments and restarted; every client resumes
//! from the offset HEAD reports. Every file must end byte-identical, never
//! larger or smaller than its source. A second run does the same with
//! concatenations, instant uploads (and deletions of them) and form
//! uploads, and after every restart checks that no bytes lack a record and
//! no record lacks its bytes. `make test` kills 5 times, `make chaos` 50
//! (FERRY_CHAOS_KILLS); FERRY_CHAOS_SEED replays a run.

use crate::common;

use common::server::Server;
use common::{bytes, path_of, sha256_hex};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
    upload_with(addr, data, &[], patches, deadline, &RwLock::new(()))
}

/// `upload_resiliently` with extra creation headers, each request made
/// while holding `gate` for reading (an auditor takes it for writing).
fn upload_with(
    addr: &str,
    data: &[u8],
    extra: &[(&str, &str)],
    patches: &AtomicU64,
    deadline: Instant,
    gate: &RwLock<()>,
) -> String {
    let client = common::http_builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = |p: &str| format!("http://{addr}{p}");
    let path = loop {
        assert!(Instant::now() < deadline, "gave up creating");
        let mut req = client
            .post(url("/files/"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", data.len().to_string());
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let sent = {
            let _open = gate.read().unwrap();
            req.send()
        };
        match sent {
            Ok(r) if r.status() == 201 => break path_of(r.headers()["location"].to_str().unwrap()),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    loop {
        assert!(Instant::now() < deadline, "gave up on {path}");
        let headed = {
            let _open = gate.read().unwrap();
            client
                .head(url(&path))
                .header("tus-resumable", "1.0.0")
                .send()
        };
        let offset = match headed {
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
        let open = gate.read().unwrap();
        let _ = client
            .patch(url(&path))
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(data[offset..end].to_vec())
            .send();
        drop(open);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many kills (FERRY_CHAOS_KILLS, 5 by default) and the seed of their
/// timing (FERRY_CHAOS_SEED, random by default).
fn kills_and_seed() -> (usize, u64) {
    let kills = std::env::var("FERRY_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("FERRY_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    (kills, seed)
}

#[test]
fn uploads_survive_repeated_sigkill() {
    let (kills, seed) = kills_and_seed();
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
        let resp = common::http().get(server.url(&d.path)).send().unwrap();
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

/// What a client was told is stored, to check at the end.
struct Promised {
    path: String,
    sha: String,
    len: usize,
}

fn blocking_client() -> reqwest::blocking::Client {
    common::http_builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A form upload of one file, sent until the server answers 303; answers
/// the file's name.
fn form_resiliently(addr: &str, name: &str, data: &[u8], deadline: Instant, gate: &RwLock<()>) {
    let client = blocking_client();
    let mut body = format!(
        "--B0uNd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--B0uNd--\r\n");
    loop {
        assert!(Instant::now() < deadline, "gave up on a form upload");
        let sent = {
            let _open = gate.read().unwrap();
            client
                .post(format!("http://{addr}/upload/form"))
                .header("authorization", "Bearer chaos-form")
                .header("content-type", "multipart/form-data; boundary=B0uNd")
                .body(body.clone())
                .send()
        };
        match sent {
            Ok(r) if r.status() == 303 => return,
            Ok(r) if Instant::now() + Duration::from_secs(5) > deadline => {
                panic!("a form upload keeps failing: {}", r.status());
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn concatenation_instant_and_form_uploads_survive_sigkill() {
    let (kills, seed) = kills_and_seed();
    println!("chaos (every kind of write): seed {seed}, {kills} kills");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let flags = ["--checkpoint-every", "512KiB"];
    let first = Server::start(&data_dir, &flags);
    let addr = first.addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(RwLock::new(()));
    let patches = Arc::new(AtomicU64::new(0));
    let promised = Arc::new(Mutex::new(Vec::<Promised>::new()));
    let forms = Arc::new(Mutex::new(Vec::<(String, String, usize)>::new()));
    let deadline = Instant::now() + Duration::from_secs(90 + 8 * kills as u64);
    let mut clients = Vec::new();

    // Concatenations: two parts, then the final upload.
    {
        let (addr, stop, gate, patches, promised) = (
            addr.clone(),
            stop.clone(),
            gate.clone(),
            patches.clone(),
            promised.clone(),
        );
        let seed = rng.random::<u64>();
        clients.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let client = blocking_client();
            let partial = [
                ("upload-concat", "partial"),
                ("authorization", "Bearer chaos-concat"),
            ];
            for i in 0u8.. {
                if stop.load(Ordering::Relaxed) && i > 0 {
                    break;
                }
                let a = bytes(rng.random_range(MIB..3 * MIB), i);
                let b = bytes(rng.random_range(MIB..3 * MIB), i.wrapping_add(100));
                let pa = upload_with(&addr, &a, &partial, &patches, deadline, &gate);
                let pb = upload_with(&addr, &b, &partial, &patches, deadline, &gate);
                let fin = format!("final;{pa} {pb}");
                let path = loop {
                    assert!(Instant::now() < deadline, "gave up on a concatenation");
                    let sent = {
                        let _open = gate.read().unwrap();
                        client
                            .post(format!("http://{addr}/files/"))
                            .header("tus-resumable", "1.0.0")
                            .header("authorization", "Bearer chaos-concat")
                            .header("upload-concat", &fin)
                            .send()
                    };
                    match sent {
                        Ok(r) if r.status() == 201 => {
                            break path_of(r.headers()["location"].to_str().unwrap())
                        }
                        _ => std::thread::sleep(Duration::from_millis(50)),
                    }
                };
                let whole = [a, b].concat();
                promised.lock().unwrap().push(Promised {
                    path,
                    sha: sha256_hex(&whole),
                    len: whole.len(),
                });
            }
        }));
    }

    // Instant uploads of one stored file, some deleted again.
    {
        let (addr, stop, gate, patches, promised) = (
            addr.clone(),
            stop.clone(),
            gate.clone(),
            patches.clone(),
            promised.clone(),
        );
        clients.push(std::thread::spawn(move || {
            let client = blocking_client();
            let data = bytes(2 * MIB + 17, 77);
            let sha = sha256_hex(&data);
            let meta = format!(
                "sha256 {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sha)
            );
            let owner = ("authorization", "Bearer chaos-instant");
            let first = upload_with(
                &addr,
                &data,
                &[owner, ("upload-metadata", &meta)],
                &patches,
                deadline,
                &gate,
            );
            let mut mine = vec![first];
            for i in 0u32.. {
                if stop.load(Ordering::Relaxed) && i > 0 {
                    break;
                }
                if i % 3 == 2 {
                    // Delete the oldest: it is no longer promised.
                    let gone = mine.remove(0);
                    let _open = gate.read().unwrap();
                    let _ = client
                        .delete(format!("http://{addr}{gone}"))
                        .header("tus-resumable", "1.0.0")
                        .send();
                    continue;
                }
                let sent = {
                    let _open = gate.read().unwrap();
                    client
                        .post(format!("http://{addr}/files/"))
                        .header("tus-resumable", "1.0.0")
                        .header(owner.0, owner.1)
                        .header("upload-length", data.len().to_string())
                        .header("upload-metadata", &meta)
                        .send()
                };
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let path = path_of(r.headers()["location"].to_str().unwrap());
                        let done = r
                            .headers()
                            .get("upload-offset")
                            .is_some_and(|o| o.to_str().unwrap() == data.len().to_string());
                        if done {
                            mine.push(path);
                        }
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
                if mine.is_empty() {
                    mine.push(upload_with(
                        &addr,
                        &data,
                        &[owner, ("upload-metadata", &meta)],
                        &patches,
                        deadline,
                        &gate,
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut promised = promised.lock().unwrap();
            for path in mine {
                promised.push(Promised {
                    path,
                    sha: sha.clone(),
                    len: data.len(),
                });
            }
        }));
    }

    // Form uploads.
    {
        let (addr, stop, gate, forms) = (addr.clone(), stop.clone(), gate.clone(), forms.clone());
        let seed = rng.random::<u64>();
        clients.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for i in 0u32.. {
                if stop.load(Ordering::Relaxed) && i > 0 {
                    break;
                }
                let data = bytes(rng.random_range(MIB / 2..3 * MIB), i as u8);
                let name = format!("form-{i}.bin");
                form_resiliently(&addr, &name, &data, deadline, &gate);
                forms
                    .lock()
                    .unwrap()
                    .push((name, sha256_hex(&data), data.len()));
            }
        }));
    }

    let mut server = first;
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1000)));
        server.kill9();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
        server = Server::start_on(&data_dir, &addr, &flags);
        // The folder keeps its promise once the start-up check is done
        // (requests before then check the uploads they read).
        server.wait_checked(Duration::from_secs(30));
        {
            let _quiet = gate.write().unwrap();
            let problems = common::audit(&data_dir);
            assert!(problems.is_empty(), "after kill {}: {problems:#?}", k + 1);
        }
        println!(
            "chaos: kill {} of {kills} survived, records and bytes agree",
            k + 1
        );
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client failed");
    }

    let client = blocking_client();
    let promised = promised.lock().unwrap();
    for p in promised.iter() {
        let resp = client.get(server.url(&p.path)).send().unwrap();
        assert_eq!(resp.status(), 200, "{} was acknowledged, then lost", p.path);
        let body = resp.bytes().unwrap();
        assert_eq!(
            (body.len(), sha256_hex(&body)),
            (p.len, p.sha.clone()),
            "{}",
            p.path
        );
    }
    let listed = client
        .post(server.url("/api/list_uploads"))
        .header("authorization", "Bearer chaos-form")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("limit=500")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    let listed = listed["uploads"].as_array().unwrap();
    let forms = forms.lock().unwrap();
    for (name, sha, len) in forms.iter() {
        let found = listed
            .iter()
            .find(|u| u["name"] == name.as_str() && u["complete"] == true)
            .unwrap_or_else(|| panic!("form upload {name} was acknowledged, then lost"));
        assert_eq!(found["sha256"], sha.as_str(), "{name}");
        assert_eq!(found["size"], *len as u64, "{name}");
    }
    for u in listed {
        // An unfinished form upload is never left behind as complete.
        if u["complete"] == true {
            assert!(u["size"].as_u64() == Some(u["offset"].as_u64().unwrap()));
        }
    }
    let problems = common::audit(&data_dir);
    assert!(problems.is_empty(), "at the end: {problems:#?}");
    println!(
        "chaos (every kind of write): kills {kills}, promised {} tus uploads and {} form uploads, all intact",
        promised.len(),
        forms.len()
    );
}
