//! Group commit for SQLite: the record updates, new records, deletions,
//! expiries, events and pruning steps that wait while one transaction is
//! written go to disk together, in the next transaction, with one sync of
//! the log for all of them.
//!
//! SQLite writes one transaction at a time, and with `synchronous = FULL`
//! every commit waits for its own sync. Every request's checkpoint updates
//! its record, so with 64 uploads at once (1 MiB PATCHes) the updates
//! queued behind one another: 106 ms each on average and 600 ms at the
//! 99th percentile, three times as long as the uploads' own file syncs
//! beside them, which the disk runs side by side. The requests' 99th
//! percentile was 0.5-0.73 s; with updates grouped, 0.26-0.32 s, and the
//! uploads finish sooner (`bench/README.md`). PostgreSQL folds concurrent
//! commits into one sync by itself, so there each update keeps its own
//! transaction.
//!
//! New records went the same way: 64 uploads created at once took up to
//! 1-2 s each, their inserts taking turns through SQLite's busy handler
//! (which sleeps between tries) with each other and with the updates.
//!
//! One task writes every update and insert, and every deletion, expiry and
//! event (`changes`). It takes all that wait (up to `MOST_PER_COMMIT`),
//! applies them in order in one transaction, and answers each only once
//! that transaction is committed. An update whose fence does not hold
//! changes nothing and answers `false`, as alone; an insert whose shared
//! blob is gone is rolled back to its savepoint and answers `false`; a
//! change that breaks a constraint (a duplicate ID) is rolled back alone
//! and answers its error, after the commit, like the others. Any other
//! failure is the database's (full, failing, busy past its timeout): the
//! group is rolled back and every change in it answers that error, as each
//! would have alone. A lone change is applied alone straight away, as
//! before: a single upload pays only the hop to the task. A panic fails
//! its own group, and the task goes on with the next.

use super::changes::{Change, Done};
use super::*;
use futures_util::FutureExt;
use sqlx::Connection;
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};

/// The most changes one transaction applies.
const MOST_PER_COMMIT: usize = 256;

/// The most changes that wait for the task; requests beyond it wait to
/// hand theirs over (each request has at most one in hand).
const MOST_WAITING: usize = 4096;

struct Job {
    change: Change,
    done: oneshot::Sender<Result<Done>>,
}

/// The way to the task that writes every change of one SQLite database.
/// The task ends when the last `SqlStore` holding this is dropped.
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the task over `store` (a store without a group of its own).
    pub(super) fn start(store: SqlStore) -> Self {
        let (jobs, waiting) = mpsc::channel(MOST_WAITING);
        tokio::spawn(write_changes(store, waiting));
        GroupCommit { jobs }
    }

    /// Applies `change` with the others waiting; answers what applying it
    /// alone would, once that is committed.
    pub(super) async fn apply(&self, change: Change) -> Result<Done> {
        let gone = || Error::new(ErrorCode::Internal, "The database writer stopped.");
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { change, done })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write_changes(store: SqlStore, mut waiting: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MOST_PER_COMMIT);
    while waiting.recv_many(&mut batch, MOST_PER_COMMIT).await > 0 {
        // A panic (a bug) fails its own group, not every write after it:
        // the task is the only way to the records.
        let written = AssertUnwindSafe(write_group(&store, &batch))
            .catch_unwind()
            .await;
        let answers = match written {
            Ok(answers) => answers,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(changes = batch.len(), "the database writer panicked: {why}");
                let e = Error::new(ErrorCode::Internal, "The database writer failed.");
                vec![Err(e); batch.len()]
            }
        };
        for (job, answer) in batch.drain(..).zip(answers) {
            let _ = job.done.send(answer);
        }
    }
}

/// Applies a batch, alone when it is one change; answers each change.
async fn write_group(store: &SqlStore, batch: &[Job]) -> Vec<Result<Done>> {
    if let [job] = batch {
        return vec![store.store_alone(&job.change).await];
    }
    let changes: Vec<&Change> = batch.iter().map(|job| &job.change).collect();
    match store.store_together(&changes).await {
        Ok(answers) => answers,
        Err(e) => {
            // Nothing of the group was committed, and what failed was the
            // database (full, busy past its timeout, failing), not one
            // change: applying each alone would fail alike, one timeout
            // after another.
            tracing::warn!(changes = batch.len(), "a group of changes failed: {e}");
            vec![Err(e); batch.len()]
        }
    }
}

impl SqlStore {
    /// Applies `changes` in order in one transaction, and answers, for
    /// each, what applying it alone would have: a change that breaks a
    /// constraint (a duplicate ID, say) is undone alone and answers its
    /// error; any other failure is the database's, and fails the whole
    /// group, none of it committed. The connection is then closed rather
    /// than pooled: SQLite may have ended the transaction itself, which
    /// would leave sqlx's count of open ones wrong on that connection.
    async fn store_together(&self, changes: &[&Change]) -> Result<Vec<Result<Done>>> {
        let failed = |e| db_error("writing changes together", e);
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        let outcome = AssertUnwindSafe(async {
            let mut tx = conn.begin().await?;
            let mut answers = Vec::with_capacity(changes.len());
            for change in changes {
                answers.push(self.apply_in_group(&mut tx, change).await?);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(answers)
        })
        .catch_unwind()
        .await;
        match outcome {
            Ok(Ok(answers)) => Ok(answers),
            Ok(Err(e)) => {
                conn.close_on_drop();
                Err(failed(e))
            }
            Err(panic) => {
                // Nothing of the group is committed (the transaction rolls
                // back as it drops); the connection goes, as after an error.
                conn.close_on_drop();
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Applies one change of a group inside `tx`. Answers `Err` only for a
    /// failure of the database; a change's own constraint violation is
    /// undone and answered.
    async fn apply_in_group(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        change: &Change,
    ) -> std::result::Result<Result<Done>, sqlx::Error> {
        let several = change.is_several();
        if several {
            run(tx, "SAVEPOINT grouped").await?;
        }
        let (undo, answer) = match self.apply_in(tx, change).await {
            Ok(done) => (!done.keeps(), Ok(done)),
            Err(e) if broke_a_constraint(&e) => (true, Err(db_error(change.doing(), e))),
            Err(e) => return Err(e),
        };
        if several {
            if undo {
                run(tx, "ROLLBACK TO grouped").await?;
            }
            run(tx, "RELEASE grouped").await?;
        }
        Ok(answer)
    }
}

/// Whether `e` is a change's own fault (a unique, primary or foreign key,
/// not-null or check constraint), which SQLite undoes with its statement.
fn broke_a_constraint(e: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match e {
        sqlx::Error::Database(db) => matches!(
            db.kind(),
            ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
        ),
        _ => false,
    }
}

async fn run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sql: &'static str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(sql).execute(&mut **tx).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::super::events::Event;
    use super::*;
    use crate::core::events::EventStore;
    use crate::core::hooks::{Delivery, HookPoint};
    use crate::core::meta::MetaStore;
    use crate::core::record::{Concat, Owner, UploadRecord, UploadState};
    use crate::protocol::events::EventKind;
    use crate::protocol::metadata::Metadata;
    use futures_util::future::join_all;

    /// A new anonymous record of `length` bytes, made at `created`.
    fn new_record(length: u64, created: i64) -> UploadRecord {
        UploadRecord::new(
            Owner::anonymous(),
            Some(length),
            Metadata::default(),
            Concat::None,
            created,
        )
    }

    async fn store_with(n: usize) -> (tempfile::TempDir, SqlStore, Vec<UploadRecord>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open_sqlite(&dir.path().join("records.db"), true)
            .await
            .unwrap();
        let mut records = Vec::new();
        for _ in 0..n {
            let rec = new_record(100, 1);
            assert!(store.insert(&rec, &[]).await.unwrap());
            records.push(rec);
        }
        (dir, store, records)
    }

    fn moved(rec: &UploadRecord, to: u64) -> UploadRecord {
        let mut rec = rec.clone();
        rec.offset = to;
        rec
    }

    fn delivery(id: &str, rec: &UploadRecord) -> Delivery {
        Delivery {
            id: id.to_string(),
            point: HookPoint::PostFinish,
            upload_id: rec.id.to_string(),
            body: "{}".to_string(),
            created_at: 1,
            give_up_at: 2,
        }
    }

    /// A group's answers, `None` for an error.
    async fn together(store: &SqlStore, changes: &[Change]) -> Vec<Option<bool>> {
        let refs: Vec<&Change> = changes.iter().collect();
        let answers = store.store_together(&refs).await.unwrap();
        let changed = |done: Done| done.changed().unwrap();
        answers.into_iter().map(|a| a.ok().map(changed)).collect()
    }

    async fn offset_of(store: &SqlStore, rec: &UploadRecord) -> u64 {
        store.get(&rec.id).await.unwrap().unwrap().offset
    }

    async fn deliveries(store: &SqlStore) -> Vec<String> {
        sqlx::query_scalar("SELECT id FROM hook_deliveries ORDER BY seq")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    }

    /// Many requests' updates at once: each is answered as if it had been
    /// applied alone, and what was answered lasts.
    #[tokio::test]
    async fn updates_at_once_are_each_answered_as_alone() {
        let (dir, store, records) = store_with(200).await;
        // Every record moves from 0 to 10, then a stale writer tries to move
        // it from 0 again, then one moves it on from 10 to 20: one after
        // another for each record, all records at once.
        let answers = join_all(records.iter().map(|rec| {
            let store = store.clone();
            async move {
                let mut answers = Vec::new();
                for (to, from) in [(10, 0), (15, 0), (20, 10)] {
                    let rec = moved(rec, to);
                    answers.push(store.store_fields(&rec, Some(from), &[]).await.unwrap());
                }
                answers
            }
        }))
        .await;
        for answer in answers {
            assert_eq!(answer, [true, false, true]);
        }
        // A fresh connection reads the same.
        drop(store);
        let store = SqlStore::open_sqlite(&dir.path().join("records.db"), true)
            .await
            .unwrap();
        for rec in &records {
            assert_eq!(offset_of(&store, rec).await, 20);
        }
    }

    /// More updates at once than may wait: the ones past the bound wait to
    /// be handed over, and every one is applied and answered.
    #[tokio::test]
    async fn more_updates_than_may_wait_all_go_through() {
        let (_dir, store, records) = store_with(1).await;
        let many = 2 * MOST_WAITING + 1;
        let updates: Vec<UploadRecord> = (0..many)
            .map(|i| {
                let mut rec = records[0].clone();
                rec.updated_at = 1_000 + i as i64;
                rec
            })
            .collect();
        let answers = join_all(updates.iter().map(|rec| {
            let store = store.clone();
            async move { store.store_fields(rec, None, &[]).await.unwrap() }
        }))
        .await;
        assert_eq!(answers.len(), many);
        assert!(answers.iter().all(|changed| *changed));
        let last = store.get(&records[0].id).await.unwrap().unwrap();
        assert!((1_000..1_000 + many as i64).contains(&last.updated_at));
    }

    /// Updates of one record in one group apply in their order.
    #[tokio::test]
    async fn a_group_applies_its_updates_in_order() {
        let (_dir, store, records) = store_with(1).await;
        let rec = &records[0];
        let updates = [(10, 0), (15, 0), (20, 10)].map(|(to, from)| Change::Fields {
            rec: moved(rec, to),
            from: Some(from),
            news: Vec::new(),
        });
        assert_eq!(
            together(&store, &updates).await,
            [Some(true), Some(false), Some(true)]
        );
        assert_eq!(offset_of(&store, rec).await, 20);
    }

    /// In a group, a change that breaks a constraint is undone alone and
    /// answers its error; the others are committed.
    #[tokio::test]
    async fn a_group_undoes_a_change_that_breaks_a_constraint() {
        let (_dir, store, records) = store_with(4).await;
        let taken = moved(&records[0], 5);
        assert!(store
            .store_fields(&taken, Some(0), &[delivery("d1", &records[0])])
            .await
            .unwrap());
        // The second update's delivery reuses an ID: its insert fails, after
        // its record's update went through.
        let updates = [
            Change::Fields {
                rec: moved(&records[1], 7),
                from: Some(0),
                news: vec![delivery("d2", &records[1])],
            },
            Change::Fields {
                rec: moved(&records[2], 9),
                from: Some(0),
                news: vec![delivery("d1", &records[2])],
            },
            Change::Fields {
                rec: moved(&records[3], 11),
                from: Some(0),
                news: Vec::new(),
            },
        ];
        assert_eq!(
            together(&store, &updates).await,
            [Some(true), None, Some(true)]
        );
        assert_eq!(offset_of(&store, &records[1]).await, 7);
        assert_eq!(offset_of(&store, &records[2]).await, 0);
        assert_eq!(offset_of(&store, &records[3]).await, 11);
        assert_eq!(deliveries(&store).await, ["d1", "d2"]);
    }

    /// A failure of the database itself (here a trigger that aborts, which
    /// is no constraint of the change's own) fails the whole group: every
    /// change answers it, none is committed, and the store goes on.
    #[tokio::test]
    async fn a_failing_database_fails_the_whole_group() {
        let (_dir, store, records) = store_with(3).await;
        sqlx::raw_sql(
            r#"CREATE TRIGGER refuse BEFORE UPDATE ON uploads WHEN NEW."offset" = 13
               BEGIN SELECT RAISE(ABORT, 'refused'); END"#,
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let updates = [
            Change::Fields {
                rec: moved(&records[0], 10),
                from: Some(0),
                news: Vec::new(),
            },
            Change::Fields {
                rec: moved(&records[1], 13),
                from: Some(0),
                news: Vec::new(),
            },
        ];
        let refs: Vec<&Change> = updates.iter().collect();
        let failed = store.store_together(&refs).await;
        assert!(failed.is_err(), "{failed:?}");
        assert_eq!(offset_of(&store, &records[0]).await, 0);
        assert_eq!(offset_of(&store, &records[1]).await, 0);
        // Through the writer, both answer the error; then the next group
        // is written as usual.
        let answers = join_all(updates.iter().map(|change| {
            let store = store.clone();
            async move {
                match change {
                    Change::Fields { rec, from, .. } => store.store_fields(rec, *from, &[]).await,
                    _ => unreachable!(),
                }
            }
        }))
        .await;
        assert!(answers.iter().all(|a| a.is_err()), "{answers:?}");
        let answers = join_all([(&records[0], 10), (&records[2], 12)].map(|(rec, to)| {
            let store = store.clone();
            async move { store.store_fields(&moved(rec, to), Some(0), &[]).await }
        }))
        .await;
        assert!(answers.iter().all(|a| matches!(a, Ok(true))), "{answers:?}");
        assert_eq!(offset_of(&store, &records[0]).await, 10);
        assert_eq!(offset_of(&store, &records[2]).await, 12);
    }

    /// Through the writer, an update that fails fails alone: the others
    /// waiting with it are applied and answered.
    #[tokio::test]
    async fn a_failing_update_fails_alone() {
        let (_dir, store, records) = store_with(40).await;
        assert!(store
            .store_fields(&records[0], None, &[delivery("taken", &records[0])])
            .await
            .unwrap());
        let updates: Vec<(UploadRecord, Delivery)> = records
            .iter()
            .enumerate()
            .map(|(i, rec)| {
                let id = if i == 20 {
                    "taken".into()
                } else {
                    format!("d{i}")
                };
                (moved(rec, 10), delivery(&id, rec))
            })
            .collect();
        let answers = join_all(updates.iter().map(|(rec, news)| {
            let store = store.clone();
            async move {
                store
                    .store_fields(rec, Some(0), std::slice::from_ref(news))
                    .await
            }
        }))
        .await;
        for (i, answer) in answers.iter().enumerate() {
            match i {
                20 => assert!(answer.is_err(), "{answer:?}"),
                _ => assert!(matches!(answer, Ok(true)), "{i}: {answer:?}"),
            }
            let want = if i == 20 { 0 } else { 10 };
            assert_eq!(offset_of(&store, &records[i]).await, want, "{i}");
        }
        assert_eq!(deliveries(&store).await.len(), 40);
    }

    fn sharing(rec: &UploadRecord) -> UploadRecord {
        let mut twin = new_record(100, 2);
        twin.blob_key = rec.blob_key.clone();
        twin
    }

    /// New records in one group: one that shares a blob that is gone is
    /// undone alone, and the group's other changes stay.
    #[tokio::test]
    async fn a_group_undoes_an_insert_whose_blob_is_gone() {
        let (_dir, store, records) = store_with(2).await;
        store.delete(&records[0].id, &[]).await.unwrap().unwrap();
        let fresh = new_record(5, 3);
        let orphan = sharing(&records[0]);
        let twin = sharing(&records[1]);
        let changes = [
            Change::Insert {
                rec: fresh.clone(),
                news: vec![delivery("fresh", &fresh)],
            },
            Change::Insert {
                rec: orphan.clone(),
                news: vec![delivery("orphan", &orphan)],
            },
            Change::Insert {
                rec: twin.clone(),
                news: Vec::new(),
            },
            Change::Fields {
                rec: moved(&records[1], 10),
                from: Some(0),
                news: Vec::new(),
            },
        ];
        assert_eq!(
            together(&store, &changes).await,
            [Some(true), Some(false), Some(true), Some(true)]
        );
        assert!(store.get(&fresh.id).await.unwrap().is_some());
        assert!(store.get(&orphan.id).await.unwrap().is_none());
        assert!(store.get(&twin.id).await.unwrap().is_some());
        assert_eq!(offset_of(&store, &records[1]).await, 10);
        assert_eq!(deliveries(&store).await, ["fresh"]);
        // The shared blob counts both of its records.
        assert!(
            store
                .delete(&records[1].id, &[])
                .await
                .unwrap()
                .unwrap()
                .blob_in_use
        );
        assert!(
            !store
                .delete(&twin.id, &[])
                .await
                .unwrap()
                .unwrap()
                .blob_in_use
        );
    }

    /// Many new records at once, through the writer: each is answered as
    /// alone, a duplicate ID fails alone, and what was answered lasts.
    #[tokio::test]
    async fn inserts_at_once_are_each_answered_as_alone() {
        let (dir, store, records) = store_with(1).await;
        let mut fresh: Vec<UploadRecord> = (0..200).map(|i| new_record(i, 4)).collect();
        fresh[100] = records[0].clone(); // already there
        let answers = join_all(fresh.iter().map(|rec| {
            let store = store.clone();
            async move { store.insert(rec, &[]).await }
        }))
        .await;
        for (i, answer) in answers.iter().enumerate() {
            match i {
                100 => assert!(answer.is_err(), "{answer:?}"),
                _ => assert!(matches!(answer, Ok(true)), "{i}: {answer:?}"),
            }
        }
        drop(store);
        let store = SqlStore::open_sqlite(&dir.path().join("records.db"), true)
            .await
            .unwrap();
        for rec in &fresh {
            assert_eq!(store.get(&rec.id).await.unwrap().as_ref(), Some(rec));
        }
    }

    fn event(owner: &Owner, rec: &UploadRecord, kind: EventKind) -> Event {
        Event {
            owner: owner.clone(),
            kind,
            upload_id: rec.id.to_string(),
            data: serde_json::to_string(&crate::core::events::summary(rec)).unwrap(),
            at: 5,
        }
    }

    /// Deletions, expiries and events go in a group with the updates and
    /// inserts, in their order, each answered as alone.
    #[tokio::test]
    async fn a_group_deletes_expires_and_logs() {
        let (_dir, store, records) = store_with(3).await;
        let owner = Owner::anonymous();
        let twin = sharing(&records[0]);
        let changes = [
            Change::Insert {
                rec: twin.clone(),
                news: Vec::new(),
            },
            Change::Delete {
                id: records[0].id.clone(),
                news: vec![delivery("deleted", &records[0])],
            },
            Change::Expire {
                id: records[1].id.clone(),
                now: 9,
                news: Vec::new(),
            },
            // Its record is expired already: nothing to expire.
            Change::Expire {
                id: records[1].id.clone(),
                now: 9,
                news: Vec::new(),
            },
            Change::Event(event(&owner, &records[2], EventKind::Progress)),
            Change::Event(event(&owner, &records[2], EventKind::Progress)),
            Change::Delete {
                id: records[0].id.clone(),
                news: Vec::new(),
            },
        ];
        let refs: Vec<&Change> = changes.iter().collect();
        let answers: Vec<String> = store
            .store_together(&refs)
            .await
            .unwrap()
            .into_iter()
            .map(|a| format!("{:?}", a.unwrap()))
            .collect();
        let removed = |key: &str, in_use: bool| {
            format!("Removed(Some(Deleted {{ blob_key: {key:?}, blob_in_use: {in_use} }}))")
        };
        assert_eq!(answers[0], "Changed(true)");
        // The twin still holds the blob.
        assert_eq!(answers[1], removed(&records[0].blob_key, true));
        assert_eq!(answers[2], removed(&records[1].blob_key, false));
        assert_eq!(answers[3], "Removed(None)");
        let logged: Vec<u64> = answers[4..6]
            .iter()
            .map(|a| {
                a.trim_start_matches("Logged(")
                    .trim_end_matches(')')
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(logged[0] < logged[1], "{logged:?}");
        assert_eq!(answers[6], "Removed(None)");
        assert!(store.get(&records[0].id).await.unwrap().is_none());
        let expired = store.get(&records[1].id).await.unwrap().unwrap();
        assert_eq!(expired.state, UploadState::Expired);
        assert_eq!(deliveries(&store).await, ["deleted"]);
        // The log keeps the upload's latest progress only.
        let events = store.after(&owner, 0, 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [logged[1]]);
        // The twin's deletion gives back the blob's last reference.
        let gone = store.delete(&twin.id, &[]).await.unwrap().unwrap();
        assert!(!gone.blob_in_use);
    }

    /// Deletions and events through the writer while updates stream in:
    /// each answered as alone, and a deletion's delivery that breaks a
    /// constraint fails alone.
    #[tokio::test]
    async fn deletions_and_events_share_the_writer() {
        let (_dir, store, records) = store_with(60).await;
        let owner = Owner::anonymous();
        store
            .store_fields(&records[0], None, &[delivery("taken", &records[0])])
            .await
            .unwrap();
        let answers = join_all(records.iter().enumerate().map(|(i, rec)| {
            let (store, owner) = (store.clone(), owner.clone());
            async move {
                match i % 3 {
                    0 => {
                        let id = match i {
                            30 => "taken".to_string(),
                            _ => format!("gone{i}"),
                        };
                        let news = [delivery(&id, rec)];
                        format!(
                            "{:?}",
                            store.delete(&rec.id, &news).await.map(|d| d.is_some())
                        )
                    }
                    1 => format!(
                        "{:?}",
                        store.store_fields(&moved(rec, 10), Some(0), &[]).await
                    ),
                    _ => {
                        let kind = EventKind::Completed;
                        let summary = crate::core::events::summary(rec);
                        format!(
                            "{:?}",
                            store.append(&owner, kind, &summary, 7).await.is_ok()
                        )
                    }
                }
            }
        }))
        .await;
        for (i, answer) in answers.iter().enumerate() {
            let want = match (i % 3, i) {
                (0, 30) => "Err",
                (0, _) => "Ok(true)",
                (1, _) => "Ok(true)",
                _ => "true",
            };
            assert!(answer.starts_with(want), "{i}: {answer}");
            let there = store.get(&records[i].id).await.unwrap().is_some();
            assert_eq!(there, i % 3 != 0 || i == 30, "{i}");
        }
        assert_eq!(store.after(&owner, 0, 100).await.unwrap().len(), 20);
    }

    /// A panic in the writer fails its own group; the writes after it go
    /// through.
    #[tokio::test]
    async fn the_writer_goes_on_after_a_panic() {
        let (_dir, store, records) = store_with(1).await;
        let group = store.group.clone().unwrap();
        let failed = group.apply(Change::Panic).await;
        assert!(failed.is_err(), "{failed:?}");
        let rec = moved(&records[0], 10);
        assert!(store.store_fields(&rec, Some(0), &[]).await.unwrap());
        assert_eq!(offset_of(&store, &records[0]).await, 10);
    }

    /// A panic in the middle of a group commits none of it: the changes
    /// before it fail with it, and the writer goes on.
    #[tokio::test]
    async fn a_panic_mid_group_commits_nothing() {
        let (_dir, store, records) = store_with(2).await;
        let group = store.group.clone().unwrap();
        let changes = [
            Change::Fields {
                rec: moved(&records[0], 10),
                from: Some(0),
                news: vec![delivery("before", &records[0])],
            },
            Change::Panic,
            Change::Fields {
                rec: moved(&records[1], 10),
                from: Some(0),
                news: Vec::new(),
            },
        ];
        let answers = join_all(changes.into_iter().map(|c| group.apply(c))).await;
        assert!(answers.iter().all(|a| a.is_err()), "{answers:?}");
        assert_eq!(offset_of(&store, &records[0]).await, 0);
        assert_eq!(offset_of(&store, &records[1]).await, 0);
        assert!(deliveries(&store).await.is_empty());
        let rec = moved(&records[0], 10);
        assert!(store.store_fields(&rec, Some(0), &[]).await.unwrap());
        assert_eq!(offset_of(&store, &records[0]).await, 10);
    }
}
