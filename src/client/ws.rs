//! Sending a file's bytes over one WebSocket (`/files/{id}/ws`): binary
//! frames read with `Blob.slice`, `bufferedAmount` kept under a bound for
//! back-pressure, the server's durable offsets read from its text frames
//! (`protocol::ws::Ack`), and its close frame classified like a refusal.
//!
//! What this module must not know: rows, signals or the queue; progress
//! goes out through a callback.

use super::xhr::sleep;
use crate::page::tus::{close_failure, Failure};
use crate::protocol::upload_ws_url;
use crate::protocol::ws::{close, Ack, END};
use futures::StreamExt;
use std::cell::Cell;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, File, MessageEvent, WebSocket};

/// Bytes per binary frame.
const FRAME: u64 = 1024 * 1024;
/// Most bytes queued in the socket before sending waits.
const HIGH_WATER: u32 = 8 * 1024 * 1024;

/// How an upload over the socket ended: `Ok` when the server has every
/// byte.
pub type WsEnd = Result<(), Failure>;

enum WsEvent {
    Open,
    Text(String),
    Close(u16, String),
    Error,
}

/// The offset a text frame acknowledges, if it is an acknowledgement.
fn offset_of(text: &str) -> Option<u64> {
    Ack::from_text(text).map(|ack| ack.offset)
}

/// Sends `file[offset..size]` to the upload at `path`; `sent` hears how many
/// bytes have left the browser (never more than the server can have).
pub async fn upload(
    path: &str,
    offset: u64,
    file: &File,
    size: u64,
    sent: impl Fn(u64),
    cancelled: &Cell<bool>,
) -> WsEnd {
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return Err(Failure::Fatal("No window".into()));
    };
    // The page's own origin, or the server an embedding page talks to.
    let remote = crate::api::remote::get();
    let origin = if remote.is_remote() {
        remote.base
    } else {
        location.origin().unwrap_or_default()
    };
    let url = match origin.split_once("://") {
        Some(("https", host)) => format!("wss://{host}{}", upload_ws_url(path, offset)),
        Some((_, host)) => format!("ws://{host}{}", upload_ws_url(path, offset)),
        None => return Err(Failure::Fatal("No origin".into())),
    };
    let Ok(ws) = WebSocket::new(&url) else {
        return Err(Failure::Retry("The WebSocket could not be opened".into()));
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    let (tx, mut rx) = futures::channel::mpsc::unbounded::<WsEvent>();
    let on_open = {
        let tx = tx.clone();
        Closure::<dyn FnMut()>::new(move || {
            let _ = tx.unbounded_send(WsEvent::Open);
        })
    };
    let on_message = {
        let tx = tx.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(text) = e.data().as_string() {
                let _ = tx.unbounded_send(WsEvent::Text(text));
            }
        })
    };
    let on_close = {
        let tx = tx.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            let _ = tx.unbounded_send(WsEvent::Close(e.code(), e.reason()));
        })
    };
    let on_error = {
        let tx = tx.clone();
        Closure::<dyn FnMut()>::new(move || {
            let _ = tx.unbounded_send(WsEvent::Error);
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));

    let end = run(&ws, &mut rx, offset, file, size, &sent, cancelled).await;
    if end == Err(Failure::Cancelled) || ws.ready_state() == WebSocket::OPEN {
        let _ = ws.close();
    }
    ws.set_onopen(None);
    ws.set_onmessage(None);
    ws.set_onclose(None);
    ws.set_onerror(None);
    end
}

async fn run(
    ws: &WebSocket,
    rx: &mut futures::channel::mpsc::UnboundedReceiver<WsEvent>,
    offset: u64,
    file: &File,
    size: u64,
    sent: &impl Fn(u64),
    cancelled: &Cell<bool>,
) -> WsEnd {
    match rx.next().await {
        Some(WsEvent::Open) => {}
        Some(WsEvent::Close(code, reason)) => return Err(close_failure(code, &reason)),
        _ => return Err(Failure::Retry("The WebSocket could not be opened".into())),
    }
    let mut queued = offset;
    let mut acked = offset;
    // Reads what the server said so far; answers how the upload ended, if it
    // did. The upload is complete once every byte is acknowledged: its
    // length was declared when it was created.
    let drain = |rx: &mut futures::channel::mpsc::UnboundedReceiver<WsEvent>,
                 acked: &mut u64|
     -> Option<WsEnd> {
        while let Ok(event) = rx.try_recv() {
            match event {
                WsEvent::Text(text) => {
                    if let Some(at) = offset_of(&text) {
                        *acked = (*acked).max(at);
                    }
                }
                WsEvent::Close(close::DONE, _) if *acked == size => return Some(Ok(())),
                WsEvent::Close(code, reason) => return Some(Err(close_failure(code, &reason))),
                WsEvent::Open | WsEvent::Error => {}
            }
        }
        None
    };
    while queued < size {
        if cancelled.get() {
            return Err(Failure::Cancelled);
        }
        while ws.buffered_amount() > HIGH_WATER {
            if let Some(end) = drain(rx, &mut acked) {
                return end;
            }
            sent(acked.max(queued - ws.buffered_amount() as u64));
            sleep(10).await;
            if cancelled.get() {
                return Err(Failure::Cancelled);
            }
        }
        let end = (queued + FRAME).min(size);
        let Ok(slice) = file.slice_with_f64_and_f64(queued as f64, end as f64) else {
            return Err(Failure::Fatal("The file cannot be read".into()));
        };
        let Ok(buffer) = JsFuture::from(slice.array_buffer()).await else {
            return Err(Failure::Fatal("The file cannot be read".into()));
        };
        let Ok(buffer) = buffer.dyn_into::<js_sys::ArrayBuffer>() else {
            return Err(Failure::Fatal("The file cannot be read".into()));
        };
        if ws.send_with_array_buffer(&buffer).is_err() {
            return Err(Failure::Retry("The connection failed".into()));
        }
        queued = end;
        if let Some(end) = drain(rx, &mut acked) {
            return end;
        }
        sent(acked.max(queued.saturating_sub(ws.buffered_amount() as u64)));
    }
    let _ = ws.send_with_str(END);
    loop {
        match rx.next().await {
            Some(WsEvent::Text(text)) => {
                if let Some(at) = offset_of(&text) {
                    acked = acked.max(at);
                    sent(acked);
                }
            }
            Some(WsEvent::Close(close::DONE, _)) if acked == size => return Ok(()),
            Some(WsEvent::Close(code, reason)) => return Err(close_failure(code, &reason)),
            Some(WsEvent::Open) | Some(WsEvent::Error) => {}
            None => return Err(Failure::Retry("The connection closed".into())),
        }
        if cancelled.get() {
            return Err(Failure::Cancelled);
        }
    }
}
