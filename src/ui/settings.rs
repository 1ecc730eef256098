//! The person's choices: the settings panel (chunk size, files at once,
//! thumbnail size, instant-upload limit, transport) and the language.
//!
//! What this module must not know: where the choices are kept, or how they
//! change the uploads.

use super::actions;
use crate::page::i18n::{t, Lang, Msg};
use crate::page::state::{Settings, Transport, Uploads};
use leptos::prelude::*;

#[component]
pub fn LanguageSwitch() -> impl IntoView {
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

#[component]
pub fn SettingsPanel() -> impl IntoView {
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
                {field(Msg::StallAfter, "setting-stall", |s| s.stall_secs, |s, v| s.stall_secs = v)}
                {field(Msg::Streams, "setting-streams", |s| s.streams, |s, v| s.streams = v)}
                {field(Msg::StreamsFrom, "setting-streams-from", |s| s.streams_from_mib, |s, v| s.streams_from_mib = v)}
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
