//! At most six requests carrying a file's bytes at once: the connections a
//! browser opens to one server. A request the browser holds back for want
//! of a connection sends nothing, and the stall watchdog would give it up;
//! so a request waits here for a lane, where waiting costs nothing, before
//! it is made. (Files at once, and parts of one file sent at once, can
//! otherwise ask for more.)
//!
//! What this module must not know: what the requests are.

use super::xhr::sleep;
use crate::page::state::MAX_STREAMS;
use std::cell::Cell;

thread_local! {
    static BUSY: Cell<u32> = const { Cell::new(0) };
}

/// A lane, given back when dropped.
pub struct Lane(());

impl Drop for Lane {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(b.get().saturating_sub(1)));
    }
}

/// Waits for a free lane; `None` once `cancelled` is set meanwhile.
pub async fn take(cancelled: &Cell<bool>) -> Option<Lane> {
    loop {
        if cancelled.get() {
            return None;
        }
        let taken = BUSY.with(|b| {
            let free = b.get() < MAX_STREAMS;
            if free {
                b.set(b.get() + 1);
            }
            free
        });
        if taken {
            return Some(Lane(()));
        }
        sleep(20).await;
    }
}
