//! Pruning in bounded steps: the event log's old entries, expired records
//! past their retention, dead hook deliveries. Each step deletes at most
//! `PRUNE_STEP` rows as one change through the writer (on SQLite, in a
//! group with the requests' changes), so a backlog of any size never holds
//! the database for long: one DELETE of 500,000 old events held SQLite's
//! lock for 1.4 s, and every PATCH waited behind it (`bench/prune.sh`).

use super::changes::Change;
use super::*;
use crate::core::record::Millis;

/// Most rows one step deletes (about 3 ms of SQLite's time for events).
pub(super) const PRUNE_STEP: u32 = 1000;

/// What a pruning deletes.
#[derive(Clone, Debug)]
pub(super) enum Prune {
    /// Events logged before this time.
    EventsBefore(Millis),
    /// An owner's events but the newest `keep`.
    EventsOver { owner: String, keep: u32 },
    /// Expired records last changed before this time.
    ExpiredBefore(Millis),
    /// Dead hook deliveries but the newest `keep`.
    DeadOver(u32),
}

impl SqlStore {
    /// Deletes everything `what` names, `most` rows at a time, each step a
    /// change of its own. Answers how many rows went.
    pub(super) async fn prune_in_steps(&self, what: Prune, most: u32) -> Result<u64> {
        // A step of none would never end the loop.
        let most = most.max(1);
        let mut total = 0;
        loop {
            let what = what.clone();
            let done = self.write(Change::Prune { what, most }).await?.pruned()?;
            total += done;
            if done < u64::from(most) {
                return Ok(total);
            }
        }
    }

    /// One step of a pruning inside `tx`: at most `most` rows.
    pub(super) async fn prune_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        what: &Prune,
        most: u32,
    ) -> std::result::Result<u64, sqlx::Error> {
        let most = i64::from(most);
        let sql;
        let query = match what {
            Prune::EventsBefore(before) => {
                sql = self.sql(
                    "DELETE FROM events WHERE id IN (
                       SELECT id FROM events WHERE created_at < ? LIMIT ?)",
                );
                sqlx::query(&sql).bind(*before).bind(most)
            }
            Prune::EventsOver { owner, keep } => {
                sql = self.sql(
                    "DELETE FROM events WHERE id IN (
                       SELECT id FROM events WHERE owner = ? AND id <= (
                         SELECT id FROM events WHERE owner = ? ORDER BY id DESC LIMIT 1 OFFSET ?)
                       LIMIT ?)",
                );
                sqlx::query(&sql)
                    .bind(owner.as_str())
                    .bind(owner.as_str())
                    .bind(i64::from(*keep))
                    .bind(most)
            }
            Prune::ExpiredBefore(before) => {
                sql = self.sql(
                    "DELETE FROM uploads WHERE id IN (
                       SELECT id FROM uploads WHERE state = 'expired' AND updated_at < ? LIMIT ?)",
                );
                sqlx::query(&sql).bind(*before).bind(most)
            }
            Prune::DeadOver(keep) => {
                sql = self.sql(
                    "DELETE FROM hook_deliveries WHERE seq IN (
                       SELECT seq FROM hook_deliveries WHERE dead_at IS NOT NULL AND seq <= (
                         SELECT seq FROM hook_deliveries WHERE dead_at IS NOT NULL
                         ORDER BY seq DESC LIMIT 1 OFFSET ?)
                       LIMIT ?)",
                );
                sqlx::query(&sql).bind(i64::from(*keep)).bind(most)
            }
        };
        Ok(query.execute(&mut **tx).await?.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::meta::MetaStore;
    use crate::core::record::{Concat, Owner, UploadRecord};
    use crate::protocol::metadata::Metadata;
    use futures_util::future::join_all;

    async fn store() -> (tempfile::TempDir, SqlStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open_sqlite(&dir.path().join("records.db"), true)
            .await
            .unwrap();
        (dir, store)
    }

    /// `n` events of `owner` logged at `at`, straight into the table.
    async fn log(store: &SqlStore, owner: &str, n: u32, at: Millis) {
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?)
             INSERT INTO events (owner, kind, upload_id, data, created_at)
             SELECT ?, 'upload.completed', 'u' || x, '{}', ? FROM c",
        )
        .bind(i64::from(n))
        .bind(owner)
        .bind(at)
        .execute(&store.pool)
        .await
        .unwrap();
    }

    /// A new anonymous record of 100 bytes, inserted.
    async fn inserted(store: &SqlStore) -> UploadRecord {
        let rec = UploadRecord::new(
            Owner::anonymous(),
            Some(100),
            Metadata::default(),
            Concat::None,
            1,
        );
        assert!(store.insert(&rec, &[]).await.unwrap());
        rec
    }

    async fn count(store: &SqlStore, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    async fn step(store: &SqlStore, what: Prune, most: u32) -> u64 {
        let done = store.write(Change::Prune { what, most }).await.unwrap();
        done.pruned().unwrap()
    }

    #[tokio::test]
    async fn old_events_go_in_bounded_steps() {
        let (_dir, store) = store().await;
        log(&store, "token:a", 15, 1).await;
        log(&store, "token:b", 10, 2).await;
        log(&store, "token:a", 3, 1000).await;
        assert_eq!(step(&store, Prune::EventsBefore(100), 10).await, 10);
        let rest = store.prune_in_steps(Prune::EventsBefore(100), 10).await;
        assert_eq!(rest.unwrap(), 15, "the rest, in two more steps");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM events").await, 3);
        let newest = "SELECT COUNT(*) FROM events WHERE created_at = 1000";
        assert_eq!(count(&store, newest).await, 3, "the new ones stay");
    }

    #[tokio::test]
    async fn an_owner_keeps_its_newest_events() {
        let (_dir, store) = store().await;
        log(&store, "token:a", 30, 1).await;
        log(&store, "token:b", 5, 1).await;
        let newest_a = "SELECT MIN(id) FROM (SELECT id FROM events WHERE owner = 'token:a'
                          ORDER BY id DESC LIMIT 4)";
        let fourth_newest = count(&store, newest_a).await;
        let over = |keep| Prune::EventsOver {
            owner: "token:a".into(),
            keep,
        };
        assert_eq!(step(&store, over(4), 7).await, 7);
        assert_eq!(store.prune_in_steps(over(4), 7).await.unwrap(), 19);
        let left = "SELECT COUNT(*) FROM events WHERE owner = 'token:a'";
        assert_eq!(count(&store, left).await, 4);
        let oldest_left = "SELECT MIN(id) FROM events WHERE owner = 'token:a'";
        assert_eq!(count(&store, oldest_left).await, fourth_newest);
        let other = "SELECT COUNT(*) FROM events WHERE owner = 'token:b'";
        assert_eq!(count(&store, other).await, 5, "another owner's stay");
    }

    #[tokio::test]
    async fn expired_records_and_dead_deliveries_go_in_steps() {
        let (_dir, store) = store().await;
        let mut ids = Vec::new();
        for _ in 0..6 {
            ids.push(inserted(&store).await.id);
        }
        for id in &ids[..5] {
            assert!(store.expire(id, 10, &[]).await.unwrap().is_some());
        }
        assert_eq!(step(&store, Prune::ExpiredBefore(11), 2).await, 2);
        let rest = store.prune_in_steps(Prune::ExpiredBefore(11), 2).await;
        assert_eq!(rest.unwrap(), 3);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM uploads").await, 1);
        assert!(store.get(&ids[5]).await.unwrap().is_some(), "active stays");

        for n in 0..7 {
            sqlx::query(
                "INSERT INTO hook_deliveries (id, point, upload_id, body, created_at,
                   give_up_at, next_at, dead_at) VALUES (?, 'post-finish', 'u', '{}', 1, 1, 1, ?)",
            )
            .bind(format!("d{n}"))
            .bind(if n == 6 { None } else { Some(5_i64) })
            .execute(&store.pool)
            .await
            .unwrap();
        }
        assert_eq!(step(&store, Prune::DeadOver(1), 3).await, 3);
        assert_eq!(
            store.prune_in_steps(Prune::DeadOver(1), 3).await.unwrap(),
            2
        );
        let left = "SELECT id FROM hook_deliveries ORDER BY seq";
        let left: Vec<String> = sqlx::query_scalar(left)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(left, ["d5", "d6"], "the newest dead one, and the live one");
    }

    /// A pruning of thousands of rows beside record updates: the writer
    /// takes its steps between theirs, every update lands and every old
    /// event goes.
    #[tokio::test]
    async fn pruning_beside_updates_loses_nothing() {
        let (_dir, store) = store().await;
        log(&store, "token:a", 2500, 1).await;
        let mut records = Vec::new();
        for _ in 0..40 {
            records.push(inserted(&store).await);
        }
        let updates = join_all(records.iter().map(|rec| {
            let mut rec = rec.clone();
            rec.offset = 50;
            let store = &store;
            async move { store.advance_with(&rec, 0, &[]).await }
        }));
        let (pruned, updated) =
            tokio::join!(store.prune_in_steps(Prune::EventsBefore(100), 100), updates);
        assert_eq!(pruned.unwrap(), 2500);
        for (rec, done) in records.iter().zip(updated) {
            done.unwrap();
            assert_eq!(store.get(&rec.id).await.unwrap().unwrap().offset, 50);
        }
        assert_eq!(count(&store, "SELECT COUNT(*) FROM events").await, 0);
    }
}
