//! The list of this owner's finished uploads: reloading it (after a
//! transfer, a live event, or now and then), showing more of it, deleting
//! from it. Both the queue and the live events use it, which is why it is
//! neither of them.
//!
//! What this module must not know: transfers, the queue or live events.

use super::xhr::sleep;
use crate::api::{delete_upload, list_uploads, LIST_PAGE, MAX_LIST_PAGE};
use crate::page::state::Uploads;
use crate::protocol::model::UploadSummary;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

thread_local! {
    // The uploaders (by their list) with a reload already on its way.
    static DUE: RefCell<HashSet<RwSignal<Vec<UploadSummary>>>> = RefCell::new(HashSet::new());
    // When each uploader last asked for a reload.
    static LAST: RefCell<HashMap<RwSignal<Vec<UploadSummary>>, f64>> = RefCell::new(HashMap::new());
}

/// Reloads the list soon: files finishing within a quarter of a second
/// share one reload, and while files keep finishing, a second, so a batch
/// of thousands of small files does not ask for (and draw) the list
/// thousands of times.
pub fn refresh_soon(m: Uploads) {
    if !DUE.with(|due| due.borrow_mut().insert(m.uploaded)) {
        return;
    }
    let now = js_sys::Date::now();
    let busy = LAST.with(|last| {
        let mut last = last.borrow_mut();
        let busy = last.get(&m.uploaded).is_some_and(|at| now - at < 2000.0);
        last.insert(m.uploaded, now);
        busy
    });
    spawn_local(async move {
        sleep(if busy { 1000 } else { 250 }).await;
        DUE.with(|due| due.borrow_mut().remove(&m.uploaded));
        if m.alive() {
            refresh_uploaded(m).await;
        }
    });
}

/// Reloads the list of this owner's uploads, as many as are shown.
pub async fn refresh_uploaded(m: Uploads) {
    let shown = m.uploaded.with_untracked(Vec::len) as u32;
    let limit = shown.clamp(LIST_PAGE, MAX_LIST_PAGE);
    if let Ok(page) = list_uploads(None, Some(limit)).await {
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
        if let Ok(page) = list_uploads(Some(after), None).await {
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

/// Deletes a finished upload from the list.
pub fn delete_uploaded(m: Uploads, id: String) {
    spawn_local(async move {
        if delete_upload(id.clone()).await.is_ok() {
            m.uploaded.update(|list| list.retain(|u| u.id != id));
        }
        refresh_uploaded(m).await;
    });
}
