//! The upload engine: a queue with a bounded number of files in flight,
//! and for each file the tus conversation: create (after hashing, for
//! instant upload), read the server's offset, send chunks, retry what can
//! be retried with exponential back-off and jitter, stop on what cannot.

use super::http::{send, sleep, NetError, Reply, Slot};
use super::{hash, store, thumb};
use crate::model::{FileCheck, FileFingerprint};
use crate::ui::i18n::Lang;
use crate::ui::state::{Interrupted, Row, Status, Transport, Uploads};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::File;

const MIB: u64 = 1024 * 1024;
/// Attempts in a row without progress before a file is marked failed.
const MAX_ATTEMPTS: u32 = 12;

/// What the engine holds for one row and the page state cannot: the file
/// itself and the request in flight.
struct Job {
    file: File,
    request: Slot,
    cancelled: Rc<Cell<bool>>,
    /// (time in ms, bytes) samples for the speed.
    samples: Rc<RefCell<VecDeque<(f64, u64)>>>,
}

thread_local! {
    // Browser-only and per page: the files behind the rows.
    static JOBS: RefCell<HashMap<u32, Job>> = RefCell::new(HashMap::new());
}

fn job<T>(id: u32, f: impl FnOnce(&Job) -> T) -> Option<T> {
    JOBS.with(|jobs| jobs.borrow().get(&id).map(f))
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Sets up the page once it is hydrated: settings and language from
/// storage, the uploads a previous visit left unfinished, and a periodic
/// refresh of the list of finished uploads.
pub fn init(m: Uploads) {
    m.settings.set(store::load_settings());
    let lang = store::load_lang().unwrap_or_else(|| {
        let tag = web_sys::window()
            .and_then(|w| w.navigator().language())
            .unwrap_or_default();
        Lang::from_tag(&tag)
    });
    m.lang.set(lang);
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        if let Some(html) = doc.document_element() {
            let _ = html.set_attribute("lang", lang.tag());
        }
    }
    spawn_local(load_interrupted(m));
    super::live::start(m);
    // Live events keep the list current; this only catches what they miss.
    spawn_local(async move {
        loop {
            sleep(30_000).await;
            refresh_uploaded(m).await;
        }
    });
}

async fn load_interrupted(m: Uploads) {
    let mut found = Vec::new();
    for (key, entry) in store::resumable() {
        match head(&entry.url).await {
            Ok(Head::At { offset, length }) if Some(offset) != length => found.push(Interrupted {
                key,
                name: entry.file.name.clone(),
                size: entry.file.size,
                offset,
            }),
            Ok(_) | Err(Failure::Fatal(_)) => store::forget(&key),
            Err(_) => {}
        }
    }
    m.interrupted.set(found);
}

/// Reloads the list of this owner's uploads, as many as are shown.
pub async fn refresh_uploaded(m: Uploads) {
    let shown = m.uploaded.with_untracked(Vec::len) as u32;
    let limit = shown.clamp(crate::api::LIST_PAGE, crate::api::MAX_LIST_PAGE);
    if let Ok(page) = crate::api::list_uploads(None, Some(limit)).await {
        if m.uploaded.get_untracked() != page.uploads {
            m.uploaded.set(page.uploads);
        }
        m.uploaded_next.set(page.next);
    }
}

/// Shows the next page of this owner's uploads.
pub fn load_more(m: Uploads) {
    let Some(after) = m.uploaded_next.get_untracked() else {
        return;
    };
    spawn_local(async move {
        if let Ok(page) = crate::api::list_uploads(Some(after), None).await {
            m.uploaded.update(|list| {
                for u in page.uploads {
                    if !list.iter().any(|known| known.id == u.id) {
                        list.push(u);
                    }
                }
            });
            m.uploaded_next.set(page.next);
        }
    });
}

fn fingerprint(file: &File) -> FileFingerprint {
    FileFingerprint {
        name: file.name(),
        size: file.size() as u64,
        last_modified: file.last_modified() as i64,
        mime: file.type_(),
    }
}

/// Files chosen with the file input.
pub fn add_from_input(m: Uploads, ev: &web_sys::Event) {
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    if let Some(list) = input.files() {
        add_files(m, (0..list.length()).filter_map(|i| list.get(i)).collect());
    }
    // Choosing the same file again must fire `change` again.
    input.set_value("");
}

/// Files dropped on the drop zone.
pub fn add_from_drop(m: Uploads, ev: &web_sys::DragEvent) {
    if let Some(list) = ev.data_transfer().and_then(|d| d.files()) {
        add_files(m, (0..list.length()).filter_map(|i| list.get(i)).collect());
    }
}

/// Adds files to the batch: asks the server what it has of them (one
/// call for the batch), then queues what needs sending.
pub fn add_files(m: Uploads, files: Vec<File>) {
    let busy: Vec<String> = m.rows.with_untracked(|rows| {
        rows.iter()
            .filter(|r| r.status.get_untracked() != Status::Failed)
            .map(|r| r.file.key())
            .collect()
    });
    let mut added = Vec::new();
    for file in files {
        let fp = fingerprint(&file);
        if busy.contains(&fp.key()) || added.iter().any(|r: &Row| r.file == fp) {
            continue; // already in this batch
        }
        let row = Row::new(m.next_id(), fp);
        JOBS.with(|jobs| {
            jobs.borrow_mut().insert(
                row.id,
                Job {
                    file: file.clone(),
                    request: Rc::new(RefCell::new(None)),
                    cancelled: Rc::new(Cell::new(false)),
                    samples: Rc::new(RefCell::new(VecDeque::new())),
                },
            )
        });
        let thumb_row = row.clone();
        let px = m.settings.get_untracked().thumb_px;
        spawn_local(async move {
            if let Some(url) = thumb::thumbnail(&file, px).await {
                thumb_row.thumb.set(Some(url));
            }
        });
        added.push(row);
    }
    if added.is_empty() {
        return;
    }
    let keys: Vec<String> = added.iter().map(|r| r.file.key()).collect();
    m.interrupted
        .update(|list| list.retain(|i| !keys.contains(&i.key)));
    m.rows.update(|rows| rows.extend(added.iter().cloned()));
    spawn_local(async move {
        let fps: Vec<FileFingerprint> = added.iter().map(|r| r.file.clone()).collect();
        match crate::api::check_files(fps).await {
            Ok(checks) if checks.len() == added.len() => {
                for (row, check) in added.iter().zip(checks) {
                    match check {
                        FileCheck::New => store::forget(&row.file.key()),
                        FileCheck::Partial { url, offset } => {
                            row.url.set(Some(url));
                            row.sent.set(offset);
                        }
                        FileCheck::Complete { url, sha256 } => {
                            row.url.set(Some(url));
                            row.server_sha.set(Some(sha256));
                            row.sent.set(row.file.size);
                            row.status.set(Status::AlreadyUploaded);
                            store::forget(&row.file.key());
                        }
                    }
                }
            }
            // Without an answer, fall back to what this browser remembers.
            _ => {
                for row in &added {
                    row.url.set(store::lookup(&row.file));
                }
            }
        }
        for row in &added {
            if row.status.get_untracked() == Status::Checking {
                row.status.set(Status::Waiting);
            }
        }
        pump(m);
    });
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

/// How an attempt ended when it did not finish the file.
enum Failure {
    /// Worth trying again (network, 5xx, 409, 423).
    Retry(String),
    /// Not worth trying again: the server refused with a reason.
    Fatal(String),
    /// The person cancelled.
    Cancelled,
}

async fn run(m: Uploads, row: Row) {
    let mut attempt = 0u32;
    loop {
        let progressed = Cell::new(false);
        match attempt_upload(m, &row, &progressed).await {
            Ok(()) => {
                finish(m, &row).await;
                break;
            }
            Err(Failure::Cancelled) => return,
            Err(Failure::Fatal(msg)) => {
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
                let delay = backoff_ms(attempt);
                row.status.set(Status::Retrying);
                row.speed.set(0.0);
                row.message.set(Some(format!(
                    "{reason} — retry {attempt} in {:.1} s",
                    delay as f64 / 1000.0
                )));
                sleep(delay).await;
                if is_cancelled(row.id) {
                    return;
                }
                row.status.set(Status::Uploading);
                row.message.set(None);
            }
        }
    }
    pump(m);
}

/// Exponential back-off with full jitter: 0.5 s, 1 s, 2 s ... up to 30 s,
/// each scaled by a random factor in [0.5, 1.5).
fn backoff_ms(attempt: u32) -> i32 {
    let base = (500.0 * 2f64.powi(attempt.saturating_sub(1).min(10) as i32)).min(30_000.0);
    (base * (0.5 + js_sys::Math::random())) as i32
}

fn is_cancelled(id: u32) -> bool {
    job(id, |j| j.cancelled.get()).unwrap_or(true)
}

fn tus_headers() -> Vec<(&'static str, String)> {
    vec![("Tus-Resumable", "1.0.0".to_string())]
}

fn metadata(row: &Row) -> String {
    let mut pairs = vec![
        ("filename", row.file.name.clone()),
        ("filetype", row.file.mime.clone()),
        ("lastmodified", row.file.last_modified.to_string()),
    ];
    if let Some(sha) = row.local_sha.get_untracked() {
        pairs.push(("sha256", sha));
    }
    pairs
        .into_iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k} {}", STANDARD.encode(v))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Classifies an answer that is not what the protocol step expected.
fn refusal(reply: &Reply) -> Failure {
    let message = reply
        .error_message()
        .unwrap_or_else(|| format!("The server answered {}", reply.status));
    match reply.status {
        0 | 409 | 423 | 500..=599 => Failure::Retry(message),
        // A 4xx with Ferry's JSON error is a refusal with a reason.
        _ => Failure::Fatal(message),
    }
}

fn network(e: NetError, id: u32) -> Failure {
    if e == NetError::Aborted && is_cancelled(id) {
        Failure::Cancelled
    } else {
        Failure::Retry("The connection failed".into())
    }
}

enum Head {
    At { offset: u64, length: Option<u64> },
    Gone,
}

async fn head(url: &str) -> Result<Head, Failure> {
    let reply = send("HEAD", url, &tus_headers(), None, None, None)
        .await
        .map_err(|_| Failure::Retry("The connection failed".into()))?;
    match reply.status {
        200 => {
            let offset = reply
                .header("Upload-Offset")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Failure::Retry("No Upload-Offset in the answer".into()))?;
            let length = reply.header("Upload-Length").and_then(|v| v.parse().ok());
            Ok(Head::At { offset, length })
        }
        404 | 410 => Ok(Head::Gone),
        _ => Err(refusal(&reply)),
    }
}

async fn attempt_upload(m: Uploads, row: &Row, progressed: &Cell<bool>) -> Result<(), Failure> {
    let (file, slot, cancelled, samples) = job(row.id, |j| {
        (
            j.file.clone(),
            j.request.clone(),
            j.cancelled.clone(),
            j.samples.clone(),
        )
    })
    .ok_or(Failure::Cancelled)?;
    let size = row.file.size;
    let settings = m.settings.get_untracked();
    let chunk = settings.chunk_mib.max(1) as u64 * MIB;

    let url = match row.url.get_untracked() {
        Some(url) => url,
        None => {
            if size > 0
                && size <= settings.instant_mib as u64 * MIB
                && row.local_sha.get_untracked().is_none()
            {
                row.status.set(Status::Hashing);
                let stop = cancelled.clone();
                let r = row.clone();
                let sha =
                    hash::sha256_hex(&file, size, move |n| r.hashed.set(n), move || stop.get())
                        .await;
                if cancelled.get() {
                    return Err(Failure::Cancelled);
                }
                row.local_sha.set(sha);
                row.status.set(Status::Uploading);
            }
            let mut headers = tus_headers();
            headers.push(("Upload-Length", size.to_string()));
            headers.push(("Upload-Metadata", metadata(row)));
            let reply = send("POST", "/files/", &headers, None, None, None)
                .await
                .map_err(|e| network(e, row.id))?;
            if reply.status != 201 {
                return Err(refusal(&reply));
            }
            let url = reply
                .header("Location")
                .ok_or_else(|| Failure::Retry("No Location in the answer".into()))?;
            row.url.set(Some(url.clone()));
            store::remember(&row.file, &url);
            if reply
                .header("Upload-Offset")
                .and_then(|v| v.parse::<u64>().ok())
                == Some(size)
            {
                return Ok(()); // instant upload: the server had these bytes
            }
            url
        }
    };

    let known = row.sent.get_untracked();
    let mut offset = match head(&url).await? {
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
            store::forget(&row.file.key());
            return Err(Failure::Retry("The upload was gone from the server".into()));
        }
    };
    row.sent.set(offset);
    samples.borrow_mut().clear();
    if settings.transport == Transport::WebSocket && offset < size {
        let r = row.clone();
        let s = samples.clone();
        let end = super::ws::upload(
            &url,
            offset,
            &file,
            size,
            move |at| report(&r, &s, at),
            &cancelled,
        )
        .await;
        return match end {
            super::ws::WsEnd::Done => Ok(()),
            super::ws::WsEnd::Cancelled => Err(Failure::Cancelled),
            super::ws::WsEnd::Fatal(m) => Err(Failure::Fatal(m)),
            super::ws::WsEnd::Retry(m) => {
                progressed.set(row.sent.get_untracked() > offset);
                Err(Failure::Retry(m))
            }
        };
    }
    while offset < size {
        if cancelled.get() {
            return Err(Failure::Cancelled);
        }
        let end = (offset + chunk).min(size);
        let body = file
            .slice_with_f64_and_f64(offset as f64, end as f64)
            .map_err(|_| Failure::Fatal("The file cannot be read".into()))?;
        let mut headers = tus_headers();
        headers.push(("Upload-Offset", offset.to_string()));
        headers.push(("Content-Type", "application/offset+octet-stream".into()));
        let base = offset;
        let r = row.clone();
        let s = samples.clone();
        let on_progress =
            Box::new(move |loaded: f64| report(&r, &s, (base + loaded as u64).min(end)));
        let reply = send(
            "PATCH",
            &url,
            &headers,
            Some(&body),
            Some(on_progress),
            Some(&slot),
        )
        .await
        .map_err(|e| {
            row.sent.set(base);
            network(e, row.id)
        })?;
        if reply.status != 204 {
            row.sent.set(base);
            return Err(refusal(&reply));
        }
        offset = reply
            .header("Upload-Offset")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Failure::Retry("No Upload-Offset in the answer".into()))?;
        row.sent.set(offset);
        progressed.set(true);
    }
    Ok(())
}

/// Shows `at` bytes sent and updates the speed, averaged over the last
/// three seconds.
fn report(row: &Row, samples: &RefCell<VecDeque<(f64, u64)>>, at: u64) {
    row.sent.set(at);
    let now = now_ms();
    let mut q = samples.borrow_mut();
    q.push_back((now, at));
    while q.len() > 2 && now - q.front().map(|x| x.0).unwrap_or(now) > 3000.0 {
        q.pop_front();
    }
    if let (Some(first), Some(last)) = (q.front(), q.back()) {
        let dt = (last.0 - first.0) / 1000.0;
        if dt > 0.2 {
            row.speed.set(last.1.saturating_sub(first.1) as f64 / dt);
        }
    }
}

async fn finish(m: Uploads, row: &Row) {
    row.status.set(Status::Done);
    row.sent.set(row.file.size);
    row.speed.set(0.0);
    row.message.set(None);
    store::forget(&row.file.key());
    refresh_uploaded(m).await;
    if let Some(url) = row.url.get_untracked() {
        let sha = m.uploaded.with_untracked(|list| {
            list.iter()
                .find(|u| u.url == url)
                .and_then(|u| u.sha256.clone())
        });
        row.server_sha.set(sha);
    }
    m.announce.set(format!(
        "{}: {}",
        row.file.name,
        crate::ui::i18n::t(m.lang.get_untracked(), crate::ui::i18n::Msg::Done)
    ));
}

/// Cancels one file: a waiting file leaves the queue; an uploading one has
/// its request aborted and its server copy deleted; a finished one has its
/// server copy deleted.
pub fn cancel(m: Uploads, id: u32) {
    let Some(row) = m.row(id) else { return };
    if let Some((cancelled, slot)) = job(id, |j| (j.cancelled.clone(), j.request.clone())) {
        cancelled.set(true);
        if let Some(xhr) = slot.borrow().as_ref() {
            let _ = xhr.abort();
        }
    }
    JOBS.with(|jobs| jobs.borrow_mut().remove(&id));
    m.rows.update(|rows| rows.retain(|r| r.id != id));
    store::forget(&row.file.key());
    if let Some(url) = row.url.get_untracked() {
        spawn_local(async move {
            let _ = send("DELETE", &url, &tus_headers(), None, None, None).await;
            refresh_uploaded(m).await;
        });
    }
    m.announce.set(format!(
        "{}: {}",
        row.file.name,
        crate::ui::i18n::t(m.lang.get_untracked(), crate::ui::i18n::Msg::Cancel)
    ));
    pump(m);
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

/// Deletes a finished upload from the list.
pub fn delete_uploaded(m: Uploads, id: String) {
    spawn_local(async move {
        if crate::api::delete_upload(id.clone()).await.is_ok() {
            m.uploaded.update(|list| list.retain(|u| u.id != id));
        }
        refresh_uploaded(m).await;
    });
}
