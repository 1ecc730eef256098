//! Waking event listeners on every instance: each stored event sends
//! `NOTIFY ferry_events` with its owner, and each instance's listener rings
//! that owner's bell; the same connection hears `ferry_preempt`, a DELETE on
//! another instance asking this one's writer to give way.

use crate::core::events::Events;
use crate::store::lock::pg::{PgLocker, PREEMPT_CHANNEL};
use sqlx::postgres::PgListener;
use std::time::Duration;

/// The channel every stored event is announced on, with its owner.
pub(crate) const EVENTS_CHANNEL: &str = "ferry_events";

/// Listens for the other instances: requests to stop writing an upload,
/// and news in the event log. Reconnects after a lost connection, for as
/// long as the process lives.
pub fn spawn_listener(
    url: String,
    locker: PgLocker,
    events: Events,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listen(&url, &locker, &events).await {
                Ok(()) => {}
                Err(e) => tracing::warn!("listening to the database: {e}; reconnecting"),
            }
            // Events stored while the connection was down rang no bell here:
            // every listener looks again.
            events.ring_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn listen(url: &str, locker: &PgLocker, events: &Events) -> sqlx::Result<()> {
    let mut listener = PgListener::connect(url).await?;
    listener
        .listen_all([PREEMPT_CHANNEL, EVENTS_CHANNEL])
        .await?;
    loop {
        let note = listener.recv().await?;
        match note.channel() {
            PREEMPT_CHANNEL if locker.preempt_here(note.payload()) => {
                tracing::info!(
                    id = note.payload(),
                    "another instance asked this one to stop writing"
                );
            }
            EVENTS_CHANNEL => events.ring(note.payload()),
            _ => {}
        }
    }
}
