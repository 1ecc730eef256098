//! A file's job: what sending it needs that the page state cannot hold
//! (the file itself, the request in flight, the cancel flag, the speed
//! samples), and what carries over from one attempt at it to the next.
//!
//! What this module must not know: how a file is sent.

use super::xhr::Slot;
use crate::page::speed::Speedometer;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use web_sys::File;

/// What a transfer needs of a row and the page state cannot hold: the file
/// itself, the request in flight, the cancel flag and the speed samples.
#[derive(Clone)]
pub struct Job {
    pub file: File,
    pub request: Slot,
    /// The request creating the upload with the file's first bytes: never
    /// aborted by a pause, since its answer is the only word of where the
    /// upload is (one cut short may still have created it).
    pub creating: Slot,
    pub cancelled: Rc<Cell<bool>>,
    /// The Idempotency-Key of the requests creating the file's upload:
    /// one upload however often they are sent.
    pub key: Rc<str>,
    /// The row left the batch: an upload created meanwhile is deleted.
    pub abandoned: Rc<Cell<bool>>,
    pub speed: Rc<RefCell<Speedometer>>,
    /// A file sent in parts: the parts' URLs (empty until created), the
    /// file's for as long as it is sent, and each part's request in flight
    /// in this attempt.
    pub parts: Rc<RefCell<Vec<String>>>,
    pub part_requests: Rc<RefCell<Vec<Slot>>>,
}

impl Job {
    pub fn new(file: File) -> Job {
        Job {
            file,
            request: Rc::new(RefCell::new(None)),
            creating: Rc::new(RefCell::new(None)),
            cancelled: Rc::new(Cell::new(false)),
            key: random_key().into(),
            abandoned: Rc::new(Cell::new(false)),
            speed: Rc::new(RefCell::new(Speedometer::default())),
            parts: Rc::new(RefCell::new(Vec::new())),
            part_requests: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// Stops the transfer: the flag is seen between steps, and the request
    /// in flight is aborted (one creating the upload is let finish).
    pub fn cancel(&self) {
        self.cancelled.set(true);
        let parts = self.part_requests.borrow();
        for slot in std::iter::once(&self.request).chain(parts.iter()) {
            if let Some(xhr) = slot.borrow().as_ref() {
                let _ = xhr.abort();
            }
        }
    }

    /// A job for the next attempt at the same file: its own cancelled flag
    /// and speed, the same request creating the upload, the same key and
    /// the same word on whether the row left the batch.
    pub fn renewed(&self) -> Job {
        Job {
            creating: self.creating.clone(),
            abandoned: self.abandoned.clone(),
            key: self.key.clone(),
            parts: self.parts.clone(),
            ..Job::new(self.file.clone())
        }
    }

    /// A renewed job that creates a new upload, not the one its key made
    /// (whose copy turned out not to be the file), nor its parts.
    pub fn afresh(&self) -> Job {
        Job {
            key: random_key().into(),
            parts: Rc::new(RefCell::new(Vec::new())),
            ..self.renewed()
        }
    }

    /// Stops the transfer for good: the row left the batch.
    pub fn abandon(&self) {
        self.abandoned.set(true);
        self.cancel();
    }
}

/// 128 random bits, in hex, from the browser's cryptographic source (which,
/// unlike `randomUUID`, pages served over plain HTTP have too).
fn random_key() -> String {
    let mut bits = [0u8; 16];
    let crypto = web_sys::window().and_then(|w| w.crypto().ok());
    if crypto
        .and_then(|c| c.get_random_values_with_u8_array(&mut bits).ok())
        .is_none()
    {
        // No crypto at all: time and Math.random, unique enough for a key
        // that is the owner's alone.
        let now = js_sys::Date::now().to_bits().to_le_bytes();
        let r = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        bits[..8].copy_from_slice(&now);
        bits[8..].copy_from_slice(&r.to_le_bytes());
    }
    bits.iter().map(|b| format!("{b:02x}")).collect()
}
