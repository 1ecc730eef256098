//! A file's speed: bytes per second over the last three seconds of
//! progress reports, from timestamps the caller gives (so that it is
//! testable without a clock).
//!
//! What this module must not know: where the times and byte counts come
//! from, or where the speed is shown.

use std::collections::VecDeque;

/// How far back the speed looks, in milliseconds.
const WINDOW_MS: f64 = 3000.0;
/// The shortest span a speed is computed over, in seconds: shorter ones
/// say more about timer jitter than about the network.
const MIN_SPAN_S: f64 = 0.2;

/// Recent `(time in ms, bytes)` samples of one transfer.
#[derive(Clone, Debug, Default)]
pub struct Speedometer {
    samples: VecDeque<(f64, u64)>,
}

impl Speedometer {
    /// Forgets every sample (a new attempt starts from scratch).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Records that `at` bytes were through at `now_ms`; answers the speed
    /// in bytes per second when the samples span long enough to tell.
    pub fn sample(&mut self, now_ms: f64, at: u64) -> Option<f64> {
        let q = &mut self.samples;
        q.push_back((now_ms, at));
        while q.len() > 2 && now_ms - q.front().map(|x| x.0).unwrap_or(now_ms) > WINDOW_MS {
            q.pop_front();
        }
        let (first, last) = (q.front()?, q.back()?);
        let span = (last.0 - first.0) / 1000.0;
        (span > MIN_SPAN_S).then(|| last.1.saturating_sub(first.1) as f64 / span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_needs_a_span_and_forgets_old_samples() {
        let mut s = Speedometer::default();
        assert_eq!(s.sample(0.0, 0), None);
        assert_eq!(s.sample(100.0, 1_000), None); // 0.1 s says nothing yet
        assert_eq!(s.sample(1000.0, 10_000), Some(10_000.0));
        // Ten seconds later only the last three seconds count.
        s.sample(10_000.0, 20_000);
        assert_eq!(s.sample(11_000.0, 30_000), Some(10_000.0));
        s.clear();
        assert_eq!(s.sample(20_000.0, 0), None);
    }
}
