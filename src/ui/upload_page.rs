//! The upload page: the send card (picker, batch, settings, server line),
//! live activity and the finished uploads, around one shared state
//! (`crate::page::state::Uploads`) that it provides to every component.
//!
//! What this module must not know: what each part shows or does.

use super::actions;
use super::activity::ActivityView;
use super::files::{Batch, InterruptedList};
use super::send::{DropForm, UploadedNotice};
use super::settings::{LanguageSwitch, SettingsPanel};
use super::status::ServerStatus;
use super::uploaded::UploadedList;
use crate::page::i18n::{t, Msg};
use crate::page::state::Uploads;
use leptos::prelude::*;

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
