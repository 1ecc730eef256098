//! Thumbnails for the rows on screen. A batch may hold thousands of
//! images; decoding them all would hold the page up and their pictures
//! would fill its memory. So a row's thumbnail is made when the row is
//! first drawn, and only the `KEPT` most recent are kept: a row scrolled
//! far away loses its picture and gets it again when drawn again.
//!
//! What this module must not know: how rows are drawn or sent.

use super::queue::file_of;
use super::thumb;
use crate::page::state::Uploads;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};

/// Most thumbnails kept at once (a few screens' worth).
const KEPT: usize = 300;

thread_local! {
    // Rows with a thumbnail, oldest first, and the ones being made.
    static SHOWN: RefCell<VecDeque<RwSignal<Option<String>>>> = const { RefCell::new(VecDeque::new()) };
    static MAKING: RefCell<HashSet<u32>> = RefCell::new(HashSet::new());
}

/// Makes the thumbnail of row `id` (an image without one yet), now that it
/// is drawn.
pub fn want_thumbnail(m: Uploads, id: u32) {
    let Some(row) = m.row(id) else { return };
    if row.thumb.get_untracked().is_some() || !row.file.mime.starts_with("image/") {
        return;
    }
    let Some(file) = file_of(id) else { return };
    if !MAKING.with(|making| making.borrow_mut().insert(id)) {
        return;
    }
    let px = m.settings.get_untracked().thumb_px;
    spawn_local(async move {
        let made = thumb::thumbnail(&file, px).await;
        MAKING.with(|making| making.borrow_mut().remove(&id));
        let Some(url) = made else { return };
        // The row may have left the batch (its signal is then gone).
        if row.thumb.try_set(Some(url)).is_some() {
            return;
        }
        let dropped = SHOWN.with(|shown| {
            let mut shown = shown.borrow_mut();
            shown.push_back(row.thumb);
            (shown.len() > KEPT).then(|| shown.pop_front()).flatten()
        });
        if let Some(old) = dropped {
            let _ = old.try_set(None);
        }
    });
}
