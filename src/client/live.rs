//! Live events on the page: an `EventSource` on `/events`, and when that
//! stream cannot be opened, long polling on `/events/poll`. Each event
//! updates the activity view; finished and removed uploads refresh the
//! list of uploaded files.
//!
//! What this module must not know: the queue or transfers of this page
//! (their uploads show up here like anyone else's).

use super::listing::refresh_soon;
use super::xhr::{send, sleep};
use crate::page::state::{Activity, Uploads};
use crate::protocol::events::{EventKind, EventPage, LiveEvent};
use crate::protocol::{events_poll_url, EVENTS};
use leptos::prelude::*;
use leptos::task::spawn_local;
use send_wrapper::SendWrapper;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, EventSourceInit, MessageEvent};

/// Items the activity view keeps.
const KEEP: usize = 50;

/// How often the activity view takes in the events that arrived, in
/// milliseconds: a batch of thousands of small files brings hundreds of
/// events a second, and drawing each one would hold the page up.
const APPLY_EVERY_MS: i32 = 250;

thread_local! {
    // Each uploader's events not yet shown (by its activity view), at most
    // `KEEP`: older ones would be pushed out of the view by these anyway.
    // An uploader is here while a showing is due.
    static PENDING: RefCell<HashMap<RwSignal<Vec<Activity>>, VecDeque<LiveEvent>>> =
        RefCell::new(HashMap::new());
}

/// Takes in an event: shown with the others that arrive within
/// `APPLY_EVERY_MS`.
fn apply(m: Uploads, e: LiveEvent) {
    let due = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let due = p.contains_key(&m.activity);
        let events = p.entry(m.activity).or_default();
        events.push_back(e);
        if events.len() > KEEP {
            events.pop_front();
        }
        due
    });
    if !due {
        spawn_local(async move {
            sleep(APPLY_EVERY_MS).await;
            let events = PENDING.with(|p| p.borrow_mut().remove(&m.activity));
            if m.alive() {
                show(m, events.unwrap_or_default());
            }
        });
    }
}

/// Shows events in the activity view (newest first, one item per upload),
/// in one change; finished and removed uploads refresh the list.
fn show(m: Uploads, events: VecDeque<LiveEvent>) {
    let mut ended = false;
    m.activity.update(|list| {
        for e in events {
            ended |= !e.kind.is_in_flight();
            if let Some(existing) = list.iter().find(|a| a.id == e.upload.id) {
                if existing.event >= e.id {
                    continue; // already applied
                }
            }
            list.retain(|a| a.id != e.upload.id);
            list.insert(
                0,
                Activity {
                    id: e.upload.id.clone(),
                    name: e.upload.name.clone(),
                    size: e.upload.size,
                    offset: e.upload.offset,
                    kind: e.kind,
                    event: e.id,
                },
            );
        }
        list.truncate(KEEP);
    });
    if ended {
        refresh_soon(m);
    }
}

/// Starts listening; falls back to long polling by itself.
pub fn start(m: Uploads) {
    let remote = crate::api::remote::get();
    if remote.token.is_some() {
        // An EventSource sends no headers: the token goes by polling.
        spawn_local(poll(m, None));
        return;
    }
    let init = EventSourceInit::new();
    init.set_with_credentials(remote.is_remote());
    let Ok(source) = EventSource::new_with_event_source_init_dict(&remote.url(EVENTS), &init)
    else {
        spawn_local(poll(m, None));
        return;
    };
    // An embedded uploader taken off its page closes its stream.
    let closing = SendWrapper::new(source.clone());
    on_cleanup(move || closing.close());
    let opened = Rc::new(Cell::new(false));
    let last = Rc::new(Cell::new(None::<u64>));
    let on_open = {
        let opened = opened.clone();
        Closure::<dyn FnMut()>::new(move || {
            opened.set(true);
            m.live.set("sse");
        })
    };
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    on_open.forget(); // lives as long as the page
    for kind in EventKind::ALL {
        let last = last.clone();
        let on_event = Closure::<dyn FnMut(MessageEvent)>::new(move |msg: MessageEvent| {
            if let Some(e) = msg
                .data()
                .as_string()
                .and_then(|d| serde_json::from_str::<LiveEvent>(&d).ok())
            {
                last.set(Some(e.id));
                apply(m, e);
            }
        });
        let _ = source
            .add_event_listener_with_callback(kind.as_str(), on_event.as_ref().unchecked_ref());
        on_event.forget();
    }
    let on_error = {
        let source = source.clone();
        Closure::<dyn FnMut()>::new(move || {
            // Once open, the browser reconnects by itself (sending
            // Last-Event-ID). A stream that never opened is not coming.
            if !opened.get() || source.ready_state() == EventSource::CLOSED {
                source.close();
                spawn_local(poll(m, last.get()));
            }
        })
    };
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
}

async fn poll(m: Uploads, after: Option<u64>) {
    m.live.set("poll");
    let mut cursor = after;
    while m.alive() {
        // The first look answers at once; later ones wait up to 25 s.
        let url = events_poll_url(cursor, 25);
        let page = match send("GET", &url, &[], None, None, None).await {
            Ok(reply) if reply.status == 200 => reply
                .text()
                .and_then(|t| serde_json::from_str::<EventPage>(&t).ok()),
            _ => None,
        };
        match page {
            Some(page) => {
                cursor = Some(page.cursor);
                for e in page.events {
                    apply(m, e);
                }
            }
            None => sleep(2000).await,
        }
    }
}
