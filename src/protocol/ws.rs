//! The messages of an upload's WebSocket (`/files/{id}/ws`): binary frames
//! carry bytes; text frames carry the server's acknowledgements and the
//! client's end; close codes say how it ended.

use serde::{Deserialize, Serialize};

/// The largest binary frame (and message) the server accepts.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// The text frame a client sends after its last byte.
pub const END: &str = "end";

/// The server's acknowledgement: every byte up to `offset` is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub offset: u64,
}

impl Ack {
    /// The text frame that carries it.
    pub fn to_text(self) -> String {
        serde_json::to_string(&self).unwrap_or_default()
    }

    /// Reads an acknowledgement from a text frame.
    pub fn from_text(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// The server's last text frame when the socket's bytes were all taken:
/// the offset reached, and whether that finished the upload (with the
/// server's SHA-256 of the whole file when it did).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub offset: u64,
    pub complete: bool,
    pub sha256: Option<String>,
}

impl Finished {
    /// The text frame that carries it.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Close codes (RFC 6455) and what they mean for an upload.
pub mod close {
    /// Done: the upload has every byte it was sent.
    pub const DONE: u16 = 1000;
    /// Refused; the reason is `<error code>: <message>`.
    pub const REFUSED: u16 = 1008;
    /// A frame was larger than [`super::MAX_FRAME`].
    pub const TOO_LARGE: u16 = 1009;
    /// The server failed; the bytes acknowledged so far are kept.
    pub const SERVER_ERROR: u16 = 1011;
}

/// The reason of a refusing close frame: the error's code, then its message.
pub fn close_reason(code: &str, message: &str) -> String {
    format!("{code}: {message}")
}

/// Splits a close reason into its error code (when it has one) and message.
pub fn parse_close_reason(reason: &str) -> (Option<&str>, &str) {
    match reason.split_once(": ") {
        Some((code, message)) if code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            (Some(code), message)
        }
        _ => (None, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_round_trips() {
        let text = Ack { offset: 42 }.to_text();
        assert_eq!(text, r#"{"offset":42}"#);
        assert_eq!(Ack::from_text(&text), Some(Ack { offset: 42 }));
        assert_eq!(Ack::from_text("end"), None);
        let last = Finished {
            offset: 9,
            complete: true,
            sha256: Some("ab".into()),
        };
        assert_eq!(
            Ack::from_text(&last.to_text()),
            Some(Ack { offset: 9 }),
            "a client that reads acknowledgements reads the last frame too"
        );
    }

    #[test]
    fn close_reasons_split() {
        let reason = close_reason("offset_mismatch", "Resume at 5: it moved.");
        assert_eq!(
            parse_close_reason(&reason),
            (Some("offset_mismatch"), "Resume at 5: it moved.")
        );
        assert_eq!(parse_close_reason("Going away"), (None, "Going away"));
    }
}
