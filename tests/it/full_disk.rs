#![cfg(feature = "ssr")]
//! A full disk: the data folder on a small tmpfs that this test mounts (it
//! needs root; otherwise it says it was skipped and why). A PATCH that runs
//! out of space gets 507 with the JSON error; the upload's record and bytes
//! stay consistent; other uploads are unaffected; once space is freed the
//! upload resumes and completes.

use crate::common;

use axum::body::Body;
use common::*;
use ferry::router;
use ferry::server::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Err("not running as root, so no filesystem can be mounted".into());
    }
    std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| format!("mount could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Mount(at.to_path_buf()))
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn available(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_gives_507_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small-disk");
    let _mount = match mount_tmpfs(&mnt, "40m") {
        Ok(m) => m,
        Err(why) => {
            println!("full-disk test skipped: {why}");
            return;
        }
    };
    let mut config = Config::for_data_dir(mnt.join("data"));
    config.site_root = dir.path().to_string_lossy().into_owned();
    // This test fills the disk behind the server's back: the quota (a
    // share of this small disk) is not what it is about.
    config.max_bytes_per_owner = ferry::server::config::Share::Bytes(0);
    let state = ferry::server::bootstrap::state(config).await.unwrap();
    let app = TestApp::from_parts(router(state.clone()), state, dir);

    let a_data = bytes(20 * 1024 * 1024, 1);
    let b_data = bytes(1024 * 1024, 2);
    let a = app.create(a_data.len() as u64, &[]).await;
    let b = app.create(b_data.len() as u64, &[]).await;
    assert_eq!(
        app.patch(&b, 0, b_data[..500_000].to_vec(), &[])
            .await
            .status
            .as_u16(),
        204
    );

    // Leave about 6 MiB free.
    let filler = mnt.join("filler");
    let free = available(&mnt);
    std::fs::write(&filler, vec![0u8; (free - 6 * 1024 * 1024) as usize]).unwrap();

    let full = app
        .patch(&a, 0, a_data[..12 * 1024 * 1024].to_vec(), &[])
        .await;
    assert_eq!(
        full.status.as_u16(),
        507,
        "{:?}",
        String::from_utf8_lossy(&full.body)
    );
    assert_eq!(full.code(), "storage_full");
    let offset = app.offset(&a).await;
    let id = a.trim_start_matches("/files/");
    let blob = mnt.join("data/blobs").join(&id[..2]).join(id);
    assert_eq!(
        std::fs::metadata(&blob).unwrap().len(),
        offset,
        "record and bytes agree"
    );

    // The other upload is unaffected and can finish in the space left.
    assert_eq!(app.offset(&b).await, 500_000);
    assert_eq!(
        app.patch(&b, 500_000, b_data[500_000..].to_vec(), &[])
            .await
            .status
            .as_u16(),
        204
    );
    assert_eq!(&app.download(&b).await.body[..], &b_data[..]);

    // Space comes back: the upload resumes where the server says and completes.
    std::fs::remove_file(&filler).unwrap();
    let done = app
        .patch(&a, offset, a_data[offset as usize..].to_vec(), &[])
        .await;
    assert_eq!(
        done.status.as_u16(),
        204,
        "{:?}",
        String::from_utf8_lossy(&done.body)
    );
    let d = app.download(&a).await;
    assert_eq!(d.body.len(), a_data.len());
    assert_eq!(sha256_hex(&d.body), sha256_hex(&a_data));
    let _ = app.call("GET", "/healthz", &[], Body::empty()).await;
    println!("full-disk test: 507 on a full disk, {offset} bytes kept, resumed and completed");
}
