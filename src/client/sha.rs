//! SHA-256 of a file in the browser, read in slices so that memory stays
//! bounded and the page keeps responding between slices.
//!
//! What this module must not know: uploads, rows or why the hash is wanted.

use sha2::{Digest, Sha256};
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

const SLICE: f64 = 4.0 * 1024.0 * 1024.0;

/// The file's SHA-256 as lowercase hex; `progress` hears the bytes hashed.
/// `None` when reading fails or `stop` says to give up.
pub async fn sha256_hex(
    file: &Blob,
    size: u64,
    progress: impl Fn(u64),
    stop: impl Fn() -> bool,
) -> Option<String> {
    let mut hasher = Sha256::new();
    let size = size as f64;
    // The browser reads the next slice while this one is hashed.
    let read = |at: f64| -> Option<(f64, JsFuture)> {
        let end = (at + SLICE).min(size);
        let slice = file.slice_with_f64_and_f64(at, end).ok()?;
        Some((end, JsFuture::from(slice.array_buffer())))
    };
    let mut next = if size > 0.0 { Some(read(0.0)?) } else { None };
    while let Some((end, reading)) = next.take() {
        if stop() {
            return None;
        }
        let buffer = reading.await.ok()?;
        if end < size {
            next = Some(read(end)?);
        }
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        hasher.update(&bytes);
        progress(end as u64);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
