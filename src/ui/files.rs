//! The files of this browser: the current batch (its total, a row per file
//! with progress, speed, SHA-256, retry and cancel) and the uploads a
//! previous visit left unfinished.
//!
//! A batch may hold ten thousand files, so only the rows in view (and a
//! few around them) are drawn, in a box of their own that scrolls; the
//! rest is empty space of the same height. The total sums every row,
//! four times a second rather than at each byte.
//!
//! What this module must not know: how the numbers it shows are produced.

use super::actions;
use super::virtual_rows::VirtualRows;
use crate::page::i18n::{
    format_size, format_speed, format_time_left, percent, row_percent, t, Msg,
};
use crate::page::state::{Row, Status, Uploads};
use leptos::prelude::*;

/// How often the total is summed again, in milliseconds.
const TOTAL_EVERY_MS: u64 = 250;

/// The current batch: total progress, cancel-all and a row per file.
#[component]
pub fn Batch() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    // Summing ten thousand rows at each byte would hold the page up: the
    // sums follow a clock (and the list itself), not every row.
    let tick = RwSignal::new(0u64);
    // In an effect: only a browser has timers (the server's render must
    // not start one).
    Effect::new(move |_| {
        if let Ok(clock) = set_interval_with_handle(
            move || tick.update(|t| *t += 1),
            std::time::Duration::from_millis(TOTAL_EVERY_MS),
        ) {
            on_cleanup(move || clock.clear());
        }
    });
    let totals = Memo::new(move |_| {
        tick.track();
        model.rows.track();
        untrack(|| model.totals())
    });
    let speed = Memo::new(move |_| {
        tick.track();
        model.rows.with(|rows| {
            rows.iter()
                .filter(|r| r.status.get_untracked() == Status::Uploading)
                .map(|r| r.speed.get_untracked())
                .sum::<f64>()
        })
    });
    let has_rows = move || model.rows.with(|r| !r.is_empty());
    let rows = VirtualRows::new(model);
    view! {
        <Show when=has_rows>
            <div class="total" data-testid="total">
                <div class="total-line">
                    <strong>{move || t(lang.get(), Msg::Total)}</strong>
                    <span data-testid="total-percent">{move || {
                        let (done, all) = totals.get();
                        format!("{}%", percent(done, all))
                    }}</span>
                    <span>{move || {
                        let (done, all) = totals.get();
                        let l = lang.get();
                        format!("{} / {}", format_size(l, done), format_size(l, all))
                    }}</span>
                    <span>{move || {
                        let s = speed.get();
                        let (done, all) = totals.get();
                        if s > 0.0 && done < all {
                            let l = lang.get();
                            format!("{} · {}", format_speed(l, s), format_time_left(l, (all - done) as f64 / s))
                        } else {
                            String::new()
                        }
                    }}</span>
                    <button type="button" class="secondary" data-testid="pause-all"
                        on:click=move |_| actions::pause_all(model)>
                        {move || t(lang.get(), Msg::PauseAll)}
                    </button>
                    <button type="button" class="secondary" data-testid="resume-all"
                        on:click=move |_| actions::resume_all(model)>
                        {move || t(lang.get(), Msg::ResumeAll)}
                    </button>
                    <button type="button" class="secondary" data-testid="cancel-all"
                        on:click=move |_| actions::cancel_all(model)>
                        {move || t(lang.get(), Msg::CancelAll)}
                    </button>
                </div>
                <progress
                    id="total-progress"
                    aria-label=move || t(lang.get(), Msg::Total)
                    max=move || totals.get().1.max(1) as f64
                    value=move || totals.get().0 as f64
                ></progress>
            </div>
        </Show>
        <div class="files-view" node_ref=rows.scroller on:scroll=move |_| rows.measure()>
            <ul
                class="files"
                aria-label="files"
                style:padding-top=move || format!("{}px", rows.space_above())
                style:padding-bottom=move || format!("{}px", rows.space_below())
            >
                <For each=move || rows.drawn() key=|(at, row)| (*at, row.id) let:drawn>
                    <FileRow row=drawn.1 position=drawn.0/>
                </For>
            </ul>
        </div>
    }
}

/// One file of the batch, `position` (from 0) among them.
#[component]
pub fn FileRow(row: Row, position: usize) -> impl IntoView {
    let model = expect_context::<Uploads>();
    // Drawn now: its thumbnail is wanted now.
    if row.thumb.get_untracked().is_none() {
        actions::want_thumbnail(model, row.id);
    }
    let set_size = move || model.rows.with(Vec::len);
    let lang = model.lang;
    let size = row.file.size;
    let id = row.id;
    let name = row.file.name.clone();
    let folder = crate::protocol::model::folder_of(&row.file.path).to_string();
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.chars().take(4).collect::<String>().to_uppercase())
        .unwrap_or_default();
    let Row {
        status,
        sent,
        speed,
        hashed,
        thumb,
        message,
        url,
        local_sha,
        server_sha,
        ..
    } = row;
    let shown = move || {
        if status.get().is_finished() {
            size
        } else {
            sent.get().min(size)
        }
    };
    let thumb_px = move || format!("{}px", model.settings.get().thumb_px);
    let status_text = move || {
        let l = lang.get();
        let s = status.get();
        let text = t(
            l,
            match s {
                Status::Checking => Msg::Checking,
                Status::Waiting => Msg::Waiting,
                Status::Hashing => Msg::Hashing,
                Status::Uploading => Msg::Uploading,
                Status::Retrying => Msg::Retrying,
                Status::Verifying => Msg::Verifying,
                Status::Done => Msg::Done,
                Status::AlreadyUploaded => Msg::AlreadyUploaded,
                Status::Failed => Msg::Failed,
                Status::Paused => Msg::Paused,
                Status::Refused => Msg::Refused,
            },
        );
        if matches!(s, Status::Hashing | Status::Verifying) {
            format!("{text} {}%", percent(hashed.get(), size))
        } else {
            text.to_string()
        }
    };
    view! {
        <li
            class="file"
            data-testid="file-row"
            aria-setsize=set_size
            aria-posinset=position + 1
            data-name=name.clone()
            data-status=move || status.get().as_str()
            data-url=move || url.get().unwrap_or_default()
        >
            <div class="thumb" style:width=thumb_px style:height=thumb_px>
                {move || match thumb.get() {
                    Some(src) => view! { <img src=src alt="" data-testid="thumbnail"/> }.into_any(),
                    None => view! { <span class="ext" aria-hidden="true">{extension.clone()}</span> }.into_any(),
                }}
            </div>
            <div class="info">
                <div class="name" title=if row.file.path.is_empty() { name.clone() } else { row.file.path.clone() }>
                    <Show when={let f = folder.clone(); move || !f.is_empty()}>
                        <span class="folder" data-testid="folder">{folder.clone()} "/"</span>
                    </Show>
                    {name.clone()}
                </div>
                <div class="meta">
                    <span class="status">{status_text}</span>
                    <span data-testid="percent">{move || {
                        let on_server = matches!(status.get(), Status::Done | Status::AlreadyUploaded);
                        format!("{}%", row_percent(shown(), size, on_server))
                    }}</span>
                    <span>{move || {
                        let l = lang.get();
                        format!("{} / {}", format_size(l, shown()), format_size(l, size))
                    }}</span>
                    <span>{move || {
                        let s = speed.get();
                        if status.get() == Status::Uploading && s > 0.0 {
                            let l = lang.get();
                            let left = size.saturating_sub(sent.get()) as f64 / s;
                            format!("{} · {}", format_speed(l, s), format_time_left(l, left))
                        } else {
                            String::new()
                        }
                    }}</span>
                </div>
                <progress
                    max=size.max(1) as f64
                    value=move || if size == 0 { if status.get().is_finished() { 1.0 } else { 0.0 } } else { shown() as f64 }
                    aria-label=name.clone()
                ></progress>
                // One line, whatever it says, so that every row is as tall
                // as the others (the list draws only those in view, by
                // height): what went wrong, or else the SHA-256.
                <div class="detail">
                    {move || match message.get() {
                        Some(m) => {
                            let full = m.clone();
                            view! { <p class="message" data-testid="message" title=full>{m}</p> }.into_any()
                        }
                        None => server_sha.get().map(|sha| {
                            let verified = local_sha.get().as_deref() == Some(sha.as_str());
                            let full = sha.clone();
                            view! {
                                <p class="sha" data-testid="sha256" title=full>
                                    {verified.then(|| view! { <span class="verified" data-testid="verified">"✓ " {move || t(lang.get(), Msg::Verified)} " · "</span> })}
                                    "SHA-256 " <code>{sha}</code>
                                </p>
                            }
                        }).into_any(),
                    }}
                </div>
            </div>
            <div class="actions">
                <Show when=move || status.get().can_pause()>
                    <button type="button" class="secondary" data-testid="pause"
                        on:click=move |_| actions::pause(model, id)>
                        {move || t(lang.get(), Msg::Pause)}
                    </button>
                </Show>
                <Show when=move || status.get() == Status::Paused>
                    <button type="button" class="secondary" data-testid="resume"
                        on:click=move |_| actions::resume(model, id)>
                        {move || t(lang.get(), Msg::Resume)}
                    </button>
                </Show>
                <Show when=move || status.get() == Status::Failed>
                    <button type="button" class="secondary" data-testid="retry"
                        on:click=move |_| actions::retry(model, id)>
                        {move || t(lang.get(), Msg::Retry)}
                    </button>
                </Show>
                <button type="button" class="secondary" data-testid="cancel"
                    on:click=move |_| actions::cancel(model, id)>
                    // On a finished file the button removes the server's
                    // copy, and says so.
                    {move || t(lang.get(), if status.get().is_on_server() { Msg::RemoveFromServer } else { Msg::Cancel })}
                </button>
            </div>
        </li>
    }
}

/// Uploads a previous visit left unfinished.
#[component]
pub fn InterruptedList() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    view! {
        <Show when=move || model.interrupted.with(|l| !l.is_empty())>
            <div class="interrupted" data-testid="interrupted">
                <h2>{move || t(lang.get(), Msg::Interrupted)}</h2>
                <p class="hint">{move || t(lang.get(), Msg::InterruptedHint)}</p>
                <ul>
                    <For each=move || model.interrupted.get() key=|i| i.key.clone() let:item>
                        <li data-testid="interrupted-item" data-name=item.name.clone()>
                            <span class="name">{item.name.clone()}</span>
                            " — "
                            {format!("{}%", percent(item.offset, item.size))}
                            " · "
                            {move || format!("{} / {}", format_size(lang.get(), item.offset), format_size(lang.get(), item.size))}
                            {item.by_handle.then(|| {
                                let key = item.key.clone();
                                view! {
                                    " "
                                    <button type="button" class="secondary" data-testid="interrupted-resume"
                                        on:click=move |_| actions::resume_interrupted(model, key.clone())>
                                        {move || t(lang.get(), Msg::ResumeHere)}
                                    </button>
                                }
                            })}
                        </li>
                    </For>
                </ul>
            </div>
        </Show>
    }
}
