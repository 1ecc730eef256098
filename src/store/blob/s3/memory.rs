//! The memory S3 writers gather parts in, bounded over all of them: a
//! writer reserves room for its current part when its first byte arrives
//! and keeps it until it is dropped (the request ends). Reserving a whole
//! part at once means every writer that has room can always fill its part,
//! so writers never wait on each other's half-filled parts.

use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default bound: 128 parts of the default 8 MiB.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// How long a writer waits for room before its request is answered 503.
pub const MEMORY_WAIT: Duration = Duration::from_secs(10);

/// Room is counted in KiB, so a part of up to 4 TiB fits one reservation.
const UNIT: u64 = 1024;

#[derive(Debug)]
pub(super) struct Memory {
    room: Arc<Semaphore>,
    total: u64,
    wait: Duration,
}

/// Room one writer holds, given back when it is dropped.
#[derive(Debug, Default)]
pub(super) struct Reserved {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reserved {
    pub(super) fn bytes(&self) -> u64 {
        self.permit
            .as_ref()
            .map_or(0, |p| p.num_permits() as u64 * UNIT)
    }
}

impl Memory {
    pub(super) fn new(bytes: u64, wait: Duration) -> Memory {
        let units = bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS as u64) as usize;
        Memory {
            room: Arc::new(Semaphore::new(units)),
            total: units as u64 * UNIT,
            wait,
        }
    }

    /// Makes `held` at least `bytes`, waiting for room at most the wait.
    pub(super) async fn reserve(&self, held: &mut Reserved, bytes: u64) -> io::Result<()> {
        if held.bytes() >= bytes {
            return Ok(());
        }
        if bytes > self.total {
            // It would never fit: no waiting, and no place in the queue
            // ahead of writers that would.
            return Err(io::Error::other(format!(
                "a part of {bytes} bytes is larger than --s3-memory ({} bytes)",
                self.total
            )));
        }
        let more = (bytes - held.bytes()).div_ceil(UNIT);
        let more = u32::try_from(more).map_err(|_| io::Error::other("a part too large"))?;
        let acquired = tokio::time::timeout(self.wait, self.room.clone().acquire_many_owned(more));
        match acquired.await {
            Ok(Ok(permit)) => {
                match &mut held.permit {
                    Some(p) => p.merge(permit),
                    None => held.permit = Some(permit),
                }
                Ok(())
            }
            Ok(Err(_)) => Err(io::Error::other("the store's memory was closed")),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "no room in --s3-memory for a part of {bytes} bytes after {:?}",
                    self.wait
                ),
            )),
        }
    }
}
