//! Server functions: the page's calls to the server for everything that is
//! not a chunk body. Each one is thin: find the caller, call the core, map
//! the answer.

use crate::model::{FileCheck, FileFingerprint, ServerInfo, UploadSummary};
use leptos::prelude::*;

/// Most files one `check_files` call may ask about.
pub const MAX_CHECK_FILES: usize = 1000;

#[cfg(feature = "ssr")]
mod server {
    use crate::model::FileFingerprint;
    use crate::upload::{Owner, UploadRecord};
    use leptos::prelude::*;

    /// The caller's owner, as the session middleware found it.
    pub async fn owner() -> Result<Owner, ServerFnError> {
        let axum::Extension(owner) = leptos_axum::extract::<axum::Extension<Owner>>().await?;
        Ok(owner)
    }

    pub fn state() -> crate::AppState {
        expect_context::<crate::AppState>()
    }

    /// The caller's uploads.
    pub async fn my_uploads() -> Result<Vec<UploadRecord>, ServerFnError> {
        let owner = owner().await?;
        state().uploads.list(&owner).await.map_err(fail)
    }

    pub fn fail(e: crate::error::Error) -> ServerFnError {
        ServerFnError::ServerError(e.message)
    }

    pub use crate::upload::events::summary;

    /// Whether a record was made from a file with this fingerprint.
    pub fn matches(r: &UploadRecord, f: &FileFingerprint) -> bool {
        r.length == Some(f.size)
            && r.metadata.filename() == Some(f.name.as_str())
            && r.metadata.filetype().unwrap_or("") == f.mime
            && r.metadata.get_str("lastmodified") == Some(f.last_modified.to_string().as_str())
    }
}

/// Describes the running server (version, uptime, limits) to the page.
#[server(prefix = "/api", endpoint = "describe_server")]
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
#[server(prefix = "/api", endpoint = "check_files")]
pub async fn check_files(files: Vec<FileFingerprint>) -> Result<Vec<FileCheck>, ServerFnError> {
    if files.len() > MAX_CHECK_FILES {
        return Err(ServerFnError::new(format!(
            "At most {MAX_CHECK_FILES} files can be checked at once."
        )));
    }
    let records = server::my_uploads().await?;
    Ok(files
        .iter()
        .map(|f| {
            let mut same = records.iter().filter(|r| server::matches(r, f));
            if let Some(done) = same.clone().find(|r| r.is_complete()) {
                FileCheck::Complete {
                    url: done.id.path(),
                    sha256: done.sha256.clone().unwrap_or_default(),
                }
            } else if let Some(part) = same.next() {
                FileCheck::Partial {
                    url: part.id.path(),
                    offset: part.offset,
                }
            } else {
                FileCheck::New
            }
        })
        .collect())
}

/// The caller's uploads, newest first.
#[server(prefix = "/api", endpoint = "list_uploads")]
pub async fn list_uploads() -> Result<Vec<UploadSummary>, ServerFnError> {
    let records = server::my_uploads().await?;
    Ok(records.iter().map(server::summary).collect())
}

/// Deletes one of the caller's uploads.
#[server(prefix = "/api", endpoint = "delete_upload")]
pub async fn delete_upload(id: String) -> Result<(), ServerFnError> {
    let owner = server::owner().await?;
    let state = server::state();
    let id = crate::upload::UploadId::parse(&id)
        .ok_or_else(|| ServerFnError::new("There is no such upload."))?;
    let record = state.uploads.get(&id).await.map_err(server::fail)?;
    if record.owner != owner {
        return Err(ServerFnError::ServerError(
            "That upload is not yours.".into(),
        ));
    }
    state.uploads.delete(&id).await.map_err(server::fail)
}
