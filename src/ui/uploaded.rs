//! This owner's finished uploads: name, size, SHA-256, download and
//! delete, and more of them on request.
//!
//! What this module must not know: how the list is fetched or refreshed.

use super::actions;
use crate::page::i18n::{format_size, t, Msg};
use crate::page::state::Uploads;
use crate::protocol::model::UploadSummary;
use leptos::prelude::*;

/// This owner's finished uploads, with their SHA-256, a download link and
/// delete.
#[component]
pub fn UploadedList() -> impl IntoView {
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
pub fn UploadedItem(u: UploadSummary) -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let id = u.id.clone();
    view! {
        <li data-testid="uploaded-item" data-name=u.name.clone() data-url=u.url.clone()>
            <div class="name" title=if u.path.is_empty() { u.name.clone() } else { u.path.clone() }>
                {(!crate::protocol::model::folder_of(&u.path).is_empty()).then(|| view! {
                    <span class="folder" data-testid="folder">
                        {crate::protocol::model::folder_of(&u.path).to_string()} "/"
                    </span>
                })}
                {u.name.clone()}
            </div>
            <div class="meta">
                <span>{move || format_size(lang.get(), u.size.unwrap_or(u.offset))}</span>
                <code class="sha" data-testid="uploaded-sha256">{u.sha256.clone().unwrap_or_default()}</code>
            </div>
            <div class="actions">
                <a href=crate::api::remote::url(&u.url) download=u.name.clone()>{move || t(lang.get(), Msg::Download)}</a>
                <button type="button" class="secondary" data-testid="delete"
                    on:click=move |_| actions::delete_uploaded(model, id.clone())>
                    {move || t(lang.get(), Msg::Delete)}
                </button>
            </div>
        </li>
    }
}
