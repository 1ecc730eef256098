//! An unfinished S3 blob's state (multipart upload ID, parts' ETags, the
//! pieces of its tail) and its text form, recorded with the offset.

use serde::{Deserialize, Serialize};
use std::io;

/// A piece of the tail: the bytes `from..to` of the piece stored under
/// `name` (a part can end inside a piece, leaving the rest of it in the
/// tail).
pub(super) type Piece = (String, u64, u64);

/// What the store records of an unfinished blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// The S3 multipart upload, once the first part was sent.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub(super) upload: Option<String>,
    /// ETag and size of every part sent, in order.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub(super) parts: Vec<(String, u64)>,
    /// The tail's pieces in the tail store, in order.
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub(super) pieces: Vec<Piece>,
    /// A tail stored whole as an object of the bucket (name and size), as
    /// Ferry 0.1 did before the tail store: read once, then replaced by a
    /// piece at the next commit.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub(super) old_tail: Option<(String, u64)>,
}

impl State {
    pub(super) fn parse(state: Option<&str>) -> io::Result<State> {
        let state: State = match state {
            None => return Ok(State::default()),
            Some(s) => serde_json::from_str(s).map_err(|e| bad(&e.to_string()))?,
        };
        if state.pieces.iter().any(|(_, from, to)| from > to) {
            return Err(bad("a tail piece ends before it starts"));
        }
        Ok(state)
    }

    pub(super) fn parts_len(&self) -> u64 {
        self.parts.iter().map(|(_, n)| n).sum()
    }

    pub(super) fn tail_len(&self) -> u64 {
        let pieces: u64 = self.pieces.iter().map(|(_, from, to)| to - from).sum();
        pieces + self.old_tail.as_ref().map_or(0, |(_, n)| *n)
    }

    pub(super) fn len(&self) -> u64 {
        self.parts_len() + self.tail_len()
    }

    /// Drops the first `n` bytes of the tail's pieces (they went into a
    /// part); a piece the part ended inside keeps its rest.
    pub(super) fn consume_pieces(&mut self, mut n: u64) {
        while n > 0 {
            let Some((_, from, to)) = self.pieces.first_mut() else {
                return;
            };
            if *to - *from > n {
                *from += n;
                return;
            }
            n -= *to - *from;
            self.pieces.remove(0);
        }
    }

    /// The names of this state's pieces that `newer` no longer uses.
    pub(super) fn pieces_dropped_by(&self, newer: &State) -> Vec<String> {
        self.pieces
            .iter()
            .filter(|(name, _, _)| !newer.pieces.iter().any(|p| &p.0 == name))
            .map(|(name, _, _)| name.clone())
            .collect()
    }

    /// Keeps the first `n` bytes of the tail's pieces, dropping the rest.
    pub(super) fn truncate_pieces(&mut self, mut n: u64) {
        let mut kept = 0;
        for (_, from, to) in &mut self.pieces {
            if n == 0 {
                break;
            }
            let len = (*to - *from).min(n);
            *to = *from + len;
            n -= len;
            kept += 1;
        }
        self.pieces.truncate(kept);
    }
}

fn bad(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad S3 blob state: {why}"),
    )
}
