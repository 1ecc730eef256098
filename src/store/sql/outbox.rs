//! `OutboxStore` over SQL: post-hook deliveries, written by the record
//! changes they report (`enqueue`, inside those changes' transactions),
//! claimed with a lease so that one instance at a time holds each, and
//! kept as dead past their retry window.

use super::prune::{Prune, PRUNE_STEP};
use super::*;
use crate::core::error::{Error, Result};
use crate::core::hooks::{Claimed, DeadDelivery, Delivery, HookPoint, OutboxStore};
use crate::core::record::Millis;
use async_trait::async_trait;
use sqlx::Row;

impl SqlStore {
    /// Writes deliveries inside a record change's transaction. An upload's
    /// newer `post-receive` replaces one that still waits (only the latest
    /// progress matters), so many small requests cannot grow the outbox.
    pub(super) async fn enqueue(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        news: &[Delivery],
    ) -> std::result::Result<(), sqlx::Error> {
        for d in news {
            if d.point == HookPoint::PostReceive {
                let sql = self.sql(
                    "DELETE FROM hook_deliveries WHERE upload_id = ? AND point = ?
                       AND claimed_by IS NULL AND dead_at IS NULL",
                );
                sqlx::query(&sql)
                    .bind(&d.upload_id)
                    .bind(d.point.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
            let sql = self.sql(
                "INSERT INTO hook_deliveries (id, point, upload_id, body, created_at, give_up_at, next_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            );
            sqlx::query(&sql)
                .bind(&d.id)
                .bind(d.point.as_str())
                .bind(&d.upload_id)
                .bind(&d.body)
                .bind(d.created_at)
                .bind(d.give_up_at)
                .bind(d.created_at)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

fn point_of(text: &str) -> Result<HookPoint> {
    HookPoint::parse(text).ok_or_else(|| {
        Error::internal("reading a hook delivery", format!("unknown point {text:?}"))
    })
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn claim(
        &self,
        by: &str,
        now: Millis,
        until: Millis,
        limit: u32,
    ) -> Result<Vec<Claimed>> {
        let failed = |e| db_error("claiming hook deliveries", e);
        // Of each upload, only the oldest delivery that waits (dead ones do
        // not hold the others back), and only when no one holds it.
        // PostgreSQL skips rows another instance is claiming this instant.
        let skip_locked = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = self.sql(format!(
            "UPDATE hook_deliveries SET claimed_by = ?, claimed_until = ?
             WHERE seq IN (
               SELECT d.seq FROM hook_deliveries d
               WHERE d.dead_at IS NULL AND d.next_at <= ?
                 AND (d.claimed_until IS NULL OR d.claimed_until < ?)
                 AND NOT EXISTS (SELECT 1 FROM hook_deliveries e
                                 WHERE e.upload_id = d.upload_id AND e.seq < d.seq
                                   AND e.dead_at IS NULL)
               ORDER BY d.seq LIMIT ? {skip_locked})
             RETURNING seq, id, point, body, attempts, give_up_at"
        ));
        let rows = sqlx::query(&sql)
            .bind(by)
            .bind(until)
            .bind(now)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                let point: String = row.try_get("point").map_err(failed)?;
                let attempts: i64 = row.try_get("attempts").map_err(failed)?;
                Ok(Claimed {
                    seq: row.try_get("seq").map_err(failed)?,
                    id: row.try_get("id").map_err(failed)?,
                    point: point_of(&point)?,
                    body: row.try_get("body").map_err(failed)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    give_up_at: row.try_get("give_up_at").map_err(failed)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    async fn delivered(&self, seq: i64, by: &str) -> Result<()> {
        let sql = self.sql("DELETE FROM hook_deliveries WHERE seq = ? AND claimed_by = ?");
        sqlx::query(&sql)
            .bind(seq)
            .bind(by)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("recording a hook delivery", e))?;
        Ok(())
    }

    async fn retry(&self, seq: i64, by: &str, next_at: Millis, error: &str) -> Result<()> {
        let sql = self.sql(
            "UPDATE hook_deliveries SET attempts = attempts + 1, next_at = ?, last_error = ?,
               claimed_by = NULL, claimed_until = NULL
             WHERE seq = ? AND claimed_by = ?",
        );
        sqlx::query(&sql)
            .bind(next_at)
            .bind(error)
            .bind(seq)
            .bind(by)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("recording a failed hook delivery", e))?;
        Ok(())
    }

    async fn bury(&self, seq: i64, by: &str, now: Millis, error: &str) -> Result<()> {
        let sql = self.sql(
            "UPDATE hook_deliveries SET attempts = attempts + 1, dead_at = ?, last_error = ?,
               claimed_by = NULL, claimed_until = NULL
             WHERE seq = ? AND claimed_by = ?",
        );
        sqlx::query(&sql)
            .bind(now)
            .bind(error)
            .bind(seq)
            .bind(by)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("recording a dead hook delivery", e))?;
        Ok(())
    }

    async fn untried_of(&self, upload_id: &str) -> Result<u64> {
        let sql = self.sql(
            "SELECT COUNT(*) FROM hook_deliveries
             WHERE upload_id = ? AND dead_at IS NULL AND attempts = 0",
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(upload_id)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("reading the hook outbox", e))?;
        Ok(n.max(0) as u64)
    }

    async fn counts(&self) -> Result<(u64, u64)> {
        let failed = |e| db_error("counting hook deliveries", e);
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN dead_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS waiting,
                    CAST(COALESCE(SUM(CASE WHEN dead_at IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT) AS dead
             FROM hook_deliveries",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        let waiting: i64 = row.try_get("waiting").map_err(failed)?;
        let dead: i64 = row.try_get("dead").map_err(failed)?;
        Ok((waiting.max(0) as u64, dead.max(0) as u64))
    }

    async fn dead(&self, after: i64, limit: u32) -> Result<Vec<DeadDelivery>> {
        let failed = |e| db_error("listing dead hook deliveries", e);
        let sql = self.sql(
            "SELECT seq, id, point, upload_id, attempts, created_at, dead_at, last_error, body
             FROM hook_deliveries WHERE dead_at IS NOT NULL AND seq > ? ORDER BY seq LIMIT ?",
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                let attempts: i64 = row.try_get("attempts").map_err(failed)?;
                Ok(DeadDelivery {
                    seq: row.try_get("seq").map_err(failed)?,
                    id: row.try_get("id").map_err(failed)?,
                    point: row.try_get("point").map_err(failed)?,
                    upload_id: row.try_get("upload_id").map_err(failed)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    created_at: row.try_get("created_at").map_err(failed)?,
                    dead_at: row.try_get("dead_at").map_err(failed)?,
                    last_error: row.try_get("last_error").map_err(failed)?,
                    body: row.try_get("body").map_err(failed)?,
                })
            })
            .collect()
    }

    async fn revive(&self, id: &str, now: Millis, give_up_at: Millis) -> Result<bool> {
        let sql = self.sql(
            "UPDATE hook_deliveries SET dead_at = NULL, attempts = 0, next_at = ?, give_up_at = ?,
               claimed_by = NULL, claimed_until = NULL
             WHERE id = ? AND dead_at IS NOT NULL",
        );
        let done = sqlx::query(&sql)
            .bind(now)
            .bind(give_up_at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("reviving a hook delivery", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn prune_dead(&self, keep: u32) -> Result<u64> {
        let pruned = self
            .prune_in_steps(Prune::DeadOver(keep), PRUNE_STEP)
            .await?;
        if pruned > 0 {
            tracing::warn!("forgot {pruned} dead hook deliveries (more than {keep} were kept)");
        }
        Ok(pruned)
    }
}
