//! A file's sample: its size and the SHA-256 of a few ranges spread over
//! it, from its first byte to its last. Cheap to take of a file of any
//! size (a browser reads half a MiB, however large the file), it tells the
//! server's copies that cannot be the file from those that may be: before
//! hashing a large file whole for an instant upload, the page asks whether
//! the server holds a finished upload with the same sample, and hashes
//! first only then.
//!
//! A sample that differs proves the files differ; one that agrees proves
//! nothing (files can differ between the ranges), so the whole-file
//! SHA-256 still decides.

use sha2::{Digest, Sha256};
use std::ops::Range;

/// Ranges a sample reads.
pub const RANGES: u64 = 16;
/// Bytes of each range.
pub const RANGE_BYTES: u64 = 32 * 1024;

/// The ranges of a file of `size` bytes that its sample reads, in order
/// and apart: the whole file when it is smaller than all of them together,
/// else `RANGES` ranges of `RANGE_BYTES`, the first at the start and the
/// last at the end.
pub fn ranges(size: u64) -> Vec<Range<u64>> {
    if size <= RANGES * RANGE_BYTES {
        #[allow(clippy::single_range_in_vec_init)] // one range, the whole file
        return vec![0..size];
    }
    let room = size - RANGE_BYTES;
    (0..RANGES)
        .map(|i| {
            // The file is at least RANGES * RANGE_BYTES, so the steps are
            // wider than a range: no two ranges overlap.
            let start = (u128::from(room) * u128::from(i) / u128::from(RANGES - 1)) as u64;
            start..start + RANGE_BYTES
        })
        .collect()
}

/// Takes a sample from the bytes of `ranges(size)`, fed in order.
pub struct Sampler(Sha256);

impl Sampler {
    pub fn new(size: u64) -> Sampler {
        let mut hash = Sha256::new();
        hash.update(size.to_be_bytes());
        Sampler(hash)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The sample, as lowercase hex.
    pub fn finish(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}

/// The sample of a file held whole in memory.
pub fn of_bytes(data: &[u8]) -> String {
    let mut sampler = Sampler::new(data.len() as u64);
    for r in ranges(data.len() as u64) {
        sampler.update(&data[r.start as usize..r.end as usize]);
    }
    sampler.finish()
}

/// Whether `s` has the shape of a sample (64 lowercase hex digits).
pub fn is_sample(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_span_the_file_in_order_and_apart() {
        for size in [
            0,
            1,
            RANGES * RANGE_BYTES,
            RANGES * RANGE_BYTES + 1,
            1 << 30,
            1 << 40,
        ] {
            let rs = ranges(size);
            assert_eq!(rs.first().map(|r| r.start), Some(0), "{size}");
            assert_eq!(rs.last().map(|r| r.end), Some(size), "{size}");
            assert!(rs.windows(2).all(|w| w[0].end <= w[1].start), "{size}");
            let read: u64 = rs.iter().map(|r| r.end - r.start).sum();
            assert!(read <= RANGES * RANGE_BYTES, "{size}");
        }
        assert_eq!(ranges(1 << 40).len() as u64, RANGES);
    }

    #[test]
    fn a_sample_sees_its_ranges_and_the_size_and_nothing_else() {
        let size = (RANGES * RANGE_BYTES * 4) as usize;
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let base = of_bytes(&data);
        assert!(is_sample(&base));
        // A byte changed inside a range: another sample.
        let mut inside = data.clone();
        inside[ranges(size as u64)[5].start as usize + 7] ^= 1;
        assert_ne!(of_bytes(&inside), base);
        // The last byte is always read.
        let mut last = data.clone();
        last[size - 1] ^= 1;
        assert_ne!(of_bytes(&last), base);
        // A byte between ranges is not seen: the whole hash decides.
        let mut between = data.clone();
        between[ranges(size as u64)[5].end as usize + 1] ^= 1;
        assert_eq!(of_bytes(&between), base);
        // The same first bytes of a longer file: another sample.
        let mut longer = data.clone();
        longer.extend_from_slice(&data[..RANGE_BYTES as usize]);
        assert_ne!(of_bytes(&longer), base);
    }
}
