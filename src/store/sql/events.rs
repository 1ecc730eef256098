//! `EventStore` over SQL: the event log, per owner, pruned by age and count.

use super::changes::Change;
use super::prune::{Prune, PRUNE_STEP};
use super::*;
use crate::core::error::{Error, Result};
use crate::core::events::EventStore;
use crate::core::record::{Millis, Owner};
use crate::protocol::events::EventKind;
use crate::protocol::events::LiveEvent;
use crate::protocol::model::UploadSummary;
use async_trait::async_trait;
use sqlx::{Executor, Row};

/// An event on its way to its owner's log, its upload encoded.
#[derive(Debug)]
pub(super) struct Event {
    pub owner: Owner,
    pub kind: EventKind,
    pub upload_id: String,
    pub data: String,
    pub at: Millis,
}

impl SqlStore {
    /// Appends `event` inside `tx`; answers its ID.
    pub(super) async fn event_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        event: &Event,
    ) -> std::result::Result<u64, sqlx::Error> {
        if self.backend == Backend::Postgres {
            // Readers follow the log by ID, so IDs must become visible in
            // order: one writer at a time (SQLite is that already).
            tx.execute("LOCK TABLE events IN EXCLUSIVE MODE").await?;
        }
        if event.kind == EventKind::Progress {
            // Only an upload's latest progress matters: the log keeps one
            // per upload, so many tiny requests cannot grow it.
            let sql = self.sql("DELETE FROM events WHERE upload_id = ? AND kind = ?");
            sqlx::query(&sql)
                .bind(&event.upload_id)
                .bind(event.kind.as_str())
                .execute(&mut **tx)
                .await?;
        }
        let sql = self.sql(
            "INSERT INTO events (owner, kind, upload_id, data, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        );
        let id: i64 = sqlx::query_scalar(&sql)
            .bind(event.owner.as_str())
            .bind(event.kind.as_str())
            .bind(&event.upload_id)
            .bind(&event.data)
            .bind(event.at)
            .fetch_one(&mut **tx)
            .await?;
        if self.backend == Backend::Postgres {
            // Other instances wake this owner's listeners (sent at commit).
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::store::cluster::EVENTS_CHANNEL)
                .bind(event.owner.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(id as u64)
    }
}

#[async_trait]
impl EventStore for SqlStore {
    async fn append(
        &self,
        owner: &Owner,
        kind: EventKind,
        upload: &UploadSummary,
        at: Millis,
    ) -> Result<u64> {
        let data =
            serde_json::to_string(upload).map_err(|e| Error::internal("encoding an event", e))?;
        let event = Event {
            owner: owner.clone(),
            kind,
            upload_id: upload.id.clone(),
            data,
            at,
        };
        self.write(Change::Event(event)).await?.logged()
    }

    async fn after(&self, owner: &Owner, after: u64, limit: u32) -> Result<Vec<LiveEvent>> {
        let sql = self.sql(
            "SELECT id, kind, data, created_at FROM events WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
        );
        let rows = sqlx::query(&sql)
            .bind(owner.as_str())
            .bind(after.min(i64::MAX as u64) as i64)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("reading events", e))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| Error::internal("reading an event", e);
                let data: String = row.try_get("data").map_err(get)?;
                let id: i64 = row.try_get("id").map_err(get)?;
                Ok(LiveEvent {
                    id: id as u64,
                    kind: {
                        let kind: String = row.try_get("kind").map_err(get)?;
                        EventKind::parse(&kind).ok_or_else(|| {
                            Error::internal("reading an event", format!("unknown kind {kind:?}"))
                        })?
                    },
                    upload: serde_json::from_str(&data)
                        .map_err(|e| Error::internal("decoding an event", e))?,
                    at: row.try_get("created_at").map_err(get)?,
                })
            })
            .collect()
    }

    async fn latest_of(&self, owner: &Owner) -> Result<u64> {
        let sql = self.sql("SELECT MAX(id) FROM events WHERE owner = ?");
        let id: Option<i64> = sqlx::query_scalar(&sql)
            .bind(owner.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("reading events", e))?;
        Ok(id.unwrap_or(0) as u64)
    }

    async fn prune_per_owner(&self, keep: u32) -> Result<u64> {
        let sql = self.sql("SELECT owner FROM events GROUP BY owner HAVING COUNT(*) > ?");
        let owners: Vec<String> = sqlx::query_scalar(&sql)
            .bind(keep as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("pruning events", e))?;
        let mut pruned = 0;
        for owner in owners {
            let what = Prune::EventsOver { owner, keep };
            pruned += self.prune_in_steps(what, PRUNE_STEP).await?;
        }
        Ok(pruned)
    }

    async fn latest(&self) -> Result<u64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("reading events", e))?;
        Ok(id.unwrap_or(0) as u64)
    }

    async fn prune(&self, before: Millis) -> Result<u64> {
        self.prune_in_steps(Prune::EventsBefore(before), PRUNE_STEP)
            .await
    }
}
