//! The event log: upload created, progress (coalesced), completed, deleted
//! and expired, stored with increasing IDs for a configurable time and
//! scoped to the upload's owner. `EventStore` is the seam (SQLite here; a
//! shared database lets every instance see every event); `Events` adds
//! coalescing and wakes the local listeners.

use super::record::{now_millis, Millis, Owner, UploadRecord};
use crate::error::Result;
use crate::model::{LiveEvent, UploadSummary};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Progress,
    Completed,
    Deleted,
    Expired,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "upload.created",
            EventKind::Progress => "upload.progress",
            EventKind::Completed => "upload.completed",
            EventKind::Deleted => "upload.deleted",
            EventKind::Expired => "upload.expired",
        }
    }
}

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
    /// Forgets events older than `before`.
    async fn prune(&self, before: Millis) -> Result<u64>;
}

/// The summary of a record, as the page and the events show it.
pub fn summary(r: &UploadRecord) -> UploadSummary {
    UploadSummary {
        id: r.id.to_string(),
        url: r.id.path(),
        name: super::metadata::sanitize_filename(r.metadata.filename().unwrap_or("")),
        mime: r.metadata.filetype().unwrap_or("").to_string(),
        size: r.length,
        offset: r.offset,
        complete: r.is_complete(),
        sha256: r.sha256.clone(),
        created_at: r.created_at,
        completed_at: r.completed_at,
    }
}

/// The event log as the rest of Ferry uses it. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    store: Arc<dyn EventStore>,
    latest: Arc<watch::Sender<u64>>,
    last_progress: Arc<Mutex<HashMap<String, Instant>>>,
    progress_every: Duration,
    retention: Duration,
}

impl Events {
    /// An event log over `store`; progress events of one upload are kept at
    /// least `progress_every` apart, and events are kept for `retention`.
    pub async fn new(
        store: Arc<dyn EventStore>,
        progress_every: Duration,
        retention: Duration,
    ) -> Result<Self> {
        let latest = store.latest().await?;
        Ok(Events {
            store,
            latest: Arc::new(watch::channel(latest).0),
            last_progress: Arc::new(Mutex::new(HashMap::new())),
            progress_every,
            retention,
        })
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
            Ok(id) => {
                self.latest.send_if_modified(|v| {
                    let newer = id > *v;
                    if newer {
                        *v = id;
                    }
                    newer
                });
            }
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

    /// The newest event ID anywhere.
    pub async fn latest(&self) -> u64 {
        match self.store.latest().await {
            Ok(id) => id,
            Err(_) => *self.latest.borrow(),
        }
    }

    /// The newest event ID this process has recorded or seen; take it
    /// before reading the log, then `wait` on it.
    pub fn seen(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Waits until a newer event may exist: woken at once by events of this
    /// process, and at most `poll` later for events other instances stored.
    pub async fn wait(&self, seen: u64, poll: Duration) {
        let mut rx = self.latest.subscribe();
        if *rx.borrow_and_update() > seen {
            return;
        }
        let _ = tokio::time::timeout(poll, rx.changed()).await;
    }

    /// Wakes everyone waiting: another instance stored an event.
    pub fn nudge(&self) {
        self.latest.send_modify(|_| {});
    }

    /// Forgets events past the retention time.
    pub async fn prune(&self) -> Result<u64> {
        let before = now_millis()
            .saturating_sub(i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX));
        self.store.prune(before).await
    }
}
