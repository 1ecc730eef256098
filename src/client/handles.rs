//! Files kept by handle, where the browser has them (Chromium's File System
//! Access API): a file chosen with the browser's file picker or dropped
//! keeps its `FileSystemFileHandle` in IndexedDB under its fingerprint
//! key, for as long as its upload is unfinished; a file of a dropped
//! folder keeps the folder's `FileSystemDirectoryHandle` and its path
//! inside. After the browser restarts, the
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

/// Files from this size keep their handles: a smaller one goes whole in
/// the request that creates its upload, so there is nothing to resume
/// (and a drop of thousands of small files writes nothing here).
pub const KEPT_FROM: f64 = 1024.0 * 1024.0 + 1.0;

thread_local! {
    // Keys with a handle kept, as far as this page knows: forgetting a key
    // without one costs nothing (thousands of small files end each second).
    static KEPT: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    // The database, once open.
    static OPEN: RefCell<Option<IdbDatabase>> = const { RefCell::new(None) };
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

/// The handles of a drop's items, asked for while the drop event lasts
/// (its data is gone after): one promise for each dropped file or folder.
/// Empty where handles are not kept.
pub fn of_drop(dt: &web_sys::DataTransfer) -> Vec<Promise> {
    if !available() {
        return Vec::new();
    }
    super::folders::file_items(dt)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| {
            let f: Function = Reflect::get(&item, &"getAsFileSystemHandle".into())
                .ok()?
                .dyn_into()
                .ok()?;
            f.call0(&item).ok()?.dyn_into().ok()
        })
        .collect()
}

/// A drop's handles, once its promises settle: `(name, is_folder,
/// handle)`, without the ones the browser could not give.
pub async fn settle(promises: Vec<Promise>) -> Vec<(String, bool, JsValue)> {
    let mut settled = Vec::new();
    for promise in promises {
        let Ok(handle) = JsFuture::from(promise).await else {
            continue;
        };
        let text = |key: &str| {
            Reflect::get(&handle, &key.into())
                .ok()
                .and_then(|v| v.as_string())
        };
        if let (Some(name), Some(kind)) = (text("name"), text("kind")) {
            settled.push((name, kind == "directory", handle));
        }
    }
    settled
}

/// What is kept for a file of a dropped folder: the folder's handle and
/// the file's path from the folder's name down (`photos/2024/a.jpg`).
pub fn inside(folder: &JsValue, path: &str) -> JsValue {
    let kept = Object::new();
    let _ = Reflect::set(&kept, &"folder".into(), folder);
    let _ = Reflect::set(&kept, &"path".into(), &path.into());
    kept.into()
}

/// Asks for permission to read through a handle (the browser asks at most
/// once; it must follow the person's click).
async fn allowed(handle: &JsValue) -> bool {
    let options = Object::new();
    let _ = Reflect::set(&options, &"mode".into(), &"read".into());
    match call(handle, "queryPermission", &[options.clone().into()]).await {
        Ok(state) if state.as_string().as_deref() == Some("granted") => true,
        _ => {
            call(handle, "requestPermission", &[options.into()])
                .await
                .ok()
                .and_then(|s| s.as_string())
                .as_deref()
                == Some("granted")
        }
    }
}

/// The file kept for `key`, with its path in its dropped folder (empty
/// for a file that came alone), once the person allows it to be read.
/// `None` without a handle, without permission, or when the file is no
/// longer where it was.
pub async fn reopen(key: &str) -> Option<(File, String)> {
    let kept = get(key).await?;
    let folder = Reflect::get(&kept, &"folder".into()).ok()?;
    if folder.is_undefined() {
        if !allowed(&kept).await {
            return None;
        }
        let file = call(&kept, "getFile", &[]).await.ok()?.dyn_into().ok()?;
        return Some((file, String::new()));
    }
    let path = Reflect::get(&kept, &"path".into()).ok()?.as_string()?;
    if !allowed(&folder).await {
        return None;
    }
    // Down from the folder (the path's first name is the folder's own).
    let names: Vec<&str> = path.split('/').skip(1).collect();
    let (last, between) = names.split_last()?;
    let mut at = folder;
    for name in between {
        at = call(&at, "getDirectoryHandle", &[(*name).into()])
            .await
            .ok()?;
    }
    let handle = call(&at, "getFileHandle", &[(*last).into()]).await.ok()?;
    let file = call(&handle, "getFile", &[]).await.ok()?.dyn_into().ok()?;
    Some((file, path))
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

/// The database, opened once per page.
async fn open() -> Option<IdbDatabase> {
    if let Some(db) = OPEN.with(|o| o.borrow().clone()) {
        return Some(db);
    }
    let db = open_anew().await?;
    OPEN.with(|o| *o.borrow_mut() = Some(db.clone()));
    Some(db)
}

async fn open_anew() -> Option<IdbDatabase> {
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

/// Forgets every kept handle but those of these keys (the unfinished
/// uploads this browser remembers): handles of files dropped or chosen
/// but never created, before the page closed, go.
pub async fn keep_only(keys: &HashSet<String>) {
    if !available() {
        return;
    }
    let Some(store) = store(IdbTransactionMode::Readwrite).await else {
        return;
    };
    let Some(all) = store.get_all_keys().ok() else {
        return;
    };
    let Ok(all) = done(&all).await else {
        return;
    };
    let mut waiting = Vec::new();
    for key in Array::from(&all).iter() {
        let stale = key.as_string().is_some_and(|k| !keys.contains(&k));
        if stale {
            if let Ok(request) = store.delete(&key) {
                waiting.push(request);
            }
        }
    }
    for request in waiting {
        let _ = done(&request).await;
    }
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
