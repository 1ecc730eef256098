//! The tails this instance stored last, kept in memory (bounded) so an
//! upload's next request on the same instance does not read them back.

use super::*;
use std::collections::VecDeque;

/// The tails this instance stored last, by name (names are random and
/// never reused, so an entry is never stale): when an upload's next request
/// lands on the same instance, its tail is not read back from S3.
#[derive(Debug, Default)]
pub(super) struct TailCache {
    pub(super) entries: std::sync::Mutex<VecDeque<(String, Rope)>>,
}

/// At most this much is kept in the tail cache.
pub(super) const TAIL_CACHE_BYTES: usize = 32 << 20;

impl TailCache {
    pub(super) fn put(&self, name: &str, bytes: Rope) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.push_back((name.to_string(), bytes));
        let mut total: usize = entries.iter().map(|(_, b)| b.len()).sum();
        while total > TAIL_CACHE_BYTES {
            match entries.pop_front() {
                Some((_, b)) => total -= b.len(),
                None => break,
            }
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<Rope> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    pub(super) fn forget(&self, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(n, _)| n != name);
    }
}
