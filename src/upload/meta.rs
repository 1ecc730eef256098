//! The records seam: `MetaStore` keeps upload records and answers the few
//! questions the service asks of them. It knows nothing of HTTP or bytes.
//! `SqliteMetaStore` is the embedded implementation (sqlx, migrations in
//! `migrations/sqlite`).

use super::events::{EventKind, EventStore};
use super::id::UploadId;
use super::metadata::Metadata;
use super::record::{Concat, Millis, Owner, UploadRecord, UploadState};
use crate::error::{Error, ErrorCode, Result};
use crate::model::{LiveEvent, UploadSummary};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// What deleting a record leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The deleted record's blob.
    pub blob_key: String,
    /// Whether another record still uses that blob (an instant upload).
    pub blob_in_use: bool,
}

/// Where upload records live.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Stores a new record.
    async fn insert(&self, rec: &UploadRecord) -> Result<()>;
    /// The record with this ID, if any.
    async fn get(&self, id: &UploadId) -> Result<Option<UploadRecord>>;
    /// Stores the mutable fields of an existing record (offset, length,
    /// state, hashes, times).
    async fn update(&self, rec: &UploadRecord) -> Result<()>;
    /// Removes a record, atomically telling whether its blob is still used.
    async fn delete(&self, id: &UploadId) -> Result<Option<Deleted>>;
    /// A complete upload of this owner with this SHA-256 and length.
    async fn find_complete(
        &self,
        owner: &Owner,
        sha256: &str,
        length: u64,
    ) -> Result<Option<UploadRecord>>;
    /// This owner's uploads (active and complete), newest first.
    async fn list_by_owner(&self, owner: &Owner, limit: u32) -> Result<Vec<UploadRecord>>;
    /// Active uploads whose expiry time has passed.
    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<UploadRecord>>;
    /// Every active upload (to reconcile records with bytes on start).
    async fn active(&self) -> Result<Vec<UploadRecord>>;
    /// Forgets expired records older than `before`; answers how many.
    async fn prune_expired(&self, before: Millis) -> Result<u64>;
}

/// Records in a SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteMetaStore {
    pool: SqlitePool,
}

fn db_error(context: &str, err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        // SQLITE_FULL
        if db.code().as_deref() == Some("13") {
            tracing::warn!("{context}: {err}");
            return Error::new(
                ErrorCode::StorageFull,
                "The server's storage is full; try again later.",
            );
        }
    }
    Error::internal(context, err)
}

impl SqliteMetaStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date. `durable` makes every commit reach the disk
    /// before it returns.
    pub async fn open(path: &Path, durable: bool) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| Error::internal("sqlite options", e))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if durable {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| db_error("opening the database", e))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| Error::internal("migrating the database", e))?;
        Ok(SqliteMetaStore { pool })
    }
}

fn encode_concat(c: &Concat) -> Option<String> {
    match c {
        Concat::None => None,
        Concat::Partial => Some("partial".into()),
        Concat::Final(parts) => Some(format!(
            "final:{}",
            parts
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

fn decode_concat(s: Option<String>) -> Result<Concat> {
    match s.as_deref() {
        None => Ok(Concat::None),
        Some("partial") => Ok(Concat::Partial),
        Some(f) if f.starts_with("final:") => f["final:".len()..]
            .split(' ')
            .map(|p| {
                UploadId::parse(p)
                    .ok_or_else(|| Error::internal("stored record", "bad concat part"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Concat::Final),
        Some(other) => Err(Error::internal(
            "stored record",
            format!("bad concat {other:?}"),
        )),
    }
}

fn from_row(row: &SqliteRow) -> Result<UploadRecord> {
    let get_err = |e: sqlx::Error| Error::internal("reading a record", e);
    let id: String = row.try_get("id").map_err(get_err)?;
    let state: String = row.try_get("state").map_err(get_err)?;
    let metadata: String = row.try_get("metadata").map_err(get_err)?;
    let length: Option<i64> = row.try_get("length").map_err(get_err)?;
    let offset: i64 = row.try_get("offset").map_err(get_err)?;
    Ok(UploadRecord {
        id: UploadId::parse(&id).ok_or_else(|| Error::internal("stored record", "bad id"))?,
        owner: Owner::from_stored(row.try_get("owner").map_err(get_err)?),
        blob_key: row.try_get("blob_key").map_err(get_err)?,
        length: length.map(|l| l as u64),
        offset: offset as u64,
        metadata: Metadata::parse(&metadata)?,
        concat: decode_concat(row.try_get("concat").map_err(get_err)?)?,
        state: UploadState::parse(&state)
            .ok_or_else(|| Error::internal("stored record", "bad state"))?,
        sha256: row.try_get("sha256").map_err(get_err)?,
        hash_state: row.try_get("hash_state").map_err(get_err)?,
        created_at: row.try_get("created_at").map_err(get_err)?,
        updated_at: row.try_get("updated_at").map_err(get_err)?,
        expires_at: row.try_get("expires_at").map_err(get_err)?,
        completed_at: row.try_get("completed_at").map_err(get_err)?,
    })
}

fn rows(rows: Vec<SqliteRow>) -> Result<Vec<UploadRecord>> {
    rows.iter().map(from_row).collect()
}

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn insert(&self, rec: &UploadRecord) -> Result<()> {
        sqlx::query(
            r#"INSERT INTO uploads (id, owner, blob_key, length, "offset", metadata, concat, state,
                 sha256, hash_state, created_at, updated_at, expires_at, completed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
        )
        .bind(rec.id.as_str())
        .bind(rec.owner.as_str())
        .bind(&rec.blob_key)
        .bind(rec.length.map(|l| l as i64))
        .bind(rec.offset as i64)
        .bind(rec.metadata.encode())
        .bind(encode_concat(&rec.concat))
        .bind(rec.state.as_str())
        .bind(&rec.sha256)
        .bind(&rec.hash_state)
        .bind(rec.created_at)
        .bind(rec.updated_at)
        .bind(rec.expires_at)
        .bind(rec.completed_at)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("inserting a record", e))?;
        Ok(())
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        let row = sqlx::query("SELECT * FROM uploads WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a record", e))?;
        row.as_ref().map(from_row).transpose()
    }

    async fn update(&self, rec: &UploadRecord) -> Result<()> {
        sqlx::query(
            r#"UPDATE uploads SET length = ?, "offset" = ?, state = ?, sha256 = ?, hash_state = ?,
                 updated_at = ?, expires_at = ?, completed_at = ?
               WHERE id = ?"#,
        )
        .bind(rec.length.map(|l| l as i64))
        .bind(rec.offset as i64)
        .bind(rec.state.as_str())
        .bind(&rec.sha256)
        .bind(&rec.hash_state)
        .bind(rec.updated_at)
        .bind(rec.expires_at)
        .bind(rec.completed_at)
        .bind(rec.id.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("updating a record", e))?;
        Ok(())
    }

    async fn delete(&self, id: &UploadId) -> Result<Option<Deleted>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("deleting a record", e))?;
        let blob_key: Option<String> =
            sqlx::query_scalar("DELETE FROM uploads WHERE id = ? RETURNING blob_key")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db_error("deleting a record", e))?;
        let Some(blob_key) = blob_key else {
            return Ok(None);
        };
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads WHERE blob_key = ?")
            .bind(&blob_key)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| db_error("deleting a record", e))?;
        tx.commit()
            .await
            .map_err(|e| db_error("deleting a record", e))?;
        Ok(Some(Deleted {
            blob_key,
            blob_in_use: users > 0,
        }))
    }

    async fn find_complete(
        &self,
        owner: &Owner,
        sha256: &str,
        length: u64,
    ) -> Result<Option<UploadRecord>> {
        let row = sqlx::query(
            "SELECT * FROM uploads WHERE owner = ? AND sha256 = ? AND length = ? AND state = 'complete'
             ORDER BY created_at LIMIT 1",
        )
        .bind(owner.as_str())
        .bind(sha256)
        .bind(length as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("finding a duplicate", e))?;
        row.as_ref().map(from_row).transpose()
    }

    async fn list_by_owner(&self, owner: &Owner, limit: u32) -> Result<Vec<UploadRecord>> {
        let found = sqlx::query(
            "SELECT * FROM uploads WHERE owner = ? AND state != 'expired'
             ORDER BY created_at DESC, id LIMIT ?",
        )
        .bind(owner.as_str())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("listing uploads", e))?;
        rows(found)
    }

    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<UploadRecord>> {
        let found = sqlx::query(
            "SELECT * FROM uploads WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= ?
             ORDER BY expires_at LIMIT ?",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("finding expired uploads", e))?;
        rows(found)
    }

    async fn active(&self) -> Result<Vec<UploadRecord>> {
        let found = sqlx::query("SELECT * FROM uploads WHERE state = 'active'")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("listing active uploads", e))?;
        rows(found)
    }

    async fn prune_expired(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM uploads WHERE state = 'expired' AND updated_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("pruning expired uploads", e))?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl EventStore for SqliteMetaStore {
    async fn append(
        &self,
        owner: &Owner,
        kind: EventKind,
        upload: &UploadSummary,
        at: Millis,
    ) -> Result<u64> {
        let data =
            serde_json::to_string(upload).map_err(|e| Error::internal("encoding an event", e))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (owner, kind, upload_id, data, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(owner.as_str())
        .bind(kind.as_str())
        .bind(&upload.id)
        .bind(data)
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error("storing an event", e))?;
        Ok(id as u64)
    }

    async fn after(&self, owner: &Owner, after: u64, limit: u32) -> Result<Vec<LiveEvent>> {
        let rows = sqlx::query(
            "SELECT id, kind, data, created_at FROM events WHERE owner = ? AND id > ? ORDER BY id LIMIT ?",
        )
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
                    kind: row.try_get("kind").map_err(get)?,
                    upload: serde_json::from_str(&data)
                        .map_err(|e| Error::internal("decoding an event", e))?,
                    at: row.try_get("created_at").map_err(get)?,
                })
            })
            .collect()
    }

    async fn latest(&self) -> Result<u64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("reading events", e))?;
        Ok(id.unwrap_or(0) as u64)
    }

    async fn prune(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM events WHERE created_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("pruning events", e))?;
        Ok(done.rows_affected())
    }
}
