//! SHA-256 of a file in the browser, read in slices so that memory stays
//! bounded. Large files are hashed in a Web Worker (`public/hash-worker.js`,
//! running this same bundle), so the page keeps answering and the hash
//! runs beside the upload on another core; small ones, and any when the
//! browser or the host page allows no worker, on the page itself, which
//! keeps responding between slices.
//!
//! What this module must not know: uploads, rows or why the hash is wanted.

use js_sys::{Promise, Reflect};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File, MessageEvent, Worker, WorkerOptions, WorkerType};

const SLICE: f64 = 4.0 * 1024.0 * 1024.0;

/// Files from this size are hashed in a worker: below it, starting one
/// costs more than the hash.
const WORKER_FROM: u64 = 16 * 1024 * 1024;

/// The file's SHA-256 as lowercase hex, in a worker when the file is large
/// and one can run; `progress` hears the bytes hashed. `None` when reading
/// fails or `stop` says to give up.
pub async fn sha256_of(
    file: &File,
    size: u64,
    progress: impl Fn(u64) + 'static,
    stop: Rc<Cell<bool>>,
) -> Option<String> {
    let progress = Rc::new(progress);
    if size >= WORKER_FROM {
        let heard = progress.clone();
        match in_worker(file, move |n| heard(n), stop.clone()).await {
            Worked::Hash(sha) => return sha,
            Worked::NoWorker => {}
        }
    }
    sha256_hex(file, size, move |n| progress(n), move || stop.get()).await
}

/// What a worker made of a file.
enum Worked {
    /// Its hash, or `None` when the file could not be read or `stop` said.
    Hash(Option<String>),
    /// No worker could run (an old browser, or a host page whose policy
    /// forbids one).
    NoWorker,
}

/// The worker's script: beside the page's bundle on the server the page
/// talks to. A worker must come from the page's own origin, so an
/// uploader embedded in another site's page starts it from a one-line
/// script of that origin that imports Ferry's (served to other origins).
fn start_worker() -> Option<Worker> {
    let remote = crate::api::remote::get();
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let script = if remote.is_remote() {
        let source = format!("import {:?};", remote.url("/hash-worker.js"));
        let parts = js_sys::Array::of1(&JsValue::from_str(&source));
        let bag = web_sys::BlobPropertyBag::new();
        bag.set_type("text/javascript");
        let blob = Blob::new_with_str_sequence_and_options(&parts, &bag).ok()?;
        web_sys::Url::create_object_url_with_blob(&blob).ok()?
    } else {
        "/hash-worker.js".to_string()
    };
    Worker::new_with_options(&script, &options).ok()
}

async fn in_worker(file: &File, progress: impl Fn(u64) + 'static, stop: Rc<Cell<bool>>) -> Worked {
    let Some(worker) = start_worker() else {
        return Worked::NoWorker;
    };
    // The answer: a string (the hash), null (the file failed or `stop`
    // said) or undefined (the worker itself could not run).
    let mut handlers = None;
    let mut moved = Some((progress, stop));
    let answer = Promise::new(&mut |resolve, _| {
        // Called once, at once.
        let Some((progress, stop)) = moved.take() else {
            return;
        };
        let (w, done) = (worker.clone(), resolve.clone());
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let data = ev.data();
            let field = |name: &str| Reflect::get(&data, &JsValue::from_str(name)).ok();
            if stop.get() {
                w.terminate();
                let _ = done.call1(&JsValue::NULL, &JsValue::NULL);
            } else if let Some(n) = field("hashed").and_then(|v| v.as_f64()) {
                progress(n as u64);
            } else if let Some(sha) = field("sha256").filter(|v| v.is_string()) {
                let _ = done.call1(&JsValue::NULL, &sha);
            } else {
                let _ = done.call1(&JsValue::NULL, &JsValue::NULL);
            }
        });
        let done = resolve.clone();
        let on_error = Closure::<dyn FnMut()>::new(move || {
            let _ = done.call1(&JsValue::NULL, &JsValue::UNDEFINED);
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        handlers = Some((on_message, on_error));
    });
    let message = js_sys::Object::new();
    let _ = Reflect::set(&message, &JsValue::from_str("file"), file);
    if worker.post_message(&message).is_err() {
        worker.terminate();
        return Worked::NoWorker;
    }
    let answer = JsFuture::from(answer).await.unwrap_or(JsValue::NULL);
    worker.terminate();
    drop(handlers);
    if answer.is_undefined() {
        Worked::NoWorker
    } else {
        Worked::Hash(answer.as_string())
    }
}

/// The file's SHA-256 as lowercase hex, hashed on the page; `progress`
/// hears the bytes hashed. `None` when reading fails or `stop` says to
/// give up.
async fn sha256_hex(
    file: &Blob,
    size: u64,
    progress: impl Fn(u64),
    stop: impl Fn() -> bool,
) -> Option<String> {
    let mut hasher = Sha256::new();
    let size = size as f64;
    // The browser reads the next slice while this one is hashed.
    let read = |at: f64| -> Option<(f64, JsFuture)> {
        let end = (at + SLICE).min(size);
        // A file of one slice is read as it is: slicing makes a new blob.
        if at == 0.0 && end == size {
            return Some((end, JsFuture::from(file.array_buffer())));
        }
        let slice = file.slice_with_f64_and_f64(at, end).ok()?;
        Some((end, JsFuture::from(slice.array_buffer())))
    };
    let mut next = if size > 0.0 { Some(read(0.0)?) } else { None };
    while let Some((end, reading)) = next.take() {
        if stop() {
            return None;
        }
        let buffer = reading.await.ok()?;
        if end < size {
            next = Some(read(end)?);
        }
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        hasher.update(&bytes);
        progress(end as u64);
    }
    Some(format!("{:x}", hasher.finalize()))
}
