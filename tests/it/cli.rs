#![cfg(feature = "ssr")]
//! Uploads from a terminal: a body of unknown length piped into `curl`
//! (`Transfer-Encoding: chunked`), resumed, and its length declared at the
//! end, exactly as the README shows.

use crate::common;

use common::server::Server;
use common::{bytes, sha256_hex};
use std::process::{Command, Stdio};

fn curl(args: &[&str], stdin_file: Option<&std::path::Path>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail-with-body"]).args(args);
    // A real pipe: `cat file | curl ... -T -`.
    let mut cat = stdin_file.map(|f| {
        Command::new("cat")
            .arg(f)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    });
    if let Some(cat) = cat.as_mut() {
        cmd.stdin(cat.stdout.take().unwrap());
    }
    let out = cmd.output().expect("curl runs");
    if let Some(mut cat) = cat {
        assert!(cat.wait().unwrap().success());
    }
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn piped_chunked_upload_with_deferred_length() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let content = bytes(7 * 1024 * 1024 + 11, 9);
    let half = 3 * 1024 * 1024;
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::write(&first, &content[..half]).unwrap();
    std::fs::write(&second, &content[half..]).unwrap();

    let headers = curl(
        &[
            "-i",
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Defer-Length: 1",
            &server.url("/files/"),
        ],
        None,
    );
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .expect("a Location")
        .trim()
        .to_string();
    let url = server.url(&location);
    let patch = |offset: usize, file: &std::path::Path| {
        curl(
            &[
                "-X",
                "PATCH",
                "-H",
                "Tus-Resumable: 1.0.0",
                "-H",
                "Content-Type: application/offset+octet-stream",
                "-H",
                &format!("Upload-Offset: {offset}"),
                "-T",
                "-",
                &url,
            ],
            Some(file),
        )
    };
    patch(0, &first);
    patch(half, &second);
    // The length, declared once the stream is over.
    curl(
        &[
            "-X",
            "PATCH",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            &format!("Upload-Offset: {}", content.len()),
            "-H",
            &format!("Upload-Length: {}", content.len()),
            "--data-binary",
            "",
            &url,
        ],
        None,
    );
    let got = common::http().get(&url).send().unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(sha256_hex(&got.bytes().unwrap()), sha256_hex(&content));
}
