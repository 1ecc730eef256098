//! What the page keeps in `localStorage`: the person's settings and
//! language, and for each unfinished upload the URL its file maps to (by
//! fingerprint), so a reload or a new visit can resume it.

use crate::model::FileFingerprint;
use crate::ui::i18n::Lang;
use crate::ui::state::Settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SETTINGS: &str = "ferry.settings.v1";
const LANG: &str = "ferry.lang.v1";
const RESUME: &str = "ferry.resume.v1";

/// An unfinished upload remembered for its file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resume {
    pub url: String,
    pub file: FileFingerprint,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn read<T: for<'de> Deserialize<'de>>(key: &str) -> Option<T> {
    let text = storage()?.get_item(key).ok()??;
    serde_json::from_str(&text).ok()
}

fn write<T: Serialize>(key: &str, value: &T) {
    if let (Some(s), Ok(text)) = (storage(), serde_json::to_string(value)) {
        // A full or disabled storage only costs resumability.
        let _ = s.set_item(key, &text);
    }
}

pub fn load_settings() -> Settings {
    read::<Settings>(SETTINGS).unwrap_or_default().clamped()
}

pub fn save_settings(settings: &Settings) {
    write(SETTINGS, settings);
}

pub fn load_lang() -> Option<Lang> {
    read(LANG)
}

pub fn save_lang(lang: Lang) {
    write(LANG, &lang);
}

pub fn resumable() -> BTreeMap<String, Resume> {
    read(RESUME).unwrap_or_default()
}

pub fn lookup(file: &FileFingerprint) -> Option<String> {
    resumable().remove(&file.key()).map(|r| r.url)
}

pub fn remember(file: &FileFingerprint, url: &str) {
    let mut all = resumable();
    all.insert(
        file.key(),
        Resume {
            url: url.to_string(),
            file: file.clone(),
        },
    );
    write(RESUME, &all);
}

pub fn forget(key: &str) {
    let mut all = resumable();
    if all.remove(key).is_some() {
        write(RESUME, &all);
    }
}
