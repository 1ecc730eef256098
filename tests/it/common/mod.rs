//! Helpers shared by the tests that drive `router()` without a socket.
#![allow(dead_code)]

pub mod server;
pub mod services;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use ferry::server::config::Config;
use ferry::{router, AppState};
use http_body_util::BodyExt;
use std::path::Path;
use tower::ServiceExt;

pub const TUS: (&str, &str) = ("tus-resumable", "1.0.0");
pub const OCTET: (&str, &str) = ("content-type", "application/offset+octet-stream");

/// A Ferry app over a temporary data folder.
pub struct TestApp {
    pub router: axum::Router,
    pub state: AppState,
    pub data: tempfile::TempDir,
    pub site: tempfile::TempDir,
}

/// The answer to one request, body read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn location(&self) -> String {
        self.header("location")
            .expect("a Location header")
            .to_string()
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// An app whose configuration `tweak` adjusts.
    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let site = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(site.path().join("pkg")).unwrap();
        std::fs::write(site.path().join("pkg/ferry.wasm"), b"\0asm\x01\0\0\0").unwrap();
        let mut config = Config::for_data_dir(data.path());
        config.site_root = site.path().to_string_lossy().into_owned();
        // A test machine's disk may be fuller than a server's: the reserve
        // is tested where it is the subject (tests/it/attack.rs).
        config.min_free_space = ferry::server::config::Share::Bytes(0);
        tweak(&mut config);
        let state = ferry::server::bootstrap::state(config).await.unwrap();
        // What the tests see after a restart is what the start-up check
        // left (tests/it/crash.rs covers requests that come before it).
        state.uploads.checked().await;
        TestApp {
            router: router(state.clone()),
            state,
            data,
            site,
        }
    }

    /// An app over a router and state the test built itself; `dir` is kept
    /// alive for it.
    pub fn from_parts(router: axum::Router, state: AppState, dir: tempfile::TempDir) -> Self {
        TestApp {
            router,
            state,
            data: dir,
            site: tempfile::tempdir().unwrap(),
        }
    }

    /// A second app over the same folders, as after a restart.
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> Self {
        let TestApp {
            data,
            site,
            state,
            router,
        } = self;
        drop(router);
        drop(state);
        let mut config = Config::for_data_dir(data.path());
        config.site_root = site.path().to_string_lossy().into_owned();
        config.min_free_space = ferry::server::config::Share::Bytes(0);
        tweak(&mut config);
        let state = ferry::server::bootstrap::state(config).await.unwrap();
        // What the tests see after a restart is what the start-up check
        // left (tests/it/crash.rs covers requests that come before it).
        state.uploads.checked().await;
        TestApp {
            router: router_of(&state),
            state,
            data,
            site,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// A `Cookie` header of browser session `id`, signed as this server
    /// signs the sessions it issues.
    pub fn session(&self, id: &str) -> (&'static str, String) {
        (
            "cookie",
            format!(
                "ferry_session={}",
                ferry::http::session::signed_session(&self.state.session_key, id)
            ),
        )
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends `method uri` with headers and a body.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(body.into()).unwrap()).await
    }

    /// Creates an upload of `length` bytes; answers its path.
    pub async fn create(&self, length: u64, extra: &[(&str, &str)]) -> String {
        let len = length.to_string();
        let mut headers = vec![TUS, ("upload-length", len.as_str())];
        headers.extend_from_slice(extra);
        let a = self.call("POST", "/files/", &headers, Body::empty()).await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.location()
    }

    /// PATCHes `data` at `offset`.
    pub async fn patch(
        &self,
        path: &str,
        offset: u64,
        data: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let off = offset.to_string();
        let mut headers = vec![TUS, OCTET, ("upload-offset", off.as_str())];
        headers.extend_from_slice(extra);
        self.call("PATCH", path, &headers, data).await
    }

    /// The offset HEAD reports.
    pub async fn offset(&self, path: &str) -> u64 {
        let a = self.call("HEAD", path, &[TUS], Body::empty()).await;
        assert_eq!(a.status, StatusCode::OK, "HEAD {path}");
        a.header("upload-offset").unwrap().parse().unwrap()
    }

    /// Downloads a finished upload.
    pub async fn download(&self, path: &str) -> Answer {
        self.call("GET", path, &[], Body::empty()).await
    }
}

fn router_of(state: &AppState) -> axum::Router {
    router(state.clone())
}

/// Writes an executable program (a shell script, say) at `dir/name`;
/// answers its path.
pub fn program(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Deterministic test bytes.
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e3779b9 ^ seed as u32;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The RFC 9530 digest field (`Repr-Digest`, `Content-Digest`) of `data`.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha-256=:{}:", b64(&sha2::Sha256::digest(data)))
}

/// How many files are under `dir`, at any depth (but the store's own
/// dot-files, such as its record of the boot).
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| {
                let e = e.unwrap();
                if e.file_name().to_string_lossy().starts_with('.') {
                    0
                } else if e.file_type().unwrap().is_dir() {
                    count_files(&e.path())
                } else {
                    1
                }
            })
            .sum()
        })
        .unwrap_or(0)
}

/// Checks a data folder's promise that no bytes lack a record and no
/// record lacks its bytes: every unfinished or finished record's blob file
/// holds at least (exactly, once finished) its offset, and every blob file
/// is named by a record. Answers the problems found. Safe while the server
/// runs (SQLite readers never block its writer), but a request in flight
/// may briefly look like a problem: call it when none is.
pub fn audit(data_dir: &Path) -> Vec<String> {
    use sqlx::Row;
    let db = data_dir.join("ferry.db");
    let rows = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let url = format!("sqlite://{}?mode=ro", db.display());
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            let rows = sqlx::query(r#"SELECT id, blob_key, state, "offset" FROM uploads"#)
                .fetch_all(&pool)
                .await
                .unwrap();
            let rows: Vec<(String, String, String, i64)> = rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            pool.close().await;
            rows
        });
    let blob = |key: &str| data_dir.join("blobs").join(&key[..2]).join(key);
    let mut problems = Vec::new();
    let mut named = std::collections::HashSet::new();
    for (id, key, state, offset) in &rows {
        if state == "expired" {
            continue;
        }
        named.insert(key.clone());
        match std::fs::metadata(blob(key)) {
            Err(_) => problems.push(format!("{state} upload {id} has no bytes ({key})")),
            Ok(m) if state == "complete" && m.len() != *offset as u64 => problems.push(format!(
                "complete upload {id} records {offset} bytes, its blob has {}",
                m.len()
            )),
            Ok(m) if m.len() < *offset as u64 => problems.push(format!(
                "upload {id} records {offset} bytes, its blob has {}",
                m.len()
            )),
            Ok(_) => {}
        }
    }
    for dir in std::fs::read_dir(data_dir.join("blobs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if !dir.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().into_owned();
            if !name.contains('.') && !named.contains(&name) {
                problems.push(format!("blob {name} has no record"));
            }
        }
    }
    problems
}

/// The path of an upload's `Location` (the server answers absolute URLs),
/// as the page takes it.
pub fn path_of(location: &str) -> String {
    ferry::page::tus::upload_path(location)
}

/// A blocking HTTP client (with the TLS provider Ferry builds reqwest with).
pub fn http() -> reqwest::blocking::Client {
    http_builder().build().unwrap()
}

pub fn http_builder() -> reqwest::blocking::ClientBuilder {
    ferry::store::tls::install_crypto();
    reqwest::blocking::Client::builder()
}

pub fn http_async() -> reqwest::Client {
    ferry::store::tls::install_crypto();
    reqwest::Client::new()
}
