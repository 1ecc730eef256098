//! A part being gathered in memory: the chunks as they arrived, copied into
//! one buffer only when small, so a part costs its bytes and no more.

use bytes::{Bytes, BytesMut};
use object_store::PutPayload;
use std::collections::VecDeque;

/// Bytes not yet sent as a part, kept in the buffers they arrived in: a
/// request body's chunks go to S3 without being copied or gathered. Small
/// chunks (a slow or hostile client's) are gathered into one, so the rope
/// never holds more than a few pieces per 64 KiB.
#[derive(Clone, Debug, Default)]
pub(super) struct Rope {
    pub(super) chunks: VecDeque<Bytes>,
    /// Small chunks being gathered, after `chunks`.
    pub(super) open: BytesMut,
    pub(super) len: usize,
}

/// Chunks smaller than this are copied into the rope's open piece.
pub(super) const SMALL_CHUNK: usize = 16 * 1024;

impl Rope {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if bytes.len() < SMALL_CHUNK {
            self.open.extend_from_slice(&bytes);
            if self.open.len() >= 4 * SMALL_CHUNK {
                self.seal();
            }
        } else {
            self.seal();
            self.chunks.push_back(bytes);
        }
    }

    /// Ends the open piece.
    pub(super) fn seal(&mut self) {
        if !self.open.is_empty() {
            self.chunks.push_back(self.open.split().freeze());
        }
    }

    /// Takes the first `n` bytes (at most all) off the rope.
    pub(super) fn take(&mut self, mut n: usize) -> Rope {
        self.seal();
        let mut taken = Rope::default();
        while n > 0 {
            let Some(mut chunk) = self.chunks.pop_front() else {
                break;
            };
            if chunk.len() > n {
                self.chunks.push_front(chunk.split_off(n));
            }
            n -= chunk.len();
            self.len -= chunk.len();
            taken.len += chunk.len();
            taken.chunks.push_back(chunk);
        }
        taken
    }

    /// Drops the first `n` bytes (at most all).
    pub(super) fn skip(&mut self, n: usize) {
        self.take(n);
    }

    /// Puts `other`'s bytes after this rope's.
    pub(super) fn append(&mut self, mut other: Rope) {
        self.seal();
        other.seal();
        self.len += other.len;
        self.chunks.append(&mut other.chunks);
    }

    /// The bytes, copied into one buffer.
    pub(super) fn into_vec(mut self) -> Vec<u8> {
        self.seal();
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }

    pub(super) fn payload(&mut self) -> PutPayload {
        self.seal();
        self.chunks.iter().cloned().collect()
    }
}

impl From<Bytes> for Rope {
    fn from(bytes: Bytes) -> Rope {
        Rope {
            len: bytes.len(),
            chunks: VecDeque::from([bytes]),
            open: BytesMut::new(),
        }
    }
}
