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

/// Mounts Ferry's uploader in `root` (a node in the shadow root of `host`,
/// the `<ferry-upload>` element or the element given to `Ferry.mount`),
/// with the options' JSON (`page::embed::EmbedOptions`). Answers the
/// widget's ID for the element's methods. Called by `public/embed.js`.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn mount_embed(
    host: web_sys::Element,
    root: web_sys::HtmlElement,
    options: &str,
) -> Result<u32, wasm_bindgen::JsValue> {
    use leptos::prelude::*;
    console_error_panic_hook::set_once();
    let (id, options) = client::embed::prepare(options)?;
    let parts = ui::Parts {
        settings: false,
        form_notice: false,
        activity: options.shows_activity(),
        uploaded: options.shows_uploaded(),
    };
    let mounted = leptos::mount::mount_to(root, move || {
        let model = client::embed::start(id, options, host);
        view! { <ui::EmbeddedUploader model parts/> }
    });
    client::embed::keep(id, Box::new(mounted));
    Ok(id)
}

/// A method of an embedded widget: `start`, `pause`, `resume` or `cancel`.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn embed_call(id: u32, method: &str) -> Result<(), wasm_bindgen::JsValue> {
    Ok(client::embed::call(id, method)?)
}

/// An embedded widget's files, as its events describe them.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn embed_list(id: u32) -> Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
    Ok(client::embed::list(id)?)
}

/// Takes an embedded widget off its page (its element left the document).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn unmount_embed(id: u32) {
    client::embed::unmount(id);
}
