//! `LocalLocker`: per-upload locks in this process's memory.

use crate::core::lock::{Locker, UploadLock};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Locks held in this process's memory.
#[derive(Clone, Default)]
pub struct LocalLocker {
    held: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl LocalLocker {
    pub fn new() -> Self {
        Self::default()
    }

    fn acquire(&self, key: &str) -> Result<UploadLock, CancellationToken> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, token)) = held.get(key) {
            return Err(token.clone());
        }
        let serial = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        held.insert(key.to_string(), (serial, token.clone()));
        let map = self.held.clone();
        let key = key.to_string();
        Ok(UploadLock::new(token, move || {
            let mut held = map.lock().unwrap_or_else(|p| p.into_inner());
            if held.get(&key).map(|(s, _)| *s) == Some(serial) {
                held.remove(&key);
            }
        }))
    }

    /// Asks every holder to give way (their locks elsewhere are lost).
    pub fn preempt_all(&self) {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for (_, token) in held.values() {
            token.cancel();
        }
    }

    /// Asks the holder of `key`'s lock, if any, to give way; answers
    /// whether there was one.
    pub fn preempt(&self, key: &str) -> bool {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.get(key) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Locker for LocalLocker {
    async fn try_lock(&self, key: &str) -> Option<UploadLock> {
        self.acquire(key).ok()
    }

    async fn lock_preempting(&self, key: &str, wait: Duration) -> Option<UploadLock> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.acquire(key) {
                Ok(lock) => return Some(lock),
                Err(holder) => holder.cancel(),
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_preemption() {
        let locker = LocalLocker::new();
        let a = locker.try_lock("u1").await.expect("free");
        assert!(locker.try_lock("u1").await.is_none());
        assert!(
            locker.try_lock("u2").await.is_some(),
            "other uploads are independent"
        );
        // A preempting request cancels the holder, which then lets go.
        let holder = tokio::spawn(async move {
            a.preempted().await;
            drop(a);
        });
        let b = locker.lock_preempting("u1", Duration::from_secs(5)).await;
        assert!(b.is_some());
        holder.await.unwrap();
        drop(b);
        assert!(locker.try_lock("u1").await.is_some());
    }

    #[tokio::test]
    async fn preemption_gives_up_on_a_stubborn_holder() {
        let locker = LocalLocker::new();
        let _a = locker.try_lock("u").await.unwrap();
        assert!(locker
            .lock_preempting("u", Duration::from_millis(30))
            .await
            .is_none());
        assert!(_a.is_preempted());
    }
}
