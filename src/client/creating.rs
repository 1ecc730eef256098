//! Uploads created with their file's first bytes (creation-with-upload),
//! whose answer is the only word of where the upload is. While such a
//! request is on its way, a resumed attempt at the same file waits for it
//! (`wait`); when one ends without an answer, the file is `unsure`, and
//! before it is created again the server is asked by fingerprint whether
//! it has it (`found_unseen`): a pause or a lost answer must not send a
//! file twice.
//!
//! What this module must not know: how the request is made, or the queue.

use super::xhr::sleep;
use crate::page::state::Row;
use crate::page::tus::Failure;
use crate::protocol::model::FileCheck;
use std::cell::RefCell;
use std::collections::HashSet;

thread_local! {
    // Rows whose upload is being created with their first bytes, and rows
    // where such a request got no answer (the upload may exist).
    static CREATING: RefCell<HashSet<u32>> = RefCell::new(HashSet::new());
    static UNSURE: RefCell<HashSet<u32>> = RefCell::new(HashSet::new());
}

/// Marks the row's upload as being created for as long as it lives.
pub struct Creating(u32);

impl Creating {
    pub fn start(id: u32) -> Creating {
        CREATING.with(|c| c.borrow_mut().insert(id));
        Creating(id)
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        CREATING.with(|c| c.borrow_mut().remove(&self.0));
    }
}

/// Waits until no request is creating the row's upload.
pub async fn wait(id: u32) {
    while CREATING.with(|c| c.borrow().contains(&id)) {
        sleep(50).await;
    }
}

/// Marks the row's file as perhaps created: a request creating it got no
/// answer.
pub fn unsure(id: u32) {
    UNSURE.with(|u| u.borrow_mut().insert(id));
}

/// For a file marked `unsure`: where the server has an upload of it, asked
/// by its fingerprint as the page asks of files being added. `Ok(None)`
/// when it has none, or the file was not unsure; an error (and the file
/// still unsure) when the server cannot say.
pub async fn found_unseen(row: &Row) -> Result<Option<FileCheck>, Failure> {
    if !UNSURE.with(|u| u.borrow_mut().remove(&row.id)) {
        return Ok(None);
    }
    let Ok(checks) = crate::api::check_files(vec![row.file.clone()]).await else {
        unsure(row.id);
        return Err(Failure::Retry(
            "The server could not say whether it has the file".into(),
        ));
    };
    Ok(checks
        .into_iter()
        .next()
        .filter(|c| !matches!(c, FileCheck::New)))
}
