//! Hashing: the whole-file SHA-256 that Ferry computes while bytes stream
//! in, in a form whose state can be saved with the upload's offset and
//! resumed after a restart or on another instance; and the per-chunk
//! checksums of the tus checksum extension.

use sha2::digest::generic_array::{typenum::U64, GenericArray};
use sha2::Digest;

type Block = GenericArray<u8, U64>;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 whose running state can be saved (`to_bytes`) and restored
/// (`from_bytes`). The compression itself is `sha2::compress256`, which
/// uses the CPU's SHA instructions where it has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes hashed so far.
    len: u64,
    /// The bytes of an unfinished 64-byte block.
    pending: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256 {
            state: H0,
            len: 0,
            pending: Vec::with_capacity(64),
        }
    }
}

impl ResumableSha256 {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bytes have been hashed.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (64 - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < 64 {
                return;
            }
            let block = Block::clone_from_slice(&self.pending);
            sha2::compress256(&mut self.state, &[block]);
            self.pending.clear();
        }
        let whole = data.len() / 64 * 64;
        // Whole blocks go to the compression function in batches copied
        // into a small stack buffer: no allocation, and few calls.
        let mut batch = [Block::default(); 32];
        for group in data[..whole].chunks(64 * batch.len()) {
            let n = group.len() / 64;
            for (slot, block) in batch.iter_mut().zip(group.chunks_exact(64)) {
                slot.copy_from_slice(block);
            }
            sha2::compress256(&mut self.state, &batch[..n]);
        }
        self.pending.extend_from_slice(&data[whole..]);
    }

    /// The digest of everything hashed so far, as lowercase hex. The state
    /// is left as it was.
    pub fn finalize_hex(&self) -> String {
        let mut state = self.state;
        let bit_len = self.len.wrapping_mul(8);
        let mut tail = self.pending.clone();
        tail.push(0x80);
        while tail.len() % 64 != 56 {
            tail.push(0);
        }
        tail.extend_from_slice(&bit_len.to_be_bytes());
        let blocks: Vec<Block> = tail.chunks_exact(64).map(Block::clone_from_slice).collect();
        sha2::compress256(&mut state, &blocks);
        state.iter().map(|w| format!("{w:08x}")).collect()
    }

    /// The state as bytes: 32 of chaining value, 8 of length, then the
    /// pending bytes of the unfinished block.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.pending.len());
        for w in self.state {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.pending);
        out
    }

    /// Restores a state saved by `to_bytes`; `None` if the bytes are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 40 || bytes.len() >= 40 + 64 {
            return None;
        }
        let mut state = [0u32; 8];
        for (i, w) in state.iter_mut().enumerate() {
            *w = u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().ok()?);
        }
        let len = u64::from_be_bytes(bytes[32..40].try_into().ok()?);
        let pending = bytes[40..].to_vec();
        if len % 64 != pending.len() as u64 {
            return None;
        }
        Some(ResumableSha256 {
            state,
            len,
            pending,
        })
    }
}

/// Bytes as lowercase hex, as Ferry writes every digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from lowercase or uppercase hex; `None` for an odd length or a
/// character that is not a hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The algorithms of `Upload-Checksum` that Ferry supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
    Md5,
}

impl ChecksumAlgorithm {
    /// As listed in `Tus-Checksum-Algorithm`.
    pub const ALL: &'static str = "sha1,sha256,md5";

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(ChecksumAlgorithm::Sha1),
            "sha256" => Some(ChecksumAlgorithm::Sha256),
            "md5" => Some(ChecksumAlgorithm::Md5),
            _ => None,
        }
    }

    /// How many bytes a digest of this algorithm has.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Md5 => 16,
        }
    }
}

/// A chunk's expected checksum (tus sends it as `Upload-Checksum`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub expected: Vec<u8>,
}

/// Hashes one chunk with the algorithm its checksum names.
pub enum ChunkHasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Md5(md5::Md5),
}

impl ChunkHasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha1 => ChunkHasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => ChunkHasher::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Md5 => ChunkHasher::Md5(md5::Md5::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            ChunkHasher::Sha1(h) => h.update(data),
            ChunkHasher::Sha256(h) => h.update(data),
            ChunkHasher::Md5(h) => h.update(data),
        }
    }

    pub fn finalize(self) -> Vec<u8> {
        match self {
            ChunkHasher::Sha1(h) => h.finalize().to_vec(),
            ChunkHasher::Sha256(h) => h.finalize().to_vec(),
            ChunkHasher::Md5(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8]) -> String {
        hex(&sha2::Sha256::digest(data))
    }

    #[test]
    fn matches_sha2_for_every_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 127, 128, 999, 1000] {
            for split in [0, 1, len / 3, len / 2, len] {
                let split = split.min(len);
                let mut h = ResumableSha256::new();
                h.update(&data[..split]);
                // Save and restore in the middle, as a restart would.
                let mut h = ResumableSha256::from_bytes(&h.to_bytes()).unwrap();
                h.update(&data[split..len]);
                assert_eq!(
                    h.finalize_hex(),
                    reference(&data[..len]),
                    "len {len} split {split}"
                );
                assert_eq!(h.len(), len as u64);
            }
        }
    }

    #[test]
    fn rejects_bad_state_bytes() {
        assert!(ResumableSha256::from_bytes(&[0; 10]).is_none());
        let mut bytes = ResumableSha256::new().to_bytes();
        bytes.push(1); // one pending byte but a length of 0
        assert!(ResumableSha256::from_bytes(&bytes).is_none());
    }
}
