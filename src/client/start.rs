//! What the page does once it is interactive: the person's settings and
//! language from storage, the uploads a previous visit left unfinished,
//! live events, and a periodic refresh of the list of finished uploads.
//!
//! What this module must not know: how files are queued or sent.

use super::tus::{self, Head};
use super::xhr::sleep;
use super::{listing, live, storage};
use crate::page::embed::EmbedOptions;
use crate::page::i18n::Lang;
use crate::page::state::{Interrupted, Uploads};
use crate::page::tus::Failure;
use crate::protocol::rules::UploadRules;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Sets up the page once it is hydrated.
pub fn init(m: Uploads) {
    m.settings.set(storage::load_settings());
    let lang = storage::load_lang().unwrap_or_else(browser_lang);
    m.lang.set(lang);
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        if let Some(html) = doc.document_element() {
            let _ = html.set_attribute("lang", lang.tag());
        }
    }
    begin(m, None);
}

/// Sets up a widget embedded in another site's page: settings, language
/// and rules from the host page's options, and nothing of the host page
/// touched.
pub fn init_embedded(m: Uploads, options: EmbedOptions) {
    m.settings.set(options.settings());
    m.lang.set(options.lang().unwrap_or_else(browser_lang));
    m.held.set(!options.autostarts());
    // The host page's own restrictions hold from the first file, before
    // (and whether or not) the server's rules arrive.
    m.rules.set(Some(options.narrow(UploadRules {
        max_size: u64::MAX,
        ..UploadRules::default()
    })));
    begin(m, Some(options));
}

fn browser_lang() -> Lang {
    let tag = web_sys::window()
        .and_then(|w| w.navigator().language())
        .unwrap_or_default();
    Lang::from_tag(&tag)
}

/// What every page starts: the interrupted uploads, the rules, live
/// events and the refresh of the list.
fn begin(m: Uploads, embedded: Option<EmbedOptions>) {
    spawn_local(load_interrupted(m));
    spawn_local(async move {
        // Without them the server still refuses what breaks its rules,
        // file by file, once sending starts.
        if let Ok(rules) = crate::api::announce_rules().await {
            let rules = match &embedded {
                Some(options) => options.narrow(rules),
                None => rules,
            };
            m.rules.set(Some(rules));
        }
    });
    live::start(m);
    // Live events keep the list current; this only catches what they miss.
    spawn_local(async move {
        loop {
            sleep(30_000).await;
            if !m.alive() {
                break; // an embedded uploader taken off its page
            }
            listing::refresh_uploaded(m).await;
        }
    });
}

/// Lists the remembered uploads the server still has unfinished, and
/// forgets the ones it finished, lost or refuses to tell about.
async fn load_interrupted(m: Uploads) {
    let mut found = Vec::new();
    let remembered = storage::resumable();
    let keys: std::collections::HashSet<String> = remembered.keys().cloned().collect();
    super::handles::keep_only(&keys).await;
    for (key, entry) in remembered {
        let by_handle = super::handles::get(&key).await.is_some();
        let interrupted = |offset| Interrupted {
            key: key.clone(),
            name: entry.file.name.clone(),
            size: entry.file.size,
            offset,
            by_handle,
        };
        let Some(url) = &entry.url else {
            // Sent in parts: what the parts the server still has hold.
            // Forgotten only when the server says every part is gone (not
            // when it cannot say, as offline).
            let mut held = 0;
            let mut gone = true;
            for part in entry.parts.iter().filter(|p| !p.is_empty()) {
                match tus::head(part).await {
                    Ok(Head::At { offset, .. }) => {
                        held += offset;
                        gone = false;
                    }
                    Ok(Head::Gone) | Err(Failure::Fatal(_)) => {}
                    Err(_) => gone = false,
                }
            }
            match gone {
                true => storage::forget(&key),
                false => found.push(interrupted(held)),
            }
            continue;
        };
        match tus::head(url).await {
            Ok(Head::At { offset, length }) if Some(offset) != length => {
                found.push(interrupted(offset))
            }
            Ok(_) | Err(Failure::Fatal(_)) => storage::forget(&key),
            Err(_) => {}
        }
    }
    m.interrupted.set(found);
}
