//! Group commit for SQLite: the record updates and new records that wait
//! while one transaction is written go to disk together, in the next
//! transaction, with one sync of the log for all of them.
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
//! One task writes every update and insert. It takes all that wait (up to
//! `MOST_PER_COMMIT`), applies them in order in one transaction, and
//! answers each only once that transaction is committed. An update whose
//! fence does not hold changes nothing and answers `false`, as alone; an
//! insert whose shared blob is gone is rolled back to its savepoint and
//! answers `false`; a change that breaks a constraint (a duplicate ID) is
//! rolled back alone and answers its error, after the commit, like the
//! others. Any other failure is the database's (full, failing, busy past
//! its timeout): the group is rolled back and every change in it answers
//! that error, as each would have alone. A lone change is applied alone
//! straight away, as before: a single upload pays only the hop to the
//! task.

use super::*;
use crate::core::hooks::Delivery;
use crate::core::record::UploadRecord;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

/// The most changes one transaction applies.
const MOST_PER_COMMIT: usize = 256;

/// The most changes that wait for the task; requests beyond it wait to
/// hand theirs over (each request has at most one in hand).
const MOST_WAITING: usize = 4096;

/// A change to the records that the task writes, with the hook
/// deliveries it writes alongside.
#[derive(Debug)]
enum Change {
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
}

struct Job {
    change: Change,
    done: oneshot::Sender<Result<bool>>,
}

/// The way to the task that writes every record update and new record of
/// one SQLite database. The task ends when the last `SqlStore` holding
/// this is dropped.
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
    async fn apply(&self, change: Change) -> Result<bool> {
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
        if batch.len() == 1 {
            let job = batch.pop().expect("one job");
            let answer = store.store_alone(&job.change).await;
            let _ = job.done.send(answer);
            continue;
        }
        let changes: Vec<&Change> = batch.iter().map(|job| &job.change).collect();
        match store.store_together(&changes).await {
            Ok(answers) => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.done.send(answer);
                }
            }
            Err(e) => {
                // Nothing of the group was committed, and what failed was
                // the database (full, busy past its timeout, failing), not
                // one change: applying each alone would fail alike, one
                // timeout after another.
                tracing::warn!(
                    changes = batch.len(),
                    "a group of record changes failed: {e}"
                );
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
        }
    }
}

impl SqlStore {
    /// Stores the mutable fields of a record; with `from`, only while it is
    /// active at that offset. Answers whether a record was changed. On
    /// SQLite the update is committed with the others waiting (`group`).
    pub(super) async fn store_fields(
        &self,
        rec: &UploadRecord,
        from: Option<u64>,
        news: &[Delivery],
    ) -> Result<bool> {
        match &self.group {
            Some(group) => {
                let change = Change::Fields {
                    rec: rec.clone(),
                    from,
                    news: news.to_vec(),
                };
                group.apply(change).await
            }
            None => self.fields_alone(rec, from, news).await,
        }
    }

    /// `MetaStore::insert`: on SQLite committed with the others waiting.
    pub(super) async fn insert_record(
        &self,
        rec: &UploadRecord,
        news: &[Delivery],
    ) -> Result<bool> {
        match &self.group {
            Some(group) => {
                let change = Change::Insert {
                    rec: rec.clone(),
                    news: news.to_vec(),
                };
                group.apply(change).await
            }
            None => self.insert_alone(rec, news).await,
        }
    }

    /// A change in a transaction of its own.
    async fn store_alone(&self, change: &Change) -> Result<bool> {
        match change {
            Change::Fields { rec, from, news } => self.fields_alone(rec, *from, news).await,
            Change::Insert { rec, news } => self.insert_alone(rec, news).await,
        }
    }

    /// `store_fields` in a transaction of its own.
    async fn fields_alone(
        &self,
        rec: &UploadRecord,
        from: Option<u64>,
        news: &[Delivery],
    ) -> Result<bool> {
        let failed = |e| db_error("updating a record", e);
        let sql = self.update_sql(from.is_some());
        let query = self.update_query(&sql, rec, from);
        if news.is_empty() {
            // The common case (a checkpoint): one statement, no transaction.
            let done = query.execute(&self.pool).await.map_err(failed)?;
            return Ok(done.rows_affected() == 1);
        }
        let mut tx = self.pool.begin().await.map_err(failed)?;
        if !self
            .fields_in(&mut tx, rec, from, news)
            .await
            .map_err(failed)?
        {
            return Ok(false); // the transaction rolls back as it drops
        }
        tx.commit().await.map_err(failed)?;
        Ok(true)
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

    /// Applies `changes` in order in one transaction, and answers, for
    /// each, what applying it alone would have: a change that breaks a
    /// constraint (a duplicate ID, say) is undone alone and answers its
    /// error; any other failure is the database's, and fails the whole
    /// group, none of it committed. The connection is then closed rather
    /// than pooled: SQLite may have ended the transaction itself, which
    /// would leave sqlx's count of open ones wrong on that connection.
    async fn store_together(&self, changes: &[&Change]) -> Result<Vec<Result<bool>>> {
        let failed = |e| db_error("changing records together", e);
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        let outcome = async {
            let mut tx = conn.begin().await?;
            let mut answers = Vec::with_capacity(changes.len());
            for change in changes {
                answers.push(self.apply_in_group(&mut tx, change).await?);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(answers)
        }
        .await;
        outcome.map_err(|e| {
            conn.close_on_drop();
            failed(e)
        })
    }

    /// Applies one change of a group inside `tx`. Answers `Err` only for a
    /// failure of the database; a change's own constraint violation is
    /// undone and answered.
    async fn apply_in_group(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        change: &Change,
    ) -> std::result::Result<Result<bool>, sqlx::Error> {
        // A change of one statement needs no savepoint: SQLite undoes a
        // statement that fails, and one that matches no row changed none.
        let several = match change {
            Change::Fields { news, .. } => !news.is_empty(),
            Change::Insert { .. } => true,
        };
        if several {
            run(tx, "SAVEPOINT grouped").await?;
        }
        let applied = match change {
            Change::Fields { rec, from, news } => self.fields_in(tx, rec, *from, news).await,
            Change::Insert { rec, news } => self.insert_in(tx, rec, news).await,
        };
        let (undo, answer) = match applied {
            // An insert whose shared blob is gone keeps nothing.
            Ok(done) => (!done, Ok(done)),
            Err(e) if broke_a_constraint(&e) => {
                let context = match change {
                    Change::Fields { .. } => "updating a record",
                    Change::Insert { .. } => "inserting a record",
                };
                (true, Err(db_error(context, e)))
            }
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
    use super::*;
    use crate::core::hooks::HookPoint;
    use crate::core::meta::MetaStore;
    use crate::core::record::{Concat, Owner};
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
        answers.into_iter().map(|a| a.ok()).collect()
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
            .fields_alone(&taken, Some(0), &[delivery("d1", &records[0])])
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
                    Change::Insert { .. } => unreachable!(),
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
            .fields_alone(&records[0], None, &[delivery("taken", &records[0])])
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
}
