//! A signal-free tus 1.0 client over `XMLHttpRequest`: the protocol's steps
//! (create, ask for the offset with HEAD, append with PATCH, delete), each
//! answering what the server said or a [`Failure`] that says whether trying
//! again can help. The headers, the metadata and the classification of
//! refusals are pure and live in `crate::page::tus`, where host tests run
//! them.
//!
//! What this module must not know: rows, signals, the queue or storage;
//! callers decide what an answer means for the page.

use super::xhr::{send, sleep, NetError, Reply, Slot};
use crate::page::tus::{self as rules, Failure};
use crate::protocol::header;
use leptos::task::spawn_local;
use std::cell::Cell;
use std::rc::Rc;
use web_sys::Blob;

/// What HEAD says about an upload.
pub enum Head {
    /// The server has `offset` bytes of `length` (unknown while deferred).
    At { offset: u64, length: Option<u64> },
    /// Deleted or expired.
    Gone,
}

/// A new upload.
pub struct Created {
    /// Its address.
    pub url: String,
    /// The bytes it already has, when the server said: the whole file when
    /// the server completed it from a known SHA-256 (instant upload).
    pub offset: Option<u64>,
    /// The server's SHA-256, when the upload is already complete.
    pub sha256: Option<String>,
}

/// What a PATCH achieved.
pub struct Appended {
    /// The server's new offset.
    pub offset: u64,
    /// The server's SHA-256, when these were the last bytes.
    pub sha256: Option<String>,
}

/// The hex SHA-256 in the answer's `Repr-Digest`, when it has one.
fn digest_of(reply: &Reply) -> Option<String> {
    reply
        .header("repr-digest")
        .and_then(|v| rules::sha256_of_digest(&v))
}

fn refused(reply: &Reply) -> Failure {
    rules::refusal(reply.status, reply.error_message())
}

fn network(e: NetError, cancelled: &Cell<bool>) -> Failure {
    if e == NetError::Aborted && cancelled.get() {
        Failure::Cancelled
    } else {
        Failure::Retry("The connection failed".into())
    }
}

fn offset_of(reply: &Reply) -> Result<u64, Failure> {
    rules::parse_offset(reply.header(header::UPLOAD_OFFSET).as_deref())
        .ok_or_else(|| Failure::Retry("No Upload-Offset in the answer".into()))
}

/// Asks where the upload at `url` stands.
pub async fn head(url: &str) -> Result<Head, Failure> {
    let reply = send("HEAD", url, &rules::headers(), None, None, None)
        .await
        .map_err(|_| Failure::Retry("The connection failed".into()))?;
    match reply.status {
        200 => {
            let offset = offset_of(&reply)?;
            let length = rules::parse_offset(reply.header(header::UPLOAD_LENGTH).as_deref());
            Ok(Head::At { offset, length })
        }
        404 | 410 => Ok(Head::Gone),
        _ => Err(refused(&reply)),
    }
}

/// The server's SHA-256 of a finished upload, from its HEAD
/// (`Repr-Digest`); `None` while unfinished or when it cannot say.
pub async fn sha256(url: &str) -> Option<String> {
    let reply = send("HEAD", url, &rules::headers(), None, None, None)
        .await
        .ok()?;
    (reply.status == 200).then(|| digest_of(&reply)).flatten()
}

/// The bytes a request carries, and how it tells of them.
pub struct Body<'a> {
    pub bytes: &'a Blob,
    /// Hears how many of the bytes have left.
    pub progress: Box<dyn Fn(f64)>,
    /// Holds the request so that it can be aborted.
    pub slot: &'a Slot,
    /// The request is given up after this long without any sign of life.
    pub stall_ms: f64,
}

/// Creates an upload of `size` bytes described by `metadata` (an
/// `Upload-Metadata` value), with its first bytes when `first` says
/// (creation-with-upload: a small file travels in one request). `key` is
/// the Idempotency-Key: the browser itself sends a POST again when the
/// connection it reused dies before the answer, and the server then
/// answers the upload the first one made.
pub async fn create(
    size: u64,
    metadata: String,
    key: &str,
    first: Option<Body<'_>>,
    cancelled: &Cell<bool>,
) -> Result<Created, Failure> {
    let mut headers = rules::create_headers(size, metadata, key);
    let reply = match first {
        Some(body) => {
            headers.push((
                "content-type",
                crate::protocol::OFFSET_OCTET_STREAM.to_string(),
            ));
            watched("POST", &rules::create_url(), &headers, body, cancelled).await?
        }
        None => send("POST", &rules::create_url(), &headers, None, None, None)
            .await
            .map_err(|e| network(e, cancelled))?,
    };
    created(&reply)
}

/// What the answer to a creation request says of the new upload.
fn created(reply: &Reply) -> Result<Created, Failure> {
    if reply.status != 201 {
        return Err(refused(reply));
    }
    let url = reply
        .header("location")
        .map(|l| rules::upload_path(&l))
        .ok_or_else(|| Failure::Retry("No Location in the answer".into()))?;
    Ok(Created {
        url,
        offset: rules::parse_offset(reply.header(header::UPLOAD_OFFSET).as_deref()),
        sha256: digest_of(reply),
    })
}

/// Creates a part of `size` bytes of a file sent in parts; answers its
/// path.
pub async fn create_part(size: u64, key: &str, cancelled: &Cell<bool>) -> Result<String, Failure> {
    let headers = rules::part_headers(size, key);
    let reply = send("POST", &rules::create_url(), &headers, None, None, None)
        .await
        .map_err(|e| network(e, cancelled))?;
    created(&reply).map(|c| c.url)
}

/// Joins finished parts (their paths, in order) into the file `metadata`
/// describes: the server copies them into one upload, and answers its
/// path and SHA-256.
pub async fn join(parts: &[String], metadata: String, key: &str) -> Result<Created, Failure> {
    let headers = rules::final_headers(parts, metadata, key);
    let reply = send("POST", &rules::create_url(), &headers, None, None, None)
        .await
        .map_err(|_| Failure::Retry("The connection failed".into()))?;
    created(&reply)
}

/// Appends `body` at `offset`.
pub async fn patch(
    url: &str,
    offset: u64,
    body: Body<'_>,
    cancelled: &Cell<bool>,
) -> Result<Appended, Failure> {
    let headers = rules::patch_headers(offset);
    let reply = watched("PATCH", url, &headers, body, cancelled).await?;
    if reply.status != 204 {
        return Err(refused(&reply));
    }
    Ok(Appended {
        offset: offset_of(&reply)?,
        sha256: digest_of(&reply),
    })
}

/// Sends a request with a body under a watchdog that gives it up when
/// nothing moves for the body's `stall_ms`: no byte leaves and no answer
/// comes (a proxy or a network that swallows a connection without closing
/// it).
async fn watched(
    method: &str,
    url: &str,
    headers: &rules::Headers,
    body: Body<'_>,
    cancelled: &Cell<bool>,
) -> Result<Reply, Failure> {
    let Body {
        bytes,
        progress,
        slot,
        stall_ms,
    } = body;
    // Made only once a connection is free for it (its watchdog would
    // otherwise count the wait).
    let Some(_lane) = super::lanes::take(cancelled).await else {
        return Err(Failure::Cancelled);
    };
    let last = Rc::new(Cell::new(js_sys::Date::now()));
    let stalled = Rc::new(Cell::new(false));
    let done = Rc::new(Cell::new(false));
    let progress: Box<dyn Fn(f64)> = {
        let last = last.clone();
        Box::new(move |loaded| {
            last.set(js_sys::Date::now());
            progress(loaded)
        })
    };
    {
        let (last, stalled, done, slot) =
            (last.clone(), stalled.clone(), done.clone(), slot.clone());
        spawn_local(async move {
            while !done.get() {
                sleep(1000).await;
                if !done.get() && rules::is_stalled(js_sys::Date::now(), last.get(), stall_ms) {
                    stalled.set(true);
                    if let Some(xhr) = slot.borrow().as_ref() {
                        let _ = xhr.abort();
                    }
                    break;
                }
            }
        });
    }
    let sent = send(
        method,
        url,
        headers,
        Some(bytes),
        Some(progress),
        Some(slot),
    )
    .await;
    done.set(true);
    if stalled.get() && !cancelled.get() {
        return Err(Failure::Retry(format!(
            "Nothing moved for {} s: trying again from where the server is",
            stall_ms / 1000.0
        )));
    }
    sent.map_err(|e| network(e, cancelled))
}

/// Deletes the upload at `url`, whatever becomes of the request.
pub async fn delete(url: &str) {
    let _ = send("DELETE", url, &rules::headers(), None, None, None).await;
}

/// Deletes uploads one after the other (an empty URL, a part not
/// created, is none).
pub async fn delete_each(urls: Vec<String>) {
    for url in urls.iter().filter(|u| !u.is_empty()) {
        delete(url).await;
    }
}
