//! Hooks: the operator's application is asked before an upload is created,
//! finished or terminated, and told what happened after.
//!
//! - **Pre-hooks** (`pre-create`, `pre-finish`, `pre-terminate`) are called
//!   while the request waits. A refusal reaches the client with the hook's
//!   status and message; a hook that cannot be asked (down, too slow,
//!   nonsense) refuses with `hook_failed` (503), unless the operator lets
//!   that point fail open. `pre-create` may rewrite the metadata.
//! - **Post-hooks** are never called from a request. The service hands the
//!   `MetaStore` their deliveries with the change they report, and it
//!   stores both in one transaction (the outbox): a change is never made
//!   without its post-hook, whatever stops Ferry. `Hooks::spawn_delivery`
//!   hands each out at least once, with a stable delivery ID, retrying with
//!   back-off until `retry_for` has passed (then it is kept as dead, for
//!   people to see and revive). On a shared database each delivery is
//!   claimed by one instance at a time, and the deliveries of one upload
//!   go out in order.
//!
//! The transports (HTTP, a command) live in `server::hooks`; this module
//! knows only that a hook takes a JSON body and gives an `Answer`. The
//! outbox and its delivery loop are in `outbox`; the points and answers,
//! which receivers rely on, in `protocol::hooks`.

mod body;
mod outbox;

pub use crate::protocol::hooks::{Answer, HookPoint, Then, MAX_ANSWER};
pub use body::HookUpload;
pub use outbox::{Claimed, DeadDelivery, Delivery, OutboxStore};

use crate::core::error::{Error, ErrorCode, Result};
use crate::core::observe::{Observer, Unobserved};
use crate::core::record::now_millis;
use crate::protocol::metadata::Metadata;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The request that made a hook happen, as the application sees it: enough
/// to authenticate the uploader with its own session (the headers are only
/// those the operator forwards).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub method: String,
    pub uri: String,
    pub remote_addr: String,
    pub headers: BTreeMap<String, String>,
}

/// How hooks are called.
#[async_trait]
pub trait HookTransport: Send + Sync + 'static {
    /// Calls the hook at `point` with `body` (JSON). `Err` says why it could
    /// not be asked: down, too slow, or an answer that is not one.
    async fn call(
        &self,
        point: HookPoint,
        delivery: Option<&str>,
        body: &str,
    ) -> std::result::Result<Answer, String>;
}

/// How hooks behave (from the command line).
#[derive(Clone, Debug)]
pub struct HookSettings {
    /// The points that are called; the others are skipped.
    pub enabled: BTreeSet<HookPoint>,
    /// Pre-hooks that let the request through when they cannot be asked.
    pub fail_open: BTreeSet<HookPoint>,
    /// `post-receive` of one upload at most this often.
    pub progress_every: Duration,
    /// How long a post-hook is retried before it is kept as dead.
    pub retry_for: Duration,
    /// The longest wait between two tries of a delivery.
    pub backoff_max: Duration,
    /// How long a hook may take (the transport enforces it); claims last
    /// longer than this.
    pub timeout: Duration,
    /// Deliveries in flight at once, per instance.
    pub in_flight: usize,
    /// Dead deliveries kept (the oldest are forgotten first).
    pub keep_dead: u32,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            enabled: HookPoint::ALL.into_iter().collect(),
            fail_open: BTreeSet::new(),
            progress_every: Duration::from_secs(10),
            retry_for: Duration::from_secs(24 * 3600),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            in_flight: 8,
            keep_dead: 10_000,
        }
    }
}

/// What a pre-hook decided.
#[derive(Debug)]
pub enum Verdict {
    /// Go on; `pre-create` may have given new metadata.
    Allow(Option<Metadata>),
    /// Stop, answering this error; a refused `pre-finish` does `Then`.
    Refuse(Error, Then),
}

/// Most bytes from the start of a file a `pre-finish` or `post-finish` hook
/// gets, to tell its type.
pub const FIRST_BYTES: u64 = 512;

/// Hooks as the service uses them. Cheap to clone; `Hooks::off()` calls
/// nothing and writes no deliveries.
#[derive(Clone)]
pub struct Hooks {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    transport: Arc<dyn HookTransport>,
    outbox: Arc<dyn OutboxStore>,
    settings: HookSettings,
    observer: Arc<dyn Observer>,
    /// When each upload last had a `post-receive`.
    last_progress: Mutex<HashMap<String, Instant>>,
    /// Rung when deliveries are waiting (new ones, or a pre-hook waits).
    wake: Notify,
    /// Who this instance is in claims.
    instance: String,
}

/// Most uploads whose last `post-receive` time is remembered.
const PROGRESS_MEMORY: usize = 100_000;

impl Hooks {
    /// No hooks.
    pub fn off() -> Self {
        Hooks { inner: None }
    }

    pub fn new(
        transport: Arc<dyn HookTransport>,
        outbox: Arc<dyn OutboxStore>,
        settings: HookSettings,
    ) -> Self {
        let instance = crate::core::hash::hex(&rand::random::<[u8; 8]>());
        Hooks {
            inner: Some(Arc::new(Inner {
                transport,
                outbox,
                settings,
                observer: Arc::new(Unobserved),
                last_progress: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                instance,
            })),
        }
    }

    /// These hooks, telling `observer` about calls and deliveries. Call
    /// before cloning.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        if let Some(inner) = self.inner.as_mut().and_then(Arc::get_mut) {
            inner.observer = observer;
        }
        self
    }

    /// Whether the hook at `point` is called.
    pub fn calls(&self, point: HookPoint) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.settings.enabled.contains(&point))
    }

    /// Whether a `post-receive` of this upload is due now (and, if so,
    /// counts it as sent).
    pub fn progress_due(&self, upload_id: &str) -> bool {
        let Some(inner) = self.inner.as_ref() else {
            return false;
        };
        if !self.calls(HookPoint::PostReceive) {
            return false;
        }
        let mut last = inner
            .last_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last
            .get(upload_id)
            .is_some_and(|t| now.duration_since(*t) < inner.settings.progress_every)
        {
            return false;
        }
        if last.len() >= PROGRESS_MEMORY {
            let every = inner.settings.progress_every;
            last.retain(|_, t| now.duration_since(*t) < every);
            if last.len() >= PROGRESS_MEMORY {
                // Busier than remembered: forget all (at worst, one early
                // post-receive per upload).
                last.clear();
            }
        }
        last.insert(upload_id.to_string(), now);
        true
    }

    /// Forgets an upload's progress time (it finished or went away).
    pub fn forget(&self, upload_id: &str) {
        if let Some(inner) = &self.inner {
            let mut last = inner
                .last_progress
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            last.remove(upload_id);
        }
    }

    /// The delivery of the post-hook at `point` for this record, or none
    /// when that point is not called. The record is as it is after the
    /// change.
    pub fn news(&self, point: HookPoint, upload: &HookUpload<'_>) -> Option<Delivery> {
        let inner = self.inner.as_ref()?;
        if !self.calls(point) {
            return None;
        }
        let id = format!("d_{}", crate::core::hash::hex(&rand::random::<[u8; 16]>()));
        let now = now_millis();
        let body = upload.body(point, Some(&id), now);
        let retry_for = i64::try_from(inner.settings.retry_for.as_millis()).unwrap_or(i64::MAX);
        Some(Delivery {
            id,
            point,
            upload_id: upload.record.id.to_string(),
            body,
            created_at: now,
            give_up_at: now.saturating_add(retry_for),
        })
    }

    /// Rings the deliverer: deliveries were just written.
    pub fn wake(&self) {
        if let Some(inner) = &self.inner {
            inner.wake.notify_one();
        }
    }

    /// Asks the pre-hook at `point` about this upload. The upload's
    /// post-hooks written before are tried first (waited for at most the
    /// hook's timeout), so the application hears of an upload in order;
    /// a receiver that fails them holds no request up.
    pub async fn ask(&self, point: HookPoint, upload: &HookUpload<'_>) -> Result<Verdict> {
        let Some(inner) = self.inner.as_ref() else {
            return Ok(Verdict::Allow(None));
        };
        if !self.calls(point) {
            return Ok(Verdict::Allow(None));
        }
        if point != HookPoint::PreCreate {
            self.settle(upload.record.id.as_str()).await;
        }
        let body = upload.body(point, None, now_millis());
        let started = Instant::now();
        let answer = inner.transport.call(point, None, &body).await;
        inner
            .observer
            .hook(point, answer.is_ok(), started.elapsed());
        let answer = match answer {
            Ok(answer) => answer,
            Err(why) if inner.settings.fail_open.contains(&point) => {
                tracing::warn!(%point, id = %upload.record.id, "hook could not be asked ({why}); letting the request through");
                return Ok(Verdict::Allow(None));
            }
            Err(why) => {
                return Err(Error {
                    detail: Some(format!("{point} hook: {why}")),
                    ..Error::of(ErrorCode::HookFailed)
                })
            }
        };
        if answer.refuses() {
            let status = answer.status.filter(|s| (400..500).contains(s));
            let message = answer
                .message
                .filter(|m| !m.trim().is_empty())
                .map(|m| m.chars().take(1000).collect::<String>())
                .unwrap_or_else(|| ErrorCode::HookRefused.message().to_string());
            tracing::info!(%point, id = %upload.record.id, ?status, "hook refused: {message}");
            let error = Error {
                status: Some(status.unwrap_or(403)),
                ..Error::new(ErrorCode::HookRefused, message)
            };
            return Ok(Verdict::Refuse(error, answer.then.unwrap_or_default()));
        }
        let metadata = match answer.metadata {
            Some(map) if point == HookPoint::PreCreate => {
                let pairs = Metadata::from_pairs(map.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                // Held to the limits of metadata a client sends.
                let checked = Metadata::parse(&pairs.encode()).map_err(|e| Error {
                    detail: Some(format!(
                        "{point} hook answered metadata Ferry cannot keep: {e}"
                    )),
                    ..Error::of(ErrorCode::HookFailed)
                })?;
                Some(checked)
            }
            _ => None,
        };
        Ok(Verdict::Allow(metadata))
    }

    /// Waits (at most the hook timeout) until every delivery of this
    /// upload was tried at least once.
    async fn settle(&self, upload_id: &str) {
        let Some(inner) = self.inner.as_ref() else {
            return;
        };
        let deadline = Instant::now() + inner.settings.timeout;
        loop {
            match inner.outbox.untried_of(upload_id).await {
                Ok(0) => return,
                Ok(_) => inner.wake.notify_one(),
                Err(e) => {
                    tracing::warn!(upload_id, "reading the outbox: {e}");
                    return;
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Delivers post-hooks for as long as the process lives (nothing when
    /// hooks are off). Should the loop ever panic, it is started again.
    pub fn spawn_delivery(&self) -> Option<tokio::task::JoinHandle<()>> {
        let inner = self.inner.clone()?;
        Some(tokio::spawn(async move {
            loop {
                let run = tokio::spawn(inner.clone().deliver_forever()).await;
                if let Err(e) = run {
                    tracing::error!("hook delivery stopped ({e}); starting it again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }))
    }

    /// Dead deliveries, oldest first, after `after`.
    pub async fn dead(&self, after: i64, limit: u32) -> Result<Vec<DeadDelivery>> {
        match &self.inner {
            Some(inner) => inner.outbox.dead(after, limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// Sends a dead delivery again (with a new retry window); false when
    /// there is no dead delivery with this ID.
    pub async fn revive(&self, id: &str) -> Result<bool> {
        let Some(inner) = &self.inner else {
            return Ok(false);
        };
        let now = now_millis();
        let window = i64::try_from(inner.settings.retry_for.as_millis()).unwrap_or(i64::MAX);
        let revived = inner
            .outbox
            .revive(id, now, now.saturating_add(window))
            .await?;
        inner.wake.notify_one();
        Ok(revived)
    }
}
