//! The browser half of uploading (hydrate only): a tus 1.0 client that
//! slices files with `Blob.slice` and sends each chunk with
//! `XMLHttpRequest` (so progress is reported while bytes leave), retries
//! with back-off, resumes from what the server has, hashes for instant
//! upload and makes thumbnails. It writes the page's state (`ui::state`);
//! the components only show it.

mod engine;
mod hash;
mod http;
mod live;
pub mod store;
mod thumb;
mod ws;

pub use engine::{
    add_from_drop, add_from_input, cancel, cancel_all, delete_uploaded, init, load_more, retry,
};
