//! Ferry: resumable uploads of large files from a browser to a server.
//!
//! One crate, two worlds. With the `ssr` feature it is the server (axum,
//! tokio, storage); with `hydrate` it is the WebAssembly that makes the
//! server-rendered page interactive. Modules that only one side needs are
//! gated where they are declared.

// The page's view types nest deeply; release builds (without cargo-leptos'
// `erase_components`) need more room than the default 128 to lay them out.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod page;
pub mod protocol;
pub mod ui;

#[cfg(feature = "hydrate")]
pub mod client;

#[cfg(feature = "ssr")]
pub mod core;
#[cfg(feature = "ssr")]
pub mod http;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod store;

#[cfg(feature = "ssr")]
pub use http::router;
#[cfg(feature = "ssr")]
pub use server::AppState;

/// The version of this build, as shown by `/healthz` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Entry point of the WebAssembly bundle: hydrates the server-rendered page
/// and then marks `<body data-hydrated="true">` so that people's scripts and
/// the browser tests know the page is interactive.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        // Setting an attribute cannot fail on a live <body>; if it somehow
        // did, the page still works, only the marker is missing.
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
