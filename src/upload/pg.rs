//! What several instances need of PostgreSQL beyond records and events:
//!
//! - **Locks that hold across instances.** `PgLocker` takes a session-level
//!   advisory lock per upload on a connection it keeps for as long as the
//!   lock is held. PostgreSQL frees the lock the moment that session ends,
//!   so an instance that crashes (even SIGKILL) leaves nothing locked:
//!   there is no lease to wait out.
//! - **Asking a holder elsewhere to give way.** A DELETE on one instance
//!   while another writes the upload sends `NOTIFY ferry_preempt`; the
//!   holder's instance hears it and stops its writer, which records what it
//!   has and lets go.
//! - **Waking event listeners everywhere.** Every stored event sends
//!   `NOTIFY ferry_events` with its owner; each instance wakes that owner's
//!   `/events` streams at once instead of at their next poll.

use super::events::Events;
use super::lock::{LocalLocker, Locker, UploadLock};
use crate::error::{Error, Result};
use async_trait::async_trait;
use sha2::Digest;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::sync::Mutex;
use std::time::Duration;

const PREEMPT_CHANNEL: &str = "ferry_preempt";
const EVENTS_CHANNEL: &str = "ferry_events";

/// Per-upload locks shared by every instance on one database.
#[derive(Clone)]
pub struct PgLocker {
    pool: PgPool,
    local: LocalLocker,
}

/// The advisory lock number of an upload: 64 bits of a hash of its key.
fn lock_number(key: &str) -> i64 {
    let digest = sha2::Sha256::digest(format!("ferry-upload:{key}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl PgLocker {
    /// Connects a pool of at most `max_locks` connections: one per upload
    /// being written on this instance at a time.
    pub async fn connect(url: &str, max_locks: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_locks.max(1))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| Error::internal("connecting the lock pool", e))?;
        Ok(PgLocker {
            pool,
            local: LocalLocker::new(),
        })
    }

    /// Takes `key`'s advisory lock on a connection of its own, or answers
    /// `None` when another session holds it.
    async fn try_advisory(&self, key: &str) -> Option<PoolConnection<Postgres>> {
        let number = lock_number(key);
        let mut conn = match self.pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("no database connection for a lock: {e}");
                return None;
            }
        };
        match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
            .bind(number)
            .fetch_one(&mut *conn)
            .await
        {
            Ok(true) => Some(conn),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!("taking a lock: {e}");
                None
            }
        }
    }

    /// Both halves: this process's lock (with its cancellation token), then
    /// the database's. Released together.
    async fn acquire(&self, local: UploadLock, key: &str) -> Option<UploadLock> {
        let conn = self.try_advisory(key).await?;
        let number = lock_number(key);
        let conn = Mutex::new(Some(conn));
        Some(local.also_on_release(move || {
            let Some(conn) = conn.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                return;
            };
            release(conn, number);
        }))
    }

    /// Asks every instance to stop writing `key`.
    async fn ask_to_give_way(&self, key: &str) {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PREEMPT_CHANNEL)
            .bind(key)
            .execute(&self.pool)
            .await
        {
            tracing::warn!("asking another instance to stop writing: {e}");
        }
    }
}

/// Lets go of an advisory lock. The connection goes back to the pool only
/// when the unlock is confirmed; otherwise it is closed, which frees every
/// lock its session held.
fn release(mut conn: PoolConnection<Postgres>, number: i64) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        drop(conn.detach());
        return;
    };
    runtime.spawn(async move {
        let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
            .bind(number)
            .fetch_one(&mut *conn)
            .await;
        if !matches!(unlocked, Ok(true)) {
            tracing::warn!(
                "an advisory lock was not released cleanly ({unlocked:?}); closing its session"
            );
            let _ = conn.detach();
        }
    });
}

#[async_trait]
impl Locker for PgLocker {
    async fn try_lock(&self, key: &str) -> Option<UploadLock> {
        // A lock let go a moment ago is released in the background, so a
        // request following straight on the last one's heels waits for
        // that, briefly, before it is told the upload is busy.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        loop {
            if let Some(local) = self.local.try_lock(key).await {
                if let Some(lock) = self.acquire(local, key).await {
                    return Some(lock);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn lock_preempting(&self, key: &str, wait: Duration) -> Option<UploadLock> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut asked: Option<tokio::time::Instant> = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let local = self.local.lock_preempting(key, left).await?;
            if let Some(lock) = self.acquire(local, key).await {
                return Some(lock);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            if asked.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(250)) {
                self.ask_to_give_way(key).await;
                asked = Some(now);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Listens for the other instances: requests to stop writing an upload,
/// and news in the event log. Reconnects after a lost connection, for as
/// long as the process lives.
pub fn spawn_listener(
    url: String,
    locker: PgLocker,
    events: Events,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listen(&url, &locker, &events).await {
                Ok(()) => {}
                Err(e) => tracing::warn!("listening to the database: {e}; reconnecting"),
            }
            // Events stored while the connection was down rang no bell here:
            // every listener looks again.
            events.ring_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn listen(url: &str, locker: &PgLocker, events: &Events) -> sqlx::Result<()> {
    let mut listener = PgListener::connect(url).await?;
    listener
        .listen_all([PREEMPT_CHANNEL, EVENTS_CHANNEL])
        .await?;
    loop {
        let note = listener.recv().await?;
        match note.channel() {
            PREEMPT_CHANNEL if locker.local.preempt(note.payload()) => {
                tracing::info!(
                    id = note.payload(),
                    "another instance asked this one to stop writing"
                );
            }
            EVENTS_CHANNEL => events.ring(note.payload()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_numbers_are_stable_and_distinct() {
        assert_eq!(lock_number("abc"), lock_number("abc"));
        assert_ne!(lock_number("abc"), lock_number("abd"));
    }
}
