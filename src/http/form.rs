//! `POST /upload/form`: the classic `multipart/form-data` upload (RFC 1867,
//! RFC 7578) that works with no JavaScript at all. Each file part streams
//! to storage through a small bounded channel, never held whole in memory;
//! it becomes a finished upload with its SHA-256, and the browser is sent
//! back (303) to the page, which lists it.

use crate::error::{Error, ErrorCode};
use crate::state::AppState;
use crate::upload::{AppendRequest, BodyStream, Concat, CreateRequest, Metadata, Owner};
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;

/// Chunks of a part in flight between the request and storage.
const CHANNEL_DEPTH: usize = 4;

pub async fn upload(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    mut form: Multipart,
) -> Response {
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
        let mime = field.content_type().unwrap_or("").to_string();
        let metadata = match Metadata::parse(&format!(
            "filename {},filetype {}",
            STANDARD.encode(&name),
            STANDARD.encode(&mime)
        )) {
            Ok(m) => m,
            Err(e) => return failure(e),
        };
        let record = match state
            .uploads
            .create(CreateRequest {
                owner: owner.clone(),
                length: None,
                metadata,
                concat: Concat::None,
            })
            .await
        {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_DEPTH);
        let body: BodyStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let request = AppendRequest {
            offset: 0,
            length_at_end: true,
            ..AppendRequest::default()
        };
        let feed = async {
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        if tx.send(Ok(chunk)).await.is_err() {
                            break; // storage stopped (an error it reports)
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        break;
                    }
                }
            }
            drop(tx);
        };
        let (appended, ()) = tokio::join!(state.uploads.append(&record.id, request, body), feed);
        match appended {
            Ok(_) => stored += 1,
            Err(e) => {
                let _ = state.uploads.delete(&record.id).await;
                return failure(e);
            }
        }
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/?uploaded={stored}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A page that says what went wrong, for a browser without JavaScript.
fn failure(e: Error) -> Response {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let message = e
        .message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Upload failed · Ferry</title></head>\
         <body><h1>Upload failed</h1><p data-error=\"{}\">{message}</p><p><a href=\"/\">Back to Ferry</a></p></body></html>",
        e.code
    );
    (status, Html(page)).into_response()
}
