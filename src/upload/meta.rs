//! The records seam: `MetaStore` keeps upload records and answers the few
//! questions the service asks of them. It knows nothing of HTTP or bytes.
//! `SqlStore` implements it (and the event log) once, over sqlx's `Any`
//! driver, for both databases Ferry runs on: SQLite, embedded and the
//! default (migrations in `migrations/sqlite`), and PostgreSQL, shared by
//! several instances (migrations in `migrations/postgres`). Queries are
//! written once with `?` placeholders; PostgreSQL gets them numbered.

use super::events::{EventKind, EventStore};
use super::id::UploadId;
use super::metadata::Metadata;
use super::record::{Concat, Millis, Owner, UploadRecord, UploadState};
use crate::error::{Error, ErrorCode, Result};
use crate::model::{LiveEvent, UploadSummary};
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// What deleting a record leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The deleted record's blob.
    pub blob_key: String,
    /// Whether another record still uses that blob (an instant upload).
    pub blob_in_use: bool,
}

/// What an owner holds, for quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of the owner's own blobs (shared ones count for the upload
    /// that stored them): declared lengths of unfinished uploads, received
    /// bytes of those without a length yet, sizes of finished ones.
    pub bytes: u64,
    /// Unfinished uploads.
    pub unfinished: u64,
}

/// Where a listing goes on from: the last record of the page before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: Millis,
    pub id: UploadId,
}

/// Where upload records live.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Stores a new record and takes a reference on its blob, in one
    /// transaction: a record of its own blob (`blob_key` is its ID) starts
    /// the blob's count; one that shares another's blob (an instant upload)
    /// adds to it, but only while the blob is still in use. Answers false,
    /// storing nothing, when the blob it would share is gone.
    async fn insert(&self, rec: &UploadRecord) -> Result<bool>;
    /// The record with this ID, if any.
    async fn get(&self, id: &UploadId) -> Result<Option<UploadRecord>>;
    /// Stores the mutable fields of an existing record (offset, length,
    /// state, hashes, times).
    async fn update(&self, rec: &UploadRecord) -> Result<()>;
    /// Removes a record and gives back its blob reference, atomically
    /// telling whether the blob is still used.
    async fn delete(&self, id: &UploadId) -> Result<Option<Deleted>>;
    /// Marks an active record expired (its bytes are about to go) and gives
    /// back its blob reference; `None` when it is no longer active.
    async fn expire(&self, id: &UploadId, now: Millis) -> Result<Option<Deleted>>;
    /// Which of these blob keys some record still references.
    async fn known_blobs(&self, keys: &[String]) -> Result<std::collections::HashSet<String>>;
    /// What an owner holds.
    async fn usage(&self, owner: &Owner) -> Result<Usage>;
    /// A complete upload of this owner with this SHA-256 and length.
    async fn find_complete(
        &self,
        owner: &Owner,
        sha256: &str,
        length: u64,
    ) -> Result<Option<UploadRecord>>;
    /// This owner's uploads (active and complete), newest first, after
    /// `after` when given.
    async fn list_by_owner(
        &self,
        owner: &Owner,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<UploadRecord>>;
    /// This owner's uploads (active and complete) of one of these lengths,
    /// newest first.
    async fn find_by_lengths(
        &self,
        owner: &Owner,
        lengths: &[u64],
        limit: u32,
    ) -> Result<Vec<UploadRecord>>;
    /// Active uploads whose expiry time has passed.
    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<UploadRecord>>;
    /// Every active upload (to reconcile records with bytes on start).
    async fn active(&self) -> Result<Vec<UploadRecord>>;
    /// Forgets expired records older than `before`; answers how many.
    async fn prune_expired(&self, before: Millis) -> Result<u64>;
}

/// Which database a `SqlStore` talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Records and events in SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

fn db_error(context: &str, err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        // SQLITE_FULL, and PostgreSQL's disk_full
        if matches!(db.code().as_deref(), Some("13") | Some("53100")) {
            tracing::warn!("{context}: {err}");
            return Error::new(
                ErrorCode::StorageFull,
                "The server's storage is full; try again later.",
            );
        }
    }
    Error::internal(context, err)
}

/// The URL of the SQLite database file at `path`.
pub fn sqlite_url(path: &Path) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    let encoded: String =
        percent_encoding::utf8_percent_encode(&path.to_string_lossy(), KEEP).collect();
    format!("sqlite://{encoded}")
}

impl SqlStore {
    /// Opens the database at `url` (`sqlite://<path>`, created if missing,
    /// or `postgres://...`) and brings its schema up to date. `durable`
    /// makes every SQLite commit reach the disk before it returns
    /// (PostgreSQL is always durable on commit).
    pub async fn open(url: &str, durable: bool) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| {
            Error::new(
                ErrorCode::Internal,
                "The database URL must start with sqlite:// or postgres://.",
            )
        })?;
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let (options, url) = match backend {
            Backend::Sqlite => {
                let sync = if durable { "FULL" } else { "NORMAL" };
                let pragmas = format!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;"
                );
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                // No ping before each query: a local database file cannot
                // drop the connection, and the ping is a round trip to the
                // connection's thread (two for every PATCH).
                let options = options
                    .max_connections(8)
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        let pragmas = pragmas.clone();
                        Box::pin(async move {
                            conn.execute(pragmas.as_str()).await?;
                            Ok(())
                        })
                    });
                (options, url)
            }
            Backend::Postgres => (options.max_connections(16), url.to_string()),
        };
        let pool = options
            .connect(&url)
            .await
            .map_err(|e| db_error("opening the database", e))?;
        let migrated = match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await,
        };
        migrated.map_err(|e| Error::internal("migrating the database", e))?;
        Ok(SqlStore { pool, backend })
    }

    /// The SQLite database at `path`, created if missing.
    pub async fn open_sqlite(path: &Path, durable: bool) -> Result<Self> {
        Self::open(&sqlite_url(path), durable).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Gives back one reference on a blob inside a transaction; answers
    /// whether others remain. The last one takes the blob's row with it.
    async fn release(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        blob_key: &str,
    ) -> Result<bool> {
        let failed = |e| db_error("releasing a blob", e);
        let sql = self.sql("UPDATE blobs SET refs = refs - 1 WHERE key = ? RETURNING refs");
        let left: Option<i64> = sqlx::query_scalar(&sql)
            .bind(blob_key)
            .fetch_optional(&mut **tx)
            .await
            .map_err(failed)?;
        if left.is_some_and(|n| n > 0) {
            return Ok(true);
        }
        let sql = self.sql("DELETE FROM blobs WHERE key = ?");
        sqlx::query(&sql)
            .bind(blob_key)
            .execute(&mut **tx)
            .await
            .map_err(failed)?;
        Ok(false)
    }

    /// A server secret by name: made at random the first time any instance
    /// asks, then the same for all of them.
    pub async fn secret(&self, name: &str) -> Result<String> {
        let failed = |e| db_error("reading a server secret", e);
        let fresh: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let sql = self
            .sql("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING");
        sqlx::query(&sql)
            .bind(name)
            .bind(fresh)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        let sql = self.sql("SELECT value FROM settings WHERE name = ?");
        sqlx::query_scalar(&sql)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(failed)
    }

    /// A query in this backend's placeholder style.
    fn sql(&self, query: impl Into<Cow<'static, str>>) -> Cow<'static, str> {
        let query = query.into();
        match self.backend {
            Backend::Sqlite => query,
            Backend::Postgres => Cow::Owned(numbered_placeholders(&query)),
        }
    }
}

/// `n` placeholders for an `IN (...)` list.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `?` placeholders as PostgreSQL's `$1`, `$2`, ... (Ferry's queries have
/// no `?` inside literals).
fn numbered_placeholders(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 16);
    let mut n = 0;
    for c in query.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
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

fn from_row(row: &AnyRow) -> Result<UploadRecord> {
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
        blob_state: row.try_get("blob_state").map_err(get_err)?,
        created_at: row.try_get("created_at").map_err(get_err)?,
        updated_at: row.try_get("updated_at").map_err(get_err)?,
        expires_at: row.try_get("expires_at").map_err(get_err)?,
        completed_at: row.try_get("completed_at").map_err(get_err)?,
    })
}

fn rows(rows: Vec<AnyRow>) -> Result<Vec<UploadRecord>> {
    rows.iter().map(from_row).collect()
}

#[async_trait]
impl MetaStore for SqlStore {
    async fn insert(&self, rec: &UploadRecord) -> Result<bool> {
        let failed = |e| db_error("inserting a record", e);
        let mut tx = self.pool.begin().await.map_err(failed)?;
        if rec.blob_key == rec.id.as_str() {
            let sql = self.sql("INSERT INTO blobs (key, refs) VALUES (?, 1)");
            sqlx::query(&sql)
                .bind(&rec.blob_key)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        } else {
            // The row lock this takes orders it with a deletion of the last
            // other user: either that sees this reference, or this sees the
            // blob gone.
            let sql = self.sql("UPDATE blobs SET refs = refs + 1 WHERE key = ? AND refs > 0");
            let shared = sqlx::query(&sql)
                .bind(&rec.blob_key)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            if shared.rows_affected() == 0 {
                return Ok(false);
            }
        }
        let sql = self.sql(
            r#"INSERT INTO uploads (id, owner, blob_key, length, "offset", metadata, concat, state,
                 sha256, hash_state, blob_state, created_at, updated_at, expires_at, completed_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"#,
        );
        sqlx::query(&sql)
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
            .bind(&rec.blob_state)
            .bind(rec.created_at)
            .bind(rec.updated_at)
            .bind(rec.expires_at)
            .bind(rec.completed_at)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadRecord>> {
        let sql = self.sql("SELECT * FROM uploads WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("reading a record", e))?;
        row.as_ref().map(from_row).transpose()
    }

    async fn update(&self, rec: &UploadRecord) -> Result<()> {
        let sql = self.sql(
            r#"UPDATE uploads SET length = ?, "offset" = ?, state = ?, sha256 = ?, hash_state = ?,
                 blob_state = ?, updated_at = ?, expires_at = ?, completed_at = ?
               WHERE id = ?"#,
        );
        sqlx::query(&sql)
            .bind(rec.length.map(|l| l as i64))
            .bind(rec.offset as i64)
            .bind(rec.state.as_str())
            .bind(&rec.sha256)
            .bind(&rec.hash_state)
            .bind(&rec.blob_state)
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
        let failed = |e| db_error("deleting a record", e);
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let sql = self.sql("DELETE FROM uploads WHERE id = ? RETURNING blob_key, state");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let blob_key: String = row.try_get("blob_key").map_err(failed)?;
        let state: String = row.try_get("state").map_err(failed)?;
        // An expired record gave its reference back when it expired.
        let blob_in_use = match state.as_str() {
            "expired" => false,
            _ => self.release(&mut tx, &blob_key).await?,
        };
        tx.commit().await.map_err(failed)?;
        Ok(Some(Deleted {
            blob_key,
            blob_in_use,
        }))
    }

    async fn expire(&self, id: &UploadId, now: Millis) -> Result<Option<Deleted>> {
        let failed = |e| db_error("expiring a record", e);
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let sql = self.sql(
            "UPDATE uploads SET state = 'expired', hash_state = NULL, blob_state = NULL, updated_at = ?
             WHERE id = ? AND state = 'active' RETURNING blob_key",
        );
        let blob_key: Option<String> = sqlx::query_scalar(&sql)
            .bind(now)
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        let Some(blob_key) = blob_key else {
            return Ok(None);
        };
        let blob_in_use = self.release(&mut tx, &blob_key).await?;
        tx.commit().await.map_err(failed)?;
        Ok(Some(Deleted {
            blob_key,
            blob_in_use,
        }))
    }

    async fn known_blobs(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut known = HashSet::new();
        for batch in keys.chunks(100) {
            let sql = self.sql(format!(
                "SELECT key FROM blobs WHERE key IN ({})",
                placeholders(batch.len())
            ));
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for key in batch {
                query = query.bind(key);
            }
            let found = query
                .fetch_all(&self.pool)
                .await
                .map_err(|e| db_error("looking up blobs", e))?;
            known.extend(found);
        }
        Ok(known)
    }

    async fn usage(&self, owner: &Owner) -> Result<Usage> {
        let failed = |e| db_error("measuring an owner's uploads", e);
        let sql = self.sql(
            r#"SELECT CAST(COALESCE(SUM(CASE WHEN blob_key = id THEN COALESCE(length, "offset") ELSE 0 END), 0) AS BIGINT) AS bytes,
                      CAST(COALESCE(SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT) AS unfinished
               FROM uploads WHERE owner = ? AND state != 'expired'"#,
        );
        let row = sqlx::query(&sql)
            .bind(owner.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(failed)?;
        let bytes: i64 = row.try_get("bytes").map_err(failed)?;
        let unfinished: i64 = row.try_get("unfinished").map_err(failed)?;
        Ok(Usage {
            bytes: bytes.max(0) as u64,
            unfinished: unfinished.max(0) as u64,
        })
    }

    async fn find_complete(
        &self,
        owner: &Owner,
        sha256: &str,
        length: u64,
    ) -> Result<Option<UploadRecord>> {
        let sql = self.sql(
            "SELECT * FROM uploads WHERE owner = ? AND sha256 = ? AND length = ? AND state = 'complete'
             ORDER BY created_at LIMIT 1",
        );
        let row = sqlx::query(&sql)
            .bind(owner.as_str())
            .bind(sha256)
            .bind(length as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error("finding a duplicate", e))?;
        row.as_ref().map(from_row).transpose()
    }

    async fn list_by_owner(
        &self,
        owner: &Owner,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<UploadRecord>> {
        // Newest first, ties by ID; a cursor continues after its record.
        let (created, id) = match after {
            Some(c) => (c.created_at, c.id.as_str()),
            None => (i64::MAX, ""),
        };
        let sql = self.sql(
            "SELECT * FROM uploads WHERE owner = ? AND state != 'expired'
               AND (created_at < ? OR (created_at = ? AND id > ?))
             ORDER BY created_at DESC, id LIMIT ?",
        );
        let found = sqlx::query(&sql)
            .bind(owner.as_str())
            .bind(created)
            .bind(created)
            .bind(id)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("listing uploads", e))?;
        rows(found)
    }

    async fn find_by_lengths(
        &self,
        owner: &Owner,
        lengths: &[u64],
        limit: u32,
    ) -> Result<Vec<UploadRecord>> {
        if lengths.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.sql(format!(
            "SELECT * FROM uploads WHERE owner = ? AND state != 'expired' AND length IN ({})
             ORDER BY created_at DESC, id LIMIT ?",
            placeholders(lengths.len())
        ));
        let mut query = sqlx::query(&sql).bind(owner.as_str());
        for length in lengths {
            query = query.bind(*length as i64);
        }
        let found = query
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error("finding uploads", e))?;
        rows(found)
    }

    async fn expired(&self, now: Millis, limit: u32) -> Result<Vec<UploadRecord>> {
        let sql = self.sql(
            "SELECT * FROM uploads WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= ?
             ORDER BY expires_at LIMIT ?",
        );
        let found = sqlx::query(&sql)
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
        let sql = self.sql("DELETE FROM uploads WHERE state = 'expired' AND updated_at < ?");
        let done = sqlx::query(&sql)
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("pruning expired uploads", e))?;
        Ok(done.rows_affected())
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
        let failed = |e| db_error("storing an event", e);
        let sql = self.sql(
            "INSERT INTO events (owner, kind, upload_id, data, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        );
        let mut tx = self.pool.begin().await.map_err(failed)?;
        if self.backend == Backend::Postgres {
            // Readers follow the log by ID, so IDs must become visible in
            // order: one writer at a time (SQLite is that already).
            tx.execute("LOCK TABLE events IN EXCLUSIVE MODE")
                .await
                .map_err(failed)?;
        }
        if kind == EventKind::Progress {
            // Only an upload's latest progress matters: the log keeps one
            // per upload, so many tiny requests cannot grow it.
            let sql = self.sql("DELETE FROM events WHERE upload_id = ? AND kind = ?");
            sqlx::query(&sql)
                .bind(&upload.id)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        let id: i64 = sqlx::query_scalar(&sql)
            .bind(owner.as_str())
            .bind(kind.as_str())
            .bind(&upload.id)
            .bind(data)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed)?;
        if self.backend == Backend::Postgres {
            // Other instances wake this owner's listeners (sent at commit).
            sqlx::query("SELECT pg_notify('ferry_events', $1)")
                .bind(owner.as_str())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(id as u64)
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
                    kind: row.try_get("kind").map_err(get)?,
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
        let failed = |e| db_error("pruning events", e);
        let sql = self.sql("SELECT owner FROM events GROUP BY owner HAVING COUNT(*) > ?");
        let owners: Vec<String> = sqlx::query_scalar(&sql)
            .bind(keep as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
        let mut pruned = 0;
        for owner in owners {
            let sql = self.sql(
                "DELETE FROM events WHERE owner = ? AND id <= (
                   SELECT id FROM events WHERE owner = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            );
            let done = sqlx::query(&sql)
                .bind(&owner)
                .bind(&owner)
                .bind(keep as i64)
                .execute(&self.pool)
                .await
                .map_err(failed)?;
            pruned += done.rows_affected();
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
        let sql = self.sql("DELETE FROM events WHERE created_at < ?");
        let done = sqlx::query(&sql)
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("pruning events", e))?;
        Ok(done.rows_affected())
    }
}
