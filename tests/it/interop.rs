#![cfg(feature = "ssr")]
//! Interoperability: the real third-party tus clients, unmodified, against
//! the real `ferry` binary. tus-js-client runs under Node from
//! `tests/interop/node_modules`, tuspy from `.venv`; `scripts/setup.sh test`
//! (run by `make test`) installs both.

use crate::common;

use common::server::Server;
use common::{bytes, sha256_hex};
use std::path::{Path, PathBuf};
use std::process::Command;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs a client program and parses the JSON line it prints.
fn run_client(program: &Path, args: &[&str]) -> serde_json::Value {
    run_client_with(program, args, &[])
}

/// `run_client` with environment variables for the client.
fn run_client_with(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> serde_json::Value {
    assert!(
        program.exists() || program.is_relative(),
        "{} is missing: run `make test` (or scripts/setup.sh test) to install the interop clients",
        program.display()
    );
    let out = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(interop_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| panic!("no JSON result in {stdout:?}"))
}

fn node(args: &[&str]) -> serde_json::Value {
    node_speaking(None, args)
}

/// tus-js-client speaking `protocol` (`ietf-draft-03`, `ietf-draft-05`), or
/// tus 1.0 when `None`.
fn node_speaking(protocol: Option<&str>, args: &[&str]) -> serde_json::Value {
    assert!(
        interop_dir().join("node_modules/tus-js-client").exists(),
        "tus-js-client is not installed: run `make test` (or scripts/setup.sh test)"
    );
    let mut all = vec!["tus_js_client.mjs"];
    all.extend_from_slice(args);
    let envs: Vec<(&str, &str)> = protocol.map(|p| ("TUS_PROTOCOL", p)).into_iter().collect();
    run_client_with(Path::new("node"), &all, &envs)
}

fn python(args: &[&str]) -> serde_json::Value {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let mut all = vec!["tuspy_client.py"];
    all.extend_from_slice(args);
    run_client(&python, &all)
}

struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    Fixture { server, dir }
}

impl Fixture {
    /// Writes a file of `n` deterministic bytes; answers its path and bytes.
    fn file(&self, name: &str, n: usize, seed: u8) -> (String, Vec<u8>) {
        let content = bytes(n, seed);
        let path = self.dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        (path.to_string_lossy().into_owned(), content)
    }

    fn endpoint(&self) -> String {
        self.server.url("/files/")
    }

    /// Downloads an upload by the URL a client reported.
    fn download(&self, url: &str) -> Vec<u8> {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            self.server.url(url)
        };
        let resp = common::http().get(&url).send().unwrap();
        assert_eq!(resp.status(), 200, "GET {url}");
        resp.bytes().unwrap().to_vec()
    }
}

const MIB: usize = 1024 * 1024;

#[test]
fn tus_js_client_uploads_50_mib_in_5_mib_chunks() {
    let f = fixture();
    let (path, content) = f.file("fifty.bin", 50 * MIB, 1);
    let r = node(&["upload", &f.endpoint(), &path, &(5 * MIB).to_string()]);
    assert!(r["patches"].as_u64().unwrap() >= 10, "{r}");
    let got = f.download(r["url"].as_str().unwrap());
    assert_eq!(got.len(), content.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&content));
}

#[test]
fn tus_js_client_resumes_an_interrupted_upload() {
    let f = fixture();
    let size = 20 * MIB;
    let (path, content) = f.file("resume.bin", size, 2);
    let r = node(&["resume", &f.endpoint(), &path, &(2 * MIB).to_string()]);
    let from = r["resumedFrom"].as_u64().unwrap();
    assert!(from >= (size as u64) * 4 / 10, "resumed from {from}");
    assert_eq!(
        r["sentAfterResume"].as_u64().unwrap(),
        size as u64 - from,
        "no byte sent twice"
    );
    assert_eq!(
        sha256_hex(&f.download(r["url"].as_str().unwrap())),
        sha256_hex(&content)
    );
}

#[test]
fn tus_js_client_parallel_uploads_are_concatenated() {
    let f = fixture();
    let (path, content) = f.file("parallel.bin", 6 * MIB + 12345, 3);
    let r = node(&["parallel", &f.endpoint(), &path, &MIB.to_string()]);
    assert_eq!(
        sha256_hex(&f.download(r["url"].as_str().unwrap())),
        sha256_hex(&content)
    );
}

#[test]
fn tus_js_client_shows_a_pre_create_hooks_refusal() {
    let dir = tempfile::tempdir().unwrap();
    // The application refuses the upload (its plan's limit), in its own words.
    let text = "#!/bin/sh\nbody=$(cat)\n[ \"$1\" = pre-create ] || exit 0\n\
         echo '{\"allow\": false, \"status\": 413, \"message\": \"Your plan allows files up to 1 MiB.\"}'\n";
    let hook = common::program(dir.path(), "hook.sh", text);
    let server = Server::start(
        &dir.path().join("data"),
        &["--hooks-command", hook.to_str().unwrap()],
    );
    let f = Fixture { server, dir };
    let (path, _) = f.file("big.bin", 2 * MIB, 5);
    let r = node(&["refused", &f.endpoint(), &path, &MIB.to_string()]);
    assert_eq!(r["status"].as_u64(), Some(413), "{r}");
    let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "hook_refused");
    assert_eq!(body["message"], "Your plan allows files up to 1 MiB.");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("Your plan allows files up to 1 MiB."),
        "the client's error carries the hook's message: {r}"
    );
}

#[test]
fn tus_js_client_terminates_an_upload() {
    let f = fixture();
    let (path, _) = f.file("gone.bin", 8 * MIB, 4);
    let r = node(&["terminate", &f.endpoint(), &path, &MIB.to_string()]);
    assert_eq!(r["after"]["status"].as_u64(), Some(404), "{r}");
}

#[test]
fn tus_js_client_speaks_the_ietf_drafts() {
    let f = fixture();
    for (i, protocol) in ["ietf-draft-03", "ietf-draft-05"].into_iter().enumerate() {
        let (path, content) = f.file(&format!("{protocol}.bin"), 12 * MIB + 321, 6 + i as u8);
        let r = node_speaking(
            Some(protocol),
            &["upload", &f.endpoint(), &path, &(2 * MIB).to_string()],
        );
        assert!(r["patches"].as_u64().unwrap() >= 6, "{protocol}: {r}");
        let version = if protocol == "ietf-draft-03" {
            "5"
        } else {
            "6"
        };
        assert_eq!(
            r["interop"],
            serde_json::json!([version]),
            "{protocol} spoke the draft: {r}"
        );
        assert_eq!(
            sha256_hex(&f.download(r["url"].as_str().unwrap())),
            sha256_hex(&content),
            "{protocol}"
        );

        let size = 20 * MIB;
        let (path, content) = f.file(&format!("{protocol}-resume.bin"), size, 8 + i as u8);
        let r = node_speaking(
            Some(protocol),
            &["resume", &f.endpoint(), &path, &(2 * MIB).to_string()],
        );
        let from = r["resumedFrom"].as_u64().unwrap();
        assert!(
            from >= (size as u64) * 4 / 10,
            "{protocol}: resumed from {from}"
        );
        assert_eq!(
            r["sentAfterResume"].as_u64().unwrap(),
            size as u64 - from,
            "{protocol}: no byte sent twice"
        );
        assert_eq!(
            sha256_hex(&f.download(r["url"].as_str().unwrap())),
            sha256_hex(&content),
            "{protocol}"
        );
    }
}

#[test]
fn tuspy_uploads_with_checksums_and_resumes() {
    let f = fixture();
    let size = 50 * MIB;
    let (path, content) = f.file("tuspy.bin", size, 5);
    let r = python(&[&f.endpoint(), &path, &(5 * MIB).to_string()]);
    assert_eq!(r["resumedFrom"].as_u64(), Some(size as u64 / 2), "{r}");
    assert_eq!(r["offset"].as_u64(), Some(size as u64));
    assert_eq!(
        sha256_hex(&f.download(r["url"].as_str().unwrap())),
        sha256_hex(&content)
    );
}
