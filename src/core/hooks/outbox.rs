//! The outbox: post-hook deliveries as the store keeps them, and the loop
//! that hands them out. Each delivery is claimed for a while (a lease) by
//! one instance, sent, then forgotten, retried after a back-off, or kept
//! as dead once its retry window has passed.

use super::Inner;
use crate::core::error::Result;
use crate::core::record::{now_millis, Millis};
use crate::protocol::hooks::HookPoint;
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A post-hook to deliver, written with the change it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Stable across retries: receivers ignore a delivery ID seen before.
    pub id: String,
    pub point: HookPoint,
    pub upload_id: String,
    pub body: String,
    pub created_at: Millis,
    /// Past this time, a delivery that still fails is kept as dead.
    pub give_up_at: Millis,
}

/// A delivery handed to this instance for a while.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub seq: i64,
    pub id: String,
    pub point: HookPoint,
    pub body: String,
    pub attempts: u32,
    pub give_up_at: Millis,
}

/// A delivery that could not be made within its retry window.
#[derive(Clone, Debug, Serialize)]
pub struct DeadDelivery {
    pub seq: i64,
    pub id: String,
    pub point: String,
    pub upload_id: String,
    pub attempts: u32,
    pub created_at: Millis,
    pub dead_at: Millis,
    pub last_error: Option<String>,
    pub body: String,
}

/// Where undelivered post-hooks wait (the outbox). Deliveries are added by
/// the `MetaStore`, with the changes they report.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Hands `by` up to `limit` deliveries due at `now` until `until`: of
    /// each upload, only its oldest waiting delivery, and none that another
    /// instance holds.
    async fn claim(&self, by: &str, now: Millis, until: Millis, limit: u32)
        -> Result<Vec<Claimed>>;
    /// A delivery was made: it is forgotten.
    async fn delivered(&self, seq: i64, by: &str) -> Result<()>;
    /// A delivery failed: tried again at `next_at`.
    async fn retry(&self, seq: i64, by: &str, next_at: Millis, error: &str) -> Result<()>;
    /// A delivery failed for the last time: kept as dead.
    async fn bury(&self, seq: i64, by: &str, now: Millis, error: &str) -> Result<()>;
    /// How many deliveries of this upload were never tried yet, or are
    /// being tried for the first time.
    async fn untried_of(&self, upload_id: &str) -> Result<u64>;
    /// How many deliveries wait, and how many are dead.
    async fn counts(&self) -> Result<(u64, u64)>;
    /// Dead deliveries after `after` (by `seq`), oldest first.
    async fn dead(&self, after: i64, limit: u32) -> Result<Vec<DeadDelivery>>;
    /// Makes a dead delivery wait again, due now; false when there is none.
    async fn revive(&self, id: &str, now: Millis, give_up_at: Millis) -> Result<bool>;
    /// Forgets all but the newest `keep` dead deliveries.
    async fn prune_dead(&self, keep: u32) -> Result<u64>;
}

impl Inner {
    /// Claims as many deliveries as are sent at once, sends them, and
    /// again; every second when idle it also counts and prunes. A claim
    /// lasts longer than one call may take, and each call starts right
    /// after its claim: no other instance can take a delivery while it is
    /// being sent.
    pub(super) async fn deliver_forever(self: Arc<Self>) {
        use futures_util::StreamExt;
        let mut last_count: Option<Instant> = None;
        let at_once = self.settings.in_flight.max(1);
        loop {
            let now = now_millis();
            let lease = self.settings.timeout * 2 + Duration::from_secs(5);
            let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
            let claimed = self
                .outbox
                .claim(
                    &self.instance,
                    now,
                    until,
                    u32::try_from(at_once).unwrap_or(u32::MAX),
                )
                .await;
            let busy = match claimed {
                Ok(batch) if !batch.is_empty() => {
                    futures_util::stream::iter(batch)
                        .for_each_concurrent(at_once, |c| self.deliver(c))
                        .await;
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!("reading the hook outbox: {e}");
                    false
                }
            };
            if busy && last_count.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                continue;
            }
            last_count = Some(Instant::now());
            if let Err(e) = self.outbox.prune_dead(self.settings.keep_dead).await {
                tracing::warn!("pruning dead hook deliveries: {e}");
            }
            match self.outbox.counts().await {
                Ok((waiting, dead)) => self.observer.deliveries(waiting, dead),
                Err(e) => tracing::warn!("counting hook deliveries: {e}"),
            }
            if busy {
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
        }
    }

    async fn deliver(&self, c: Claimed) {
        let started = Instant::now();
        // A post-hook's answer says only whether it arrived.
        let outcome = match self.transport.call(c.point, Some(&c.id), &c.body).await {
            Ok(answer) if answer.refuses() => Err(format!(
                "the receiver refused it ({}): a post-hook cannot refuse",
                answer.status.unwrap_or(403)
            )),
            Ok(_) => Ok(()),
            Err(why) => Err(why),
        };
        self.observer
            .hook(c.point, outcome.is_ok(), started.elapsed());
        let now = now_millis();
        let stored = match outcome {
            Ok(()) => self.outbox.delivered(c.seq, &self.instance).await,
            Err(why) if now >= c.give_up_at => {
                tracing::error!(delivery = %c.id, point = %c.point, attempts = c.attempts + 1, "hook delivery given up: {why}; kept as dead");
                self.outbox.bury(c.seq, &self.instance, now, &why).await
            }
            Err(why) => {
                let wait = backoff(c.attempts, self.settings.backoff_max);
                tracing::warn!(delivery = %c.id, point = %c.point, attempts = c.attempts + 1, "hook delivery failed: {why}; again in {wait:?}");
                let next = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                self.outbox
                    .retry(c.seq, &self.instance, next.min(c.give_up_at.max(now)), &why)
                    .await
            }
        };
        if let Err(e) = stored {
            tracing::warn!(delivery = %c.id, "recording a hook delivery: {e}");
        }
    }
}

/// The wait before the next try after `attempts` failures: doubling from
/// half a second, at most `max`, with a tenth of jitter so instances that
/// failed together do not retry together.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempts.min(20));
    let wait = base.min(max);
    let jitter = wait.mul_f64(rand::random::<f64>() * 0.1);
    wait.saturating_sub(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let max = Duration::from_secs(60);
        let first = backoff(0, max);
        assert!(first <= Duration::from_millis(500) && first >= Duration::from_millis(450));
        let fourth = backoff(3, max);
        assert!(fourth <= Duration::from_secs(4) && fourth >= Duration::from_millis(3600));
        assert!(backoff(40, max) <= max);
        assert!(backoff(40, max) >= max.mul_f64(0.9));
    }
}
