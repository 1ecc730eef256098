//! Folders. Files chosen with the folder picker carry their path inside
//! the folder (`webkitRelativePath`); dropped folders are walked through
//! their entries (`DataTransferItem.webkitGetAsEntry`), each file keeping
//! its path. Both reach the queue as `(File, path)`; a file that came
//! alone has an empty path.
//!
//! The entry API is reached through `js_sys::Reflect`: web-sys gates it
//! behind unstable flags, and four calls do not need them.

use js_sys::{Array, Function, Promise, Reflect};
use std::collections::VecDeque;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::File;

/// Most entries (files and folders) one drop is walked through: a folder
/// of folders cannot hold the page up for ever.
pub const MAX_DROPPED: usize = 20_000;

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn call0(obj: &JsValue, method: &str) -> Option<JsValue> {
    let f: Function = get(obj, method).dyn_into().ok()?;
    f.call0(obj).ok()
}

/// Calls `method(success, error)` and waits for whichever answers.
async fn answer(obj: &JsValue, method: &str) -> Option<JsValue> {
    let f: Function = get(obj, method).dyn_into().ok()?;
    let promise = Promise::new(&mut |resolve, reject| {
        // A call that throws at once settles the promise too.
        if let Err(e) = f.call2(obj, &resolve, &reject) {
            let _ = reject.call1(&JsValue::NULL, &e);
        }
    });
    JsFuture::from(promise).await.ok()
}

/// The path of a file chosen inside a folder; empty for a file chosen alone.
pub fn relative_path(file: &File) -> String {
    let path = get(file, "webkitRelativePath")
        .as_string()
        .unwrap_or_default();
    if path.contains('/') {
        path
    } else {
        String::new()
    }
}

/// The items of a drop that are files or folders (not text), while the
/// drop event lasts; `None` when the browser lists no items.
pub fn file_items(dt: &web_sys::DataTransfer) -> Option<Vec<JsValue>> {
    let items = get(dt, "items");
    let n = get(&items, "length").as_f64()? as u32;
    let mut files = Vec::new();
    for i in 0..n {
        let item = Reflect::get_u32(&items, i).ok()?;
        if get(&item, "kind").as_string().as_deref() == Some("file") {
            files.push(item);
        }
    }
    Some(files)
}

/// The entries of a drop, taken while the drop event lasts (its data is
/// gone after); `None` when the browser gives no entries.
pub fn entries(dt: &web_sys::DataTransfer) -> Option<Vec<JsValue>> {
    let mut entries = Vec::new();
    for item in file_items(dt)? {
        let entry = call0(&item, "webkitGetAsEntry")?;
        if entry.is_null() || entry.is_undefined() {
            return None;
        }
        entries.push(entry);
    }
    Some(entries)
}

/// Every file under the dropped entries, in the order the folders list
/// them, with its path inside the drop (folders first met first).
pub async fn walk(entries: Vec<JsValue>) -> Vec<(File, String)> {
    let mut files = Vec::new();
    let mut queue: VecDeque<JsValue> = entries.into();
    let mut visited = 0;
    while let Some(entry) = queue.pop_front() {
        visited += 1;
        if visited > MAX_DROPPED {
            leptos::logging::warn!(
                "a drop is read up to {MAX_DROPPED} files and folders; the rest is left out"
            );
            break;
        }
        if get(&entry, "isDirectory").as_bool() == Some(true) {
            let Some(reader) = call0(&entry, "createReader") else {
                continue;
            };
            // A folder is read in pieces, until an empty one.
            while let Some(batch) = answer(&reader, "readEntries")
                .await
                .and_then(|b| b.dyn_into::<Array>().ok())
            {
                if batch.length() == 0 || visited + queue.len() > MAX_DROPPED {
                    break;
                }
                queue.extend(batch.iter());
            }
        } else if let Some(file) = answer(&entry, "file")
            .await
            .and_then(|f| f.dyn_into::<File>().ok())
        {
            let full = get(&entry, "fullPath").as_string().unwrap_or_default();
            let path = full.trim_start_matches('/');
            let path = if path.contains('/') {
                path.to_string()
            } else {
                String::new()
            };
            files.push((file, path));
        }
    }
    files
}
