//! The uploader: the send card (picker, batch, settings, server line),
//! live activity and the finished uploads, around one shared state
//! (`crate::page::state::Uploads`) that it provides to every component.
//! Ferry's own page shows every part; a widget embedded in another site's
//! page (`crate::page::embed`) shows the parts its host page asks for.
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

/// Which parts of the uploader are shown besides the picker and the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// The person's settings (chunk size, parallel uploads…).
    pub settings: bool,
    /// The count of files the form without JavaScript sent (from the
    /// page's address, so only on Ferry's own page).
    pub form_notice: bool,
    /// Live events of this owner's uploads.
    pub activity: bool,
    /// This owner's finished uploads.
    pub uploaded: bool,
}

impl Parts {
    /// Ferry's own page: everything.
    pub const PAGE: Parts = Parts {
        settings: true,
        form_notice: true,
        activity: true,
        uploaded: true,
    };
}

/// The upload page.
#[component]
pub fn UploadPage() -> impl IntoView {
    let model = Uploads::new(Vec::new());
    Effect::new(move |_| {
        model.hydrated.set(true);
        actions::init(model);
    });
    view! { <Uploader model parts=Parts::PAGE/> }
}

/// The uploader embedded in another site's page, inside the shadow root
/// `embed.js` gives it; `crate::client::embed` has set its state up.
#[component]
pub fn EmbeddedUploader(model: Uploads, parts: Parts) -> impl IntoView {
    view! {
        <div class="ferry-embed" data-testid="ferry-embed">
            <Uploader model parts/>
        </div>
    }
}

#[component]
fn Uploader(model: Uploads, parts: Parts) -> impl IntoView {
    let uploaded = Resource::new(|| (), |_| crate::api::list_uploads(None, None));
    provide_context(model);
    let lang = model.lang;
    view! {
        <section class="card" aria-labelledby="send-title">
            <div class="card-head">
                <h1 id="send-title">{move || t(lang.get(), Msg::SendFiles)}</h1>
                <LanguageSwitch/>
            </div>
            {parts.form_notice.then(|| view! { <UploadedNotice/> })}
            <DropForm/>
            <Batch/>
            <InterruptedList/>
            {parts.settings.then(|| view! { <SettingsPanel/> })}
            <ServerStatus/>
        </section>
        {parts.activity.then(|| view! { <ActivityView/> })}
        {parts.uploaded.then(|| view! {
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    if let Ok(page) = uploaded.await {
                        model.uploaded.set(page.uploads);
                        model.uploaded_next.set(page.next);
                    }
                    view! { <UploadedList/> }
                })}
            </Suspense>
        })}
        <p class="sr-only" role="status" aria-live="polite" data-testid="announce">
            {move || model.announce.get()}
        </p>
    }
}
