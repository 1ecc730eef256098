//! Whether the owner holds a finished upload that may be a file the page
//! is about to hash whole: one of its size whose sample
//! (`protocol::sample`) is the file's. The samples of stored uploads are
//! taken when asked, from a few of the newest uploads of that size, a few
//! at a time across the server: a question that waits too long for its
//! turn is answered "no" (the file is then sent, and hashed on the way),
//! so questions never pile up.

use super::UploadService;
use crate::core::error::Result;
use crate::core::record::{Concat, Owner, UploadRecord};
use crate::protocol::sample::{ranges, Sampler};
use futures_util::TryStreamExt;

/// Most finished uploads of one size whose samples one question takes.
pub const SAMPLED_PER_SIZE: usize = 4;

/// Most samples taken at once across the server (each reads half a MiB).
pub const SAMPLING_AT_ONCE: usize = 4;

/// How long a question waits for a turn to take a sample.
const SAMPLING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl UploadService {
    /// Whether one of the owner's finished uploads of `size` bytes, with a
    /// known SHA-256 (an instant upload needs it), has this `sample`. An
    /// upload whose bytes cannot be read, or that waited too long for its
    /// turn, is not one. Never for anonymous requests, nor parts of a
    /// concatenation (neither has instant uploads).
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
            .filter(|r| r.is_complete() && r.sha256.is_some())
            .filter(|r| r.concat != Concat::Partial)
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
        let _turn = tokio::time::timeout(SAMPLING_WAIT, self.sampling.acquire())
            .await
            .ok()?
            .ok()?;
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::AppendRequest;

    #[tokio::test]
    async fn a_question_that_cannot_get_a_turn_is_answered_no() {
        let f = fixture(|_| {}).await;
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let r = f
            .service
            .create(new_upload(Some(data.len() as u64), "a"))
            .await
            .unwrap();
        let at = AppendRequest::default();
        let done = f
            .service
            .append(&r.id, at, body(&data, 1 << 16))
            .await
            .unwrap();
        assert!(done.is_complete() && done.sha256.is_some());
        let sample = crate::protocol::sample::of_bytes(&data);
        assert!(f
            .service
            .holds_sample(&owner(), data.len() as u64, &sample)
            .await
            .unwrap());
        // Every turn taken (a flood of questions): "no", in bounded time.
        let all = f
            .service
            .sampling
            .acquire_many(super::SAMPLING_AT_ONCE as u32)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert!(!f
            .service
            .holds_sample(&owner(), data.len() as u64, &sample)
            .await
            .unwrap());
        assert!(started.elapsed() < super::SAMPLING_WAIT * 3);
        drop(all);
        assert!(f
            .service
            .holds_sample(&owner(), data.len() as u64, &sample)
            .await
            .unwrap());
    }
}
