//! Where bytes live: the `BlobStore` implementations, `FsBlobStore` on local
//! disk and `S3BlobStore` in S3-compatible object storage, and the rules
//! every store keeps about keys.

pub mod fs;
pub mod s3;

pub use fs::FsBlobStore;
pub use s3::{S3BlobStore, S3Location};

use std::io;

/// Refuses any key but the server's own IDs (letters, digits, `-`, `_`,
/// at least 4 characters), so no key can name a path or object of its own.
pub(crate) fn check_key(key: &str) -> io::Result<()> {
    let valid = key.len() >= 4
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid blob key",
        ))
    }
}

/// What `append_at` answers when the blob holds fewer bytes than the
/// offset (the service reconciles the record on `UnexpectedEof`).
pub(crate) fn shorter_than_offset(len: u64, offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the blob holds {len} bytes, fewer than the offset {offset}"),
    )
}
