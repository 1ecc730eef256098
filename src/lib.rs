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

/// A SHA-256 fed piece by piece, for `public/hash-worker.js`: the page
/// hashes large files in a Web Worker, with this same bundle, while their
/// bytes are sent.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
#[derive(Default)]
pub struct Sha256Stream(sha2::Sha256);

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
impl Sha256Stream {
    #[wasm_bindgen::prelude::wasm_bindgen(constructor)]
    pub fn new() -> Sha256Stream {
        Sha256Stream::default()
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    /// The SHA-256 of every byte given, as lowercase hex.
    pub fn finish(self) -> String {
        format!("{:x}", sha2::Digest::finalize(self.0))
    }
}

/// The bytes of the page's WebAssembly memory, which only grows: what a
/// batch costs the page beyond the JavaScript heap (the browser tests and
/// `bench/` print it).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn memory_bytes() -> f64 {
    use wasm_bindgen::JsCast;
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| js_sys::ArrayBuffer::from(m.buffer()).byte_length() as f64)
        .unwrap_or(0.0)
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
