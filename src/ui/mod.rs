//! The upload page's components. They render on the server (a plain form
//! that works without JavaScript) and hydrate in the browser, where
//! `crate::client` drives the uploads and fills in the state
//! (`crate::page::state`) they show, in the words of `crate::page::i18n`.
//!
//! One file per group of components: `upload_page` (the page around them),
//! `send` (picker, drop zone, the no-JavaScript notice), `files` (the batch,
//! its rows and totals, interrupted uploads) with `virtual_rows` (which of
//! its rows are drawn), `uploaded` (finished uploads),
//! `activity` (live events), `settings` (settings and language), `status`
//! (the server line).
//!
//! What this module must not know: how uploads are sent. Its only way into
//! the browser's client is `actions`, which on the server does nothing.

mod actions;
mod activity;
mod files;
mod send;
mod settings;
mod status;
mod upload_page;
mod uploaded;
mod virtual_rows;

pub use upload_page::{EmbeddedUploader, Parts, UploadPage};
