//! Files joining the batch: from the file input, the folder input or a
//! drop (`folders` gives each its path), refused at once when they break
//! the server's rules on size, kind or files at once, asked about (what
//! does the server have of them?), refused when new and without room in
//! the owner's share, then queued (`queue::pump`).
//!
//! What this module must not know: how a file's bytes travel.

use super::job::Job;
use super::queue::{hold, pump, release};
use super::{folders, handles, storage};
use crate::page::i18n::{format_size, t, Lang, Msg};
use crate::page::state::{Row, Status, Uploads};
use crate::protocol::model::{FileCheck, FileFingerprint};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::HashSet;
use wasm_bindgen::JsCast;
use web_sys::File;

fn fingerprint(file: &File, path: String) -> FileFingerprint {
    FileFingerprint {
        name: file.name(),
        size: file.size() as u64,
        last_modified: file.last_modified() as i64,
        mime: file.type_(),
        path,
    }
}

/// A click on the drop zone: where the browser's own picker gives files
/// with handles that outlive the page (`handles`), it is used, and the
/// handles are kept; elsewhere the click opens the file input.
pub fn choose_files(m: Uploads, ev: &web_sys::MouseEvent) {
    if !handles::available() {
        return;
    }
    ev.prevent_default();
    spawn_local(async move {
        let chosen = handles::choose().await;
        let keys = chosen
            .iter()
            .filter(|(file, _)| file.size() >= handles::KEPT_FROM)
            .map(|(file, handle)| (fingerprint(file, String::new()).key(), handle.clone()))
            .collect();
        handles::keep(keys).await;
        add_files(
            m,
            chosen
                .into_iter()
                .map(|(f, _)| (f, String::new()))
                .collect(),
        );
    });
}

/// Resumes an interrupted upload whose file's handle was kept: the file
/// comes back from it (the browser may ask the person once), without
/// choosing it again.
pub fn resume_interrupted(m: Uploads, key: String) {
    spawn_local(async move {
        // The handle's file must still be the one interrupted (not changed
        // since, nor another of that name).
        let same = |(file, path): &(File, String)| fingerprint(file, path.clone()).key() == key;
        match handles::reopen(&key).await.filter(same) {
            Some(found) => add_files(m, vec![found]),
            None => m
                .announce
                .set(t(m.lang.get_untracked(), Msg::ChooseAgain).into()),
        }
    });
}

/// Files chosen with the file input or the folder input (whose files know
/// their path in the folder).
pub fn add_from_input(m: Uploads, ev: &web_sys::Event) {
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    if let Some(list) = input.files() {
        let files = (0..list.length())
            .filter_map(|i| list.get(i))
            .map(|f| {
                let path = folders::relative_path(&f);
                (f, path)
            })
            .collect();
        add_files(m, files);
    }
    // Choosing the same file again must fire `change` again.
    input.set_value("");
}

/// Files and folders dropped on the drop zone: folders are walked, each
/// file keeping its path; a browser without entries gives its files.
/// Where the browser gives handles (`handles`), they are kept.
pub fn add_from_drop(m: Uploads, ev: &web_sys::DragEvent) {
    let Some(dt) = ev.data_transfer() else {
        return;
    };
    // Both are taken while the event lasts.
    let dropped = handles::of_drop(&dt);
    let entries = folders::entries(&dt);
    let listed: Vec<(File, String)> = match (&entries, dt.files()) {
        (None, Some(list)) => (0..list.length())
            .filter_map(|i| list.get(i))
            .map(|f| (f, String::new()))
            .collect(),
        _ => Vec::new(),
    };
    spawn_local(async move {
        let files = match entries {
            Some(entries) => folders::walk(entries).await,
            None => listed,
        };
        // Kept beside the sending, not before it: a drop of thousands
        // starts at once.
        let large: Vec<(File, String)> = files
            .iter()
            .filter(|(file, _)| file.size() >= handles::KEPT_FROM)
            .cloned()
            .collect();
        spawn_local(keep_dropped(dropped, large));
        add_files(m, files);
    });
}

/// Keeps the handles of dropped files: a file dropped alone by its own, a
/// file of a dropped folder by the folder's and its path.
async fn keep_dropped(dropped: Vec<js_sys::Promise>, files: Vec<(File, String)>) {
    if dropped.is_empty() || files.is_empty() {
        return;
    }
    let settled = handles::settle(dropped).await;
    let find = |name: &str, folder: bool| {
        settled
            .iter()
            .find(|(n, is_folder, _)| n == name && *is_folder == folder)
            .map(|(_, _, handle)| handle)
    };
    let kept = files
        .iter()
        .filter_map(|(file, path)| {
            let key = fingerprint(file, path.clone()).key();
            if path.is_empty() {
                return Some((key, find(&file.name(), false)?.clone()));
            }
            let top = path.split('/').next()?;
            Some((key, handles::inside(find(top, true)?, path)))
        })
        .collect();
    handles::keep(kept).await;
}

/// Adds files to the batch: refuses at once what breaks the server's rules
/// (size, kind, files at once), asks the server what it has of the rest
/// (in calls of at most `MAX_CHECK_FILES`), refuses the new files that no
/// longer fit in the owner's room, then queues what needs sending. Each
/// call's files start as soon as their answer comes, so the first bytes of
/// ten thousand files leave after one call, not ten.
pub fn add_files(m: Uploads, files: Vec<(File, String)>) {
    // Keys, not a list: a drop of thousands is checked in one pass.
    let mut taken: HashSet<String> = m.rows.with_untracked(|rows| {
        rows.iter()
            .filter(|r| !matches!(r.status.get_untracked(), Status::Failed | Status::Refused))
            .map(|r| r.file.key())
            .collect()
    });
    let mut added: Vec<Row> = Vec::new();
    let mut chosen = Vec::new();
    for (file, path) in files {
        let fp = fingerprint(&file, path);
        if !taken.insert(fp.key()) {
            continue; // already in this batch
        }
        let row = Row::new(m.next_id(), fp);
        added.push(row);
        chosen.push(file);
    }
    if added.is_empty() {
        return;
    }
    let refused = refuse_by_rules(m, &added);
    m.rows.update(|rows| rows.extend(added.iter().cloned()));
    let mut kept = Vec::new();
    for (row, file) in added.into_iter().zip(chosen) {
        if refused.contains(&row.id) {
            continue;
        }
        // Its thumbnail is made when its row is drawn (`gallery`).
        hold(row.id, Job::new(file));
        kept.push(row);
    }
    let added = kept;
    if added.is_empty() {
        return;
    }
    let keys: HashSet<String> = added.iter().map(|r| r.file.key()).collect();
    m.interrupted
        .update(|list| list.retain(|i| !keys.contains(&i.key)));
    spawn_local(async move {
        // New files let in by earlier calls and not created yet: the
        // server's room does not count them.
        let mut admitted: Vec<Row> = Vec::new();
        for rows in added.chunks(crate::api::MAX_CHECK_FILES) {
            let remembered = storage::resumable();
            let mut new_files = Vec::new();
            let fps: Vec<FileFingerprint> = rows.iter().map(|r| r.file.clone()).collect();
            match crate::api::check_files(fps).await {
                Ok(checks) if checks.len() == rows.len() => {
                    for (row, check) in rows.iter().zip(checks) {
                        match check {
                            // New to this owner; but an upload this
                            // browser remembers for the file is its to
                            // resume (its URL is its capability), as when
                            // the owner is not stable: an embedded
                            // uploader whose browser withholds Ferry's
                            // cookie from another site. One gone from the
                            // server starts again (`transfer`).
                            FileCheck::New => match remembered.get(&row.file.key()) {
                                Some(r) if r.url.is_some() => row.url.set(r.url.clone()),
                                // Parts remembered: taken up by `parts`.
                                Some(r) if !r.parts.is_empty() => {}
                                _ => new_files.push(row.clone()),
                            },
                            FileCheck::Partial { url, offset } => {
                                row.url.set(Some(url));
                                row.sent.set(offset);
                            }
                            FileCheck::Complete { url, sha256 } => {
                                // Parts this browser remembers for it
                                // were joined; they go.
                                spawn_local(super::tus::delete_each(super::parts::remembered(
                                    &row.file,
                                )));
                                row.url.set(Some(url));
                                row.server_sha.set(Some(sha256));
                                row.sent.set(row.file.size);
                                row.status.set(Status::AlreadyUploaded);
                                storage::forget(&row.file.key());
                            }
                        }
                    }
                }
                // Without an answer, fall back to what this browser remembers.
                _ => {
                    for row in rows {
                        row.url
                            .set(remembered.get(&row.file.key()).and_then(|r| r.url.clone()));
                    }
                }
            }
            admitted.retain(|r| {
                r.url.get_untracked().is_none() && r.status.get_untracked() != Status::Refused
            });
            let pending: u64 = admitted.iter().map(|r| r.file.size).sum();
            refuse_without_room(m, &new_files, pending).await;
            if !m.alive() {
                return;
            }
            admitted.extend(new_files);
            for row in rows {
                if row.status.get_untracked() == Status::Checking {
                    row.status.set(Status::Waiting);
                }
            }
            pump(m);
        }
    });
}

/// Marks a row refused by the server's rules: never sent, with why (the
/// rule's words, then the server's figure).
fn refuse(row: &Row, lang: Lang, rule: Msg, figure: String) {
    handles::forget(&row.file.key());
    row.status.set(Status::Refused);
    row.message
        .set(Some(format!("{} {figure}.", t(lang, rule))));
    release(row.id);
}

/// Refuses the new files (nothing of them on the server yet) that do not
/// fit in what is left of the owner's share, as the server says it now,
/// less the `pending` bytes of files let in before and not created yet.
async fn refuse_without_room(m: Uploads, new_files: &[Row], pending: u64) {
    if new_files.is_empty() || m.rules.get_untracked().is_none() {
        return;
    }
    let Ok(fresh) = crate::api::announce_rules().await else {
        return;
    };
    // Only the room changes: the rest stays as the page has it (narrowed
    // by the host page's options, for an embedded uploader).
    m.rules
        .update(|r| r.get_or_insert_with(|| fresh.clone()).room_left = fresh.room_left);
    let Some(mut left) = fresh.room_left.map(|room| room.saturating_sub(pending)) else {
        return;
    };
    let lang = m.lang.get_untracked();
    for row in new_files {
        if row.file.size > left {
            refuse(row, lang, Msg::RuleNoRoom, format_size(lang, left));
        } else {
            left -= row.file.size;
        }
    }
}

/// Marks the new rows that break the server's rules on size, kind and
/// files at once as refused, each with why, before anything is sent;
/// answers their IDs.
fn refuse_by_rules(m: Uploads, added: &[Row]) -> Vec<u32> {
    use crate::protocol::rules::{Broken, UploadRules};
    let Some(rules) = m.rules.get_untracked() else {
        return Vec::new();
    };
    let lang = m.lang.get_untracked();
    // The room is judged once the server said which files are new.
    let alone = UploadRules {
        room_left: None,
        ..rules.clone()
    };
    let verdicts = alone.check_batch(
        added
            .iter()
            .map(|r| (r.file.name.as_str(), r.file.size, r.file.mime.as_str())),
    );
    let mut refused = Vec::new();
    for (row, verdict) in added.iter().zip(verdicts) {
        let (rule, figure) = match verdict {
            None | Some(Broken::NoRoom) => continue,
            Some(Broken::TooLarge) => (Msg::RuleTooLarge, format_size(lang, rules.max_size)),
            Some(Broken::TypeNotAllowed) => (Msg::RuleType, rules.accepted_kinds()),
            Some(Broken::TooManyFiles) => {
                (Msg::RuleTooMany, rules.max_files.unwrap_or(0).to_string())
            }
        };
        refuse(row, lang, rule, figure);
        refused.push(row.id);
    }
    refused
}
