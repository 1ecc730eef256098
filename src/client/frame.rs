//! Progress drawn at most once per frame. A transfer hears of its bytes far
//! more often than a screen refreshes, and with thousands of files every
//! write to a row wakes the totals that sum them all; so progress is kept
//! here, one pending update per row (the latest wins), and applied
//! together when the browser next draws, or a quarter of a second later
//! at the latest (a hidden tab draws nothing).
//!
//! What this module must not know: what an update does.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

type Update = Box<dyn FnOnce()>;

thread_local! {
    // At most one per row: bounded by the rows of the page.
    static PENDING: RefCell<HashMap<u32, Update>> = RefCell::new(HashMap::new());
    static SCHEDULED: Cell<bool> = const { Cell::new(false) };
}

/// Applies `update` for row `id` when the page next draws, instead of any
/// update still pending for it.
pub fn later(id: u32, update: impl FnOnce() + 'static) {
    PENDING.with(|p| p.borrow_mut().insert(id, Box::new(update)));
    if !SCHEDULED.replace(true) {
        schedule();
    }
}

/// Drops the update pending for row `id`: what the caller writes now is
/// newer than it.
pub fn drop_pending(id: u32) {
    PENDING.with(|p| p.borrow_mut().remove(&id));
}

fn schedule() {
    let Some(window) = web_sys::window() else {
        return;
    };
    // The next frame, and a quarter of a second at the latest: a tab
    // hidden before its frame came draws none. Whichever comes first
    // applies the updates; the other finds them applied.
    let timer = window
        .set_timeout_with_callback_and_timeout_and_arguments_0(
            Closure::once_into_js(flush).unchecked_ref(),
            250,
        )
        .is_ok();
    let hidden = window.document().is_some_and(|d| d.hidden());
    let frame = !hidden
        && window
            .request_animation_frame(Closure::once_into_js(flush).unchecked_ref())
            .is_ok();
    if !timer && !frame {
        SCHEDULED.set(false);
    }
}

fn flush() {
    SCHEDULED.set(false);
    let updates = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for update in updates.into_values() {
        update();
    }
}
