//! Every file verified. A file small enough for instant upload is hashed
//! before it is sent (`transfer`); a larger one is hashed while it is sent
//! (`start`, in a worker: `sha`), and once its last byte is on the server
//! its end waits for that hash (`settle`) to compare it with the server's.
//!
//! What this module must not know: how bytes travel, or what a mismatch
//! means for the row.

use super::sha;
use super::xhr::sleep;
use crate::page::state::Row;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use web_sys::File;

thread_local! {
    // The rows being hashed beside their upload, with the flag that stops
    // the hash: at most one per row of the page.
    static RUNNING: RefCell<HashMap<u32, Rc<Cell<bool>>>> = RefCell::new(HashMap::new());
}

/// Starts hashing the row's file beside its upload, unless its hash is
/// known or already on its way. `row.hashed` follows the hash.
pub fn start(row: &Row, file: &File) {
    if row.local_sha.get_untracked().is_some() || running(row.id) {
        return;
    }
    let stop = Rc::new(Cell::new(false));
    RUNNING.with(|r| r.borrow_mut().insert(row.id, stop.clone()));
    let (row, file) = (row.clone(), file.clone());
    spawn_local(async move {
        let sha = hash(&row, &file, stop.clone()).await;
        RUNNING.with(|r| r.borrow_mut().remove(&row.id));
        if !stop.get() {
            let _ = row.local_sha.try_set(sha);
        }
    });
}

/// The SHA-256 of the row's file, `row.hashed` following it; `None` when
/// it cannot be read or `stop` says to give up.
pub async fn hash(row: &Row, file: &File, stop: Rc<Cell<bool>>) -> Option<String> {
    let hashed = row.hashed;
    let progress = move |n| {
        let _ = hashed.try_set(n);
    };
    sha::sha256_of(file, row.file.size, progress, stop).await
}

/// Whether the row's file is being hashed beside its upload.
pub fn running(id: u32) -> bool {
    RUNNING.with(|r| r.borrow().contains_key(&id))
}

/// Stops hashing the row's file (it was cancelled).
pub fn stop(id: u32) {
    if let Some(flag) = RUNNING.with(|r| r.borrow_mut().remove(&id)) {
        flag.set(true);
    }
}

/// The row's own SHA-256, once any hash on its way has ended; `None` when
/// it could not be computed.
pub async fn settle(row: &Row) -> Option<String> {
    while running(row.id) {
        sleep(100).await;
    }
    row.local_sha.get_untracked()
}
