//! One HTTP request through `XMLHttpRequest`, as a future: the only browser
//! API that reports upload progress while a body is being sent. Paths go
//! to the server the page talks to (`crate::api::remote`). Also the
//! page's timer (`sleep`).
//!
//! What this module must not know: tus, the page's state, or what a request
//! is for.

use crate::protocol::error::ErrorBody;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Blob, ProgressEvent, XmlHttpRequest};

/// Why a request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The network failed (offline, reset, refused).
    Network,
    /// `abort()` was called.
    Aborted,
}

/// A request's answer.
pub struct Reply {
    pub status: u16,
    xhr: XmlHttpRequest,
}

impl Reply {
    /// A response header (names are matched without regard to case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.xhr.get_response_header(name).ok().flatten()
    }

    /// The body as text.
    pub fn text(&self) -> Option<String> {
        self.xhr.response_text().ok().flatten()
    }

    /// The `message` of Ferry's JSON error body, if that is what came back.
    pub fn error_message(&self) -> Option<String> {
        ErrorBody::from_json(&self.text()?).map(|body| body.message)
    }
}

/// The one-shot that a request's end (load, error, abort) completes.
type Done = Rc<RefCell<Option<futures::channel::oneshot::Sender<Result<(), NetError>>>>>;

/// Where an in-flight request is kept so that it can be aborted.
pub type Slot = Rc<RefCell<Option<XmlHttpRequest>>>;

/// Sends a request; `progress` hears how many body bytes have left.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Option<&Blob>,
    progress: Option<Box<dyn Fn(f64)>>,
    slot: Option<&Slot>,
) -> Result<Reply, NetError> {
    let remote = crate::api::remote::get();
    let url = remote.url(url);
    let xhr = XmlHttpRequest::new().map_err(|_| NetError::Network)?;
    xhr.open_with_async(method, &url, true)
        .map_err(|_| NetError::Network)?;
    for (name, value) in headers {
        xhr.set_request_header(name, value)
            .map_err(|_| NetError::Network)?;
    }
    if remote.is_remote() {
        // Embedded in another site's page: the server's session cookie
        // goes along where the browser allows it, and the host page's
        // token to that server (never to any other URL).
        xhr.set_with_credentials(true);
        if let Some(value) = remote.authorization(&url) {
            xhr.set_request_header("authorization", &value)
                .map_err(|_| NetError::Network)?;
        }
    }
    let (tx, rx) = futures::channel::oneshot::channel::<Result<(), NetError>>();
    let tx: Done = Rc::new(RefCell::new(Some(tx)));
    let finish = move |tx: &Done, r| {
        if let Some(tx) = tx.borrow_mut().take() {
            let _ = tx.send(r);
        }
    };
    let on_load = {
        let tx = tx.clone();
        Closure::<dyn FnMut()>::new(move || finish(&tx, Ok(())))
    };
    let on_error = {
        let tx = tx.clone();
        Closure::<dyn FnMut()>::new(move || finish(&tx, Err(NetError::Network)))
    };
    let on_abort = {
        let tx = tx.clone();
        Closure::<dyn FnMut()>::new(move || finish(&tx, Err(NetError::Aborted)))
    };
    xhr.set_onload(Some(on_load.as_ref().unchecked_ref()));
    xhr.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    xhr.set_ontimeout(Some(on_error.as_ref().unchecked_ref()));
    xhr.set_onabort(Some(on_abort.as_ref().unchecked_ref()));
    let on_progress = progress
        .map(|p| Closure::<dyn FnMut(ProgressEvent)>::new(move |e: ProgressEvent| p(e.loaded())));
    if let (Some(cb), Ok(upload)) = (&on_progress, xhr.upload()) {
        upload.set_onprogress(Some(cb.as_ref().unchecked_ref()));
    }
    if let Some(slot) = slot {
        *slot.borrow_mut() = Some(xhr.clone());
    }
    let sent = xhr.send_with_opt_blob(body);
    let result = match sent {
        Ok(()) => rx.await.unwrap_or(Err(NetError::Aborted)),
        Err(_) => Err(NetError::Network),
    };
    // The closures die with this function: make sure nothing calls them.
    xhr.set_onload(None);
    xhr.set_onerror(None);
    xhr.set_ontimeout(None);
    xhr.set_onabort(None);
    if let Ok(upload) = xhr.upload() {
        upload.set_onprogress(None);
    }
    if let Some(slot) = slot {
        slot.borrow_mut().take();
    }
    result?;
    Ok(Reply {
        status: xhr.status().unwrap_or(0),
        xhr,
    })
}

/// Waits `ms` milliseconds without blocking the page.
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
