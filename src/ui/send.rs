//! Sending files: the form that posts them without JavaScript, the picker
//! and drop zone that hand them to the client once the page is hydrated,
//! and the notice the form's answer leads to.
//!
//! What this module must not know: what happens to the files once handed
//! over.

use super::actions;
use crate::page::i18n::{t, Msg};
use crate::page::state::Uploads;
use leptos::prelude::*;

/// The form: a real `<form>` that posts the files without JavaScript, and
/// a drop zone that hands them to the browser client once the page is
/// hydrated.
#[component]
pub fn DropForm() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let lang = model.lang;
    let dragging = RwSignal::new(false);
    // `webkitdirectory` has no typed attribute; set once in the browser,
    // where the folder picker is the only use of this input.
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
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
            action=crate::protocol::FORM_UPLOAD
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
                on:click=move |ev: leptos::ev::MouseEvent| actions::choose_files(model, &ev)
            >
                <span class="picker-title">{move || t(lang.get(), Msg::ChooseFiles)}</span>
                <span class="picker-hint">
                    {move || t(lang.get(), Msg::DropHere)} " · " {move || t(lang.get(), Msg::PickerHint)}
                </span>
            </label>
            // The drop zone above opens the picker; once the page is
            // hydrated the native input is kept only for assistive tools.
            // The picker offers only the kinds of file the server takes.
            <input id="file-input" type="file" name="files" multiple=true on:change=on_change
                accept=move || model.rules.get().and_then(|r| r.picker_accept())
                class:sr-only=move || model.hydrated.get()/>
            // A folder, with everything in it: each file keeps its path.
            // Only once the page runs: the form without it sends files.
            <Show when=move || model.hydrated.get()>
                <label class="picker-folder secondary" for="folder-input" data-testid="choose-folder">
                    {move || t(lang.get(), Msg::ChooseFolder)}
                </label>
                <input id="folder-input" type="file" multiple=true on:change=on_change
                    class="sr-only" node_ref=folder_input/>
            </Show>
            <button type="submit" class:hidden=move || model.hydrated.get()>
                {move || t(lang.get(), Msg::Upload)}
            </button>
        </form>
    }
}

/// After the form without JavaScript: how many files arrived.
#[component]
pub fn UploadedNotice() -> impl IntoView {
    let model = expect_context::<Uploads>();
    let query = leptos_router::hooks::use_query_map();
    let count = move || {
        query
            .read()
            .get(crate::protocol::FORM_DONE_KEY)
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
