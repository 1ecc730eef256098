//! The uploader as a widget on another site's page (`public/embed.js`):
//! the options read and the server chosen (`prepare`), the same start-up
//! as Ferry's page with the host page's settings (`start`), the DOM events
//! the host page hears, drawn from the page's state as it changes
//! (`watch`), and the element's methods (`call`, `list`).
//!
//! What this module must not know: the components (the crate's root mounts
//! them), or how files are sent.

use super::queue;
use super::start::init_embedded;
use super::xhr::sleep;
use crate::api::remote::{self, Remote};
use crate::page::embed::{batch_settled, event, EmbedOptions, FileDetail, Progress};
use crate::page::state::{Row, Status, Uploads};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Serialize;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use wasm_bindgen::JsValue;
use web_sys::{CustomEvent, CustomEventInit, Element};

/// How long a finished file's event waits for the server's SHA-256 (read
/// from the refreshed list of uploads) before it goes without it.
const SHA_WAIT_MS: i32 = 5_000;

/// One widget on the page: its state and what keeps it mounted.
struct Widget {
    model: Uploads,
    mounted: Option<Box<dyn Any>>,
}

thread_local! {
    // The widgets on this page, by the ID their element holds. A page is
    // one thread: nobody else's.
    static WIDGETS: RefCell<HashMap<u32, Widget>> = RefCell::new(HashMap::new());
    static NEXT: Cell<u32> = const { Cell::new(1) };
}

/// Reads the options and points this page's requests at their server;
/// answers the widget's ID.
pub fn prepare(options: &str) -> Result<(u32, EmbedOptions), String> {
    let options = EmbedOptions::parse(options).map_err(|e| e.0)?;
    let wanted = Remote {
        base: options.server.clone(),
        token: options.token.clone(),
    };
    if let Err(current) = remote::set(wanted) {
        return Err(format!(
            "This page already talks to {} as another owner or server; one page, one Ferry server and owner.",
            current.base
        ));
    }
    if leptos::server_fn::client::get_server_url().is_empty() {
        // Once per page (the server functions' root is a `&'static str`).
        let root: &'static str = Box::leak(options.server.clone().into_boxed_str());
        let _ = leptos::server_fn::client::try_set_server_url(root);
    }
    let id = NEXT.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    Ok((id, options))
}

/// Makes the widget's state and starts it, inside its mounted view: the
/// state and what watches it live as long as the view, and go with it.
pub fn start(id: u32, options: EmbedOptions, host: Element) -> Uploads {
    let model = Uploads::new(Vec::new());
    model.hydrated.set(true);
    WIDGETS.with(|w| {
        w.borrow_mut().insert(
            id,
            Widget {
                model,
                mounted: None,
            },
        )
    });
    let autostart = options.autostarts();
    init_embedded(model, options);
    watch(model, host, autostart);
    model
}

/// Keeps what holds the widget mounted, until `unmount`.
pub fn keep(id: u32, mounted: Box<dyn Any>) {
    WIDGETS.with(|w| {
        if let Some(widget) = w.borrow_mut().get_mut(&id) {
            widget.mounted = Some(mounted);
        }
    });
}

/// Takes the widget off the page; its uploads stop where they are, and the
/// server keeps what it has.
pub fn unmount(id: u32) {
    let widget = WIDGETS.with(|w| w.borrow_mut().remove(&id));
    if let Some(widget) = widget {
        queue::pause_all(widget.model);
        // Let go of the files, then of the state (which ends its loops).
        let ids: Vec<u32> = widget
            .model
            .rows
            .with_untracked(|rows| rows.iter().map(|r| r.id).collect());
        for id in ids {
            queue::release(id);
        }
        drop(widget.mounted);
    }
}

fn model(id: u32) -> Result<Uploads, String> {
    WIDGETS
        .with(|w| w.borrow().get(&id).map(|w| w.model))
        .ok_or_else(|| format!("No widget {id} on this page"))
}

/// One of the element's methods: `start`, `pause`, `resume`, `cancel`.
pub fn call(id: u32, method: &str) -> Result<(), String> {
    let m = model(id)?;
    match method {
        "start" => queue::start(m),
        "pause" => queue::pause_all(m),
        // Back in line; a batch never started still waits for start().
        "resume" => queue::resume_all(m),
        // The files on their way, not those already on the server (the
        // host page may have their URLs in its form).
        "cancel" => {
            // Files already on the server stay there; the rest leave the
            // batch at once (one change to the list, however many).
            queue::cancel_unfinished(m);
        }
        other => return Err(format!("The widget has no method {other:?}")),
    }
    Ok(())
}

/// The element's `list()`: every file of the batch, as the events tell it.
pub fn list(id: u32) -> Result<JsValue, String> {
    let m = model(id)?;
    let files: Vec<FileDetail> = m
        .rows
        .with_untracked(|rows| rows.iter().map(detail).collect());
    Ok(to_js(&files))
}

fn detail(row: &Row) -> FileDetail {
    FileDetail::of(row, remote::url)
}

fn to_js(value: &impl Serialize) -> JsValue {
    serde_json::to_string(value)
        .ok()
        .and_then(|json| js_sys::JSON::parse(&json).ok())
        .unwrap_or(JsValue::NULL)
}

/// Sends `name` with `detail` from the widget's element; it bubbles and
/// crosses shadow roots, like the host page's own events.
fn dispatch(host: &Element, name: &str, detail: &impl Serialize) {
    let init = CustomEventInit::new();
    init.set_bubbles(true);
    init.set_composed(true);
    init.set_detail(&to_js(detail));
    if let Ok(e) = CustomEvent::new_with_event_init_dict(name, &init) {
        let _ = host.dispatch_event(&e);
    }
}

/// Dispatches the events as the state changes: a file added, its
/// progress, its end (complete or error), and the batch's end once every
/// file's end was told. With `autostart` off, each new batch waits for
/// `start()` again.
fn watch(m: Uploads, host: Element, autostart: bool) {
    // Each row's watchers belong to the widget, not to the Effect that
    // noticed the row: they must outlive its next run.
    let root = Owner::current();
    let told = RwSignal::new(HashSet::<u32>::new());
    let seen = Rc::new(RefCell::new(HashSet::new()));
    {
        let host = host.clone();
        Effect::new(move |_| {
            let rows = m.rows.get();
            let mut seen = seen.borrow_mut();
            for row in rows {
                if seen.insert(row.id) {
                    dispatch(&host, event::FILE_ADDED, &detail(&row));
                    let (host, row) = (host.clone(), row.clone());
                    match &root {
                        Some(root) => root.with(|| watch_row(m, host, row, told)),
                        None => watch_row(m, host, row, told),
                    }
                }
            }
        });
    }
    let announced = Rc::new(Cell::new(false));
    // Judged again when the rows or the ends told change, not at every
    // status of every row (ten thousand rows would make that a freeze): a
    // row's end is told after its status reaches it, and leaving an end
    // un-tells it.
    Effect::new(move |_| {
        let settled = told.with(|t| {
            m.rows.with(|rows| {
                rows.iter().all(|r| t.contains(&r.id))
                    && batch_settled(rows.iter().map(|r| r.status.get_untracked()))
            })
        });
        if settled && !announced.replace(true) {
            #[derive(Serialize)]
            struct AllDone {
                files: Vec<FileDetail>,
            }
            let files = m
                .rows
                .with_untracked(|rows| rows.iter().map(detail).collect());
            dispatch(&host, event::ALL_DONE, &AllDone { files });
            if !autostart {
                m.held.set(true);
            }
        } else if !settled {
            announced.set(false);
        }
    });
}

/// A batch's bytes sent and in all, and when they were summed.
type Summed = (f64, (u64, u64));

thread_local! {
    // Each widget's batch totals, by its rows.
    static TOTALS: RefCell<HashMap<RwSignal<Vec<Row>>, Summed>> = RefCell::new(HashMap::new());
}

/// The batch's bytes sent and in all, summed at most every 100 ms (or now,
/// when `afresh`): each row's progress event carries them, and summing ten
/// thousand rows for each would hold the page up.
fn batch_totals(m: Uploads, afresh: bool) -> (u64, u64) {
    let now = js_sys::Date::now();
    let fresh = TOTALS.with(|t| {
        t.borrow()
            .get(&m.rows)
            .filter(|(at, _)| !afresh && now - at < 100.0)
            .map(|(_, totals)| *totals)
    });
    fresh.unwrap_or_else(|| {
        let totals = untrack(|| m.totals());
        TOTALS.with(|t| t.borrow_mut().insert(m.rows, (now, totals)));
        totals
    })
}

fn watch_row(m: Uploads, host: Element, row: Row, told: RwSignal<HashSet<u32>>) {
    {
        let (host, row) = (host.clone(), row.clone());
        Effect::new(move |_| {
            let sent = row.sent.get();
            // A file's last bytes get the batch summed afresh: the last
            // progress of a batch says it is all there.
            let (batch_sent, batch_total) = batch_totals(m, sent >= row.file.size);
            let progress = Progress {
                id: row.id,
                name: row.file.name.clone(),
                bytes_sent: sent.min(row.file.size),
                bytes_total: row.file.size,
                batch_sent,
                batch_total,
            };
            dispatch(&host, event::PROGRESS, &progress);
        });
    }
    // Each end is told once per time the file reaches it.
    let tell = {
        let (host, row) = (host.clone(), row.clone());
        move |name: &str| {
            dispatch(&host, name, &detail(&row));
            told.update(|t| {
                t.insert(row.id);
            });
        }
    };
    let is_told = move || told.with_untracked(|t| t.contains(&row.id));
    Effect::new(move |_| {
        let status = row.status.get();
        let sha_known = row.server_sha.with(Option::is_some);
        match status {
            _ if is_told()
                && !matches!(
                    status,
                    Status::Done | Status::AlreadyUploaded | Status::Failed | Status::Refused
                ) =>
            {
                // On its way again (retried, resumed): its next end is news.
                told.update(|t| {
                    t.remove(&row.id);
                });
            }
            Status::Done | Status::AlreadyUploaded if !is_told() => {
                if sha_known {
                    tell(event::FILE_COMPLETE);
                } else {
                    // The SHA-256 comes with the refreshed list; if it
                    // does not, the file is still complete.
                    let (row, tell) = (row.clone(), tell.clone());
                    spawn_local(async move {
                        sleep(SHA_WAIT_MS).await;
                        if m.alive() && !is_told() && row.status.get_untracked().is_finished() {
                            tell(event::FILE_COMPLETE);
                        }
                    });
                }
            }
            Status::Failed | Status::Refused if !is_told() => tell(event::ERROR),
            _ => {}
        }
    });
}
