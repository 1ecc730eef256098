//! The writes to the records and the event log, one `Change` each, and how
//! each is applied inside a transaction: alone (PostgreSQL, or SQLite's
//! writer with nothing else waiting) or with others in a group (SQLite's
//! writer, `group`). Every write that requests wait on goes this way, so
//! that on SQLite none of them takes turns with the writer's groups
//! through the busy handler, which sleeps between tries: a deletion during
//! 64 uploads at once took a median of 72-211 ms that way, against a few
//! milliseconds idle. The sweep's pruning comes this way too, in steps
//! (`prune`).

use super::events::Event;
use super::prune::Prune;
use super::*;
use crate::core::hooks::Delivery;
use crate::core::id::UploadId;
use crate::core::meta::Deleted;
use crate::core::record::{Millis, UploadRecord};
use sqlx::Row;

/// A write to the records or the event log, with the hook deliveries it
/// writes alongside.
#[derive(Debug)]
pub(super) enum Change {
    /// A record's mutable fields, only while it is active at `from` when
    /// that is given.
    Fields {
        rec: UploadRecord,
        from: Option<u64>,
        news: Vec<Delivery>,
    },
    /// A new record and its blob reference.
    Insert {
        rec: UploadRecord,
        news: Vec<Delivery>,
    },
    /// A record removed, its blob reference given back.
    Delete { id: UploadId, news: Vec<Delivery> },
    /// A record expired, its blob reference given back.
    Expire {
        id: UploadId,
        now: Millis,
        news: Vec<Delivery>,
    },
    /// An event for its owner's log.
    Event(Event),
    /// One step of a pruning: at most `most` rows.
    Prune { what: Prune, most: u32 },
    /// Makes the writer panic mid-group (its supervision's test).
    #[cfg(test)]
    Panic,
}

/// What a change did.
#[derive(Clone, Debug)]
pub(super) enum Done {
    /// Whether a record was changed (or inserted).
    Changed(bool),
    /// What a deletion or expiry left behind, if there was such a record.
    Removed(Option<Deleted>),
    /// The ID of the event logged.
    Logged(u64),
    /// How many rows a pruning step deleted.
    Pruned(u64),
}

impl Change {
    /// What the change does, for its errors.
    pub(super) fn doing(&self) -> &'static str {
        match self {
            Change::Fields { .. } => "updating a record",
            Change::Insert { .. } => "inserting a record",
            Change::Delete { .. } => "deleting a record",
            Change::Expire { .. } => "expiring a record",
            Change::Event(_) => "storing an event",
            Change::Prune { .. } => "pruning",
            #[cfg(test)]
            Change::Panic => "panicking",
        }
    }

    /// Whether it takes more than one statement (and so a savepoint in a
    /// group: SQLite undoes one statement that fails by itself).
    pub(super) fn is_several(&self) -> bool {
        match self {
            Change::Fields { news, .. } => !news.is_empty(),
            Change::Event(event) => event.kind == crate::protocol::events::EventKind::Progress,
            Change::Prune { .. } => false,
            _ => true,
        }
    }
}

impl Done {
    /// Whether what the change did is to be committed: an insert whose
    /// shared blob is gone keeps nothing.
    pub(super) fn keeps(&self) -> bool {
        !matches!(self, Done::Changed(false))
    }

    pub(super) fn changed(self) -> Result<bool> {
        match self {
            Done::Changed(changed) => Ok(changed),
            other => Err(mismatch(other)),
        }
    }

    pub(super) fn removed(self) -> Result<Option<Deleted>> {
        match self {
            Done::Removed(removed) => Ok(removed),
            other => Err(mismatch(other)),
        }
    }

    pub(super) fn logged(self) -> Result<u64> {
        match self {
            Done::Logged(id) => Ok(id),
            other => Err(mismatch(other)),
        }
    }

    pub(super) fn pruned(self) -> Result<u64> {
        match self {
            Done::Pruned(rows) => Ok(rows),
            other => Err(mismatch(other)),
        }
    }
}

fn mismatch(done: Done) -> Error {
    Error::internal(
        "writing to the database",
        format!("unexpected answer {done:?}"),
    )
}

impl SqlStore {
    /// Stores the mutable fields of a record; with `from`, only while it is
    /// active at that offset. Answers whether a record was changed.
    pub(super) async fn store_fields(
        &self,
        rec: &UploadRecord,
        from: Option<u64>,
        news: &[Delivery],
    ) -> Result<bool> {
        let rec = rec.clone();
        let news = news.to_vec();
        self.write(Change::Fields { rec, from, news })
            .await?
            .changed()
    }

    /// Applies `change`: on SQLite committed with the others waiting, on
    /// PostgreSQL (which folds concurrent commits into one sync itself) in
    /// a transaction of its own.
    pub(super) async fn write(&self, change: Change) -> Result<Done> {
        match &self.group {
            Some(group) => group.apply(change).await,
            None => self.store_alone(&change).await,
        }
    }

    /// A change in a transaction of its own.
    pub(super) async fn store_alone(&self, change: &Change) -> Result<Done> {
        let failed = |e| db_error(change.doing(), e);
        if let Change::Fields { rec, from, news } = change {
            if news.is_empty() {
                // The common case (a checkpoint): one statement, no
                // transaction.
                let sql = self.update_sql(from.is_some());
                let query = self.update_query(&sql, rec, *from);
                let done = query.execute(&self.pool).await.map_err(failed)?;
                return Ok(Done::Changed(done.rows_affected() == 1));
            }
        }
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let done = self.apply_in(&mut tx, change).await.map_err(failed)?;
        match done.keeps() {
            true => tx.commit().await.map_err(failed)?,
            // Undone now, not when the pool gets round to it: the rows
            // stay locked till then.
            false => tx.rollback().await.map_err(failed)?,
        }
        Ok(done)
    }

    /// Applies `change` inside `tx`.
    pub(super) async fn apply_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        change: &Change,
    ) -> std::result::Result<Done, sqlx::Error> {
        Ok(match change {
            Change::Fields { rec, from, news } => {
                Done::Changed(self.fields_in(tx, rec, *from, news).await?)
            }
            Change::Insert { rec, news } => Done::Changed(self.insert_in(tx, rec, news).await?),
            Change::Delete { id, news } => Done::Removed(self.delete_in(tx, id, news).await?),
            Change::Expire { id, now, news } => {
                Done::Removed(self.expire_in(tx, id, *now, news).await?)
            }
            Change::Event(event) => Done::Logged(self.event_in(tx, event).await?),
            Change::Prune { what, most } => Done::Pruned(self.prune_in(tx, what, *most).await?),
            #[cfg(test)]
            Change::Panic => panic!("a change that panics"),
        })
    }

    /// Deletes a record inside `tx`, giving back its blob reference, and
    /// writes its deliveries; `None` when there was no such record.
    pub(super) async fn delete_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &UploadId,
        news: &[Delivery],
    ) -> std::result::Result<Option<Deleted>, sqlx::Error> {
        let sql = self.sql("DELETE FROM uploads WHERE id = ? RETURNING blob_key, state");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let blob_key: String = row.try_get("blob_key")?;
        let state: String = row.try_get("state")?;
        // An expired record gave its reference back when it expired.
        let holds_ref = state != "expired";
        self.removed_in(tx, blob_key, holds_ref, news)
            .await
            .map(Some)
    }

    /// Marks a record expired inside `tx` (an unfinished upload, or a
    /// finished part of a concatenation), giving back its blob reference,
    /// and writes its deliveries; `None` when there was no such record.
    pub(super) async fn expire_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &UploadId,
        now: Millis,
        news: &[Delivery],
    ) -> std::result::Result<Option<Deleted>, sqlx::Error> {
        let sql = self.sql(
            "UPDATE uploads SET state = 'expired', hash_state = NULL, blob_state = NULL, updated_at = ?
             WHERE id = ? AND (state = 'active' OR (state = 'complete' AND concat = 'partial'))
             RETURNING blob_key",
        );
        let blob_key: Option<String> = sqlx::query_scalar(&sql)
            .bind(now)
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(blob_key) = blob_key else {
            return Ok(None);
        };
        self.removed_in(tx, blob_key, true, news).await.map(Some)
    }

    /// The last steps of a deletion or an expiry inside `tx`: the blob's
    /// reference given back (when the record still held one) and the
    /// deliveries written.
    async fn removed_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        blob_key: String,
        holds_ref: bool,
        news: &[Delivery],
    ) -> std::result::Result<Deleted, sqlx::Error> {
        let blob_in_use = match holds_ref {
            true => self.release(tx, &blob_key).await?,
            false => false,
        };
        self.enqueue(tx, news).await?;
        Ok(Deleted {
            blob_key,
            blob_in_use,
        })
    }

    /// Stores a record's mutable fields inside `tx`, and its deliveries
    /// when it was changed; answers whether it was.
    async fn fields_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rec: &UploadRecord,
        from: Option<u64>,
        news: &[Delivery],
    ) -> std::result::Result<bool, sqlx::Error> {
        let sql = self.update_sql(from.is_some());
        let done = self
            .update_query(&sql, rec, from)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.enqueue(tx, news).await?;
        Ok(true)
    }

    /// The statement that stores a record's mutable fields, fenced by its
    /// offset and state or not.
    fn update_sql(&self, fenced: bool) -> Cow<'static, str> {
        let fence = match fenced {
            true => r#" AND "offset" = ? AND state = 'active'"#,
            false => "",
        };
        self.sql(format!(
            r#"UPDATE uploads SET length = ?, "offset" = ?, state = ?, sha256 = ?, hash_state = ?,
                 blob_state = ?, updated_at = ?, expires_at = ?, completed_at = ?
               WHERE id = ?{fence}"#
        ))
    }

    /// `update_sql` with the record's fields (and its fence) bound.
    fn update_query<'q>(
        &self,
        sql: &'q str,
        rec: &'q UploadRecord,
        from: Option<u64>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let query = sqlx::query(sql)
            .bind(rec.length.map(|l| l as i64))
            .bind(rec.offset as i64)
            .bind(rec.state.as_str())
            .bind(&rec.sha256)
            .bind(&rec.hash_state)
            .bind(&rec.blob_state)
            .bind(rec.updated_at)
            .bind(rec.expires_at)
            .bind(rec.completed_at)
            .bind(rec.id.as_str());
        match from {
            Some(from) => query.bind(from as i64),
            None => query,
        }
    }
}
