//! What the page keeps in `localStorage`: the person's settings and
//! language, and for each unfinished upload the URL its file maps to (by
//! fingerprint), so a reload or a new visit can resume it.
//!
//! What this module must not know: the signals that show these values, or
//! how uploads are sent.

use crate::page::i18n::Lang;
use crate::page::state::Settings;
use crate::protocol::model::FileFingerprint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SETTINGS: &str = "ferry.settings.v1";
const LANG: &str = "ferry.lang.v1";
const RESUME: &str = "ferry.resume.v1";
const CHUNK_LIMIT: &str = "ferry.chunk-limit.v1";

/// The largest request something on the way to the server let through, as
/// far as this browser has learnt (see `remember_chunk_limit`).
pub fn chunk_limit() -> Option<u64> {
    read(CHUNK_LIMIT)
}

/// Remembers that requests above `bytes` were refused on the way, so later
/// uploads start at a size that passes.
pub fn remember_chunk_limit(bytes: u64) {
    write(CHUNK_LIMIT, &bytes);
}

/// An unfinished upload remembered for its file: its URL, or for a file
/// sent in parts, the parts' URLs (in order; a part not created yet is
/// empty) until they are joined.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resume {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub parts: Vec<String>,
    pub file: FileFingerprint,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The storage key for `key`: embedded in another site's page, the
/// storage is that site's, and its entries name the server they are for.
fn scoped(key: &str) -> String {
    let remote = crate::api::remote::get();
    if remote.is_remote() {
        format!("{key}@{}", remote.base)
    } else {
        key.to_string()
    }
}

fn read<T: for<'de> Deserialize<'de>>(key: &str) -> Option<T> {
    let text = storage()?.get_item(&scoped(key)).ok()??;
    serde_json::from_str(&text).ok()
}

fn write<T: Serialize>(key: &str, value: &T) {
    if let (Some(s), Ok(text)) = (storage(), serde_json::to_string(value)) {
        // A full or disabled storage only costs resumability.
        let _ = s.set_item(&scoped(key), &text);
    }
}

/// The saved settings (defaults when none), within their ranges.
pub fn load_settings() -> Settings {
    read::<Settings>(SETTINGS).unwrap_or_default().clamped()
}

/// Saves the settings.
pub fn save_settings(settings: &Settings) {
    write(SETTINGS, settings);
}

/// The language the person chose, if they did.
pub fn load_lang() -> Option<Lang> {
    read(LANG)
}

/// Saves the chosen language.
pub fn save_lang(lang: Lang) {
    write(LANG, &lang);
}

/// Every remembered unfinished upload, by its file's fingerprint key.
pub fn resumable() -> BTreeMap<String, Resume> {
    read(RESUME).unwrap_or_default()
}

/// Remembers that this file is being uploaded to `url`.
pub fn remember(file: &FileFingerprint, url: &str) {
    keep(Resume {
        url: Some(url.to_string()),
        parts: Vec::new(),
        file: file.clone(),
    });
}

/// Remembers that this file is being uploaded in these parts.
pub fn remember_parts(file: &FileFingerprint, parts: &[String]) {
    keep(Resume {
        url: None,
        parts: parts.to_vec(),
        file: file.clone(),
    });
}

fn keep(entry: Resume) {
    let mut all = resumable();
    all.insert(entry.file.key(), entry);
    write(RESUME, &all);
}

/// The parts' URLs remembered for this file, when it is sent in parts.
pub fn parts_of(file: &FileFingerprint) -> Vec<String> {
    resumable()
        .remove(&file.key())
        .map(|r| r.parts)
        .unwrap_or_default()
}

/// Forgets the upload of the file with this fingerprint key (and the
/// file's handle, when one was kept).
pub fn forget(key: &str) {
    super::handles::forget(key);
    let mut all = resumable();
    if all.remove(key).is_some() {
        write(RESUME, &all);
    }
}
