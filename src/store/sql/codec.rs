//! Rows to records and back: the concatenation column's text form and the
//! reading of one `uploads` row.

use crate::core::error::{Error, Result};
use crate::core::id::UploadId;
use crate::core::record::{Concat, Owner, UploadRecord, UploadState};
use crate::protocol::metadata::Metadata;
use sqlx::any::AnyRow;
use sqlx::Row;

pub(super) fn encode_concat(c: &Concat) -> Option<String> {
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

pub(super) fn decode_concat(s: Option<String>) -> Result<Concat> {
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

pub(super) fn from_row(row: &AnyRow) -> Result<UploadRecord> {
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
        idempotency_key: row.try_get("idempotency_key").map_err(get_err)?,
    })
}

pub(super) fn rows(rows: Vec<AnyRow>) -> Result<Vec<UploadRecord>> {
    rows.iter().map(from_row).collect()
}
