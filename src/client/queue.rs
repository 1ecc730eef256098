//! The queue of the current batch: starting waiting files while fewer than
//! the chosen number run, trying a failed attempt again with back-off
//! until it stops making progress, pausing, cancelling and retrying on
//! request. Files join it through `adding`.
//!
//! What this module must not know: how a file's bytes travel (that is
//! `transfer`); of the wire it only asks `tus` to delete what the user
//! cancelled.

use super::job::Job;
use super::transfer;
use super::xhr::sleep;
use super::{frame, storage, tus, verify};
use crate::page::i18n::{t, Msg};
use crate::page::state::{Row, Status, Uploads};
use crate::page::tus::{backoff_ms, retry_message, Failure, MAX_ATTEMPTS};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

thread_local! {
    // The files behind the rows. The rows live in the page state, which the
    // server renders too and so cannot hold a browser `File`; a page is one
    // thread, so this map is the page's and nobody else's.
    static JOBS: RefCell<HashMap<u32, Job>> = RefCell::new(HashMap::new());
}

fn job(id: u32) -> Option<Job> {
    JOBS.with(|jobs| jobs.borrow().get(&id).cloned())
}

/// The file behind a row, while the batch holds it.
pub(super) fn file_of(id: u32) -> Option<web_sys::File> {
    JOBS.with(|jobs| jobs.borrow().get(&id).map(|j| j.file.clone()))
}

/// Holds the file behind a new row, for `run` to send.
pub(super) fn hold(id: u32, job: Job) {
    JOBS.with(|jobs| jobs.borrow_mut().insert(id, job));
}

/// Lets go of the file behind a row that will never be sent.
pub(super) fn release(id: u32) {
    JOBS.with(|jobs| jobs.borrow_mut().remove(&id));
}

/// What `pump` keeps between calls, per uploader: the rows it started
/// (those still active fill the slots) and where in the batch a row may
/// still be waiting to start. A batch may hold ten thousand files, and
/// `pump` runs each time one ends: it must not read them all each time.
#[derive(Default)]
struct Pumping {
    started: Vec<Row>,
    /// Every row before this index is started, ended, paused, failed or
    /// refused: only `resume` and `retry` make one wait again, and they
    /// move this back (as taking rows out of the batch does).
    first_unstarted: usize,
}

thread_local! {
    static PUMPING: RefCell<HashMap<RwSignal<Vec<Row>>, Pumping>> = RefCell::new(HashMap::new());
}

/// Makes `pump` look at the batch from its first row again.
fn rescan(m: Uploads) {
    PUMPING.with(|p| {
        if let Some(state) = p.borrow_mut().get_mut(&m.rows) {
            state.first_unstarted = 0;
        }
    });
}

/// Starts waiting files while there are free slots (none while the queue
/// is held).
pub(super) fn pump(m: Uploads) {
    // A widget taken off its page keeps no queue.
    if !m.alive() || m.held.get_untracked() {
        return;
    }
    let parallel = m.settings.get_untracked().parallel.max(1) as usize;
    let starting: Vec<Row> = PUMPING.with(|p| {
        let mut p = p.borrow_mut();
        let state = p.entry(m.rows).or_default();
        state
            .started
            .retain(|r| r.status.try_get_untracked().is_some_and(Status::is_active));
        let free = parallel.saturating_sub(state.started.len());
        m.rows.with_untracked(|rows| {
            let mut at = state.first_unstarted.min(rows.len());
            while rows.get(at).is_some_and(|r| {
                !matches!(r.status.get_untracked(), Status::Checking | Status::Waiting)
            }) {
                at += 1;
            }
            state.first_unstarted = at;
            rows[at..]
                .iter()
                .filter(|r| r.status.get_untracked() == Status::Waiting)
                .take(free)
                .cloned()
                .collect()
        })
    });
    for row in starting {
        row.status.set(Status::Uploading);
        PUMPING.with(|p| {
            if let Some(state) = p.borrow_mut().get_mut(&m.rows) {
                state.started.push(row.clone());
            }
        });
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
            let room_left = m.rules.get_untracked().and_then(|r| r.room_left);
            let lang = m.lang.get_untracked();
            transfer::attempt(settings, lang, room_left, &row, &job, &progressed).await
        };
        // Paused, cancelled or taken off the page meanwhile: whatever the
        // attempt ended with, the row stays as that left it (a paused
        // row's next run asks the server where it is).
        if !m.alive() {
            return;
        }
        match result {
            Ok(sha) => {
                // A run from before a pause may have finished it already.
                if !matches!(row.status.get_untracked(), Status::Verifying | Status::Done) {
                    transfer::finish(m, row.clone(), sha);
                }
                break;
            }
            Err(_) if job.cancelled.get() => return,
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
    let said = if row.status.get_untracked().is_on_server() {
        Msg::RemoveFromServer
    } else {
        Msg::Cancel
    };
    cancel_rows(m, vec![row.clone()]);
    m.announce.set(format!(
        "{}: {}",
        row.file.name,
        t(m.lang.get_untracked(), said)
    ));
}

/// Cancels every file of the batch.
pub fn cancel_all(m: Uploads) {
    cancel_where(m, |_| true);
}

/// Cancels every file not yet on the server; those on it stay (an
/// embedded widget's `cancel()`).
pub fn cancel_unfinished(m: Uploads) {
    cancel_where(m, |status| !status.is_on_server());
}

/// Cancels the files whose status `which` picks, and says how many.
fn cancel_where(m: Uploads, which: impl Fn(Status) -> bool) {
    let rows: Vec<Row> = m.rows.with_untracked(|rows| {
        rows.iter()
            .filter(|r| which(r.status.get_untracked()))
            .cloned()
            .collect()
    });
    let n = rows.len();
    cancel_rows(m, rows);
    m.announce
        .set(format!("{n} × {}", t(m.lang.get_untracked(), Msg::Cancel)));
}

/// Takes rows out of the batch at once (one change to the list, however
/// many), stops their work and deletes their server copies one after the
/// other.
fn cancel_rows(m: Uploads, gone: Vec<Row>) {
    let ids: HashSet<u32> = gone.iter().map(|r| r.id).collect();
    // Parts of files sent in parts go with them.
    let mut urls: Vec<String> = Vec::new();
    JOBS.with(|jobs| {
        let mut jobs = jobs.borrow_mut();
        for id in &ids {
            if let Some(job) = jobs.remove(id) {
                job.abandon();
                urls.extend(job.parts.borrow().iter().cloned());
            }
        }
    });
    for id in &ids {
        verify::stop(*id);
    }
    m.rows.update(|rows| rows.retain(|r| !ids.contains(&r.id)));
    rescan(m);
    for row in &gone {
        // Parts remembered from an earlier visit, not yet taken up.
        urls.extend(super::parts::remembered(&row.file));
        storage::forget(&row.file.key());
        urls.extend(row.url.get_untracked());
    }
    urls.sort_unstable();
    urls.dedup();
    urls.retain(|u| !u.is_empty());
    if !urls.is_empty() {
        spawn_local(async move {
            tus::delete_each(urls).await;
            super::listing::refresh_soon(m);
        });
    }
    pump(m);
}

/// Pauses one file: its request in flight is aborted (the server keeps
/// every byte it received), and it waits for `resume`.
pub fn pause(m: Uploads, id: u32) {
    let Some(row) = m.row(id) else { return };
    if pause_row(&row) {
        m.announce.set(format!(
            "{}: {}",
            row.file.name,
            t(m.lang.get_untracked(), Msg::Paused)
        ));
        pump(m);
    }
}

/// Pauses every file that can be paused.
pub fn pause_all(m: Uploads) {
    let rows = m.rows.get_untracked();
    let n = rows.iter().filter(|row| pause_row(row)).count();
    if n > 0 {
        m.announce
            .set(format!("{n} × {}", t(m.lang.get_untracked(), Msg::Paused)));
    }
}

/// Pauses the row if it can be; answers whether it was.
fn pause_row(row: &Row) -> bool {
    if !row.status.get_untracked().can_pause() {
        return false;
    }
    frame::drop_pending(row.id);
    if let Some(job) = job(row.id) {
        job.cancel();
    }
    row.status.set(Status::Paused);
    row.speed.set(0.0);
    row.message.set(None);
    true
}

/// Resumes a paused file: it rejoins the queue and, when its turn comes,
/// asks the server where it stands and sends the rest.
pub fn resume(m: Uploads, id: u32) {
    if let Some(row) = m.row(id) {
        resume_row(&row);
        rescan(m);
        pump(m);
    }
}

/// Resumes every paused file.
pub fn resume_all(m: Uploads) {
    m.rows
        .with_untracked(|rows| rows.iter().for_each(resume_row));
    rescan(m);
    pump(m);
}

fn resume_row(row: &Row) {
    if row.status.get_untracked() != Status::Paused {
        return;
    }
    renew_job(row.id);
    row.status.set(Status::Waiting);
}

/// A fresh job for the row: the attempt before, still winding down, keeps
/// its own cancelled flag and cannot be revived by the next. The request
/// creating its upload, and whether the row left the batch, are the
/// file's, not the attempt's: they carry over.
fn renew_job(id: u32) {
    replace_job(id, Job::renewed);
}

/// Puts `next` of the row's job in its place.
fn replace_job(id: u32, next: fn(&Job) -> Job) {
    JOBS.with(|jobs| {
        let mut jobs = jobs.borrow_mut();
        if let Some(old) = jobs.get(&id) {
            let fresh = next(old);
            jobs.insert(id, fresh);
        }
    });
}

/// Puts a failed file back in the queue. One whose server copy turned out
/// not to be the file is sent again from its first byte, the copy deleted.
pub fn retry(m: Uploads, id: u32) {
    if let Some(row) = m.row(id) {
        if row.mismatched() {
            replace_job(id, Job::afresh);
            if let Some(url) = row.url.get_untracked() {
                spawn_local(async move { tus::delete(&url).await });
            }
            storage::forget(&row.file.key());
            row.url.set(None);
            row.server_sha.set(None);
            row.sent.set(0);
        } else {
            renew_job(id);
        }
        row.message.set(None);
        row.status.set(Status::Waiting);
        rescan(m);
        pump(m);
    }
}
