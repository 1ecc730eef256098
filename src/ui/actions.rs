//! What the page's controls do: in the browser, the client's actions
//! (`crate::client`); on the server, where no event ever fires and nothing
//! is stored, nothing. The one door from the components to the client.
//!
//! What this module must not know: what the actions do. Both halves must
//! keep the same signatures: the stubs below mirror the client's exports.

#[cfg(feature = "hydrate")]
pub use crate::client::{
    add_from_drop, add_from_input, cancel, cancel_all, choose_files, delete_uploaded, init,
    load_more, pause, pause_all, resume, resume_all, resume_interrupted, retry, save_lang,
    save_settings, want_thumbnail,
};

#[cfg(not(feature = "hydrate"))]
pub use server_side::*;

/// The same functions as the client's, doing nothing.
#[cfg(not(feature = "hydrate"))]
mod server_side {
    use crate::page::i18n::Lang;
    use crate::page::state::{Settings, Uploads};

    pub fn init(_: Uploads) {}
    pub fn add_from_input(_: Uploads, _: &leptos::ev::Event) {}
    pub fn add_from_drop(_: Uploads, _: &leptos::ev::DragEvent) {}
    pub fn choose_files(_: Uploads, _: &leptos::ev::MouseEvent) {}
    pub fn resume_interrupted(_: Uploads, _: String) {}
    pub fn cancel(_: Uploads, _: u32) {}
    pub fn cancel_all(_: Uploads) {}
    pub fn retry(_: Uploads, _: u32) {}
    pub fn pause(_: Uploads, _: u32) {}
    pub fn resume(_: Uploads, _: u32) {}
    pub fn pause_all(_: Uploads) {}
    pub fn resume_all(_: Uploads) {}
    pub fn delete_uploaded(_: Uploads, _: String) {}
    pub fn load_more(_: Uploads) {}
    pub fn save_settings(_: &Settings) {}
    pub fn save_lang(_: Lang) {}
    pub fn want_thumbnail(_: Uploads, _: u32) {}
}
