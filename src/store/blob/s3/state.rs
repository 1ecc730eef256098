//! An unfinished S3 blob's state (multipart upload ID, parts' ETags, the
//! tail's name) and its text form, recorded with the offset.

use serde::{Deserialize, Serialize};
use std::io;

/// What the store records of an unfinished blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// The S3 multipart upload, once the first part was sent.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub(super) upload: Option<String>,
    /// ETag and size of every part sent, in order.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub(super) parts: Vec<(String, u64)>,
    /// The tail object's name and size.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub(super) tail: Option<(String, u64)>,
}

impl State {
    pub(super) fn parse(state: Option<&str>) -> io::Result<State> {
        match state {
            None => Ok(State::default()),
            Some(s) => serde_json::from_str(s).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad S3 blob state: {e}"),
                )
            }),
        }
    }

    pub(super) fn parts_len(&self) -> u64 {
        self.parts.iter().map(|(_, n)| n).sum()
    }

    pub(super) fn len(&self) -> u64 {
        self.parts_len() + self.tail.as_ref().map_or(0, |(_, n)| *n)
    }
}
