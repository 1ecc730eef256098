//! `PgLocker`: locks that hold across instances sharing one PostgreSQL
//! database.
//!
//! - **Locks that hold across instances.** `PgLocker` takes a session-level
//!   advisory lock per upload, all of them on one connection of this
//!   instance's own, the lock session. PostgreSQL frees them the moment
//!   that session ends, so an instance that crashes (even SIGKILL) leaves
//!   nothing locked: there is no lease to wait out. One connection holds
//!   any number of locks, so stalled requests cannot use up a pool and
//!   block everyone else's writes. If the lock session is lost, every
//!   writer of this instance is asked to stop at once (its locks are gone),
//!   and the next lock opens a new session.
//! - **Asking a holder elsewhere to give way.** A DELETE on one instance
//!   while another writes the upload sends `NOTIFY ferry_preempt`; the
//!   holder's instance hears it (in `store::cluster`) and stops its writer,
//!   which records what it has and lets go.

use super::local::LocalLocker;
use crate::core::error::{Error, Result};
use crate::core::lock::{Locker, UploadLock};
use async_trait::async_trait;
use sha2::Digest;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const PREEMPT_CHANNEL: &str = "ferry_preempt";

/// Per-upload locks shared by every instance on one database.
#[derive(Clone)]
pub struct PgLocker {
    url: String,
    /// For notifications to the other instances.
    pool: PgPool,
    /// The connection whose session holds this instance's locks, opened
    /// when first needed and again after it is lost.
    session: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    local: LocalLocker,
}

/// The advisory lock number of an upload: 64 bits of a hash of its key.
fn lock_number(key: &str) -> i64 {
    let digest = sha2::Sha256::digest(format!("ferry-upload:{key}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl PgLocker {
    /// Asks this instance's writer of `key`, if any, to give way; `true`
    /// when there was one.
    pub(crate) fn preempt_here(&self, key: &str) -> bool {
        self.local.preempt(key)
    }

    /// Connects to the database at `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| Error::internal("connecting the lock pool", e))?;
        Ok(PgLocker {
            url: url.to_string(),
            pool,
            session: Arc::default(),
            local: LocalLocker::new(),
        })
    }

    /// Runs one lock statement on the lock session, opening it when needed.
    /// When the session fails, its locks are gone: every local holder is
    /// asked to stop, and the session is opened anew next time.
    async fn on_session(&self, sql: &'static str, number: i64) -> Option<bool> {
        let mut session = self.session.lock().await;
        if session.is_none() {
            match PgConnection::connect(&self.url).await {
                Ok(conn) => *session = Some(conn),
                Err(e) => {
                    tracing::warn!("no database connection for locks: {e}");
                    return None;
                }
            }
        }
        let conn = session.as_mut()?;
        match sqlx::query_scalar::<_, bool>(sql)
            .bind(number)
            .fetch_one(&mut *conn)
            .await
        {
            Ok(answer) => Some(answer),
            Err(e) => {
                tracing::error!("the lock session failed ({e}); every writer here stops");
                *session = None;
                self.local.preempt_all();
                None
            }
        }
    }

    /// Both halves: this process's lock (with its cancellation token), then
    /// the database's. Released together.
    async fn acquire(&self, local: UploadLock, key: &str) -> Option<UploadLock> {
        let number = lock_number(key);
        if self
            .on_session("SELECT pg_try_advisory_lock($1)", number)
            .await
            != Some(true)
        {
            return None;
        }
        let locker = self.clone();
        Some(local.also_on_release(move || {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            // Advisory locks stack within a session, so a lock taken again
            // before this unlock runs is still held after it.
            runtime.spawn(async move {
                let unlocked = locker
                    .on_session("SELECT pg_advisory_unlock($1)", number)
                    .await;
                if unlocked == Some(false) {
                    tracing::warn!("an advisory lock was not held at its release");
                }
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_numbers_are_stable_and_distinct() {
        assert_eq!(lock_number("abc"), lock_number("abc"));
        assert_ne!(lock_number("abc"), lock_number("abd"));
    }
}
