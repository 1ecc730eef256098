//! A large file sent as several parts at once, joined on the server (tus
//! concatenation): each part is an upload of its own, created with a key
//! derived from the file's and sent in PATCHes beside the others; when all
//! are there, one request joins them into the file's upload, whose SHA-256
//! the server answers, and the parts are deleted. The parts' URLs are
//! remembered, so a reload or a new visit resumes each where the server
//! has it. The row shows the sum of the parts' bytes.
//!
//! What this module must not know: the queue, or how the row is finished.

use super::job::Job;
use super::transfer::{report, show_sent};
use super::tus::{self, Head};
use super::{storage, verify};
use crate::page::i18n::{t, Lang, Msg};
use crate::page::state::{Row, Settings, Transport};
use crate::page::tus::{metadata, part_ranges, Failure};
use crate::protocol::model::FileFingerprint;
use futures::future::join_all;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

const MIB: u64 = 1024 * 1024;

/// Whether the file goes in parts with these settings, and the room the
/// server last said the owner has left (`None`: no limit). Joined, the
/// file is a copy of its parts, which count in the owner's share until
/// they are deleted: a file that does not fit twice goes whole.
pub fn wanted(settings: &Settings, size: u64, room_left: Option<u64>) -> bool {
    room_left.is_none_or(|room| room / 2 >= size)
        && settings.transport == Transport::Http
        && settings.streams > 1
        && size >= u64::from(settings.streams_from_mib) * MIB
        && part_ranges(size, settings.streams).len() > 1
}

/// The parts' URLs this browser remembers for the file, in order (empty
/// for a part not created). A file of a MiB or less is never sent in
/// parts: thousands of small files are spared reading the storage.
pub fn remembered(file: &FileFingerprint) -> Vec<String> {
    match file.size > MIB {
        true => storage::parts_of(file),
        false => Vec::new(),
    }
}

/// Whether the file is already being sent in parts (in this visit or an
/// earlier one, whose parts become the job's): it goes on so, whatever
/// the settings say now.
pub fn started(row: &Row, job: &Job) -> bool {
    if job.parts.borrow().is_empty() {
        *job.parts.borrow_mut() = remembered(&row.file);
    }
    !job.parts.borrow().is_empty()
}

/// One attempt at the file, in parts; answers the server's SHA-256 of the
/// joined file. `progressed` as in `transfer::attempt`.
pub async fn attempt(
    settings: Settings,
    lang: Lang,
    row: &Row,
    job: &Job,
    chunk: u64,
    progressed: &Cell<bool>,
) -> Result<Option<String>, Failure> {
    let size = row.file.size;
    // The parts of an earlier attempt or visit (`started`), or new ones.
    let n = match job.parts.borrow().len() {
        0 => settings.streams,
        k => k as u32,
    };
    let ranges = part_ranges(size, n);
    if job.parts.borrow().len() != ranges.len() {
        *job.parts.borrow_mut() = vec![String::new(); ranges.len()];
    }
    for (i, (start, end)) in ranges.iter().enumerate() {
        if !job.parts.borrow()[i].is_empty() {
            continue;
        }
        if job.cancelled.get() {
            return Err(Failure::Cancelled);
        }
        let key = format!("{}-part{i}", job.key);
        let url = tus::create_part(end - start, &key, &job.cancelled).await?;
        if job.abandoned.get() {
            tus::delete(&url).await;
            return Err(Failure::Cancelled);
        }
        job.parts.borrow_mut()[i] = url;
        storage::remember_parts(&row.file, &job.parts.borrow());
    }
    let urls = job.parts.borrow().clone();

    verify::start(row, &job.file);
    job.speed.borrow_mut().clear();
    let sent: Rc<RefCell<Vec<u64>>> = Rc::new(RefCell::new(vec![0; ranges.len()]));
    *job.part_requests.borrow_mut() = (0..ranges.len())
        .map(|_| Rc::new(RefCell::new(None)))
        .collect();
    let stall_ms = f64::from(settings.stall_secs) * 1000.0;
    let sending = ranges
        .iter()
        .zip(&urls)
        .enumerate()
        .map(|(i, (&range, url))| {
            let part = Part {
                row,
                job,
                url,
                range,
                index: i,
                sent: sent.clone(),
                slot: job.part_requests.borrow()[i].clone(),
            };
            async move { part.send(chunk, stall_ms, progressed).await }
        });
    let ends = join_all(sending).await;
    job.part_requests.borrow_mut().clear();
    if let Some(failed) = ends.into_iter().find_map(Result::err) {
        return Err(failed);
    }
    if job.cancelled.get() {
        return Err(Failure::Cancelled);
    }

    // Every part is there: one request joins them.
    row.message.set(Some(t(lang, Msg::Joining).to_string()));
    let meta = metadata(&row.file, None);
    let joined = tus::join(&urls, meta, &format!("{}-joined", job.key)).await;
    let joined = match joined {
        Ok(joined) => joined,
        Err(e) => {
            row.message.set(None);
            // Refused because a part is gone meanwhile (expired while the
            // others were on their way): the next attempt sends it alone.
            if matches!(e, Failure::Fatal(_)) && forget_gone(row, job, &urls).await {
                return Err(Failure::Retry("A part was gone from the server".into()));
            }
            return Err(e);
        }
    };
    if job.abandoned.get() {
        tus::delete(&joined.url).await;
        return Err(Failure::Cancelled);
    }
    // The join asked again (after a lost answer, a proxy's timeout or a
    // pause) answers the joined upload as it is: maybe still being
    // assembled. The parts stay until it is whole.
    let sha256 = match (joined.offset, joined.sha256) {
        (Some(offset), Some(sha)) if offset == size => Some(sha),
        _ => Some(assembled(&joined.url, &job.cancelled).await?),
    };
    row.message.set(None);
    row.url.set(Some(joined.url));
    job.parts.borrow_mut().clear();
    storage::forget(&row.file.key());
    leptos::task::spawn_local(tus::delete_each(urls));
    Ok(sha256)
}

/// Forgets the parts the server no longer has, so that the next attempt
/// makes them again; answers whether there was one.
async fn forget_gone(row: &Row, job: &Job, urls: &[String]) -> bool {
    let mut any = false;
    for (i, url) in urls.iter().enumerate() {
        if let Ok(Head::Gone) = tus::head(url).await {
            job.parts.borrow_mut()[i].clear();
            any = true;
        }
    }
    if any {
        storage::remember_parts(&row.file, &job.parts.borrow());
    }
    any
}

/// Waits until the joined upload at `url` is whole; answers its SHA-256.
/// One gone meanwhile (its assembly failed) is joined again next time.
async fn assembled(url: &str, cancelled: &Cell<bool>) -> Result<String, Failure> {
    loop {
        if cancelled.get() {
            return Err(Failure::Cancelled);
        }
        match tus::head(url).await {
            Ok(Head::At { offset, length }) if Some(offset) == length => {
                return tus::sha256(url).await.ok_or_else(|| {
                    Failure::Retry("The server did not say the file's SHA-256".into())
                });
            }
            Ok(Head::Gone) => {
                return Err(Failure::Retry("The parts could not be joined".into()));
            }
            _ => super::xhr::sleep(1000).await,
        }
    }
}

/// One part of the file on its way.
struct Part<'a> {
    row: &'a Row,
    job: &'a Job,
    url: &'a str,
    range: (u64, u64),
    index: usize,
    /// Every part's bytes on the server or on their way: the row shows
    /// their sum.
    sent: Rc<RefCell<Vec<u64>>>,
    slot: super::xhr::Slot,
}

impl Part<'_> {
    fn total(&self) -> u64 {
        self.sent.borrow().iter().sum()
    }

    /// Sends the part from where the server has it to its end.
    async fn send(
        &self,
        chunk: u64,
        stall_ms: f64,
        progressed: &Cell<bool>,
    ) -> Result<(), Failure> {
        let (start, end) = self.range;
        let len = end - start;
        let mut offset = match tus::head(self.url).await? {
            Head::At { offset, .. } => offset,
            Head::Gone => {
                // Expired or deleted: the next attempt makes it again.
                self.job.parts.borrow_mut()[self.index].clear();
                storage::remember_parts(&self.row.file, &self.job.parts.borrow());
                return Err(Failure::Retry("A part was gone from the server".into()));
            }
        };
        self.sent.borrow_mut()[self.index] = offset;
        show_sent(self.row, self.total());
        while offset < len {
            if self.job.cancelled.get() {
                return Err(Failure::Cancelled);
            }
            let to = (offset + chunk).min(len);
            let piece = self
                .job
                .file
                .slice_with_f64_and_f64((start + offset) as f64, (start + to) as f64)
                .map_err(|_| Failure::Fatal("The file cannot be read".into()))?;
            let base = offset;
            let (row, speed, sent, index) = (
                self.row.clone(),
                self.job.speed.clone(),
                self.sent.clone(),
                self.index,
            );
            let body = tus::Body {
                bytes: &piece,
                progress: Box::new(move |loaded: f64| {
                    sent.borrow_mut()[index] = (base + loaded as u64).min(to);
                    let total = sent.borrow().iter().sum();
                    report(&row, &speed, total);
                }),
                slot: &self.slot,
                stall_ms,
            };
            match tus::patch(self.url, base, body, &self.job.cancelled).await {
                Ok(appended) => offset = appended.offset,
                Err(e) => {
                    self.sent.borrow_mut()[self.index] = base;
                    return Err(e);
                }
            }
            self.sent.borrow_mut()[self.index] = offset;
            show_sent(self.row, self.total());
            progressed.set(true);
        }
        Ok(())
    }
}
