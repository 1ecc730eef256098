//! The batch's rows drawn in part: a batch may hold ten thousand files,
//! so only the rows in a scrolling box's view (and `OVERSCAN` around them)
//! are drawn, and the rest is empty space of the same height. Every row of
//! a batch is as tall as the others (the stylesheet sees to it), so where
//! each is follows from the height of those drawn.
//!
//! What this module must not know: what a row shows.

use crate::page::state::{Row, Uploads};
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;

/// Rows drawn above and below the ones in view.
const OVERSCAN: usize = 12;
/// A row's height with its gap, in CSS pixels, until one is measured.
const ROW_GUESS: f64 = 120.0;

/// Which rows of the batch are drawn: those in the scrolling box's view
/// and `OVERSCAN` around them, judged from the box's scroll position and
/// the height of the rows drawn so far.
#[derive(Clone, Copy)]
pub struct VirtualRows {
    /// The box that scrolls.
    pub scroller: NodeRef<leptos::html::Div>,
    model: Uploads,
    scroll_top: RwSignal<f64>,
    view_height: RwSignal<f64>,
    row_height: RwSignal<f64>,
    range: Memo<(usize, usize)>,
}

impl VirtualRows {
    pub fn new(model: Uploads) -> VirtualRows {
        let scroll_top = RwSignal::new(0.0);
        let view_height = RwSignal::new(800.0);
        let row_height = RwSignal::new(ROW_GUESS);
        let range = Memo::new(move |_| {
            let n = model.rows.with(Vec::len);
            let h = row_height.get().max(16.0);
            let first = ((scroll_top.get() / h) as usize)
                .saturating_sub(OVERSCAN)
                .min(n);
            let count = (view_height.get() / h).ceil() as usize + 2 * OVERSCAN;
            (first, (first + count).min(n))
        });
        let rows = VirtualRows {
            model,
            scroller: NodeRef::new(),
            scroll_top,
            view_height,
            row_height,
            range,
        };
        // Once drawn, the rows say how tall they are.
        Effect::new(move |_| {
            range.track();
            rows.measure();
        });
        // A window made taller shows more rows. In an effect: only a
        // browser has a window to listen to.
        Effect::new(move |_| {
            let listening = window_event_listener(leptos::ev::resize, move |_| rows.measure());
            on_cleanup(move || listening.remove());
        });
        rows
    }

    /// The rows to draw, with their places in the batch.
    pub fn drawn(&self) -> Vec<(usize, Row)> {
        let (first, end) = self.range.get();
        self.model.rows.with(|rows| {
            let end = end.min(rows.len());
            let first = first.min(end);
            rows[first..end]
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, row)| (first + i, row))
                .collect()
        })
    }

    pub fn space_above(&self) -> f64 {
        self.range.get().0 as f64 * self.row_height.get()
    }

    pub fn space_below(&self) -> f64 {
        let n = self.model.rows.with(Vec::len);
        n.saturating_sub(self.range.get().1) as f64 * self.row_height.get()
    }

    /// Reads the box's scroll position and height, and the drawn rows'
    /// mean height (from the first's top to the last's, gaps included).
    pub fn measure(&self) {
        let Some(view) = self.scroller.get_untracked() else {
            return;
        };
        self.scroll_top.set(view.scroll_top() as f64);
        let height = view.client_height() as f64;
        if height > 0.0 && height != self.view_height.get_untracked() {
            self.view_height.set(height);
        }
        let Some(list) = view.first_element_child() else {
            return;
        };
        let (Some(first), Some(last)) = (list.first_element_child(), list.last_element_child())
        else {
            return;
        };
        let count = list.child_element_count();
        let (Ok(first), Ok(last)) = (
            first.dyn_into::<leptos::web_sys::HtmlElement>(),
            last.dyn_into::<leptos::web_sys::HtmlElement>(),
        ) else {
            return;
        };
        if count < 2 {
            return;
        }
        let span = (last.offset_top() - first.offset_top()) as f64;
        let mean = span / (count - 1) as f64;
        if mean >= 16.0 && (mean - self.row_height.get_untracked()).abs() > 0.5 {
            self.row_height.set(mean);
        }
    }
}
