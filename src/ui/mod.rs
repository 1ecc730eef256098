//! The upload page's components. They render on the server (a plain form
//! that works without JavaScript) and hydrate in the browser, where
//! `crate::client` drives the uploads and fills in the state they show.

pub mod i18n;
pub mod state;

use crate::model::UploadSummary;
use i18n::{format_size, format_speed, format_time_left, t, Lang, Msg};
use leptos::prelude::*;
use state::{Row, Settings, Status, Transport, Uploads};

/// What the page's controls do: in the browser, the upload engine; on the
/// server (where no event ever fires) nothing.
mod actions {
    use super::i18n::Lang;
    use super::state::Settings;

    #[cfg(feature = "hydrate")]
    pub use crate::client::{
        add_from_drop, add_from_input, cancel, cancel_all, delete_uploaded, init, load_more, retry,
    };

    #[cfg(feature = "hydrate")]
    pub fn save_settings(s: &Settings) {
        crate::client::store::save_settings(s)
    }

    #[cfg(feature = "hydrate")]
    pub fn save_lang(l: Lang) {
        crate::client::store::save_lang(l)
    }

    #[cfg(not(feature = "hydrate"))]
    mod server_side {
        use super::*;
        use crate::ui::state::Uploads;
        pub fn init(_: Uploads) {}
        pub fn add_from_input(_: Uploads, _: &leptos::ev::Event) {}
        pub fn add_from_drop(_: Uploads, _: &leptos::ev::DragEvent) {}
        pub fn cancel(_: Uploads, _: u32) {}
        pub fn cancel_all(_: Uploads) {}
        pub fn retry(_: Uploads, _: u32) {}
        pub fn delete_uploaded(_: Uploads, _: String) {}
        pub fn load_more(_: Uploads) {}
        pub fn save_settings(_: &Settings) {}
        pub fn save_lang(_: Lang) {}
    }
    #[cfg(not(feature = "hydrate"))]
    pub use server_side::*;
}

/// The upload page.
#[component]
pub fn UploadPage() -> impl IntoView {
    let uploaded = Resource::new(|| (), |_| crate::api::list_uploads(None, None));
    let model = Uploads::new(Vec::new());
    provide_context(model);
    Effect::new(move |_| {
        model.hydrated.set(true);
        actions::init(model);
    });
    let lang = model.lang;
    view! {
        <section class="card" aria-labelledby="send-title">
            <div class="card-head">
                <h1 id="send-title">{move || t(lang.get(), Msg::SendFiles)}</h1>
                <LanguageSwitch/>
            </div>
            <UploadedNotice/>
            <DropForm/>
            <Batch/>
            <InterruptedList/>
            <SettingsPanel/>
            <ServerStatus/>
        </section>
        <ActivityView/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                if let Ok(page) = uploaded.await {
                    model.uploaded.set(page.uploads);
                    model.uploaded_next.set(page.next);
                }
                view! { <UploadedList/> }
            })}
        </Suspense>
        <p class="sr-only" role="status" aria-live="polite" data-testid="announce">
            {move || model.announce.get()}
        </p>
    }
}

#[component]
fn LanguageSwitch() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let on_change = move |ev: leptos::ev::Event| {
        let lang = if event_target_value(&ev) == "zh-CN" {
            Lang::Zh
        } else {
            Lang::En
        };
        model.lang.set(lang);
        actions::save_lang(lang);
    };
    view! {
        <label class="lang">
            <span class="sr-only">{move || t(model.lang.get(), Msg::Language)}</span>
            <select on:change=on_change data-testid="language" prop:value=move || model.lang.get().tag()>
                <option value="en">"English"</option>
                <option value="zh-CN">"简体中文"</option>
            </select>
        </label>
    }
}

/// The form: a real `<form>` that posts the files without JavaScript, and
/// a drop zone that hands them to the engine once the page is hydrated.
#[component]
fn DropForm() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let dragging = RwSignal::new(false);
    let on_change = move |ev: leptos::ev::Event| {
        actions::add_from_input(model, &ev);
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        actions::add_from_drop(model, &ev);
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        // Once hydrated, files start as soon as they are chosen.
        if model.hydrated.get_untracked() {
            ev.prevent_default();
        }
    };
    view! {
        <form
            id="upload-form"
            method="post"
            action="/upload/form"
            enctype="multipart/form-data"
            on:submit=on_submit
        >
            <label
                class="picker"
                class:dragging=move || dragging.get()
                for="file-input"
                data-testid="drop-zone"
                on:dragover=move |ev: leptos::ev::DragEvent| {
                    ev.prevent_default();
                    dragging.set(true);
                }
                on:dragleave=move |_| dragging.set(false)
                on:drop=on_drop
            >
                <span class="picker-title">{move || t(lang.get(), Msg::ChooseFiles)}</span>
                <span class="picker-hint">
                    {move || t(lang.get(), Msg::DropHere)} " · " {move || t(lang.get(), Msg::PickerHint)}
                </span>
            </label>
            <input id="file-input" type="file" name="files" multiple=true on:change=on_change/>
            <button type="submit" class:hidden=move || model.hydrated.get()>
                {move || t(lang.get(), Msg::Upload)}
            </button>
        </form>
    }
}

/// The current batch: total progress, cancel-all and a row per file.
#[component]
fn Batch() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let totals = Memo::new(move |_| model.totals());
    let speed = Memo::new(move |_| {
        model.rows.with(|rows| {
            rows.iter()
                .filter(|r| r.status.get() == Status::Uploading)
                .map(|r| r.speed.get())
                .sum::<f64>()
        })
    });
    let has_rows = move || model.rows.with(|r| !r.is_empty());
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
        <ul class="files" aria-label="files">
            <For each=move || model.rows.get() key=|row| row.id let:row>
                <FileRow row=row/>
            </For>
        </ul>
    }
}

fn percent(done: u64, all: u64) -> u64 {
    // An empty file is wholly done.
    done.saturating_mul(100).checked_div(all).unwrap_or(100)
}

#[component]
fn FileRow(row: Row) -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let size = row.file.size;
    let id = row.id;
    let name = row.file.name.clone();
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
                Status::Done => Msg::Done,
                Status::AlreadyUploaded => Msg::AlreadyUploaded,
                Status::Failed => Msg::Failed,
            },
        );
        if s == Status::Hashing {
            format!("{text} {}%", percent(hashed.get(), size))
        } else {
            text.to_string()
        }
    };
    view! {
        <li
            class="file"
            data-testid="file-row"
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
                <div class="name" title=name.clone()>{name.clone()}</div>
                <div class="meta">
                    <span class="status">{status_text}</span>
                    <span data-testid="percent">{move || format!("{}%", percent(shown(), size))}</span>
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
                {move || message.get().map(|m| view! { <p class="message" data-testid="message">{m}</p> })}
                {move || server_sha.get().map(|sha| {
                    let verified = local_sha.get().as_deref() == Some(sha.as_str());
                    view! {
                        <p class="sha" data-testid="sha256">
                            "SHA-256 " <code>{sha}</code>
                            {verified.then(|| view! { <span class="verified" data-testid="verified">" ✓ " {move || t(lang.get(), Msg::Verified)}</span> })}
                        </p>
                    }
                })}
            </div>
            <div class="actions">
                <Show when=move || status.get() == Status::Failed>
                    <button type="button" class="secondary" data-testid="retry"
                        on:click=move |_| actions::retry(model, id)>
                        {move || t(lang.get(), Msg::Retry)}
                    </button>
                </Show>
                <button type="button" class="secondary" data-testid="cancel"
                    on:click=move |_| actions::cancel(model, id)>
                    {move || t(lang.get(), Msg::Cancel)}
                </button>
            </div>
        </li>
    }
}

/// After the form without JavaScript: how many files arrived.
#[component]
fn UploadedNotice() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let query = leptos_router::hooks::use_query_map();
    let count = move || {
        query
            .read()
            .get("uploaded")
            .and_then(|n| n.parse::<u32>().ok())
    };
    view! {
        {move || count().map(|n| view! {
            <p class="notice" role="status" data-testid="uploaded-notice">
                {n} " " {move || t(model.lang.get(), Msg::UploadedNotice)}
            </p>
        })}
    }
}

/// What live events say about this owner's uploads, wherever they come
/// from (this page, another tab, a script).
#[component]
fn ActivityView() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    view! {
        <section class="card" aria-labelledby="activity-title" data-testid="activity"
            data-transport=move || model.live.get()>
            <h2 id="activity-title">{move || t(lang.get(), Msg::Activity)}</h2>
            <Show
                when=move || model.activity.with(|a| !a.is_empty())
                fallback=move || view! { <p class="hint">{move || t(lang.get(), Msg::NoActivity)}</p> }
            >
                <ul class="activity">
                    <For each=move || model.activity.get() key=|a| (a.id.clone(), a.event) let:a>
                        <li data-testid="activity-item" data-name=a.name.clone() data-state=a.kind.trim_start_matches("upload.").to_string()>
                            <span class="name">{a.name.clone()}</span>
                            <span class="kind">{a.kind.trim_start_matches("upload.").to_string()}</span>
                            <span data-testid="activity-percent">{a.size.map(|s| format!("{}%", percent(a.offset, s))).unwrap_or_default()}</span>
                            <span>{move || format_size(lang.get(), a.offset)}</span>
                        </li>
                    </For>
                </ul>
            </Show>
        </section>
    }
}

/// Uploads a previous visit left unfinished.
#[component]
fn InterruptedList() -> impl IntoView {
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
                        </li>
                    </For>
                </ul>
            </div>
        </Show>
    }
}

#[component]
fn SettingsPanel() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let field = move |msg: Msg,
                      testid: &'static str,
                      get: fn(&Settings) -> u32,
                      put: fn(&mut Settings, u32)| {
        view! {
            <label class="setting">
                <span>{move || t(lang.get(), msg)}</span>
                <input
                    type="number"
                    min="1"
                    data-testid=testid
                    prop:value=move || get(&model.settings.get()).to_string()
                    on:change=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<u32>() {
                            model.settings.update(|s| { put(s, v); *s = s.clamped(); });
                            actions::save_settings(&model.settings.get_untracked());
                        }
                    }
                />
            </label>
        }
    };
    view! {
        <details class="settings">
            <summary>{move || t(lang.get(), Msg::Settings)}</summary>
            <div class="settings-grid">
                {field(Msg::ChunkSize, "setting-chunk", |s| s.chunk_mib, |s, v| s.chunk_mib = v)}
                {field(Msg::ParallelUploads, "setting-parallel", |s| s.parallel, |s, v| s.parallel = v)}
                {field(Msg::ThumbnailSize, "setting-thumb", |s| s.thumb_px, |s, v| s.thumb_px = v)}
                {field(Msg::InstantLimit, "setting-instant", |s| s.instant_mib, |s, v| s.instant_mib = v)}
                <label class="setting">
                    <span>{move || t(lang.get(), Msg::Transport)}</span>
                    <select
                        data-testid="setting-transport"
                        prop:value=move || if model.settings.get().transport == Transport::WebSocket { "ws" } else { "http" }
                        on:change=move |ev| {
                            let transport = if event_target_value(&ev) == "ws" { Transport::WebSocket } else { Transport::Http };
                            model.settings.update(|s| s.transport = transport);
                            actions::save_settings(&model.settings.get_untracked());
                        }
                    >
                        <option value="http">"HTTP (tus)"</option>
                        <option value="ws">"WebSocket"</option>
                    </select>
                </label>
            </div>
        </details>
    }
}

/// This owner's finished uploads, with their SHA-256, a download link and
/// delete.
#[component]
fn UploadedList() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let finished = move || {
        model
            .uploaded
            .get()
            .into_iter()
            .filter(|u| u.complete)
            .collect::<Vec<UploadSummary>>()
    };
    view! {
        <section class="card" aria-labelledby="uploaded-title">
            <h2 id="uploaded-title">{move || t(lang.get(), Msg::Uploaded)}</h2>
            <Show
                when=move || !finished().is_empty()
                fallback=move || view! { <p class="hint">{move || t(lang.get(), Msg::NothingUploaded)}</p> }
            >
                <ul class="uploaded" data-testid="uploaded">
                    <For each=finished key=|u| u.id.clone() let:u>
                        <UploadedItem u=u/>
                    </For>
                </ul>
            </Show>
            <Show when=move || model.uploaded_next.with(Option::is_some)>
                <button type="button" class="secondary" data-testid="load-more"
                    on:click=move |_| actions::load_more(model)>
                    {move || t(lang.get(), Msg::LoadMore)}
                </button>
            </Show>
        </section>
    }
}

#[component]
fn UploadedItem(u: UploadSummary) -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let id = u.id.clone();
    view! {
        <li data-testid="uploaded-item" data-name=u.name.clone() data-url=u.url.clone()>
            <div class="name" title=u.name.clone()>{u.name.clone()}</div>
            <div class="meta">
                <span>{move || format_size(lang.get(), u.size.unwrap_or(u.offset))}</span>
                <code class="sha" data-testid="uploaded-sha256">{u.sha256.clone().unwrap_or_default()}</code>
            </div>
            <div class="actions">
                <a href=u.url.clone() download=u.name.clone()>{move || t(lang.get(), Msg::Download)}</a>
                <button type="button" class="secondary" data-testid="delete"
                    on:click=move |_| actions::delete_uploaded(model, id.clone())>
                    {move || t(lang.get(), Msg::Delete)}
                </button>
            </div>
        </li>
    }
}

/// A line that says whether the page can reach the server, filled in by a
/// server function once the page is interactive.
#[component]
fn ServerStatus() -> impl IntoView {
    let status = RwSignal::new(None::<Result<String, String>>);
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            let answer = crate::api::describe_server()
                .await
                .map(|info| info.version)
                .map_err(|e| e.to_string());
            status.set(Some(answer));
        });
    });
    view! {
        <p class="server-status" data-testid="server-status">
            {move || match status.get() {
                None => String::new(),
                Some(Ok(version)) => format!("Connected to Ferry {version}"),
                Some(Err(err)) => format!("The server cannot be reached: {err}"),
            }}
        </p>
    }
}
