//! `TailStore` over SQL: the pieces of unfinished S3 blobs' tails, in the
//! database every instance shares (see `store::blob::s3::tails`).

use super::*;
use crate::store::blob::s3::TailStore;
use async_trait::async_trait;
use std::io;

/// A database error as the blob store reports it (a full disk stays one).
fn io_error(context: &str, e: sqlx::Error) -> io::Error {
    let e = db_error(context, e);
    let kind = if e.code == ErrorCode::StorageFull {
        io::ErrorKind::StorageFull
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e.detail.unwrap_or(e.message))
}

#[async_trait]
impl TailStore for SqlStore {
    async fn put_piece(&self, key: &str, name: &str, bytes: Vec<u8>) -> io::Result<()> {
        // Durable on its own commit: a database that restarted between it
        // and the record's could otherwise lose a piece the record names.
        let sql = self.sql("INSERT INTO s3_tails (blob_key, name, bytes) VALUES (?, ?, ?)");
        sqlx::query(&sql)
            .bind(key)
            .bind(name)
            .bind(bytes)
            .execute(&self.pool)
            .await
            .map_err(|e| io_error("storing a piece of a tail", e))?;
        Ok(())
    }

    async fn piece(&self, key: &str, name: &str) -> io::Result<Option<Vec<u8>>> {
        let sql = self.sql("SELECT bytes FROM s3_tails WHERE blob_key = ? AND name = ?");
        sqlx::query_scalar(&sql)
            .bind(key)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| io_error("reading a piece of a tail", e))
    }

    async fn delete_pieces(&self, key: &str, names: &[String]) -> io::Result<()> {
        for batch in names.chunks(100) {
            let sql = self.sql(format!(
                "DELETE FROM s3_tails WHERE blob_key = ? AND name IN ({})",
                placeholders(batch.len())
            ));
            let mut query = sqlx::query(&sql).bind(key);
            for name in batch {
                query = query.bind(name);
            }
            query
                .execute(&self.pool)
                .await
                .map_err(|e| io_error("deleting pieces of a tail", e))?;
        }
        Ok(())
    }

    async fn delete_blob_pieces(&self, key: &str) -> io::Result<()> {
        let sql = self.sql("DELETE FROM s3_tails WHERE blob_key = ?");
        sqlx::query(&sql)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(|e| io_error("deleting a tail", e))?;
        Ok(())
    }

    async fn keys_with_pieces(&self, after: &str, limit: u32) -> io::Result<Vec<String>> {
        let sql = self.sql(
            "SELECT DISTINCT blob_key FROM s3_tails WHERE blob_key > ? \
             ORDER BY blob_key LIMIT ?",
        );
        sqlx::query_scalar(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| io_error("listing tails", e))
    }
}
