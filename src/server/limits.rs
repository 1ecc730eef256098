//! Counted places: how many long-lived things (event streams, WebSockets)
//! one key (an owner, a client address, or everyone) may hold at once.
//! A place is given back when its guard is dropped, however the request
//! ends.

use crate::server::config::Config;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

/// Sign-in attempts one address may make: this many at once, then one
/// every six seconds, whatever `--rate-limit` says.
const SIGNIN_BURST: u32 = 10;
const SIGNIN_PER_MINUTE: u32 = 10;

/// Every count the HTTP side keeps of what clients hold or try.
pub struct Limits {
    /// Event streams and long polls per owner.
    pub streams_by_owner: Places<String>,
    /// Event streams and long polls per client address.
    pub streams_by_address: Places<IpAddr>,
    /// WebSocket uploads, over all clients.
    pub websockets: Places<()>,
    /// Sign-in attempts (a form post, or a request with a wrong bearer
    /// token) per client address.
    pub signins: DefaultKeyedRateLimiter<IpAddr>,
    /// Server functions running at once.
    pub api_calls: tokio::sync::Semaphore,
}

/// Most server functions running at once: each may hold a page of records.
pub const API_CALLS: usize = 16;

impl Limits {
    pub fn new(config: &Config) -> Self {
        let per_minute = NonZeroU32::new(SIGNIN_PER_MINUTE).expect("not zero");
        let burst = NonZeroU32::new(SIGNIN_BURST).expect("not zero");
        Limits {
            streams_by_owner: Places::new(config.max_streams_per_owner as usize),
            streams_by_address: Places::new(config.max_streams_per_address as usize),
            websockets: Places::new(config.max_websockets as usize),
            signins: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            api_calls: tokio::sync::Semaphore::new(API_CALLS),
        }
    }

    /// Whether `ip` may try to sign in now (each try counts).
    pub fn may_sign_in(&self, ip: IpAddr) -> bool {
        if rand::random::<u16>() == 0 {
            self.signins.retain_recent();
        }
        self.signins.check_key(&ip).is_ok()
    }
}

/// At most `max` places per key.
pub struct Places<K: Eq + Hash + Clone + Send + 'static> {
    max: usize,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

/// One place, held until dropped.
pub struct Place {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> Places<K> {
    pub fn new(max: usize) -> Self {
        Places {
            max,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place for `key`, or `None` when it holds `max` already.
    pub fn take(&self, key: K) -> Option<Place> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        let map = self.held.clone();
        Some(Place {
            release: Some(Box::new(move || {
                let mut held = map.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(count) = held.get_mut(&key) {
                    *count -= 1;
                    if *count == 0 {
                        held.remove(&key);
                    }
                }
            })),
        })
    }

    /// Places held for `key` now.
    pub fn held(&self, key: &K) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(key).copied().unwrap_or(0)
    }
}

/// Requests per second per client address, with a burst allowance.
#[derive(Clone)]
pub struct RateLimit(Arc<DefaultKeyedRateLimiter<IpAddr>>);

impl RateLimit {
    /// `None` when `per_second` is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(per_second.get())).unwrap_or(per_second);
        Some(RateLimit(Arc::new(RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        ))))
    }

    /// Counts a request from `ip`; `Err` with how long to wait when it is
    /// over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), std::time::Duration> {
        if let Err(not_until) = self.0.check_key(&ip) {
            return Err(not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )));
        }
        // Forget idle clients now and then, so the table stays small.
        if rand::random::<u16>() == 0 {
            self.0.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_key_and_given_back() {
        let places = Places::new(2);
        let a1 = places.take("a").unwrap();
        let _a2 = places.take("a").unwrap();
        assert!(places.take("a").is_none(), "a third is refused");
        let _b = places.take("b").expect("other keys are independent");
        drop(a1);
        assert_eq!(places.held(&"a"), 1);
        assert!(places.take("a").is_some());
    }

    #[test]
    fn rate_limit_off_when_zero() {
        assert!(RateLimit::new(0, 10).is_none());
        let limit = RateLimit::new(2, 2).unwrap();
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!(limit.check(ip).is_ok());
        assert!(limit.check(ip).is_ok());
        assert!(limit.check(ip).is_err());
    }
}
