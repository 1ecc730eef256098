//! The queue of the current batch: starting waiting files while fewer than
//! the chosen number run, trying a failed attempt again with back-off
//! until it stops making progress, pausing, cancelling and retrying on
//! request. Files join it through `adding`.
//!
//! What this module must not know: how a file's bytes travel (that is
//! `transfer`); of the wire it only asks `tus` to delete what the user
//! cancelled.

use super::transfer::{self, Job};
use super::xhr::sleep;
use super::{storage, tus};
use crate::page::i18n::{t, Msg};
use crate::page::state::{Row, Status, Uploads};
use crate::page::tus::{backoff_ms, retry_message, Failure, MAX_ATTEMPTS};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

thread_local! {
    // The files behind the rows. The rows live in the page state, which the
    // server renders too and so cannot hold a browser `File`; a page is one
    // thread, so this map is the page's and nobody else's.
    static JOBS: RefCell<HashMap<u32, Job>> = RefCell::new(HashMap::new());
}

fn job(id: u32) -> Option<Job> {
    JOBS.with(|jobs| jobs.borrow().get(&id).cloned())
}

/// Holds the file behind a new row, for `run` to send.
pub(super) fn hold(id: u32, job: Job) {
    JOBS.with(|jobs| jobs.borrow_mut().insert(id, job));
}

/// Lets go of the file behind a row that will never be sent.
pub(super) fn release(id: u32) {
    JOBS.with(|jobs| jobs.borrow_mut().remove(&id));
}

/// Starts waiting files while there are free slots (none while the queue
/// is held).
pub(super) fn pump(m: Uploads) {
    if m.held.get_untracked() {
        return;
    }
    let parallel = m.settings.get_untracked().parallel.max(1) as usize;
    let rows = m.rows.get_untracked();
    let active = rows
        .iter()
        .filter(|r| r.status.get_untracked().is_active())
        .count();
    let free = parallel.saturating_sub(active);
    for row in rows
        .into_iter()
        .filter(|r| r.status.get_untracked() == Status::Waiting)
        .take(free)
    {
        row.status.set(Status::Uploading);
        spawn_local(run(m, row));
    }
}

/// Sends one file to its end: attempts until it is done, cancelled, refused
/// for good, or `MAX_ATTEMPTS` attempts in a row made no progress.
async fn run(m: Uploads, row: Row) {
    // This run's job, kept: a pause cancels it, and a resume starts a new
    // run with a new job, so this one can never be revived.
    let Some(job) = job(row.id) else { return };
    let mut attempt = 0u32;
    loop {
        let progressed = Cell::new(false);
        let result = if job.cancelled.get() {
            Err(Failure::Cancelled)
        } else {
            let settings = m.settings.get_untracked();
            transfer::attempt(settings, &row, &job, &progressed).await
        };
        match result {
            Ok(()) => {
                transfer::finish(m, &row).await;
                break;
            }
            Err(Failure::Cancelled) => return,
            Err(Failure::Fatal(msg) | Failure::TooLargeOnTheWay(msg)) => {
                row.status.set(Status::Failed);
                row.message.set(Some(msg.clone()));
                m.announce.set(format!("{}: {msg}", row.file.name));
                break;
            }
            Err(Failure::Retry(reason)) => {
                if progressed.get() {
                    attempt = 0;
                }
                attempt += 1;
                if attempt > MAX_ATTEMPTS {
                    row.status.set(Status::Failed);
                    row.message.set(Some(reason));
                    break;
                }
                let delay = backoff_ms(attempt, js_sys::Math::random());
                row.status.set(Status::Retrying);
                row.speed.set(0.0);
                row.message
                    .set(Some(retry_message(&reason, attempt, delay)));
                sleep(delay).await;
                if job.cancelled.get() {
                    return;
                }
                row.status.set(Status::Uploading);
                row.message.set(None);
            }
        }
    }
    pump(m);
}

/// Lets a held queue go: waiting files start.
pub fn start(m: Uploads) {
    m.held.set(false);
    pump(m);
}

/// Cancels one file: a waiting file leaves the queue; an uploading one has
/// its request aborted and its server copy deleted; a finished one has its
/// server copy deleted.
pub fn cancel(m: Uploads, id: u32) {
    let Some(row) = m.row(id) else { return };
    let said = match row.status.get_untracked() {
        Status::Done | Status::AlreadyUploaded => Msg::RemoveFromServer,
        _ => Msg::Cancel,
    };
    if let Some(job) = JOBS.with(|jobs| jobs.borrow_mut().remove(&id)) {
        job.cancel();
    }
    m.rows.update(|rows| rows.retain(|r| r.id != id));
    storage::forget(&row.file.key());
    if let Some(url) = row.url.get_untracked() {
        spawn_local(async move {
            tus::delete(&url).await;
            super::listing::refresh_uploaded(m).await;
        });
    }
    m.announce.set(format!(
        "{}: {}",
        row.file.name,
        t(m.lang.get_untracked(), said)
    ));
    pump(m);
}

/// Pauses one file: its request in flight is aborted (the server keeps
/// every byte it received), and it waits for `resume`.
pub fn pause(m: Uploads, id: u32) {
    let Some(row) = m.row(id) else { return };
    if !row.status.get_untracked().can_pause() {
        return;
    }
    if let Some(job) = job(id) {
        job.cancel();
    }
    row.status.set(Status::Paused);
    row.speed.set(0.0);
    row.message.set(None);
    m.announce.set(format!(
        "{}: {}",
        row.file.name,
        t(m.lang.get_untracked(), Msg::Paused)
    ));
    pump(m);
}

/// Resumes a paused file: it rejoins the queue and, when its turn comes,
/// asks the server where it stands and sends the rest.
pub fn resume(m: Uploads, id: u32) {
    let Some(row) = m.row(id) else { return };
    if row.status.get_untracked() != Status::Paused {
        return;
    }
    // A fresh job: the paused attempt, still winding down, keeps its own
    // cancelled flag and cannot be revived by this one.
    JOBS.with(|jobs| {
        let mut jobs = jobs.borrow_mut();
        if let Some(old) = jobs.get(&id) {
            let fresh = Job::new(old.file.clone());
            jobs.insert(id, fresh);
        }
    });
    row.status.set(Status::Waiting);
    pump(m);
}

/// Pauses every file that can be paused.
pub fn pause_all(m: Uploads) {
    for id in m
        .rows
        .with_untracked(|rows| rows.iter().map(|r| r.id).collect::<Vec<_>>())
    {
        pause(m, id);
    }
}

/// Resumes every paused file.
pub fn resume_all(m: Uploads) {
    for id in m
        .rows
        .with_untracked(|rows| rows.iter().map(|r| r.id).collect::<Vec<_>>())
    {
        resume(m, id);
    }
}

/// Cancels every file of the batch.
pub fn cancel_all(m: Uploads) {
    for id in m
        .rows
        .with_untracked(|rows| rows.iter().map(|r| r.id).collect::<Vec<_>>())
    {
        cancel(m, id);
    }
}

/// Puts a failed file back in the queue.
pub fn retry(m: Uploads, id: u32) {
    if let Some(row) = m.row(id) {
        row.message.set(None);
        row.status.set(Status::Waiting);
        pump(m);
    }
}
