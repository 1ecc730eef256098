//! Sending a file's bytes over one WebSocket (`/files/{id}/ws`): binary
//! frames read with `Blob.slice`, `bufferedAmount` kept under a bound for
//! back-pressure, the server's durable offsets read from its text frames.

use super::http::sleep;
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

/// How a WebSocket upload ended.
pub enum WsEnd {
    Done,
    Retry(String),
    Fatal(String),
    Cancelled,
}

enum WsEvent {
    Open,
    Text(String),
    Close(u16, String),
    Error,
}

fn classify(code: u16, reason: &str) -> WsEnd {
    let message = reason
        .split_once(": ")
        .map(|(_, m)| m)
        .unwrap_or(reason)
        .to_string();
    match code {
        1008 if reason.starts_with("offset_mismatch") || reason.starts_with("upload_locked") => {
            WsEnd::Retry(message)
        }
        1008 | 1009 => WsEnd::Fatal(message),
        _ => WsEnd::Retry(if message.is_empty() {
            format!("The connection closed ({code})")
        } else {
            message
        }),
    }
}

fn offset_of(text: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("offset")?
        .as_u64()
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
        return WsEnd::Fatal("No window".into());
    };
    let scheme = if location.protocol().ok().as_deref() == Some("https:") {
        "wss:"
    } else {
        "ws:"
    };
    let host = location.host().unwrap_or_default();
    let url = format!("{scheme}//{host}{path}/ws?offset={offset}");
    let Ok(ws) = WebSocket::new(&url) else {
        return WsEnd::Retry("The WebSocket could not be opened".into());
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
    if matches!(end, WsEnd::Cancelled) || ws.ready_state() == WebSocket::OPEN {
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
        Some(WsEvent::Close(code, reason)) => return classify(code, &reason),
        _ => return WsEnd::Retry("The WebSocket could not be opened".into()),
    }
    let mut queued = offset;
    let mut acked = offset;
    let mut complete = false;
    // Reads what the server said so far; answers how the upload ended, if it did.
    let drain = |rx: &mut futures::channel::mpsc::UnboundedReceiver<WsEvent>,
                 acked: &mut u64,
                 complete: &mut bool|
     -> Option<WsEnd> {
        while let Ok(event) = rx.try_recv() {
            match event {
                WsEvent::Text(text) => {
                    if let Some(at) = offset_of(&text) {
                        *acked = (*acked).max(at);
                    }
                    if text.contains("\"complete\":true") {
                        *complete = true;
                    }
                }
                WsEvent::Close(1000, _) if *complete => return Some(WsEnd::Done),
                WsEvent::Close(code, reason) => return Some(classify(code, &reason)),
                WsEvent::Open | WsEvent::Error => {}
            }
        }
        None
    };
    while queued < size {
        if cancelled.get() {
            return WsEnd::Cancelled;
        }
        while ws.buffered_amount() > HIGH_WATER {
            if let Some(end) = drain(rx, &mut acked, &mut complete) {
                return end;
            }
            sent(acked.max(queued - ws.buffered_amount() as u64));
            sleep(10).await;
            if cancelled.get() {
                return WsEnd::Cancelled;
            }
        }
        let end = (queued + FRAME).min(size);
        let Ok(slice) = file.slice_with_f64_and_f64(queued as f64, end as f64) else {
            return WsEnd::Fatal("The file cannot be read".into());
        };
        let Ok(buffer) = JsFuture::from(slice.array_buffer()).await else {
            return WsEnd::Fatal("The file cannot be read".into());
        };
        let Ok(buffer) = buffer.dyn_into::<js_sys::ArrayBuffer>() else {
            return WsEnd::Fatal("The file cannot be read".into());
        };
        if ws.send_with_array_buffer(&buffer).is_err() {
            return WsEnd::Retry("The connection failed".into());
        }
        queued = end;
        if let Some(end) = drain(rx, &mut acked, &mut complete) {
            return end;
        }
        sent(acked.max(queued.saturating_sub(ws.buffered_amount() as u64)));
    }
    let _ = ws.send_with_str("end");
    loop {
        match rx.next().await {
            Some(WsEvent::Text(text)) => {
                if let Some(at) = offset_of(&text) {
                    acked = acked.max(at);
                    sent(acked);
                }
                if text.contains("\"complete\":true") {
                    complete = true;
                }
            }
            Some(WsEvent::Close(1000, _)) if complete || acked == size => return WsEnd::Done,
            Some(WsEvent::Close(code, reason)) => return classify(code, &reason),
            Some(WsEvent::Open) | Some(WsEvent::Error) => {}
            None => return WsEnd::Retry("The connection closed".into()),
        }
        if cancelled.get() {
            return WsEnd::Cancelled;
        }
    }
}
