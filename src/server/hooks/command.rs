//! Hooks as a program: `--hooks-command` is run with the hook's name as its
//! one argument, the hook's JSON on standard input, and `FERRY_HOOK` and
//! (for post-hooks) `FERRY_DELIVERY` in a clean environment. Exit status 0
//! and Ferry's hook answer (or nothing) on standard output answer; any
//! other status, an answer over 64 KiB, or a program still running at the
//! timeout means the hook could not be asked. The program runs in a
//! process group of its own, killed when the call ends, so nothing it
//! starts outlives it. At most `RUNNING` run at once.

use crate::core::hooks::{Answer, HookPoint, HookTransport, MAX_ANSWER};
use async_trait::async_trait;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Most hook programs running at once.
const RUNNING: usize = 16;

pub struct CommandHooks {
    program: String,
    timeout: Duration,
    running: Arc<Semaphore>,
}

impl CommandHooks {
    pub fn new(program: String, timeout: Duration) -> Self {
        CommandHooks {
            program,
            timeout,
            running: Arc::new(Semaphore::new(RUNNING)),
        }
    }

    async fn run(
        &self,
        point: HookPoint,
        delivery: Option<&str>,
        body: &str,
    ) -> Result<Answer, String> {
        let mut command = tokio::process::Command::new(&self.program);
        // A clean environment: Ferry's own secrets (its access token, the
        // hooks' secret, database and storage credentials) stay with Ferry.
        command.env_clear();
        for name in PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .arg(point.as_str())
            .env("FERRY_HOOK", point.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // A group of its own, so what it starts ends with it.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(id) = delivery {
            command.env("FERRY_DELIVERY", id);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        let _group = Group(child.id());
        let mut stdin = child.stdin.take().ok_or("no standard input")?;
        let mut stdout = child.stdout.take().ok_or("no standard output")?;
        let body = body.to_string();
        // Written while the output is read: a program that answers before
        // reading everything cannot block on a full pipe.
        let writing = tokio::spawn(async move {
            let _ = stdin.write_all(body.as_bytes()).await;
        });
        let mut out = Vec::new();
        let read = (&mut stdout)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut out)
            .await;
        writing.abort();
        read.map_err(|e| format!("reading the hook's answer: {e}"))?;
        if out.len() > MAX_ANSWER {
            return Err(format!(
                "the hook's answer is longer than {MAX_ANSWER} bytes"
            ));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for the hook: {e}"))?;
        if !status.success() {
            return Err(format!("the hook program ended with {status}"));
        }
        if delivery.is_some() {
            // A post-hook's answer only says it arrived.
            return Ok(Answer::default());
        }
        Answer::from_json(&String::from_utf8_lossy(&out))
    }
}

/// The variables a hook program gets from Ferry's environment.
const PASSED_ENV: [&str; 7] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

/// A hook program's process group: killed, with whatever the program
/// started, when the call ends (answered, timed out or abandoned).
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals a process group;
            // it touches no memory of ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

#[async_trait]
impl HookTransport for CommandHooks {
    async fn call(
        &self,
        point: HookPoint,
        delivery: Option<&str>,
        body: &str,
    ) -> Result<Answer, String> {
        // Waiting for a slot counts against the timeout too.
        let call = async {
            let _slot = self
                .running
                .acquire()
                .await
                .map_err(|_| "shutting down".to_string())?;
            self.run(point, delivery, body).await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "the hook program ran longer than {:?}",
                self.timeout
            )),
        }
    }
}
