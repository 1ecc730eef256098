//! Hooks as a program: `--hooks-command` is run with the hook's name as its
//! one argument, the hook's JSON on standard input, and `FERRY_HOOK` and
//! (for post-hooks) `FERRY_DELIVERY` in its environment. Exit status 0 and
//! Ferry's hook answer (or nothing) on standard output answer; any other
//! status, or a program still running at the timeout (it is killed), means
//! the hook could not be asked. At most `RUNNING` run at once.

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
        command
            .arg(point.as_str())
            .env("FERRY_HOOK", point.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(id) = delivery {
            command.env("FERRY_DELIVERY", id);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        let mut stdin = child.stdin.take().ok_or("no standard input")?;
        let mut stdout = child.stdout.take().ok_or("no standard output")?;
        let body = body.to_string();
        // Written while the output is read: a program that answers before
        // reading everything cannot block on a full pipe.
        let writing = tokio::spawn(async move {
            let _ = stdin.write_all(body.as_bytes()).await;
        });
        let mut out = Vec::new();
        (&mut stdout)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut out)
            .await
            .map_err(|e| format!("reading the hook's answer: {e}"))?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for the hook: {e}"))?;
        writing.abort();
        if !status.success() {
            return Err(format!("the hook program ended with {status}"));
        }
        Answer::from_json(&String::from_utf8_lossy(&out))
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
        let _slot = self
            .running
            .acquire()
            .await
            .map_err(|_| "shutting down".to_string())?;
        match tokio::time::timeout(self.timeout, self.run(point, delivery, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "the hook program ran longer than {:?}",
                self.timeout
            )),
        }
    }
}
