//! Server functions: the page's calls to the server for everything that is
//! not a chunk body. Each one is thin: find the caller, call the core, map
//! the answer. Compiled into both halves (the browser gets the calls, the
//! server the bodies).
//!
//! What it must not know: the rules of uploads (the core's), or the page's
//! state.

use crate::protocol::model::{FileCheck, FileFingerprint, FileSample, ServerInfo, UploadPage};
use crate::protocol::rules::UploadRules;
use leptos::prelude::*;

pub mod remote;

/// Most files one `check_files` call may ask about.
pub const MAX_CHECK_FILES: usize = 1000;
/// Most files one `likely_stored` call may ask about (the page asks about
/// one at a time).
pub const MAX_SAMPLED_FILES: usize = 4;
/// Uploads in one page of the listing, unless asked for fewer or more.
pub const LIST_PAGE: u32 = 100;
/// Most uploads one page of the listing may hold.
pub const MAX_LIST_PAGE: u32 = 500;

#[cfg(feature = "ssr")]
mod server {
    use crate::core::{ListCursor, Owner, UploadId, UploadRecord};
    use crate::protocol::model::FileFingerprint;
    use leptos::prelude::*;

    /// The caller's owner, as the session middleware found it.
    pub async fn owner() -> Result<Owner, ServerFnError> {
        let axum::Extension(owner) = leptos_axum::extract::<axum::Extension<Owner>>().await?;
        Ok(owner)
    }

    pub fn state() -> crate::server::AppState {
        expect_context::<crate::server::AppState>()
    }

    /// A failure of the core, answered with its own HTTP status.
    pub fn fail(e: crate::core::error::Error) -> ServerFnError {
        e.log();
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = axum::http::StatusCode::from_u16(e.status()) {
                resp.set_status(status);
            }
        }
        ServerFnError::ServerError(format!("{}: {}", e.code, e.message))
    }

    pub use crate::core::events::summary;

    /// Where a listing continues: `<created_at>.<id>` of the last record.
    pub fn cursor_of(r: &UploadRecord) -> String {
        format!("{}.{}", r.created_at, r.id)
    }

    pub fn parse_cursor(s: &str) -> Option<ListCursor> {
        let (at, id) = s.split_once('.')?;
        Some(ListCursor {
            created_at: at.parse().ok()?,
            id: UploadId::parse(id)?,
        })
    }

    /// Whether a record was made from a file with this fingerprint.
    pub fn matches(r: &UploadRecord, f: &FileFingerprint) -> bool {
        r.length == Some(f.size)
            && r.metadata.filename() == Some(f.name.as_str())
            && r.metadata.filetype().unwrap_or("") == f.mime
            && r.metadata.get_str(crate::protocol::key::LAST_MODIFIED)
                == Some(f.last_modified.to_string().as_str())
            && r.metadata
                .get_str(crate::protocol::key::RELATIVE_PATH)
                .map(crate::core::names::clean_relative_path)
                .unwrap_or_default()
                == crate::core::names::clean_relative_path(&f.path)
    }
}

/// The rules the server holds uploads to, for the page to check files
/// against before it sends them (the server checks them again).
#[server(prefix = "/api", client = remote::FerryClient, endpoint = "upload_rules")]
pub async fn announce_rules() -> Result<UploadRules, ServerFnError> {
    let owner = server::owner().await?;
    let state = server::state();
    let config = state.uploads.config();
    Ok(UploadRules {
        max_size: config.max_size,
        allow_types: config.allow_types.clone(),
        max_files: (state.config.max_files_per_batch > 0)
            .then_some(state.config.max_files_per_batch),
        room_left: state
            .uploads
            .room_left(&owner)
            .await
            .map_err(server::fail)?,
        also_types: Vec::new(),
    })
}

/// Describes the running server (version, uptime, limits) to the page.
#[server(prefix = "/api", client = remote::FerryClient, endpoint = "describe_server")]
pub async fn describe_server() -> Result<ServerInfo, ServerFnError> {
    let state = server::state();
    Ok(ServerInfo {
        version: crate::VERSION.to_string(),
        uptime_secs: state.started.elapsed().as_secs(),
        max_size: state.uploads.config().max_size,
    })
}

/// Before a batch is sent: what the server already has of each file. A
/// finished upload of the same file is reported complete (nothing to send),
/// an unfinished one partial (resume at its offset), anything else new.
#[server(prefix = "/api", client = remote::FerryClient, endpoint = "check_files")]
pub async fn check_files(files: Vec<FileFingerprint>) -> Result<Vec<FileCheck>, ServerFnError> {
    if files.len() > MAX_CHECK_FILES {
        return Err(server::fail(crate::core::Error::new(
            crate::core::ErrorCode::TooManyFiles,
            format!("At most {MAX_CHECK_FILES} files can be checked at once."),
        )));
    }
    let owner = server::owner().await?;
    let mut lengths: Vec<u64> = files.iter().map(|f| f.size).collect();
    lengths.sort_unstable();
    lengths.dedup();
    // Only uploads of the sizes asked about, a bounded number per size.
    let mut records = Vec::new();
    for batch in lengths.chunks(100) {
        let limit = (batch.len() as u32).saturating_mul(20);
        let found = server::state()
            .uploads
            .find_by_lengths(&owner, batch, limit)
            .await
            .map_err(server::fail)?;
        records.extend(found);
    }
    Ok(files
        .iter()
        .map(|f| {
            let mut same = records.iter().filter(|r| server::matches(r, f));
            if let Some(done) = same.clone().find(|r| r.is_complete()) {
                FileCheck::Complete {
                    url: crate::protocol::upload_url(done.id.as_str()),
                    sha256: done.sha256.clone().unwrap_or_default(),
                }
            } else if let Some(part) = same.next() {
                FileCheck::Partial {
                    url: crate::protocol::upload_url(part.id.as_str()),
                    offset: part.offset,
                }
            } else {
                FileCheck::New
            }
        })
        .collect())
}

/// Before a large file is hashed whole for an instant upload: for each
/// file, whether the caller has a finished upload of its size with its
/// sample (`protocol::sample`), so that hashing first may spare sending
/// it. `false` says the server has no copy; `true` only that it may.
#[server(prefix = "/api", client = remote::FerryClient, endpoint = "likely_stored")]
pub async fn likely_stored(files: Vec<FileSample>) -> Result<Vec<bool>, ServerFnError> {
    use crate::core::error::{Error, ErrorCode};
    if files.len() > MAX_SAMPLED_FILES {
        return Err(server::fail(Error::new(
            ErrorCode::TooManyFiles,
            format!("At most {MAX_SAMPLED_FILES} files can be asked about at once."),
        )));
    }
    if let Some(bad) = files
        .iter()
        .find(|f| !crate::protocol::sample::is_sample(&f.sample))
    {
        return Err(server::fail(Error::new(
            ErrorCode::InvalidArguments,
            format!(
                "{:?} is not a sample (64 lowercase hex digits).",
                bad.sample.chars().take(80).collect::<String>()
            ),
        )));
    }
    let owner = server::owner().await?;
    let uploads = &server::state().uploads;
    let mut answers = Vec::with_capacity(files.len());
    for f in &files {
        answers.push(
            uploads
                .holds_sample(&owner, f.size, &f.sample)
                .await
                .map_err(server::fail)?,
        );
    }
    Ok(answers)
}

/// A page of the caller's uploads, newest first: the first page without
/// `after`, the next one with the `next` of the page before. `limit` is at
/// most `MAX_LIST_PAGE` (default `LIST_PAGE`).
#[server(prefix = "/api", client = remote::FerryClient, endpoint = "list_uploads")]
pub async fn list_uploads(
    after: Option<String>,
    limit: Option<u32>,
) -> Result<UploadPage, ServerFnError> {
    let owner = server::owner().await?;
    let after = match after.as_deref() {
        None | Some("") => None,
        Some(s) => Some(server::parse_cursor(s).ok_or_else(|| {
            server::fail(crate::core::Error::new(
                crate::core::ErrorCode::InvalidArguments,
                "That listing cursor is not one the server gave.",
            ))
        })?),
    };
    let limit = limit.unwrap_or(LIST_PAGE).clamp(1, MAX_LIST_PAGE);
    // One more than asked: whether there is a next page.
    let mut records = server::state()
        .uploads
        .list(&owner, after.as_ref(), limit + 1)
        .await
        .map_err(server::fail)?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    Ok(UploadPage {
        next: more
            .then(|| records.last().map(server::cursor_of))
            .flatten(),
        // Parts of a file sent in parts are not files.
        uploads: records
            .iter()
            .filter(|r| r.concat != crate::core::Concat::Partial)
            .map(server::summary)
            .collect(),
    })
}

/// Deletes one of the caller's uploads.
#[server(prefix = "/api", client = remote::FerryClient, endpoint = "delete_upload")]
pub async fn delete_upload(id: String) -> Result<(), ServerFnError> {
    use crate::core::error::{Error, ErrorCode};
    let owner = server::owner().await?;
    let state = server::state();
    let id = crate::core::UploadId::parse(&id).ok_or_else(|| server::fail(Error::not_found()))?;
    let record = state.uploads.get(&id).await.map_err(server::fail)?;
    if record.owner != owner {
        return Err(server::fail(Error::new(
            ErrorCode::Forbidden,
            "That upload is not yours.",
        )));
    }
    let parts: axum::http::request::Parts = leptos_axum::extract().await?;
    let caller = state.hook_caller(&parts.method, &parts.uri, &parts.headers, &parts.extensions);
    state
        .uploads
        .terminate(&id, caller)
        .await
        .map_err(server::fail)
}
