//! The cheap pre-check of a large file before it is hashed whole for an
//! instant upload: its sample (`protocol::sample`, half a MiB read however
//! large the file), and the server's word on whether it holds a finished
//! upload with the same one.
//!
//! What this module must not know: rows, the queue, or what the answer is
//! used for.

use crate::protocol::model::FileSample;
use crate::protocol::sample::{ranges, Sampler};
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

/// The file's sample; `None` when it cannot be read.
async fn sample_of(file: &Blob, size: u64) -> Option<String> {
    let mut sampler = Sampler::new(size);
    for range in ranges(size) {
        let slice = file
            .slice_with_f64_and_f64(range.start as f64, range.end as f64)
            .ok()?;
        let buffer = JsFuture::from(slice.array_buffer()).await.ok()?;
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        if bytes.len() as u64 != range.end - range.start {
            return None;
        }
        sampler.update(&bytes);
    }
    Some(sampler.finish())
}

/// How long the page waits for the server's word.
const ASK_MS: i32 = 10_000;

/// Whether the server may hold this file already, so that hashing it
/// whole first may spare sending it. `false` when the file cannot be
/// read or the server cannot say in time: the file is then sent, and
/// hashed while it goes.
pub async fn worth_hashing_first(file: &Blob, size: u64) -> bool {
    use futures::future::{select, Either};
    let Some(sample) = sample_of(file, size).await else {
        return false;
    };
    let ask = Box::pin(crate::api::likely_stored(vec![FileSample { size, sample }]));
    let late = Box::pin(super::xhr::sleep(ASK_MS));
    match select(ask, late).await {
        Either::Left((answer, _)) => matches!(answer.as_deref(), Ok([true])),
        Either::Right(_) => false,
    }
}
