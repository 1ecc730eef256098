//! Live activity: what the events say about this owner's uploads, from
//! this page, other tabs or scripts.
//!
//! What this module must not know: how events arrive (stream or polling).

use crate::page::i18n::{format_size, percent, t, Msg};
use crate::page::state::Uploads;
use leptos::prelude::*;

/// What live events say about this owner's uploads, wherever they come
/// from (this page, another tab, a script).
#[component]
pub fn ActivityView() -> impl IntoView {
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
                        <li data-testid="activity-item" data-name=a.name.clone() data-state=a.kind.short()>
                            <span class="name">{a.name.clone()}</span>
                            <span class="kind">{a.kind.short()}</span>
                            <span data-testid="activity-percent">{a.size.map(|s| format!("{}%", percent(a.offset, s))).unwrap_or_default()}</span>
                            <span>{move || format_size(lang.get(), a.offset)}</span>
                        </li>
                    </For>
                </ul>
            </Show>
        </section>
    }
}
