//! The event log: upload created, progress (coalesced), completed, deleted
//! and expired, stored with increasing IDs for a configurable time and
//! scoped to the upload's owner. `EventStore` is the seam (`store::sql`
//! keeps it in the database, so a shared one lets every instance see every
//! event); `Events` adds
//! coalescing and wakes the listeners of the owner concerned, and no one
//! else: a thousand idle listeners cost an event nothing.

use super::names::{clean_relative_path, clean_type, sanitize_filename};
use crate::core::error::Result;
use crate::core::record::{now_millis, Millis, Owner, UploadRecord};
use crate::protocol::events::{EventKind, LiveEvent};
use crate::protocol::model::UploadSummary;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where events are kept.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores an event; answers its ID.
    async fn append(
        &self,
        owner: &Owner,
        kind: EventKind,
        upload: &UploadSummary,
        at: Millis,
    ) -> Result<u64>;
    /// This owner's events after `after`, oldest first.
    async fn after(&self, owner: &Owner, after: u64, limit: u32) -> Result<Vec<LiveEvent>>;
    /// The highest ID stored (0 when none).
    async fn latest(&self) -> Result<u64>;
    /// The highest ID of this owner's events (0 when none).
    async fn latest_of(&self, owner: &Owner) -> Result<u64>;
    /// Forgets all but the newest `keep` events of every owner.
    async fn prune_per_owner(&self, keep: u32) -> Result<u64>;
    /// Forgets events older than `before`.
    async fn prune(&self, before: Millis) -> Result<u64>;
}

/// The summary of a record, as the page and the events show it.
pub fn summary(r: &UploadRecord) -> UploadSummary {
    UploadSummary {
        id: r.id.to_string(),
        url: crate::protocol::upload_url(r.id.as_str()),
        name: sanitize_filename(r.metadata.filename().unwrap_or("")),
        path: r
            .metadata
            .get_str(crate::protocol::key::RELATIVE_PATH)
            .map(clean_relative_path)
            .unwrap_or_default(),
        mime: clean_type(r.metadata.filetype().unwrap_or("")),
        size: r.length,
        offset: r.offset,
        complete: r.is_complete(),
        sha256: r.sha256.clone(),
        created_at: r.created_at,
        completed_at: r.completed_at,
    }
}

/// Most events kept per owner (older ones are pruned by the sweeper): the
/// log of one busy owner cannot grow without bound within its retention.
pub const EVENTS_PER_OWNER: u32 = 10_000;

/// The event log as the rest of Ferry uses it. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    store: Arc<dyn EventStore>,
    bells: Arc<Bells>,
    last_progress: Arc<Mutex<HashMap<String, Instant>>>,
    progress_every: Duration,
    retention: Duration,
    /// How often a listener looks in the store for events that other
    /// instances stored without a bell reaching it; `None` when this
    /// process is the only writer.
    poll: Option<Duration>,
}

/// One bell per owner with listeners: ringing it wakes that owner's
/// listeners only.
#[derive(Default)]
struct Bells(Mutex<HashMap<String, watch::Sender<u64>>>);

impl Bells {
    fn ring(&self, owner: &str) {
        let bells = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bell) = bells.get(owner) {
            bell.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn ring_all(&self) {
        let bells = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for bell in bells.values() {
            bell.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A listener's place at its owner's bell. Mark before reading the log,
/// then wait: a bell rung in between is not missed.
pub struct Subscription {
    rx: watch::Receiver<u64>,
    owner: String,
    bells: Arc<Bells>,
    poll: Option<Duration>,
}

impl Subscription {
    /// Takes note of every ring so far.
    pub fn mark(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Waits for a ring since the last `mark`, at most `limit` (and at most
    /// the store's polling interval, when other instances write).
    pub async fn wait(&mut self, limit: Duration) {
        let limit = self.poll.map_or(limit, |p| p.min(limit));
        let _ = tokio::time::timeout(limit, self.rx.changed()).await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut bells = self.bells.0.lock().unwrap_or_else(|p| p.into_inner());
        if bells
            .get(&self.owner)
            .is_some_and(|b| b.receiver_count() <= 1)
        {
            bells.remove(&self.owner);
        }
    }
}

impl Events {
    /// An event log over `store`; progress events of one upload are kept at
    /// least `progress_every` apart, and events are kept for `retention`.
    pub async fn new(
        store: Arc<dyn EventStore>,
        progress_every: Duration,
        retention: Duration,
    ) -> Result<Self> {
        Ok(Events {
            store,
            bells: Arc::default(),
            last_progress: Arc::new(Mutex::new(HashMap::new())),
            progress_every,
            retention,
            poll: None,
        })
    }

    /// Listeners also look in the store every `poll`, for events that other
    /// instances stored (a shared database).
    pub fn with_polling(mut self, poll: Duration) -> Self {
        self.poll = Some(poll);
        self
    }

    /// Records what happened to an upload. Uploads without an owner leave
    /// no events; a failure to record is logged and never fails the upload.
    pub async fn record(&self, kind: EventKind, record: &UploadRecord) {
        if record.owner.is_anonymous() {
            return;
        }
        let key = record.id.to_string();
        {
            let mut last = self.last_progress.lock().unwrap_or_else(|p| p.into_inner());
            match kind {
                EventKind::Progress => {
                    let now = Instant::now();
                    if last
                        .get(&key)
                        .is_some_and(|t| now.duration_since(*t) < self.progress_every)
                    {
                        return;
                    }
                    last.insert(key, now);
                }
                _ => {
                    last.remove(&key);
                }
            }
        }
        match self
            .store
            .append(&record.owner, kind, &summary(record), now_millis())
            .await
        {
            Ok(_) => self.bells.ring(record.owner.as_str()),
            Err(e) => tracing::warn!(id = %record.id, "event not recorded: {e}"),
        }
    }

    /// This owner's events after `after` (at most `limit`).
    pub async fn after(&self, owner: &Owner, after: u64, limit: u32) -> Result<Vec<LiveEvent>> {
        if owner.is_anonymous() {
            return Ok(Vec::new());
        }
        self.store.after(owner, after, limit).await
    }

    /// The newest ID of this owner's events: where a listener that wants
    /// only what happens from now on starts. (Never the newest ID of all:
    /// that would tell one owner how busy the others are.)
    pub async fn latest_of(&self, owner: &Owner) -> Result<u64> {
        if owner.is_anonymous() {
            return Ok(0);
        }
        self.store.latest_of(owner).await
    }

    /// A place at this owner's bell.
    pub fn subscribe(&self, owner: &Owner) -> Subscription {
        let mut bells = self.bells.0.lock().unwrap_or_else(|p| p.into_inner());
        let rx = bells
            .entry(owner.as_str().to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            rx,
            owner: owner.as_str().to_string(),
            bells: self.bells.clone(),
            poll: self.poll,
        }
    }

    /// Wakes one owner's listeners: another instance stored an event.
    pub fn ring(&self, owner: &str) {
        self.bells.ring(owner);
    }

    /// Wakes every listener (after news from other instances was missed).
    pub fn ring_all(&self) {
        self.bells.ring_all();
    }

    /// Forgets events past the retention time, and all but the newest
    /// `EVENTS_PER_OWNER` of each owner.
    pub async fn prune(&self) -> Result<u64> {
        let before = now_millis()
            .saturating_sub(i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX));
        let old = self.store.prune(before).await?;
        Ok(old + self.store.prune_per_owner(EVENTS_PER_OWNER).await?)
    }
}
