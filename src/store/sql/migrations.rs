//! The migrations, embedded in the binary: each database's SQL files from
//! `migrations/`, in order, read by sqlx as it reads a folder.
//!
//! sqlx's `migrate!` macro would embed the same files, but it needs sqlx's
//! query macros, and with them both database drivers (SQLite's C library
//! too) compiled a second time for the compiler: about half a minute of
//! every cold release build. A test checks that these lists and the folders
//! agree, file for file and byte for byte: a new file in `migrations/` is
//! applied once it is listed here, and that test fails until it is.

use super::Backend;
use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

/// A database's migration files, as (file name, SQL).
type Files = &'static [(&'static str, &'static str)];

macro_rules! files {
    ($dir:literal: $($name:literal),+ $(,)?) => {
        &[$(($name, include_str!(concat!("../../../migrations/", $dir, "/", $name)))),+]
    };
}

const SQLITE: Files = files!("sqlite":
    "0001_uploads.sql",
    "0002_events.sql",
    "0003_blob_state.sql",
    "0004_blob_refs.sql",
    "0005_hooks.sql",
    "0006_s3_tails.sql",
    "0007_idempotency_keys.sql",
    "0008_finished_parts_expire.sql",
    "0009_owner_usage.sql",
    "0010_uploads_listed.sql",
    "0011_uploads_by_state.sql",
);

const POSTGRES: Files = files!("postgres":
    "0001_uploads.sql",
    "0002_blob_refs.sql",
    "0003_hooks.sql",
    "0004_s3_tails.sql",
    "0005_idempotency_keys.sql",
    "0006_finished_parts_expire.sql",
    "0007_owner_usage.sql",
    "0008_uploads_listed.sql",
    "0009_s3_tails_uncompressed.sql",
    "0010_uploads_by_state.sql",
);

/// The embedded files of one database, as a source sqlx migrates from.
#[derive(Debug)]
struct Embedded(Files);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|&(name, sql)| migration(name, sql))
                .collect()
        })
    }
}

/// A migration as sqlx makes one of the file `<version>_<description>.sql`:
/// the description with spaces for underscores, and no transaction when
/// the SQL begins `-- no-transaction`.
fn migration(name: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let (version, rest) = name
        .split_once('_')
        .ok_or_else(|| format!("migration {name:?} is not <version>_<description>.sql"))?;
    let version: i64 = version
        .parse()
        .map_err(|_| format!("migration {name:?} does not begin with its version"))?;
    let kind = MigrationType::from_filename(rest);
    let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
    Ok(Migration::new(
        version,
        Cow::Owned(description),
        kind,
        Cow::Borrowed(sql),
        sql.starts_with("-- no-transaction"),
    ))
}

/// The migrator of `backend`'s database.
pub(super) async fn migrator(backend: Backend) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// What sqlx reads of each migration: version, description, kind,
    /// checksum (of the SQL) and whether it runs in a transaction.
    fn summary(m: &Migrator) -> Vec<(i64, String, String, Vec<u8>, bool)> {
        m.iter()
            .map(|m| {
                let kind = format!("{:?}", m.migration_type);
                (
                    m.version,
                    m.description.to_string(),
                    kind,
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn the_embedded_migrations_are_the_folders() {
        for (backend, dir) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
            let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let read = Migrator::new(folder.as_path()).await.unwrap();
            let embedded = migrator(backend).await.unwrap();
            assert!(read.iter().count() > 0);
            assert_eq!(
                summary(&embedded),
                summary(&read),
                "migrations/{dir} and the list in store/sql/migrations.rs differ"
            );
        }
    }

    #[test]
    fn a_file_name_without_a_version_is_an_error() {
        assert!(migration("uploads.sql", "").is_err());
        assert!(migration("x1_uploads.sql", "").is_err());
        let m = migration("0009_two_words.sql", "-- no-transaction\nSELECT 1").unwrap();
        assert_eq!(
            (m.version, m.description.as_ref(), m.no_tx),
            (9, "two words", true)
        );
    }
}
