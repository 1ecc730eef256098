//! The queue of the current batch: adding files (after one question to the
//! server about what it has of them), starting waiting files while fewer
//! than the chosen number run, trying a failed attempt again with back-off
//! until it stops making progress, cancelling and retrying on request.
//!
//! What this module must not know: how a file's bytes travel (that is
//! `transfer`); of the wire it only asks `tus` to delete what the user
//! cancelled.

use super::transfer::{self, Job};
use super::xhr::sleep;
use super::{folders, storage, thumb, tus};
use crate::page::i18n::{format_size, t, Msg};
use crate::page::state::{Row, Status, Uploads};
use crate::page::tus::{backoff_ms, retry_message, Failure, MAX_ATTEMPTS};
use crate::protocol::model::{FileCheck, FileFingerprint};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use wasm_bindgen::JsCast;
use web_sys::File;

thread_local! {
    // The files behind the rows. The rows live in the page state, which the
    // server renders too and so cannot hold a browser `File`; a page is one
    // thread, so this map is the page's and nobody else's.
    static JOBS: RefCell<HashMap<u32, Job>> = RefCell::new(HashMap::new());
}

fn job(id: u32) -> Option<Job> {
    JOBS.with(|jobs| jobs.borrow().get(&id).cloned())
}

fn fingerprint(file: &File, path: String) -> FileFingerprint {
    FileFingerprint {
        name: file.name(),
        size: file.size() as u64,
        last_modified: file.last_modified() as i64,
        mime: file.type_(),
        path,
    }
}

/// Files chosen with the file input or the folder input (whose files know
/// their path in the folder).
pub fn add_from_input(m: Uploads, ev: &web_sys::Event) {
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    if let Some(list) = input.files() {
        let files = (0..list.length())
            .filter_map(|i| list.get(i))
            .map(|f| {
                let path = folders::relative_path(&f);
                (f, path)
            })
            .collect();
        add_files(m, files);
    }
    // Choosing the same file again must fire `change` again.
    input.set_value("");
}

/// Files and folders dropped on the drop zone: folders are walked, each
/// file keeping its path; a browser without entries gives its files.
pub fn add_from_drop(m: Uploads, ev: &web_sys::DragEvent) {
    let Some(dt) = ev.data_transfer() else {
        return;
    };
    if let Some(entries) = folders::entries(&dt) {
        spawn_local(async move { add_files(m, folders::walk(entries).await) });
    } else if let Some(list) = dt.files() {
        let files = (0..list.length())
            .filter_map(|i| list.get(i))
            .map(|f| (f, String::new()))
            .collect();
        add_files(m, files);
    }
}

/// Adds files to the batch: refuses at once what breaks the server's rules
/// (size, kind, files at once), asks the server what it has of the rest
/// (in calls of at most `MAX_CHECK_FILES`), refuses the new files that no
/// longer fit in the owner's room, then queues what needs sending.
pub fn add_files(m: Uploads, files: Vec<(File, String)>) {
    let busy: Vec<String> = m.rows.with_untracked(|rows| {
        rows.iter()
            .filter(|r| !matches!(r.status.get_untracked(), Status::Failed | Status::Refused))
            .map(|r| r.file.key())
            .collect()
    });
    let mut added: Vec<Row> = Vec::new();
    let mut chosen = Vec::new();
    for (file, path) in files {
        let fp = fingerprint(&file, path);
        if busy.contains(&fp.key()) || added.iter().any(|r| r.file == fp) {
            continue; // already in this batch
        }
        let row = Row::new(m.next_id(), fp);
        added.push(row);
        chosen.push(file);
    }
    if added.is_empty() {
        return;
    }
    let refused = refuse_by_rules(m, &added);
    m.rows.update(|rows| rows.extend(added.iter().cloned()));
    let mut kept = Vec::new();
    for (row, file) in added.into_iter().zip(chosen) {
        if refused.contains(&row.id) {
            continue;
        }
        JOBS.with(|jobs| jobs.borrow_mut().insert(row.id, Job::new(file.clone())));
        let thumb_row = row.clone();
        let px = m.settings.get_untracked().thumb_px;
        spawn_local(async move {
            if let Some(url) = thumb::thumbnail(&file, px).await {
                thumb_row.thumb.set(Some(url));
            }
        });
        kept.push(row);
    }
    let added = kept;
    if added.is_empty() {
        return;
    }
    let keys: Vec<String> = added.iter().map(|r| r.file.key()).collect();
    m.interrupted
        .update(|list| list.retain(|i| !keys.contains(&i.key)));
    spawn_local(async move {
        let mut new_files = Vec::new();
        for rows in added.chunks(crate::api::MAX_CHECK_FILES) {
            let fps: Vec<FileFingerprint> = rows.iter().map(|r| r.file.clone()).collect();
            match crate::api::check_files(fps).await {
                Ok(checks) if checks.len() == rows.len() => {
                    for (row, check) in rows.iter().zip(checks) {
                        match check {
                            FileCheck::New => {
                                storage::forget(&row.file.key());
                                new_files.push(row.clone());
                            }
                            FileCheck::Partial { url, offset } => {
                                row.url.set(Some(url));
                                row.sent.set(offset);
                            }
                            FileCheck::Complete { url, sha256 } => {
                                row.url.set(Some(url));
                                row.server_sha.set(Some(sha256));
                                row.sent.set(row.file.size);
                                row.status.set(Status::AlreadyUploaded);
                                storage::forget(&row.file.key());
                            }
                        }
                    }
                }
                // Without an answer, fall back to what this browser remembers.
                _ => {
                    for row in rows {
                        row.url.set(storage::lookup(&row.file));
                    }
                }
            }
        }
        refuse_without_room(m, &new_files).await;
        for row in &added {
            if row.status.get_untracked() == Status::Checking {
                row.status.set(Status::Waiting);
            }
        }
        pump(m);
    });
}

/// Marks a row refused by the server's rules: never sent, with why.
fn refuse(row: &Row, why: String) {
    row.status.set(Status::Refused);
    row.message.set(Some(why));
    JOBS.with(|jobs| jobs.borrow_mut().remove(&row.id));
}

/// Refuses the new files (nothing of them on the server yet) that do not
/// fit in what is left of the owner's share, as the server says it now.
async fn refuse_without_room(m: Uploads, new_files: &[Row]) {
    if new_files.is_empty() || m.rules.get_untracked().is_none() {
        return;
    }
    let Ok(rules) = crate::api::announce_rules().await else {
        return;
    };
    m.rules.set(Some(rules.clone()));
    let Some(mut left) = rules.room_left else {
        return;
    };
    let lang = m.lang.get_untracked();
    for row in new_files {
        if row.file.size > left {
            refuse(
                row,
                format!("{} {}.", t(lang, Msg::RuleNoRoom), format_size(lang, left)),
            );
        } else {
            left -= row.file.size;
        }
    }
}

/// Marks the new rows that break the server's rules on size, kind and
/// files at once as refused, each with why, before anything is sent;
/// answers their IDs.
fn refuse_by_rules(m: Uploads, added: &[Row]) -> Vec<u32> {
    use crate::protocol::rules::{Broken, UploadRules};
    let Some(rules) = m.rules.get_untracked() else {
        return Vec::new();
    };
    let lang = m.lang.get_untracked();
    // The room is judged once the server said which files are new.
    let alone = UploadRules {
        room_left: None,
        ..rules.clone()
    };
    let verdicts = alone.check_batch(
        added
            .iter()
            .map(|r| (r.file.name.as_str(), r.file.size, r.file.mime.as_str())),
    );
    let mut refused = Vec::new();
    for (row, verdict) in added.iter().zip(verdicts) {
        let why = match verdict {
            None | Some(Broken::NoRoom) => continue,
            Some(Broken::TooLarge) => format!(
                "{} {}.",
                t(lang, Msg::RuleTooLarge),
                format_size(lang, rules.max_size)
            ),
            Some(Broken::TypeNotAllowed) => format!(
                "{} {}.",
                t(lang, Msg::RuleType),
                rules.allow_types.join(", ")
            ),
            Some(Broken::TooManyFiles) => format!(
                "{} {}.",
                t(lang, Msg::RuleTooMany),
                rules.max_files.unwrap_or(0)
            ),
        };
        refuse(row, why);
        refused.push(row.id);
    }
    refused
}

/// Starts waiting files while there are free slots.
fn pump(m: Uploads) {
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
