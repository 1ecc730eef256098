//! `POST /upload/form`: the classic `multipart/form-data` upload (RFC 1867,
//! RFC 7578) that works with no JavaScript at all. Each file part streams
//! to storage through a small bounded channel, never held whole in memory;
//! it becomes a finished upload with its SHA-256, and the browser is sent
//! back (303) to the page, which lists it.
//!
//! A file is finished only when the multipart parser reaches the end of
//! its part: a body that stops early (the client hangs up, the connection
//! breaks) never counts as the end of a file, and the unfinished upload is
//! removed. What the parser may hold outside file contents (the preamble,
//! part headers, other fields) is bounded, whatever the client sends.

use crate::core::error::{Error, ErrorCode};
use crate::core::{
    AppendRequest, BodyStream, Concat, CreateRequest, Owner, UploadId, UploadService,
};
use crate::protocol::key;
use crate::protocol::metadata::Metadata;
use crate::server::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Chunks of a part in flight between the request and storage.
const CHANNEL_DEPTH: usize = 4;
/// Most bytes the parser may have read beyond the file contents handed
/// to storage: the preamble, part headers, non-file fields, and what it
/// buffers while looking for a boundary.
pub const MAX_FORM_OVERHEAD: u64 = 1 << 20;

/// What travels from the form to storage.
enum Piece {
    Data(Bytes),
    /// The parser's own end of the part: the file is whole.
    End,
    Failed(String),
}

/// The body of one file part as the upload service reads it: data until
/// the parser's end of part. A channel closed without it (the request
/// went away) is an error, never the end of the file.
fn part_body(rx: tokio::sync::mpsc::Receiver<Piece>) -> BodyStream {
    Box::pin(futures_util::stream::unfold(
        (rx, false),
        |(mut rx, ended)| async move {
            if ended {
                return None;
            }
            let item = match rx.recv().await {
                Some(Piece::Data(b)) => Ok(b),
                Some(Piece::End) => return None,
                Some(Piece::Failed(why)) => Err(std::io::Error::other(why)),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the form ended inside a file",
                )),
            };
            let stop = item.is_err();
            Some((item, (rx, stop)))
        },
    ))
}

/// Removes an unfinished upload when the request stops before its file
/// is whole, including when the request's future is dropped.
struct RemoveUnlessFinished {
    uploads: UploadService,
    id: Option<UploadId>,
}

impl Drop for RemoveUnlessFinished {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let uploads = self.uploads.clone();
            tokio::spawn(async move {
                if let Err(e) = uploads.delete(&id).await {
                    tracing::warn!(%id, "removing an unfinished form upload: {e}");
                }
            });
        }
    }
}

/// Counts the bytes the parser reads from the request, and fails the body
/// when the parser asks for more while more than `MAX_FORM_OVERHEAD` of
/// what it read is not file contents handed on (it is looking for a
/// boundary that does not come, reading an endless part header, or
/// skipping fields that are not files).
fn metered(body: Body, read: Arc<AtomicU64>, handed: Arc<AtomicU64>) -> Body {
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        let held = read
            .load(Ordering::Relaxed)
            .saturating_sub(handed.load(Ordering::Relaxed));
        if held > MAX_FORM_OVERHEAD {
            return Err(axum::Error::new(std::io::Error::other(
                "the form holds too much besides its files",
            )));
        }
        read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(chunk)
    }))
}

pub async fn upload(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    req: Request,
) -> Response {
    let read = Arc::new(AtomicU64::new(0));
    let handed = Arc::new(AtomicU64::new(0));
    let caller = super::headers::caller(&state, &req);
    let req = req.map(|body| metered(body, read.clone(), handed.clone()));
    let mut form = match Multipart::from_request(req, &state).await {
        Ok(form) => form,
        Err(e) => {
            return failure(Error::new(
                ErrorCode::InvalidHeader,
                format!("This is not a multipart/form-data upload ({e})."),
            ))
        }
    };
    let mut stored = 0usize;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return failure(Error::new(
                    ErrorCode::BodyIncomplete,
                    format!("The form could not be read to the end ({e}); {stored} files before the problem were stored."),
                ))
            }
        };
        let Some(name) = field.file_name().map(str::to_owned) else {
            continue; // not a file
        };
        if name.is_empty() {
            continue; // the empty part browsers send when no file was chosen
        }
        let most = state.config.max_files_per_batch;
        if most > 0 && stored >= most as usize {
            return failure(Error::new(
                ErrorCode::TooManyFiles,
                format!("This server takes at most {most} files at once; the first {stored} were stored."),
            ));
        }
        let mime = field.content_type().unwrap_or("").to_string();
        // Parsed back as a tus client's would be: the same limits hold.
        let pairs = [
            (key::FILENAME, name.as_str()),
            (key::FILETYPE, mime.as_str()),
        ];
        let metadata = match Metadata::parse(&Metadata::from_pairs(pairs).encode()) {
            Ok(m) => m,
            Err(e) => return failure(e.into()),
        };
        let record = match state
            .uploads
            .create(CreateRequest {
                owner: owner.clone(),
                length: None,
                metadata,
                concat: Concat::None,
                caller: caller.clone(),
                idempotency_key: None,
            })
            .await
        {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
        let mut guard = RemoveUnlessFinished {
            uploads: state.uploads.clone(),
            id: Some(record.id.clone()),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(CHANNEL_DEPTH);
        let request = AppendRequest {
            offset: 0,
            length_at_end: true,
            caller: caller.clone(),
            ..AppendRequest::default()
        };
        let feed = async {
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        handed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        if tx.send(Piece::Data(chunk)).await.is_err() {
                            break; // storage stopped (an error it reports)
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(Piece::End).await;
                        break;
                    }
                    Err(e) => {
                        let _ = tx.send(Piece::Failed(e.to_string())).await;
                        break;
                    }
                }
            }
            drop(tx);
        };
        let (appended, ()) = tokio::join!(
            state.uploads.append(&record.id, request, part_body(rx)),
            feed
        );
        match appended {
            Ok(_) => {
                guard.id = None;
                stored += 1;
            }
            Err(e) => {
                guard.id = None;
                if let Err(e) = state.uploads.delete(&record.id).await {
                    tracing::warn!(id = %record.id, "removing an unfinished form upload: {e}");
                }
                return failure(e);
            }
        }
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/?{}={stored}", crate::protocol::FORM_DONE_KEY))
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A page that says what went wrong, for a browser without JavaScript.
fn failure(e: Error) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    e.log();
    let page = super::pages::upload_failed(e.code.as_str(), &e.message);
    (status, Html(page)).into_response()
}
