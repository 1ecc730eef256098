//! One attempt at sending one file: hashing it for instant upload,
//! creating its upload, asking the server's offset, then sending the rest
//! in PATCH requests or over one WebSocket, while the row shows the bytes
//! sent and the speed. And what happens to the row once every byte is
//! there.
//!
//! What this module must not know: the queue (how many files run at once,
//! when and how often a file is tried again).

use super::job::Job;
use super::listing::refresh_soon;
use super::tus::{self, Head};
use super::{creating, frame, parts, sample, storage, verify, ws};
use crate::page::i18n::{t, Lang, Msg};
use crate::page::speed::Speedometer;
use crate::page::state::{Row, Settings, Status, Transport, Uploads};
use crate::page::tus::{metadata, smaller_chunk, Failure, MIN_CHUNK};
use crate::protocol::model::FileCheck;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

const MIB: u64 = 1024 * 1024;

/// Files up to this size are sent whole with the request that creates
/// their upload.
const WHOLE_WITH_CREATION: u64 = MIB;

/// Batches up to this many files have each file's end announced to
/// screen readers.
const ANNOUNCED_UP_TO: usize = 50;

/// Hashes the file before it is sent, when that may spare sending it (an
/// instant upload) and it is not hashed yet: a small file always (the hash
/// costs less than the bytes), a large one (over the instant-upload limit,
/// or sent in parts) only when the server holds a finished upload with the
/// file's sample. Any other file is hashed while it is sent, and every
/// file when the limit is 0 (instant uploads off).
async fn hash_if_wanted(
    settings: &Settings,
    room_left: Option<u64>,
    row: &Row,
    job: &Job,
) -> Result<(), Failure> {
    let size = row.file.size;
    if size == 0 || settings.instant_mib == 0 || row.local_sha.get_untracked().is_some() {
        return Ok(());
    }
    let small =
        size <= settings.instant_mib as u64 * MIB && !parts::wanted(settings, size, room_left);
    if !small && !sample::worth_hashing_first(&job.file, size).await {
        return Ok(());
    }
    if job.cancelled.get() {
        return Err(Failure::Cancelled);
    }
    row.status.set(Status::Hashing);
    let sha = verify::hash(row, &job.file, job.cancelled.clone()).await;
    if job.cancelled.get() {
        return Err(Failure::Cancelled);
    }
    row.local_sha.set(sha);
    row.status.set(Status::Uploading);
    Ok(())
}

/// One attempt at sending the row's file; `progressed` is set when the
/// server ends up with more bytes than before (the queue then starts
/// counting attempts again); `room_left` is what the server last said is
/// left of the owner's share. Answers the server's SHA-256 of the whole
/// file when its last answer said it.
pub async fn attempt(
    settings: Settings,
    lang: Lang,
    room_left: Option<u64>,
    row: &Row,
    job: &Job,
    progressed: &Cell<bool>,
) -> Result<Option<String>, Failure> {
    let size = row.file.size;
    let stall_ms = f64::from(settings.stall_secs) * 1000.0;
    // The setting, or less when a proxy on the way refused larger requests.
    let mut chunk = settings.chunk_mib.max(1) as u64 * MIB;
    if let Some(limit) = storage::chunk_limit() {
        chunk = chunk.min(limit.max(MIN_CHUNK));
    }

    // A request creating this file's upload may still be on its way (sent
    // before a pause): its answer says where the upload is.
    creating::wait(row.id).await;
    if job.cancelled.get() {
        return Err(Failure::Cancelled);
    }
    // A file begun in parts goes on so. Any other not created yet may be
    // hashed first, for an instant upload.
    let fresh = row.url.get_untracked().is_none();
    let in_parts = fresh && parts::started(row, job);
    if fresh && !in_parts {
        hash_if_wanted(&settings, room_left, row, job).await?;
    }
    // A large file goes in parts, sent at once, unless hashed first: it is
    // then created whole with its SHA-256, which an instant upload needs.
    let hashed = row.local_sha.get_untracked().is_some();
    if in_parts || (fresh && !hashed && parts::wanted(&settings, size, room_left)) {
        return parts::attempt(settings, lang, row, job, chunk, progressed).await;
    }
    // One ended without an answer: the server may have the upload.
    if row.url.get_untracked().is_none() {
        match creating::found_unseen(row).await? {
            Some(FileCheck::Complete { url, sha256 }) => {
                row.url.set(Some(url));
                return Ok(Some(sha256));
            }
            Some(FileCheck::Partial { url, .. }) => row.url.set(Some(url)),
            _ => {}
        }
    }
    let (url, mut offset) = match row.url.get_untracked() {
        Some(url) => {
            let known = row.sent.get_untracked();
            match tus::head(&url).await? {
                Head::At { offset, .. } => {
                    // The server kept bytes of a request that failed: that
                    // is progress.
                    if offset > known {
                        progressed.set(true);
                    }
                    (url, offset)
                }
                Head::Gone => {
                    // Deleted or expired meanwhile: start a new upload.
                    row.url.set(None);
                    storage::forget(&row.file.key());
                    return Err(Failure::Retry("The upload was gone from the server".into()));
                }
            }
        }
        None => {
            let sha = row.local_sha.get_untracked();
            let meta = metadata(&row.file, sha.as_deref());
            // A small file travels whole in the request that creates its
            // upload: one request instead of two, which is most of the
            // time of a batch of thousands of small files.
            let whole = size > 0 && size <= chunk.min(WHOLE_WITH_CREATION);
            let first = whole.then(|| tus::Body {
                slot: &job.creating,
                ..body(row, job, &job.file, 0, size, stall_ms)
            });
            let creating = creating::Creating::start(row.id);
            let answer = tus::create(size, meta.clone(), &job.key, first, &job.cancelled).await;
            // No answer (a lost connection, or the watchdog gave up on it):
            // the upload may exist all the same. (One created without
            // bytes is found again by its key when created again.)
            if whole && matches!(answer, Err(Failure::Retry(_) | Failure::Cancelled)) {
                creating::unsure(row.id);
            }
            let created = match answer {
                // Something on the way refuses even this much: the bytes
                // follow in requests it lets through.
                Err(Failure::TooLargeOnTheWay(_)) if whole => {
                    if let Some(smaller) = smaller_chunk(size) {
                        storage::remember_chunk_limit(smaller);
                        chunk = chunk.min(smaller);
                    }
                    tus::create(size, meta, &job.key, None, &job.cancelled).await?
                }
                other => other?,
            };
            drop(creating);
            if job.abandoned.get() {
                tus::delete(&created.url).await;
                return Err(Failure::Cancelled);
            }
            // Hashed first because its sample agreed, but the server did
            // not have the file after all (it differs between the sampled
            // ranges): it goes in parts, as it would have.
            if created.offset.unwrap_or(0) == 0 && parts::wanted(&settings, size, room_left) {
                tus::delete(&created.url).await;
                return parts::attempt(settings, lang, row, job, chunk, progressed).await;
            }
            row.url.set(Some(created.url.clone()));
            storage::remember(&row.file, &created.url);
            let offset = created.offset.unwrap_or(0);
            if offset == size {
                // An instant upload (the server had these bytes), or an
                // empty file.
                return Ok(created.sha256);
            }
            // Just created: the server has what it said, and nothing to
            // ask a HEAD about.
            (created.url, offset)
        }
    };
    // Not hashed before sending (too large for instant upload, or resumed
    // from an earlier visit): hashed while it is sent.
    verify::start(row, &job.file);
    show_sent(row, offset);
    job.speed.borrow_mut().clear();
    if settings.transport == Transport::WebSocket && offset < size {
        let r = row.clone();
        let speed = job.speed.clone();
        let reached = Rc::new(Cell::new(offset));
        let at = reached.clone();
        let sent = move |n| {
            at.set(n);
            report(&r, &speed, n)
        };
        let end = ws::upload(&url, offset, &job.file, size, sent, &job.cancelled).await;
        if let Err(Failure::Retry(_)) = &end {
            progressed.set(reached.get() > offset);
        }
        return end.map(|()| None);
    }
    let mut sha256 = None;
    while offset < size {
        if job.cancelled.get() {
            return Err(Failure::Cancelled);
        }
        let end = (offset + chunk).min(size);
        // The whole file needs no slice: a slice is a new blob the browser
        // registers, which thousands of small files feel.
        let piece = if offset == 0 && end == size {
            web_sys::Blob::from(job.file.clone())
        } else {
            job.file
                .slice_with_f64_and_f64(offset as f64, end as f64)
                .map_err(|_| Failure::Fatal("The file cannot be read".into()))?
        };
        let base = offset;
        offset = match tus::patch(
            &url,
            base,
            body(row, job, &piece, base, end, stall_ms),
            &job.cancelled,
        )
        .await
        {
            Ok(appended) => {
                sha256 = appended.sha256;
                appended.offset
            }
            Err(Failure::TooLargeOnTheWay(why)) => {
                // Nothing reached the server: the same bytes, in less.
                show_sent(row, base);
                match smaller_chunk(chunk) {
                    Some(smaller) => {
                        chunk = smaller;
                        storage::remember_chunk_limit(smaller);
                        continue;
                    }
                    None => return Err(Failure::Fatal(why)),
                }
            }
            Err(e) => {
                show_sent(row, base);
                return Err(e);
            }
        };
        show_sent(row, offset);
        progressed.set(true);
    }
    Ok(sha256)
}

/// `bytes`, the file's from `base` to `end`, as a request's body whose
/// progress the row shows.
fn body<'a>(
    row: &Row,
    job: &'a Job,
    bytes: &'a web_sys::Blob,
    base: u64,
    end: u64,
    stall_ms: f64,
) -> tus::Body<'a> {
    let (r, speed) = (row.clone(), job.speed.clone());
    tus::Body {
        bytes,
        progress: Box::new(move |loaded: f64| report(&r, &speed, (base + loaded as u64).min(end))),
        slot: &job.request,
        stall_ms,
    }
}

/// Shows `at` bytes sent and updates the speed, when the page next draws.
pub(super) fn report(row: &Row, speed: &RefCell<Speedometer>, at: u64) {
    let bytes_per_sec = speed.borrow_mut().sample(js_sys::Date::now(), at);
    let (sent, shown_speed) = (row.sent, row.speed);
    frame::later(row.id, move || {
        sent.set(at);
        if let Some(s) = bytes_per_sec {
            shown_speed.set(s);
        }
    });
}

/// Shows `at` bytes on the server now: newer than any progress waiting to
/// be drawn.
pub(super) fn show_sent(row: &Row, at: u64) {
    frame::drop_pending(row.id);
    row.sent.set(at);
}

/// Every byte of the row's file is on the server: the row no longer takes
/// an upload slot, and is done once the server's SHA-256 (`sha`, from its
/// last answer, or else asked of the upload) and the browser's agree. A
/// file whose hash is still being computed shows that meanwhile.
pub fn finish(m: Uploads, row: Row, sha: Option<String>) {
    row.status.set(Status::Verifying);
    show_sent(&row, row.file.size);
    row.speed.set(0.0);
    row.message.set(None);
    storage::forget(&row.file.key());
    refresh_soon(m);
    leptos::task::spawn_local(async move {
        let server = match (sha, row.url.get_untracked()) {
            (Some(sha), _) => Some(sha),
            (None, Some(url)) => tus::sha256(&url).await,
            (None, None) => None,
        };
        let _ = row.server_sha.try_set(server.clone());
        let local = verify::settle(&row).await;
        // Cancelled meanwhile (the row left the batch), or the widget left
        // its page.
        if !m.alive()
            || m.row(row.id).is_none()
            || row.status.try_get_untracked() != Some(Status::Verifying)
        {
            return;
        }
        let lang = m.lang.get_untracked();
        match (local, server) {
            (Some(here), Some(there)) if here != there => {
                let why = mismatch_message(lang, &here, &there);
                row.status.set(Status::Failed);
                row.message.set(Some(why.clone()));
                m.announce.set(format!("{}: {why}", row.file.name));
            }
            _ => {
                row.status.set(Status::Done);
                // Each file is told in a batch a person can follow; in one
                // of thousands the total tells, and the page is spared a
                // change to draw for every file.
                if m.rows.with_untracked(Vec::len) <= ANNOUNCED_UP_TO {
                    m.announce
                        .set(format!("{}: {}", row.file.name, t(lang, Msg::Done)));
                }
            }
        }
    });
}

/// What a row says when the server's copy is not the file: both hashes,
/// shortened, and what Retry does.
fn mismatch_message(lang: crate::page::i18n::Lang, here: &str, there: &str) -> String {
    let short = |h: &str| h.chars().take(12).collect::<String>();
    format!(
        "{} ({} ≠ {})",
        t(lang, Msg::Mismatch),
        short(here),
        short(there)
    )
}
