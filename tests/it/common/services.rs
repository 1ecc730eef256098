//! The distributed engines Ferry scales out on, started for real, each test
//! its own: a PostgreSQL server (Debian's, from `initdb` into a temporary
//! folder) and an S3-compatible server (the `s3s-fs` crate, served over
//! HTTP on a port of its own by a thread of the test process: it compiles
//! with the tests, sharing their tokio, hyper and hashes, instead of being
//! built as a program of its own before them).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW: &str = "run `scripts/setup.sh test` (make test does)";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not open port {port} within 60 s");
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A command run as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root), as ourselves otherwise.
fn pg_command(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("no PostgreSQL server under /usr/lib/postgresql: {HOW}"))
}

/// A PostgreSQL server of its own on a free port, with a database `ferry`
/// that user `ferry` reaches without a password.
pub struct Postgres {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
    pub url: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("ferry-pg-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the PostgreSQL folder");
        }
        let out = pg_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "ferry", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("initdb: {e}: {HOW}"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut child = pg_command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=400",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("postgres: {e}: {HOW}"));
        wait_for_port(port, "postgres", &mut child);
        // The port opens before the server takes connections; createdb
        // retries until it does.
        let start = Instant::now();
        loop {
            let out = Command::new(bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "ferry",
                    "ferry",
                ])
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "createdb: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Postgres {
            child,
            _dir: dir,
            port,
            url: format!("postgres://ferry@127.0.0.1:{port}/ferry"),
        }
    }

    /// A fresh, empty database on this server (one per test keeps tests
    /// independent).
    pub fn database(&self, name: &str) -> String {
        let port = self.port.to_string();
        let out = Command::new(pg_bin_dir().join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "ferry", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// The URL of a database made by `database`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://ferry@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const S3_ACCESS_KEY: &str = "ferry-test";
pub const S3_SECRET_KEY: &str = "ferry-test-secret";

/// An S3-compatible server (s3s-fs) of its own on a free port, over a
/// temporary folder, with the access key above. It answers on its own
/// threads (a tokio runtime of its own, as the `s3s-fs` program has), so a
/// test blocking on a `ferry` process never blocks the store.
pub struct S3 {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

impl S3 {
    pub fn start() -> S3 {
        let dir = tempfile::Builder::new()
            .prefix("ferry-s3-")
            .tempdir()
            .unwrap();
        let store = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs over a temporary folder");
        let mut service = s3s::service::S3ServiceBuilder::new(store);
        service.set_auth(s3s::auth::SimpleAuth::from_single(
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
        ));
        let service = service.build();
        // Bound here, so the port is known and taken before anyone asks.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = std::thread::Builder::new()
            .name("s3s-fs".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(serve(listener, service, stopped));
                // Connections still open end with the runtime.
                runtime.shutdown_background();
            })
            .unwrap();
        S3 {
            stop: Some(stop),
            server: Some(server),
            dir,
            endpoint,
        }
    }

    /// A new, empty bucket; answers its `--storage` URL.
    pub fn bucket(&self, name: &str) -> String {
        std::fs::create_dir_all(self.dir.path().join(name)).unwrap();
        format!("s3://{name}?endpoint={}", self.endpoint)
    }

    /// Every file the server keeps under a bucket (objects, parts, and its
    /// own bookkeeping), for tests that check what is left behind.
    pub fn files(&self, bucket: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join(bucket), &mut out);
        // s3s-fs keeps its own bookkeeping beside the objects.
        out.retain(|p| !p.to_string_lossy().contains(".s3s"));
        out
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Accepts connections until `stopped` fires (or its sender is dropped),
/// each served over HTTP/1 or HTTP/2 as the client asks.
async fn serve(
    listener: TcpListener,
    service: s3s::service::S3Service,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
            _ = &mut stopped => return,
        };
        let connection = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
