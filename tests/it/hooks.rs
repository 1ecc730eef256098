#![cfg(feature = "ssr")]
//! Hooks against the real binary and a real HTTP receiver (an axum server
//! in this test, answering as an application would): the order of hooks
//! through an upload's life, their signatures and forwarded headers;
//! pre-hooks that refuse, rewrite or cannot be reached; post-hooks
//! delivered at least once and never twice per delivery ID across a
//! receiver outage and a SIGKILL; dead deliveries listed and revived; two
//! instances on one PostgreSQL sharing the outbox; and the command
//! transport.

use crate::common;

use common::server::Server;
use common::{b64, bytes, path_of};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "hook-secret";

/// One call the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    point: String,
    delivery: Option<String>,
    signature: Option<String>,
    raw: String,
    body: Value,
    /// The status the receiver answered.
    status: u16,
}

/// How the receiver answers: `(status, body)` for a point and its JSON.
type Rule = Box<dyn Fn(&str, &Value) -> (u16, String) + Send + Sync>;

/// A hook receiver on a loopback port, in a thread of its own.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    rule: Arc<Mutex<Rule>>,
}

/// Allows every pre-hook (an empty answer) and takes every post-hook with
/// a plain "OK", as many receivers answer.
fn allow_all() -> Rule {
    Box::new(|point, _| match point.starts_with("post-") {
        true => (200, "OK".into()),
        false => (200, String::new()),
    })
}

impl Receiver {
    fn start() -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(allow_all()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (h, r) = (hits.clone(), rule.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().route(
                    "/hooks",
                    axum::routing::post(move |headers: axum::http::HeaderMap, raw: String| {
                        let (hits, rule) = (h.clone(), r.clone());
                        async move {
                            let get =
                                |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
                            let point = get("ferry-hook").unwrap_or_default();
                            let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
                            let (status, answer) = (rule.lock().unwrap())(&point, &body);
                            hits.lock().unwrap().push(Hit {
                                point,
                                delivery: get("ferry-delivery"),
                                signature: get("ferry-signature"),
                                raw,
                                body,
                                status,
                            });
                            (
                                axum::http::StatusCode::from_u16(status).unwrap(),
                                [("content-type", "application/json")],
                                answer,
                            )
                        }
                    }),
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Receiver { addr, hits, rule }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    fn answer(&self, rule: Rule) {
        *self.rule.lock().unwrap() = rule;
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The calls about one upload, in the order they arrived.
    fn of(&self, id: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.body["upload"]["id"] == id)
            .collect()
    }

    fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let start = Instant::now();
        loop {
            let hits = self.hits();
            if ok(&hits) {
                return hits;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; got {:?}",
                hits.iter()
                    .map(|h| (&h.point, h.status))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ferry(dir: &std::path::Path, receiver: &Receiver, extra: &[&str]) -> Server {
    let url = receiver.url();
    let mut args = vec![
        "--hooks-url",
        url.as_str(),
        "--hooks-secret",
        SECRET,
        "--hooks-timeout",
        "3s",
        "--hooks-backoff-max",
        "500ms",
    ];
    args.extend_from_slice(extra);
    Server::start(dir, &args)
}

fn create(server: &Server, length: usize, name: &str, auth: &str) -> reqwest::blocking::Response {
    common::http()
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("authorization", auth)
        .header("upload-length", length.to_string())
        .header(
            "upload-metadata",
            format!("filename {}", b64(name.as_bytes())),
        )
        .send()
        .unwrap()
}

fn created(server: &Server, length: usize, name: &str) -> String {
    let resp = create(server, length, name, "Bearer uploader-1");
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    path_of(resp.headers()["location"].to_str().unwrap())
}

fn patch(server: &Server, path: &str, offset: usize, body: &[u8]) -> reqwest::blocking::Response {
    common::http()
        .patch(server.url(path))
        .header("tus-resumable", "1.0.0")
        .header("authorization", "Bearer uploader-1")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(body.to_vec())
        .send()
        .unwrap()
}

fn head(server: &Server, path: &str) -> reqwest::blocking::Response {
    common::http()
        .head(server.url(path))
        .header("tus-resumable", "1.0.0")
        .header("authorization", "Bearer uploader-1")
        .send()
        .unwrap()
}

fn delete(server: &Server, path: &str) -> reqwest::blocking::Response {
    common::http()
        .delete(server.url(path))
        .header("tus-resumable", "1.0.0")
        .header("authorization", "Bearer uploader-1")
        .send()
        .unwrap()
}

fn id_of(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_string()
}

fn points(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.point.as_str()).collect()
}

/// Checks `Ferry-Signature: t=..,v1=..` against the body.
fn signed(hit: &Hit) -> bool {
    let Some(sig) = &hit.signature else {
        return false;
    };
    let (Some(t), Some(v1)) = (
        sig.split(',').find_map(|p| p.strip_prefix("t=")),
        sig.split(',').find_map(|p| p.strip_prefix("v1=")),
    ) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", hit.raw).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let fresh = t.parse::<u64>().is_ok_and(|t| t.abs_diff(now_secs()) < 300);
    expected == v1 && fresh
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn hooks_follow_an_upload_in_order_signed_and_with_the_uploaders_headers() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = ferry(dir.path(), &receiver, &["--hooks-progress-every", "0s"]);
    let data = bytes(300_000, 7);

    let kept = created(&server, data.len(), "photo.jpg");
    for (i, piece) in data.chunks(100_000).enumerate() {
        let r = patch(&server, &kept, i * 100_000, piece);
        assert_eq!(r.status(), 204);
    }
    let gone = created(&server, 10, "draft.txt");
    assert_eq!(delete(&server, &gone).status(), 204);

    let (kept, gone) = (id_of(&kept), id_of(&gone));
    receiver.wait_for(
        "post-finish and post-terminate",
        Duration::from_secs(20),
        |hits| {
            hits.iter().any(|h| h.point == "post-finish")
                && hits.iter().any(|h| h.point == "post-terminate")
        },
    );
    let life = receiver.of(&kept);
    // A post-receive not sent yet gives way to a newer one (only the latest
    // progress matters): one or two of them, in order.
    let mut seen = points(&life);
    seen.dedup();
    assert_eq!(
        seen,
        [
            "pre-create",
            "post-create",
            "post-receive",
            "pre-finish",
            "post-finish"
        ],
        "one upload's hooks, in order"
    );
    let progress: Vec<_> = life
        .iter()
        .filter(|h| h.point == "post-receive")
        .map(|h| h.body["upload"]["offset"].as_u64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] < w[1])
            && progress.iter().all(|o| [100_000, 200_000].contains(o)),
        "{progress:?}"
    );
    assert_eq!(
        points(&receiver.of(&gone)),
        [
            "pre-create",
            "post-create",
            "pre-terminate",
            "post-terminate"
        ]
    );
    for hit in receiver.hits() {
        assert!(signed(&hit), "{} carries a valid signature", hit.point);
        assert_eq!(hit.body["type"], hit.point);
        assert_eq!(
            hit.body["request"]["headers"]["authorization"], "Bearer uploader-1",
            "{}: the uploader's Authorization is forwarded",
            hit.point
        );
        assert_eq!(hit.body["request"]["remote_addr"], "127.0.0.1");
        let post = hit.point.starts_with("post-");
        assert_eq!(
            hit.delivery.is_some(),
            post,
            "{}: delivery IDs for post-hooks only",
            hit.point
        );
        if post {
            assert_eq!(hit.body["delivery_id"].as_str(), hit.delivery.as_deref());
        }
    }
    let finish = life.iter().find(|h| h.point == "post-finish").unwrap();
    let upload = &finish.body["upload"];
    assert_eq!(upload["complete"], true);
    assert_eq!(upload["offset"], data.len());
    assert_eq!(upload["metadata"]["filename"], "photo.jpg");
    assert_eq!(upload["sha256"], common::sha256_hex(&data));
    assert_eq!(finish.body["first_bytes"], b64(&data[..512]));
    let path = upload["storage"]["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read(path).unwrap(),
        data,
        "the stored file is where the hook says"
    );
    let pre_finish = life.iter().find(|h| h.point == "pre-finish").unwrap();
    assert_eq!(pre_finish.body["upload"]["complete"], false);
    assert_eq!(pre_finish.body["upload"]["offset"], data.len());
    assert_eq!(pre_finish.body["first_bytes"], b64(&data[..512]));
    assert_eq!(pre_finish.body["request"]["method"], "PATCH");
    let ids: Vec<_> = receiver
        .hits()
        .iter()
        .filter_map(|h| h.delivery.clone())
        .collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<HashSet<_>>().len(),
        "each delivery once"
    );
}

#[test]
fn pre_hooks_refuse_rewrite_and_fail_safe() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = ferry(dir.path(), &receiver, &[]);
    receiver.answer(Box::new(|point, body| {
        use base64::Engine;
        let name = body["upload"]["metadata"]["filename"]
            .as_str()
            .unwrap_or("");
        let first = base64::engine::general_purpose::STANDARD
            .decode(body["first_bytes"].as_str().unwrap_or(""))
            .unwrap_or_default();
        match point {
            "pre-create" if name.ends_with(".exe") => {
                (403, r#"{"message": "No programs, please."}"#.into())
            }
            "pre-create" if name == "IMG 1.JPG" => (
                200,
                r#"{"metadata": {"filename": "img-1.jpg", "label": "team-a"}}"#.into(),
            ),
            // "MZ": a Windows program, whatever its name says.
            "pre-finish" if first.starts_with(b"MZ") => (
                200,
                r#"{"allow": false, "status": 415, "message": "That file is a program."}"#.into(),
            ),
            "pre-finish" if first == b"HOLD-ME" => (
                200,
                r#"{"allow": false, "status": 409, "message": "Not yet.", "then": "keep"}"#.into(),
            ),
            "pre-finish" if body["upload"]["length"] == 0 => (
                200,
                r#"{"allow": false, "status": 422, "message": "Empty files are not wanted."}"#
                    .into(),
            ),
            "pre-finish" if name == "plain.txt" => (403, "plain words".into()),
            "pre-terminate" => (423, "Kept for legal reasons.".into()),
            _ => (200, String::new()),
        }
    }));

    // pre-finish is asked about an empty file too: refused, it is not made.
    let r = create(&server, 0, "empty.txt", "Bearer uploader-1");
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().unwrap()["message"],
        "Empty files are not wanted."
    );

    // A refusal in plain text (a 4xx that is not Ferry's JSON) keeps the
    // upload: only the hook's own JSON removes one.
    let path = created(&server, 5, "plain.txt");
    let r = patch(&server, &path, 0, b"words");
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().unwrap()["message"], "plain words");
    assert_eq!(head(&server, &path).headers()["upload-offset"], "0");

    // pre-create: refused with the hook's status and message; nothing made.
    let r = create(&server, 10, "setup.exe", "Bearer uploader-1");
    assert_eq!(r.status(), 403);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "hook_refused");
    assert_eq!(body["message"], "No programs, please.");
    assert!(
        !receiver
            .hits()
            .iter()
            .any(|h| h.point == "post-create"
                && h.body["upload"]["metadata"]["filename"] == "setup.exe"),
        "nothing was created"
    );

    // pre-create: new metadata.
    let path = created(&server, 4, "IMG 1.JPG");
    let meta = head(&server, &path).headers()["upload-metadata"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        meta.contains(&format!("filename {}", b64(b"img-1.jpg"))),
        "{meta}"
    );
    assert!(
        meta.contains(&format!("label {}", b64(b"team-a"))),
        "{meta}"
    );

    // pre-finish refusing with "remove": the client hears why, the upload goes.
    let program = b"MZ\x90\x00 a program".to_vec();
    let path = created(&server, program.len(), "innocent.txt");
    let r = patch(&server, &path, 0, &program);
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<Value>().unwrap()["message"],
        "That file is a program."
    );
    assert_eq!(head(&server, &path).status(), 404);

    // pre-finish refusing with "keep": the bytes of that request are not
    // kept, the upload stays; sent again once the hook allows, it finishes.
    let hold = b"HOLD-ME".to_vec();
    let path = created(&server, hold.len(), "later.txt");
    let r = patch(&server, &path, 0, &hold);
    assert_eq!(r.status(), 409);
    let h = head(&server, &path);
    assert_eq!(h.status(), 200);
    assert_eq!(h.headers()["upload-offset"], "0");
    receiver.answer(allow_all());
    assert_eq!(patch(&server, &path, 0, &hold).status(), 204);
    assert_eq!(head(&server, &path).headers()["upload-offset"], "7");

    // pre-terminate: a 4xx answer refuses, its text is the message.
    receiver.answer(Box::new(|point, _| match point {
        "pre-terminate" => (423, "Kept for legal reasons.".into()),
        _ => (200, String::new()),
    }));
    let r = delete(&server, &path);
    assert_eq!(r.status(), 423);
    assert_eq!(
        r.json::<Value>().unwrap()["message"],
        "Kept for legal reasons."
    );
    assert_eq!(head(&server, &path).status(), 200);

    // A hook that cannot answer (5xx), or a URL that is not the hook's
    // (404), refuses with 503, fail-safe.
    for status in [500, 404, 429] {
        receiver.answer(Box::new(move |_, _| (status, "boom".into())));
        let r = create(&server, 10, "a.txt", "Bearer uploader-1");
        assert_eq!(r.status(), 503, "a hook answering {status}");
        assert_eq!(r.json::<Value>().unwrap()["error"], "hook_failed");
    }
}

#[test]
fn a_concatenation_is_asked_about_as_one_file() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = ferry(dir.path(), &receiver, &[]);
    let partial = |data: &[u8]| {
        let r = common::http()
            .post(server.url("/files/"))
            .header("tus-resumable", "1.0.0")
            .header("authorization", "Bearer uploader-1")
            .header("upload-length", data.len().to_string())
            .header("upload-concat", "partial")
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let path = path_of(r.headers()["location"].to_str().unwrap());
        assert_eq!(patch(&server, &path, 0, data).status(), 204);
        path
    };
    let (a, b) = (partial(&bytes(700, 1)), partial(&bytes(300, 2)));
    let r = common::http()
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("authorization", "Bearer uploader-1")
        .header("upload-concat", format!("final;{a} {b}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let whole = id_of(&path_of(r.headers()["location"].to_str().unwrap()));
    receiver.wait_for("the final's post-finish", Duration::from_secs(20), |hits| {
        hits.iter()
            .any(|h| h.point == "post-finish" && h.body["upload"]["id"] == whole)
    });
    for part in [&a, &b] {
        let hits = receiver.of(&id_of(part));
        let seen = points(&hits);
        assert!(
            !seen.contains(&"pre-finish"),
            "a part is not a file: {seen:?}"
        );
    }
    let life = receiver.of(&whole);
    assert_eq!(
        points(&life),
        ["pre-create", "pre-finish", "post-create", "post-finish"]
    );
    assert_eq!(life[1].body["first_bytes"], b64(&bytes(700, 1)[..512]));
    assert_eq!(life[1].body["upload"]["offset"], 1000);
}

#[test]
fn a_hook_program_that_hangs_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    // Starts a child of its own, then hangs.
    let script = common::program(
        dir.path(),
        "hang.sh",
        "#!/bin/sh\nsleep 61.25 &\nsleep 61.5\n",
    );
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            "--hooks-command",
            script.to_str().unwrap(),
            "--hooks-timeout",
            "1s",
        ],
    );
    let started = Instant::now();
    let r = create(&server, 3, "a.txt", "Bearer uploader-1");
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    // Every process whose command line is one of the script's sleeps (read
    // from /proc, so the test needs no tool of its own).
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("sleep 61.25") || c.contains("sleep 61.5"))
        .collect();
    assert!(
        left.is_empty(),
        "the program and its child are gone: {left:?}"
    );
}

#[test]
fn an_unreachable_hook_fails_safe_unless_told_to_fail_open() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--hooks-url", &url, "--hooks-timeout", "1s"]);
    let r = create(&server, 10, "a.txt", "Bearer uploader-1");
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().unwrap()["error"], "hook_failed");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--hooks-url",
            &url,
            "--hooks-timeout",
            "1s",
            "--hooks-fail-open",
            "pre-create",
        ],
    );
    assert_eq!(
        create(&server, 10, "a.txt", "Bearer uploader-1").status(),
        201
    );
}

#[test]
fn post_hooks_survive_a_receiver_outage_and_a_sigkill_and_arrive_once() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = ferry(dir.path(), &receiver, &[]);
    let addr = server.addr().to_string();
    // The application is down for the post-hooks (pre-hooks still answer).
    receiver.answer(Box::new(|point, _| match point.starts_with("post-") {
        true => (503, "down".into()),
        false => (200, String::new()),
    }));
    let mut finished = Vec::new();
    for i in 0..5 {
        let data = bytes(1000 + i, i as u8);
        let path = created(&server, data.len(), &format!("f{i}.bin"));
        assert_eq!(patch(&server, &path, 0, &data).status(), 204);
        finished.push(id_of(&path));
    }
    receiver.wait_for("failed tries", Duration::from_secs(10), |hits| {
        hits.iter()
            .filter(|h| h.point.starts_with("post-") && h.status == 503)
            .count()
            >= 3
    });
    server.kill9();

    // Back up, and Ferry restarted on the same data: everything arrives.
    receiver.answer(allow_all());
    let server = Server::start_on(
        dir.path(),
        &addr,
        &[
            "--hooks-url",
            &receiver.url(),
            "--hooks-secret",
            SECRET,
            "--hooks-backoff-max",
            "500ms",
        ],
    );
    let hits = receiver.wait_for("every post-finish", Duration::from_secs(30), |hits| {
        finished.iter().all(|id| {
            hits.iter().any(|h| {
                h.point == "post-finish" && h.status == 200 && h.body["upload"]["id"] == *id
            })
        })
    });
    let delivered: Vec<_> = hits
        .iter()
        .filter(|h| h.status == 200 && h.point.starts_with("post-"))
        .collect();
    let mut seen = HashMap::new();
    for h in &delivered {
        *seen.entry(h.delivery.clone().unwrap()).or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "no delivery twice: {seen:?}"
    );
    assert_eq!(
        delivered.len(),
        10,
        "a post-create and a post-finish per upload"
    );
    for id in &finished {
        let ok: Vec<_> = delivered
            .iter()
            .filter(|h| h.body["upload"]["id"] == *id)
            .map(|h| h.point.as_str())
            .collect();
        assert_eq!(ok, ["post-create", "post-finish"], "in order for {id}");
    }
    // The IDs the failed tries carried are the IDs delivered: stable.
    let tried: HashSet<_> = hits
        .iter()
        .filter(|h| h.status == 503)
        .filter_map(|h| h.delivery.clone())
        .collect();
    assert!(tried.iter().all(|id| seen.contains_key(id)));
    drop(server);
}

#[test]
fn deliveries_past_their_window_are_kept_listed_and_can_be_revived() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = ferry(
        dir.path(),
        &receiver,
        &[
            "--hooks-enabled",
            "post-finish",
            "--hooks-retry-for",
            "1s",
            "--access-token",
            "admin-token",
        ],
    );
    receiver.answer(Box::new(|_, _| (500, "broken".into())));
    let client = common::http();
    let r = client
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("authorization", "Bearer admin-token")
        .header("upload-length", "0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = id_of(&path_of(r.headers()["location"].to_str().unwrap()));
    let list = || -> Value {
        client
            .get(server.url("/admin/hooks/dead"))
            .header("authorization", "Bearer admin-token")
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let start = Instant::now();
    while list()["deliveries"].as_array().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the delivery dies"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dead = list()["deliveries"][0].clone();
    assert_eq!(dead["point"], "post-finish");
    // Ferry's own access token never reaches a hook.
    let body: Value = serde_json::from_str(dead["body"].as_str().unwrap()).unwrap();
    assert!(
        body["request"]["headers"].get("authorization").is_none(),
        "{body}"
    );
    assert_eq!(dead["upload_id"], id);
    assert!(dead["attempts"].as_u64().unwrap() >= 2);
    assert!(dead["last_error"].as_str().unwrap().contains("500"));
    // Visible to the operator's monitoring too.
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "ferry_hook_deliveries_dead 1"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"ferry_hook_calls_total{point="post-finish",outcome="failed"}"#));
    // Not for uploaders, nor without the token.
    let r = client.get(server.url("/admin/hooks/dead")).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(server.url("/admin/hooks/dead"))
        .header("authorization", "Bearer wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    receiver.answer(allow_all());
    let delivery = dead["id"].as_str().unwrap();
    let r = client
        .post(server.url(&format!("/admin/hooks/dead/{delivery}/retry")))
        .header("authorization", "Bearer admin-token")
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    receiver.wait_for("the revived delivery", Duration::from_secs(10), |hits| {
        hits.iter()
            .any(|h| h.status == 200 && h.delivery.as_deref() == Some(delivery))
    });
    let start = Instant::now();
    while !list()["deliveries"].as_array().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no longer dead");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn post_expire_reaches_the_application() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let server = ferry(
        dir.path(),
        &receiver,
        &["--expire-after", "1s", "--sweep-every", "1s"],
    );
    let path = created(&server, 100, "abandoned.bin");
    assert_eq!(patch(&server, &path, 0, &[1; 10]).status(), 204);
    let id = id_of(&path);
    receiver.wait_for("post-expire", Duration::from_secs(20), |hits| {
        hits.iter()
            .any(|h| h.point == "post-expire" && h.body["upload"]["id"] == id)
    });
    assert_eq!(
        points(&receiver.of(&id)),
        ["pre-create", "post-create", "post-receive", "post-expire"]
    );
}

#[test]
fn a_hook_program_answers_on_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let text = format!(
        "#!/bin/sh\nbody=$(cat)\necho \"$1 $FERRY_DELIVERY $body\" >> {log}\n\
         case \"$1:$body\" in\n  pre-create:*nope*) echo '{{\"allow\": false, \"status\": 422, \"message\": \"Not that one.\"}}' ;;\nesac\n",
        log = log.display()
    );
    let script = common::program(dir.path(), "hook.sh", text);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--hooks-command", script.to_str().unwrap()]);

    let r = create(&server, 3, "nope.txt", "Bearer uploader-1");
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().unwrap()["message"], "Not that one.");
    let path = created(&server, 3, "yes.txt");
    assert_eq!(patch(&server, &path, 0, b"abc").status(), 204);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<_> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
        if lines.ends_with(&["pre-create", "post-create", "pre-finish", "post-finish"]) {
            assert!(text.lines().last().unwrap().contains(&id_of(&path)));
            assert!(
                text.lines().last().unwrap().starts_with("post-finish d_"),
                "a delivery ID"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_instances_on_one_postgres_deliver_each_post_hook_once() {
    let pg = common::services::Postgres::start();
    let database = pg.database("hooks");
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--database",
        database.as_str(),
        "--hooks-enabled",
        "post-create,post-finish",
    ];
    let a = ferry(&dir.path().join("a"), &receiver, &extra);
    let b = ferry(&dir.path().join("b"), &receiver, &extra);
    // Slow answers, so both instances have deliveries in hand at once.
    receiver.answer(Box::new(|_, _| {
        std::thread::sleep(Duration::from_millis(20));
        (200, String::new())
    }));
    let mut ids = Vec::new();
    for i in 0..40 {
        let server = if i % 2 == 0 { &a } else { &b };
        let data = bytes(100 + i, i as u8);
        let path = created(server, data.len(), &format!("f{i}"));
        assert_eq!(patch(server, &path, 0, &data).status(), 204);
        ids.push(id_of(&path));
    }
    receiver.wait_for("80 deliveries", Duration::from_secs(60), |hits| {
        hits.len() >= 80
    });
    std::thread::sleep(Duration::from_secs(2)); // any duplicate would arrive by now
    let hits_after = receiver.hits();
    assert_eq!(hits_after.len(), 80, "nothing delivered twice");
    let delivered: HashSet<_> = hits_after
        .iter()
        .filter_map(|h| h.delivery.clone())
        .collect();
    assert_eq!(delivered.len(), 80, "each delivery exactly once");
    for id in &ids {
        assert_eq!(points(&receiver.of(id)), ["post-create", "post-finish"]);
    }
}
