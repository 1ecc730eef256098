//! Files kept by handle, where the browser has them (Chromium's File System
//! Access API): a file chosen with the browser's file picker keeps its
//! `FileSystemFileHandle` in IndexedDB under its fingerprint key, for as
//! long as its upload is unfinished. After the browser restarts, the
//! interrupted list offers to resume it without choosing it again: the
//! handle is asked for permission to read (once, on the person's click)
//! and gives the file back. Elsewhere the list says which files to choose
//! again, and matches them by fingerprint.
//!
//! What this module must not know: the batch, or how files are sent.

use js_sys::{Array, Function, Object, Promise, Reflect};
use std::cell::RefCell;
use std::collections::HashSet;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{File, IdbDatabase, IdbRequest, IdbTransactionMode};

const DB: &str = "ferry-handles";
const STORE: &str = "handles";

thread_local! {
    // Keys with a handle kept, as far as this page knows: forgetting a key
    // without one costs nothing (thousands of small files end each second).
    static KEPT: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

fn window_method(name: &str) -> Option<Function> {
    let window = web_sys::window()?;
    Reflect::get(&window, &JsValue::from_str(name))
        .ok()?
        .dyn_into::<Function>()
        .ok()
}

/// Whether files can be chosen with handles that outlive the page: the
/// browser has the picker, and the page is Ferry's own (an embedded
/// uploader's storage would be the host site's).
pub fn available() -> bool {
    window_method("showOpenFilePicker").is_some() && !crate::api::remote::get().is_remote()
}

/// Calls a method of a JavaScript object that answers a promise, and
/// waits for it.
async fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = Reflect::get(target, &JsValue::from_str(method))?.dyn_into()?;
    let promise: Promise = f
        .apply(target, &args.iter().collect::<Array>())?
        .dyn_into()?;
    JsFuture::from(promise).await
}

/// Lets the person choose files with the browser's picker: each file with
/// its handle. Empty when they chose nothing.
pub async fn choose() -> Vec<(File, JsValue)> {
    let Some(window) = web_sys::window() else {
        return Vec::new();
    };
    let options = Object::new();
    let _ = Reflect::set(&options, &"multiple".into(), &JsValue::TRUE);
    let Ok(handles) = call(&window, "showOpenFilePicker", &[options.into()]).await else {
        return Vec::new(); // closed without choosing
    };
    let mut chosen = Vec::new();
    for handle in Array::from(&handles).iter() {
        if let Ok(file) = call(&handle, "getFile", &[]).await {
            if let Ok(file) = file.dyn_into::<File>() {
                chosen.push((file, handle));
            }
        }
    }
    chosen
}

/// The file behind the handle kept for `key`, once the person allows it
/// to be read (the browser asks at most once; it must follow their
/// click). `None` without a handle, or without permission.
pub async fn reopen(key: &str) -> Option<File> {
    let handle = get(key).await?;
    let options = Object::new();
    let _ = Reflect::set(&options, &"mode".into(), &"read".into());
    let granted = match call(&handle, "queryPermission", &[options.clone().into()]).await {
        Ok(state) if state.as_string().as_deref() == Some("granted") => true,
        _ => {
            call(&handle, "requestPermission", &[options.into()])
                .await
                .ok()
                .and_then(|s| s.as_string())
                .as_deref()
                == Some("granted")
        }
    };
    if !granted {
        return None;
    }
    call(&handle, "getFile", &[]).await.ok()?.dyn_into().ok()
}

/// Waits for an IndexedDB request; answers its result.
async fn done(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    JsFuture::from(promise).await?;
    request.result()
}

async fn open() -> Option<IdbDatabase> {
    let factory = web_sys::window()?.indexed_db().ok()??;
    let request = factory.open_with_u32(DB, 1).ok()?;
    let upgrade = Closure::once(move |event: web_sys::Event| {
        let db = event
            .target()
            .and_then(|t| t.dyn_into::<IdbRequest>().ok())
            .and_then(|r| r.result().ok())
            .and_then(|d| d.dyn_into::<IdbDatabase>().ok());
        if let Some(db) = db {
            let _ = db.create_object_store(STORE);
        }
    });
    request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db = done(&request).await.ok()?.dyn_into().ok();
    drop(upgrade);
    db
}

/// The store of handles, in a transaction of its own.
async fn store(mode: IdbTransactionMode) -> Option<web_sys::IdbObjectStore> {
    let db = open().await?;
    db.transaction_with_str_and_mode(STORE, mode)
        .ok()?
        .object_store(STORE)
        .ok()
}

/// Keeps the handles of files, by their fingerprint keys (in one
/// transaction).
pub async fn keep(handles: Vec<(String, JsValue)>) {
    let Some(store) = store(IdbTransactionMode::Readwrite).await else {
        return;
    };
    let mut waiting = Vec::new();
    for (key, handle) in handles {
        if let Ok(request) = store.put_with_key(&handle, &key.as_str().into()) {
            KEPT.with(|k| k.borrow_mut().insert(key));
            waiting.push(request);
        }
    }
    for request in waiting {
        let _ = done(&request).await;
    }
}

/// The handle kept for this key, if any.
pub async fn get(key: &str) -> Option<JsValue> {
    if !available() {
        return None; // nothing kept, and no database made on a host site
    }
    let store = store(IdbTransactionMode::Readonly).await?;
    let found = done(&store.get(&key.into()).ok()?).await.ok()?;
    if found.is_undefined() {
        return None;
    }
    KEPT.with(|k| k.borrow_mut().insert(key.to_string()));
    Some(found)
}

/// Forgets the handle kept for this key (its upload ended or went).
pub fn forget(key: &str) {
    if !KEPT.with(|k| k.borrow_mut().remove(key)) {
        return;
    }
    let key = key.to_string();
    wasm_bindgen_futures::spawn_local(async move {
        if let Some(store) = store(IdbTransactionMode::Readwrite).await {
            if let Ok(request) = store.delete(&key.into()) {
                let _ = done(&request).await;
            }
        }
    });
}
