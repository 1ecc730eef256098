//! `SqlStore`: records (`MetaStore`) (and the event log) once, over sqlx's `Any`
//! driver, for both databases Ferry runs on: SQLite, embedded and the
//! default (migrations in `migrations/sqlite`), and PostgreSQL, shared by
//! several instances (migrations in `migrations/postgres`). Queries are
//! written once with `?` placeholders; PostgreSQL gets them numbered.

use crate::core::error::{Error, ErrorCode, Result};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

mod changes;
mod codec;
mod events;
mod group;
mod migrations;
mod outbox;
mod prune;
mod records;
mod tails;

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
    /// SQLite's one writer of every change that requests wait on (see
    /// `group`).
    group: Option<group::GroupCommit>,
}

fn db_error(context: &str, err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        // SQLITE_FULL, and PostgreSQL's disk_full
        if matches!(db.code().as_deref(), Some("13") | Some("53100")) {
            return Error {
                detail: Some(format!("{context}: {err}")),
                ..Error::new(
                    ErrorCode::StorageFull,
                    "The server's storage is full; try again later.",
                )
            };
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
        migrations::migrator(backend)
            .await
            .map_err(|e| Error::internal("reading the migrations", e))?
            .run(&pool)
            .await
            .map_err(|e| Error::internal("migrating the database", e))?;
        let mut store = SqlStore {
            pool,
            backend,
            group: None,
        };
        if backend == Backend::Sqlite {
            store.group = Some(group::GroupCommit::start(store.clone()));
        }
        Ok(store)
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
    ) -> std::result::Result<bool, sqlx::Error> {
        let sql = self.sql("UPDATE blobs SET refs = refs - 1 WHERE key = ? RETURNING refs");
        let left: Option<i64> = sqlx::query_scalar(&sql)
            .bind(blob_key)
            .fetch_optional(&mut **tx)
            .await?;
        if left.is_some_and(|n| n > 0) {
            return Ok(true);
        }
        let sql = self.sql("DELETE FROM blobs WHERE key = ?");
        sqlx::query(&sql).bind(blob_key).execute(&mut **tx).await?;
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
