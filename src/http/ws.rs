//! `GET /files/{id}/ws?offset=N`: an upload's bytes over one WebSocket.
//! Binary frames are appended at the current offset; the server answers
//! with the durable offset in text frames (`{"offset":N}`) as it commits;
//! the client sends the text frame `end` after its last byte (or the server
//! sees the declared length reached). Close codes: 1000 done, 1008 refused
//! (reason `<error code>: <message>`), 1009 frame too large, 1011 server
//! error. Locks, offsets, hashing and durability are the same as for PATCH.
//!
//! Memory is bounded per socket (a frame being read, one being handed on,
//! one queued) and sockets are counted (`--max-websockets`); a socket that
//! sends nothing for `--body-timeout` is closed, keeping its bytes.

use super::error::ApiError;
use crate::core::error::{Error, ErrorCode};
use crate::core::{AppendRequest, BodyStream, CommitHook, UploadId};
use crate::protocol::ws::{self, Ack, Finished, MAX_FRAME};
use crate::server::limits::Place;
use crate::server::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;

/// Frames queued between the socket and storage, per socket.
const QUEUED_FRAMES: usize = 1;
/// Acknowledgements (commits) at least this often.
const ACK_EVERY: u64 = 4 * 1024 * 1024;

#[derive(serde::Deserialize)]
pub struct WsQuery {
    offset: Option<u64>,
}

pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<WsQuery>,
    parts: axum::http::request::Parts,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(id) = UploadId::parse(&id) else {
        return ApiError(Error::not_found()).into_response();
    };
    let Some(place) = state.limits.websockets.take(()) else {
        return ApiError(Error::new(
            ErrorCode::TooManyStreams,
            "Too many WebSocket uploads are open; retry in a moment, or upload over HTTP.",
        ))
        .into_response();
    };
    // Refusals that are known before the upgrade are plain HTTP answers.
    let record = match state.uploads.get(&id).await {
        Ok(r) => r,
        Err(e) => return ApiError(e).into_response(),
    };
    let offset = q.offset.unwrap_or(record.offset);
    let caller = state.hook_caller(&parts.method, &parts.uri, &parts.headers, &parts.extensions);
    let place = (place, caller);
    ws.max_frame_size(MAX_FRAME)
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| session(state, id, offset, record.length, socket, place))
}

fn close(code: u16, reason: &str) -> Message {
    // A close reason has at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_string().into(),
    }))
}

fn close_for(e: &Error) -> Message {
    e.log();
    let code = match e.code {
        ErrorCode::Internal | ErrorCode::StorageFull => ws::close::SERVER_ERROR,
        _ => ws::close::REFUSED,
    };
    close(code, &ws::close_reason(e.code.as_str(), &e.message))
}

async fn session(
    state: AppState,
    id: UploadId,
    offset: u64,
    length: Option<u64>,
    socket: WebSocket,
    (_place, caller): (Place, Option<crate::core::Caller>),
) {
    let idle = state.config.body_timeout;
    let (mut sink, mut incoming) = socket.split();
    let (body_tx, mut body_rx) =
        tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(QUEUED_FRAMES);
    let (ack_tx, mut acks) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let body: BodyStream = Box::pin(futures_util::stream::poll_fn(move |cx| {
        body_rx.poll_recv(cx)
    }));
    let request = AppendRequest {
        offset,
        checkpoint_bytes: Some(ACK_EVERY),
        on_commit: Some(CommitHook(Arc::new(move |at| {
            let _ = ack_tx.send(at);
        }))),
        caller,
        ..AppendRequest::default()
    };
    let uploads = state.uploads.clone();
    let mut append = tokio::spawn(async move { uploads.append(&id, request, body).await });
    let mut body_tx = Some(body_tx);
    let mut received: u64 = 0;
    let remaining = length.map(|l| l.saturating_sub(offset));
    let mut too_large = false;

    let result = loop {
        tokio::select! {
            done = &mut append => break done,
            Some(at) = acks.recv() => {
                let _ = sink.send(Message::Text(Ack { offset: at }.to_text().into())).await;
            }
            msg = tokio::time::timeout(idle, incoming.next()), if body_tx.is_some() => match msg.unwrap_or_else(|_| {
                Some(Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no frame arrived in time",
                ))))
            }) {
                Some(Ok(Message::Binary(data))) => {
                    if data.len() > MAX_FRAME {
                        too_large = true;
                        if let Some(tx) = body_tx.take() {
                            let _ = tx.send(Err(std::io::Error::other("frame too large"))).await;
                        }
                        continue;
                    }
                    received += data.len() as u64;
                    let tx = body_tx.as_ref().expect("checked above");
                    if tx.send(Ok(data)).await.is_err() {
                        body_tx = None; // the append ended; its result follows
                    } else if remaining.is_some_and(|r| received >= r) {
                        body_tx = None; // every byte of the upload is here
                    }
                }
                Some(Ok(Message::Text(text))) if text.trim() == ws::END => body_tx = None,
                Some(Ok(Message::Close(_))) | None => body_tx = None,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    // The socket library refuses a frame over the limit as
                    // soon as its header announces it.
                    too_large |= e.to_string().contains("too long");
                    if let Some(tx) = body_tx.take() {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    }
                }
            },
        }
    };
    while let Ok(at) = acks.try_recv() {
        let _ = sink
            .send(Message::Text(Ack { offset: at }.to_text().into()))
            .await;
    }
    let farewell = match result {
        Ok(Ok(record)) => {
            let last = Finished {
                offset: record.offset,
                complete: record.is_complete(),
                sha256: record.sha256,
            };
            let _ = sink.send(Message::Text(last.to_text().into())).await;
            close(ws::close::DONE, "done")
        }
        Ok(Err(_)) if too_large => close(
            ws::close::TOO_LARGE,
            &format!("frames may carry at most {MAX_FRAME} bytes"),
        ),
        Ok(Err(e)) => close_for(&e),
        Err(e) => close_for(&Error::internal("websocket upload", e)),
    };
    let _ = sink.send(farewell).await;
    let _ = sink.close().await;
}
