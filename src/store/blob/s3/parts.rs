//! How large an S3 blob's parts are: `part_size` for the first 1,000,
//! doubling every 1,000 after up to `LARGEST_GROWN_PART` (or `part_size`,
//! if larger), so one writer never holds more than that in memory, and
//! S3's 10,000 parts still hold more than a tebibyte with 8 MiB to start.

/// Parts grow (every 1,000) up to this size, unless `part_size` is larger.
pub const LARGEST_GROWN_PART: usize = 256 << 20;

/// The largest `--s3-part-size`: a tail (less than a part) is kept in one
/// database row, and PostgreSQL's and SQLite's stop near 1 GB.
pub const MAX_CONFIGURED_PART: usize = 512 << 20;

/// S3's most parts in one multipart upload.
pub const MAX_PARTS: usize = 10_000;

/// The size of the part at `index` with parts of `base` bytes to start.
pub(super) fn part_size(base: usize, index: usize) -> usize {
    let doublings = (index / 1000).min(10) as u32;
    let grown = base.saturating_mul(1 << doublings);
    grown.min(LARGEST_GROWN_PART.max(base))
}

/// The largest part sent with parts of `base` bytes to start (the memory
/// one writer may need).
pub fn largest_part(base: usize) -> usize {
    part_size(base, MAX_PARTS - 1)
}

/// The most bytes 10,000 parts hold with parts of `base` bytes to start.
pub(super) fn largest_blob(base: usize) -> u64 {
    (0..MAX_PARTS).map(|i| part_size(base, i) as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::blob::s3::MIN_PART_SIZE;

    #[test]
    fn parts_grow_to_a_cap_that_still_holds_a_tebibyte() {
        const MIB: usize = 1 << 20;
        assert_eq!(part_size(8 * MIB, 0), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 999), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 1000), 16 * MIB);
        assert_eq!(part_size(8 * MIB, 5000), 256 * MIB);
        assert_eq!(part_size(8 * MIB, 9999), 256 * MIB);
        assert!((0..MAX_PARTS).all(|i| part_size(8 * MIB, i) <= LARGEST_GROWN_PART));
        let largest = largest_blob(8 * MIB);
        assert!(largest > 1 << 40, "{largest}");
        assert!(largest < 2 << 40, "{largest}");
        assert_eq!(largest_part(8 * MIB), 256 * MIB);
        assert_eq!(largest_part(512 * MIB), 512 * MIB);
        // A larger configured part stays as it is.
        assert_eq!(part_size(512 * MIB, 9999), 512 * MIB);
        assert_eq!(largest_blob(512 * MIB), 10_000 * 512 * MIB as u64);
        assert!(largest_blob(MIN_PART_SIZE) < largest);
    }
}
