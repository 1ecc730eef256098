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
//! knows only that a hook takes a JSON body and gives an `Answer`.

use crate::core::blob::BlobLocation;
use crate::core::error::{Error, ErrorCode, Result};
use crate::core::observe::{Observer, Unobserved};
use crate::core::record::{now_millis, Millis, UploadRecord};
use crate::protocol::metadata::Metadata;
use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Where in an upload's life a hook is called (named as tusd names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookPoint {
    PreCreate,
    PostCreate,
    PostReceive,
    PreFinish,
    PostFinish,
    PreTerminate,
    PostTerminate,
    PostExpire,
}

impl HookPoint {
    pub const ALL: [HookPoint; 8] = [
        HookPoint::PreCreate,
        HookPoint::PostCreate,
        HookPoint::PostReceive,
        HookPoint::PreFinish,
        HookPoint::PostFinish,
        HookPoint::PreTerminate,
        HookPoint::PostTerminate,
        HookPoint::PostExpire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::PreCreate => "pre-create",
            HookPoint::PostCreate => "post-create",
            HookPoint::PostReceive => "post-receive",
            HookPoint::PreFinish => "pre-finish",
            HookPoint::PostFinish => "post-finish",
            HookPoint::PreTerminate => "pre-terminate",
            HookPoint::PostTerminate => "post-terminate",
            HookPoint::PostExpire => "post-expire",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// Whether the request waits for this hook (and it may refuse).
    pub fn is_pre(self) -> bool {
        matches!(
            self,
            HookPoint::PreCreate | HookPoint::PreFinish | HookPoint::PreTerminate
        )
    }
}

impl std::fmt::Display for HookPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// What a refused pre-finish does with the upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    /// The upload and its bytes are removed.
    #[default]
    Remove,
    /// The upload stays unfinished, without the refused request's bytes: the
    /// client sending them again asks again.
    Keep,
}

/// What a hook answered. An empty answer (or `{}`) allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Answer {
    /// `false` refuses.
    pub allow: Option<bool>,
    /// The refusal's HTTP status (4xx; 403 when not given).
    pub status: Option<u16>,
    /// The refusal's message, shown to the uploader.
    pub message: Option<String>,
    /// For `pre-finish`: what becomes of a refused upload.
    pub then: Option<Then>,
    /// For `pre-create`: the metadata the upload gets instead.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Most bytes of a hook's answer that are read.
pub const MAX_ANSWER: usize = 64 * 1024;

impl Answer {
    /// Reads an answer; empty text allows.
    pub fn from_json(text: &str) -> std::result::Result<Answer, String> {
        if text.trim().is_empty() {
            return Ok(Answer::default());
        }
        serde_json::from_str(text).map_err(|e| format!("the answer is not Ferry's hook JSON: {e}"))
    }

    /// A refusal with this status and message (how a transport reads a 4xx).
    pub fn refusal(status: u16, message: String) -> Answer {
        Answer {
            allow: Some(false),
            status: Some(status),
            message: Some(message),
            ..Answer::default()
        }
    }

    pub fn refuses(&self) -> bool {
        self.allow == Some(false)
    }
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

/// A post-hook to deliver, written with the change it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Stable across retries: receivers ignore a delivery ID seen before.
    pub id: String,
    pub point: HookPoint,
    pub upload_id: String,
    pub body: String,
    pub created_at: Millis,
    /// Past this time, a delivery that still fails is kept as dead.
    pub give_up_at: Millis,
}

/// A delivery handed to this instance for a while.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub seq: i64,
    pub id: String,
    pub point: HookPoint,
    pub body: String,
    pub attempts: u32,
    pub give_up_at: Millis,
}

/// A delivery that could not be made within its retry window.
#[derive(Clone, Debug, Serialize)]
pub struct DeadDelivery {
    pub seq: i64,
    pub id: String,
    pub point: String,
    pub upload_id: String,
    pub attempts: u32,
    pub created_at: Millis,
    pub dead_at: Millis,
    pub last_error: Option<String>,
    pub body: String,
}

/// Where undelivered post-hooks wait (the outbox). Deliveries are added by
/// the `MetaStore`, with the changes they report.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Hands `by` up to `limit` deliveries due at `now` until `until`: of
    /// each upload, only its oldest waiting delivery, and none that another
    /// instance holds.
    async fn claim(&self, by: &str, now: Millis, until: Millis, limit: u32)
        -> Result<Vec<Claimed>>;
    /// A delivery was made: it is forgotten.
    async fn delivered(&self, seq: i64, by: &str) -> Result<()>;
    /// A delivery failed: tried again at `next_at`.
    async fn retry(&self, seq: i64, by: &str, next_at: Millis, error: &str) -> Result<()>;
    /// A delivery failed for the last time: kept as dead.
    async fn bury(&self, seq: i64, by: &str, now: Millis, error: &str) -> Result<()>;
    /// How many deliveries of this upload were never tried yet, or are
    /// being tried for the first time.
    async fn untried_of(&self, upload_id: &str) -> Result<u64>;
    /// How many deliveries wait, and how many are dead.
    async fn counts(&self) -> Result<(u64, u64)>;
    /// Dead deliveries after `after` (by `seq`), oldest first.
    async fn dead(&self, after: i64, limit: u32) -> Result<Vec<DeadDelivery>>;
    /// Makes a dead delivery wait again, due now; false when there is none.
    async fn revive(&self, id: &str, now: Millis, give_up_at: Millis) -> Result<bool>;
    /// Forgets all but the newest `keep` dead deliveries.
    async fn prune_dead(&self, keep: u32) -> Result<u64>;
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
    /// hooks are off).
    pub fn spawn_delivery(&self) -> Option<tokio::task::JoinHandle<()>> {
        let inner = self.inner.clone()?;
        Some(tokio::spawn(async move { inner.deliver_forever().await }))
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

/// Most deliveries claimed at once.
const CLAIM_BATCH: u32 = 64;

impl Inner {
    async fn deliver_forever(self: Arc<Self>) {
        use futures_util::StreamExt;
        let mut last_count = Instant::now() - Duration::from_secs(60);
        loop {
            let now = now_millis();
            let lease = self.settings.timeout * 2 + Duration::from_secs(5);
            let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
            let claimed = self
                .outbox
                .claim(&self.instance, now, until, CLAIM_BATCH)
                .await;
            let busy = match claimed {
                Ok(batch) if !batch.is_empty() => {
                    futures_util::stream::iter(batch)
                        .for_each_concurrent(self.settings.in_flight.max(1), |c| self.deliver(c))
                        .await;
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!("reading the hook outbox: {e}");
                    false
                }
            };
            if busy && last_count.elapsed() < Duration::from_secs(1) {
                continue;
            }
            last_count = Instant::now();
            if let Err(e) = self.outbox.prune_dead(self.settings.keep_dead).await {
                tracing::warn!("pruning dead hook deliveries: {e}");
            }
            match self.outbox.counts().await {
                Ok((waiting, dead)) => self.observer.deliveries(waiting, dead),
                Err(e) => tracing::warn!("counting hook deliveries: {e}"),
            }
            if busy {
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
        }
    }

    async fn deliver(&self, c: Claimed) {
        let started = Instant::now();
        let outcome = match self.transport.call(c.point, Some(&c.id), &c.body).await {
            Ok(answer) if answer.refuses() => Err(format!(
                "the receiver refused it ({}): a post-hook cannot refuse",
                answer.status.unwrap_or(403)
            )),
            Ok(_) => Ok(()),
            Err(why) => Err(why),
        };
        self.observer
            .hook(c.point, outcome.is_ok(), started.elapsed());
        let now = now_millis();
        let stored = match outcome {
            Ok(()) => self.outbox.delivered(c.seq, &self.instance).await,
            Err(why) if now >= c.give_up_at => {
                tracing::error!(delivery = %c.id, point = %c.point, attempts = c.attempts + 1, "hook delivery given up: {why}; kept as dead");
                self.outbox.bury(c.seq, &self.instance, now, &why).await
            }
            Err(why) => {
                let wait = backoff(c.attempts, self.settings.backoff_max);
                tracing::warn!(delivery = %c.id, point = %c.point, attempts = c.attempts + 1, "hook delivery failed: {why}; again in {wait:?}");
                let next = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                self.outbox
                    .retry(c.seq, &self.instance, next.min(c.give_up_at.max(now)), &why)
                    .await
            }
        };
        if let Err(e) = stored {
            tracing::warn!(delivery = %c.id, "recording a hook delivery: {e}");
        }
    }
}

/// The wait before the next try after `attempts` failures: doubling from
/// half a second, at most `max`, with a tenth of jitter so instances that
/// failed together do not retry together.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempts.min(20));
    let wait = base.min(max);
    let jitter = wait.mul_f64(rand::random::<f64>() * 0.1);
    wait.saturating_sub(jitter)
}

/// An upload as a hook body shows it.
pub struct HookUpload<'a> {
    pub record: &'a UploadRecord,
    pub caller: Option<&'a Caller>,
    pub location: Option<BlobLocation>,
    /// The file's first bytes, for hooks that tell types.
    pub first_bytes: Option<Vec<u8>>,
}

impl<'a> HookUpload<'a> {
    pub fn new(record: &'a UploadRecord, caller: Option<&'a Caller>) -> Self {
        HookUpload {
            record,
            caller,
            location: None,
            first_bytes: None,
        }
    }

    /// The JSON body of a hook (see the README's "Hooks").
    fn body(&self, point: HookPoint, delivery: Option<&str>, at: Millis) -> String {
        let r = self.record;
        let metadata: BTreeMap<&str, String> = r
            .metadata
            .texts()
            .map(|(k, v)| (k, v.into_owned()))
            .collect();
        let body = serde_json::json!({
            "type": point.as_str(),
            "delivery_id": delivery,
            "at": at,
            "upload": {
                "id": r.id.as_str(),
                "url": crate::protocol::upload_url(r.id.as_str()),
                "owner": r.owner.as_str(),
                "offset": r.offset,
                "length": r.length,
                "complete": r.is_complete(),
                "partial": r.concat == crate::core::record::Concat::Partial,
                "metadata": metadata,
                "sha256": r.sha256,
                "created_at": r.created_at,
                "completed_at": r.completed_at,
                "storage": self.location,
            },
            "first_bytes": self.first_bytes.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            "request": self.caller,
        });
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_back_and_only_three_are_pre() {
        for p in HookPoint::ALL {
            assert_eq!(HookPoint::parse(p.as_str()), Some(p));
        }
        let pre: Vec<_> = HookPoint::ALL.into_iter().filter(|p| p.is_pre()).collect();
        assert_eq!(
            pre,
            [
                HookPoint::PreCreate,
                HookPoint::PreFinish,
                HookPoint::PreTerminate
            ]
        );
        assert_eq!(HookPoint::parse("pre_create"), None);
    }

    #[test]
    fn answers_allow_unless_they_say_no() {
        assert!(!Answer::from_json("").unwrap().refuses());
        assert!(!Answer::from_json("{}").unwrap().refuses());
        assert!(!Answer::from_json(r#"{"allow": true}"#).unwrap().refuses());
        let no = Answer::from_json(
            r#"{"allow": false, "status": 422, "message": "no", "then": "keep"}"#,
        )
        .unwrap();
        assert!(no.refuses());
        assert_eq!((no.status, no.then), (Some(422), Some(Then::Keep)));
        assert!(Answer::from_json("not json").is_err());
        assert!(Answer::from_json(r#"{"then": "explode"}"#).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let max = Duration::from_secs(60);
        let first = backoff(0, max);
        assert!(first <= Duration::from_millis(500) && first >= Duration::from_millis(450));
        let fourth = backoff(3, max);
        assert!(fourth <= Duration::from_secs(4) && fourth >= Duration::from_millis(3600));
        assert!(backoff(40, max) <= max);
        assert!(backoff(40, max) >= max.mul_f64(0.9));
    }
}
