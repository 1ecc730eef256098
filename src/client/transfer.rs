//! One attempt at sending one file: hashing it for instant upload,
//! creating its upload, asking the server's offset, then sending the rest
//! in PATCH requests or over one WebSocket, while the row shows the bytes
//! sent and the speed. And what happens to the row once every byte is
//! there.
//!
//! What this module must not know: the queue (how many files run at once,
//! when and how often a file is tried again).

use super::listing::refresh_uploaded;
use super::tus::{self, Head};
use super::xhr::Slot;
use super::{sha, storage, ws};
use crate::page::i18n::{t, Msg};
use crate::page::speed::Speedometer;
use crate::page::state::{Row, Settings, Status, Transport, Uploads};
use crate::page::tus::{metadata, smaller_chunk, Failure, MIN_CHUNK};
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use web_sys::File;

const MIB: u64 = 1024 * 1024;

/// What a transfer needs of a row and the page state cannot hold: the file
/// itself, the request in flight, the cancel flag and the speed samples.
#[derive(Clone)]
pub struct Job {
    pub file: File,
    pub request: Slot,
    pub cancelled: Rc<Cell<bool>>,
    pub speed: Rc<RefCell<Speedometer>>,
}

impl Job {
    pub fn new(file: File) -> Job {
        Job {
            file,
            request: Rc::new(RefCell::new(None)),
            cancelled: Rc::new(Cell::new(false)),
            speed: Rc::new(RefCell::new(Speedometer::default())),
        }
    }

    /// Stops the transfer: the flag is seen between steps, and the request
    /// in flight is aborted.
    pub fn cancel(&self) {
        self.cancelled.set(true);
        if let Some(xhr) = self.request.borrow().as_ref() {
            let _ = xhr.abort();
        }
    }
}

/// Hashes the file when it is small enough for instant upload and not
/// hashed yet.
async fn hash_if_wanted(settings: &Settings, row: &Row, job: &Job) -> Result<(), Failure> {
    let size = row.file.size;
    if size == 0
        || size > settings.instant_mib as u64 * MIB
        || row.local_sha.get_untracked().is_some()
    {
        return Ok(());
    }
    row.status.set(Status::Hashing);
    let stop = job.cancelled.clone();
    let r = row.clone();
    let sha = sha::sha256_hex(
        &job.file,
        size,
        move |n| r.hashed.set(n),
        move || stop.get(),
    )
    .await;
    if job.cancelled.get() {
        return Err(Failure::Cancelled);
    }
    row.local_sha.set(sha);
    row.status.set(Status::Uploading);
    Ok(())
}

/// One attempt at sending the row's file; `progressed` is set when the
/// server ends up with more bytes than before (the queue then starts
/// counting attempts again).
pub async fn attempt(
    settings: Settings,
    row: &Row,
    job: &Job,
    progressed: &Cell<bool>,
) -> Result<(), Failure> {
    let size = row.file.size;
    let stall_ms = f64::from(settings.stall_secs) * 1000.0;
    // The setting, or less when a proxy on the way refused larger requests.
    let mut chunk = settings.chunk_mib.max(1) as u64 * MIB;
    if let Some(limit) = storage::chunk_limit() {
        chunk = chunk.min(limit.max(MIN_CHUNK));
    }

    let url = match row.url.get_untracked() {
        Some(url) => url,
        None => {
            hash_if_wanted(&settings, row, job).await?;
            let sha = row.local_sha.get_untracked();
            let created =
                tus::create(size, metadata(&row.file, sha.as_deref()), &job.cancelled).await?;
            row.url.set(Some(created.url.clone()));
            storage::remember(&row.file, &created.url);
            if created.offset == Some(size) {
                return Ok(()); // instant upload: the server had these bytes
            }
            created.url
        }
    };

    let known = row.sent.get_untracked();
    let mut offset = match tus::head(&url).await? {
        Head::At { offset, .. } => {
            // The server kept bytes of a request that failed: that is progress.
            if offset > known {
                progressed.set(true);
            }
            offset
        }
        Head::Gone => {
            // Deleted or expired meanwhile: start a new upload.
            row.url.set(None);
            storage::forget(&row.file.key());
            return Err(Failure::Retry("The upload was gone from the server".into()));
        }
    };
    row.sent.set(offset);
    job.speed.borrow_mut().clear();
    if settings.transport == Transport::WebSocket && offset < size {
        let r = row.clone();
        let speed = job.speed.clone();
        let sent = move |at| report(&r, &speed, at);
        let end = ws::upload(&url, offset, &job.file, size, sent, &job.cancelled).await;
        if let Err(Failure::Retry(_)) = &end {
            progressed.set(row.sent.get_untracked() > offset);
        }
        return end;
    }
    while offset < size {
        if job.cancelled.get() {
            return Err(Failure::Cancelled);
        }
        let end = (offset + chunk).min(size);
        let body = job
            .file
            .slice_with_f64_and_f64(offset as f64, end as f64)
            .map_err(|_| Failure::Fatal("The file cannot be read".into()))?;
        let base = offset;
        let r = row.clone();
        let speed = job.speed.clone();
        let on_progress =
            Box::new(move |loaded: f64| report(&r, &speed, (base + loaded as u64).min(end)));
        offset = match tus::patch(
            &url,
            base,
            &body,
            on_progress,
            &job.request,
            &job.cancelled,
            stall_ms,
        )
        .await
        {
            Ok(offset) => offset,
            Err(Failure::TooLargeOnTheWay(why)) => {
                // Nothing reached the server: the same bytes, in less.
                row.sent.set(base);
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
                row.sent.set(base);
                return Err(e);
            }
        };
        row.sent.set(offset);
        progressed.set(true);
    }
    Ok(())
}

/// Shows `at` bytes sent and updates the speed.
fn report(row: &Row, speed: &RefCell<Speedometer>, at: u64) {
    row.sent.set(at);
    if let Some(bytes_per_sec) = speed.borrow_mut().sample(js_sys::Date::now(), at) {
        row.speed.set(bytes_per_sec);
    }
}

/// Marks the row done, with the SHA-256 the server recorded, and says so.
pub async fn finish(m: Uploads, row: &Row) {
    row.status.set(Status::Done);
    row.sent.set(row.file.size);
    row.speed.set(0.0);
    row.message.set(None);
    storage::forget(&row.file.key());
    refresh_uploaded(m).await;
    if let Some(url) = row.url.get_untracked() {
        let listed = m.uploaded.with_untracked(|list| {
            list.iter()
                .find(|u| u.url == url)
                .and_then(|u| u.sha256.clone())
        });
        // Not in this owner's list (an owner the browser does not keep,
        // such as a page on another site without Ferry's cookie): the
        // upload itself says.
        let sha = match listed {
            Some(sha) => Some(sha),
            None => tus::sha256(&url).await,
        };
        row.server_sha.set(sha);
    }
    m.announce.set(format!(
        "{}: {}",
        row.file.name,
        t(m.lang.get_untracked(), Msg::Done)
    ));
}
