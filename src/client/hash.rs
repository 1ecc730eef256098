//! SHA-256 of a file in the browser, read in slices so that memory stays
//! bounded and the page keeps responding between slices.

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
    let mut at = 0f64;
    let size = size as f64;
    while at < size {
        if stop() {
            return None;
        }
        let end = (at + SLICE).min(size);
        let slice = file.slice_with_f64_and_f64(at, end).ok()?;
        let buffer = JsFuture::from(slice.array_buffer()).await.ok()?;
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        hasher.update(&bytes);
        at = end;
        progress(at as u64);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
