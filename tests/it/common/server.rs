//! The real `ferry` binary, started on a free loopback port over a data
//! folder, for tests that need a socket, a restart or a SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    /// Everything the server printed so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `ferry` on `127.0.0.1:0` and waits until it says where it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts `ferry` on a given address (to come back on the same port).
    pub fn start_on(data_dir: &Path, addr: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["--addr", addr, "--data-dir"])
            .arg(data_dir)
            .args(["--site-root", "target/site"])
            .args(if extra.contains(&"--log") {
                &[][..]
            } else {
                &["--log", "info"][..]
            })
            .args(extra)
            // A test machine's disk may be fuller than a server's.
            .env("FERRY_MIN_FREE_SPACE", "0")
            .env_remove("FERRY_ACCESS_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ferry binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line.clone());
                if !sent {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server reports its address within 30 s");
        Server {
            child,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    /// `host:port` the server listens on.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// The URL of `path` on this server (an absolute URL, as `Location`
    /// answers, is already one).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// Starts a PATCH of `data[offset..]` on a raw socket, with `headers`
    /// (`"Name: value"` lines) besides the tus ones, sends `send` bytes of
    /// the body and leaves the request hanging, as a client on a dead
    /// network does.
    pub fn hanging_patch(
        &self,
        path: &str,
        headers: &[&str],
        data: &[u8],
        offset: usize,
        send: usize,
    ) -> std::net::TcpStream {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(self.addr()).unwrap();
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\n{extra}Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {}\r\n\r\n",
            self.addr(),
            data.len() - offset
        );
        s.write_all(head.as_bytes()).unwrap();
        for piece in data[offset..offset + send].chunks(256 * 1024) {
            s.write_all(piece).unwrap();
        }
        s.flush().unwrap();
        s
    }

    /// The offset HEAD reports for the upload at `path`.
    pub fn offset(&self, path: &str) -> u64 {
        let resp = super::http()
            .head(self.url(path))
            .header("tus-resumable", "1.0.0")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "HEAD {path}");
        resp.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Creates an upload of `n` bytes, with no credentials; answers its path.
    pub fn create(&self, n: usize) -> String {
        let created = super::http()
            .post(self.url("/files/"))
            .header("tus-resumable", "1.0.0")
            .header("upload-length", n.to_string())
            .send()
            .unwrap();
        assert_eq!(created.status(), 201);
        super::path_of(created.headers()["location"].to_str().unwrap())
    }

    /// Uploads `n` bytes whole (create, PATCH, download, compared);
    /// answers how long it took.
    pub fn upload_whole(&self, n: usize, seed: u8) -> Duration {
        let started = Instant::now();
        let client = super::http();
        let path = self.create(n);
        let data = super::bytes(n, seed);
        let r = client
            .patch(self.url(&path))
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(data.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
        let got = client.get(self.url(&path)).send().unwrap().bytes().unwrap();
        assert_eq!(super::sha256_hex(&got), super::sha256_hex(&data));
        started.elapsed()
    }

    /// Kills the server with SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// Waits until `/healthz` answers, for up to `limit`.
    /// Waits until the server says its start-up check of unfinished
    /// uploads is done (it serves while the check runs), for up to `limit`.
    pub fn wait_checked(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            let log = self.log.lock().unwrap();
            if log.iter().any(|l| l.contains("start-up check done")) {
                return;
            }
            drop(log);
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the start-up check did not end");
    }

    pub fn wait_healthy(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if std::net::TcpStream::connect(self.addr()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not come up");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
