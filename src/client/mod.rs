//! The browser half of uploading (hydrate only): a tus 1.0 client that
//! slices files with `Blob.slice` and sends each chunk with
//! `XMLHttpRequest` (so progress is reported while bytes leave) or over a
//! WebSocket, retries with back-off, resumes from what the server has,
//! hashes for instant upload and makes thumbnails. It writes the page's
//! state (`crate::page::state`); the components only show it.
//!
//! Its modules, from the wire up: `xhr` (one request), `tus` (the
//! protocol's steps, signal-free), `ws` (bytes over a WebSocket), `sha`,
//! `thumb`, `storage` (`localStorage`), `folders` (paths of chosen and
//! dropped folders), `frame` (progress drawn once per frame), `transfer`
//! (one file, its `job` carried from attempt to attempt, `lanes` for
//! its requests, `parts` for a large file sent in parts) with `creating`
//! (uploads created with their first bytes), `sample` (whether a large
//! file is worth hashing before it is sent) and `verify` (its SHA-256
//! beside its upload, compared at the end),
//! `queue` (the batch: pump, retry, back-off), `adding` (files joining
//! it), `gallery` (thumbnails of the rows on screen), `listing` (finished
//! uploads), `live` (events), `start` (what happens once the page is
//! interactive), `embed` (the uploader as a widget on another site's
//! page).
//!
//! What this module must not know: the components (`crate::ui`), which
//! reach it only through `ui::actions` and the functions re-exported here.

mod adding;
mod creating;
pub mod embed;
mod folders;
mod frame;
mod gallery;
mod handles;
mod job;
mod lanes;
mod listing;
mod live;
mod parts;
mod queue;
mod sample;
mod sha;
mod start;
mod storage;
mod thumb;
mod transfer;
mod tus;
mod verify;
mod ws;
mod xhr;

pub use adding::{add_from_drop, add_from_input, choose_files, resume_interrupted};
pub use gallery::want_thumbnail;
pub use listing::{delete_uploaded, load_more};
pub use queue::{cancel, cancel_all, pause, pause_all, resume, resume_all, retry};
pub use start::init;
pub use storage::{save_lang, save_settings};
