//! Whether the owner holds a finished upload that may be a file the page
//! is about to hash whole: one of its size whose sample
//! (`protocol::sample`) is the file's. The samples of stored uploads are
//! taken when asked, from a few of the newest uploads of that size, a few
//! at a time across the server.

use super::UploadService;
use crate::core::error::Result;
use crate::core::record::{Owner, UploadRecord};
use crate::protocol::sample::{ranges, Sampler};
use futures_util::TryStreamExt;

/// Most finished uploads of one size whose samples one question takes.
pub const SAMPLED_PER_SIZE: usize = 4;

/// Most samples taken at once across the server (each reads half a MiB).
pub const SAMPLING_AT_ONCE: usize = 4;

impl UploadService {
    /// Whether one of the owner's finished uploads of `size` bytes, with a
    /// known SHA-256 (an instant upload needs it), has this `sample`. An
    /// upload whose bytes cannot be read is not one. Never for anonymous
    /// requests (they have no instant uploads).
    pub async fn holds_sample(&self, owner: &Owner, size: u64, sample: &str) -> Result<bool> {
        if owner.is_anonymous() {
            return Ok(false);
        }
        // The newest of that size, finished or not: a bounded read even
        // when many unfinished ones come first.
        let found = self
            .meta
            .find_by_lengths(owner, &[size], 4 * SAMPLED_PER_SIZE as u32)
            .await?;
        let finished = found
            .iter()
            .filter(|r| r.is_complete() && r.sha256.is_some() && r.length == Some(size))
            .take(SAMPLED_PER_SIZE);
        for record in finished {
            if self.sample_of(record).await.as_deref() == Some(sample) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The sample of a finished upload's bytes; `None` when they cannot
    /// all be read.
    async fn sample_of(&self, record: &UploadRecord) -> Option<String> {
        let _turn = self.sampling.acquire().await.ok()?;
        let size = record.offset;
        let mut sampler = Sampler::new(size);
        for range in ranges(size) {
            let want = range.end - range.start;
            let stream = self.blobs.read(&record.blob_key, range).await.ok()?;
            let chunks: Vec<bytes::Bytes> = stream.try_collect().await.ok()?;
            let mut got = 0;
            for chunk in &chunks {
                sampler.update(chunk);
                got += chunk.len() as u64;
            }
            if got != want {
                return None;
            }
        }
        Some(sampler.finish())
    }
}
