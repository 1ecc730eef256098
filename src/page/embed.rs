//! The uploader embedded in another site's page (`<ferry-upload>` or
//! `Ferry.mount`, see `public/embed.js`): the options the host page gives,
//! what they make of the settings and the server's rules, and the details
//! of the DOM events the widget sends the host page.
//!
//! What this module must not know: the browser (the client reads the
//! options and dispatches the events) or how the widget is drawn.

use super::i18n::Lang;
use super::state::{Row, Settings, Status, Transport};
use crate::protocol::rules::{valid_entry, UploadRules};
use leptos::prelude::GetUntracked;
use serde::{Deserialize, Serialize};

/// What the host page asks of the widget, as attributes of
/// `<ferry-upload>` or the object given to `Ferry.mount` (`embed.js` turns
/// both into this JSON). Every field may be left out.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EmbedOptions {
    /// The Ferry server's origin; `embed.js` fills in the one it was
    /// loaded from.
    pub server: String,
    /// A bearer token naming the owner, best an embed token the host's
    /// back end minted for the person (`http/embed_token.rs`); otherwise
    /// the browser's Ferry session cookie, where the browser sends it.
    pub token: Option<String>,
    /// Bytes per request, in MiB.
    pub chunk_mib: Option<u32>,
    /// Files uploading at once.
    pub parallel: Option<u32>,
    /// Thumbnail size in CSS pixels.
    pub thumb_px: Option<u32>,
    /// "en" or "zh" (any BCP 47 tag); the browser's language otherwise.
    pub lang: Option<String>,
    /// "http" (tus PATCH requests, the default) or "websocket".
    pub transport: Option<String>,
    /// Seconds without progress before a request is retried.
    pub stall_secs: Option<u32>,
    /// The largest file the host page takes, in bytes (the server's limit
    /// still holds).
    pub max_size: Option<u64>,
    /// Kinds of file the host page takes (`.pdf`, `image/*`), on top of
    /// the server's.
    pub accept: Vec<String>,
    /// Most files per choice or drop.
    pub max_files: Option<u32>,
    /// Show this owner's finished uploads (default: yes).
    pub show_uploaded: Option<bool>,
    /// Show the live activity of this owner's uploads (default: no).
    pub show_activity: Option<bool>,
    /// Send files as soon as they are chosen (default: yes); otherwise
    /// they wait for the element's `start()`.
    pub autostart: Option<bool>,
}

impl std::fmt::Debug for EmbedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything but the token, which never reaches a log.
        f.debug_struct("EmbedOptions")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "****"))
            .field("chunk_mib", &self.chunk_mib)
            .field("parallel", &self.parallel)
            .field("accept", &self.accept)
            .finish_non_exhaustive()
    }
}

/// Why the options cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadOption(pub String);

impl EmbedOptions {
    /// Reads and checks the options' JSON.
    pub fn parse(json: &str) -> Result<EmbedOptions, BadOption> {
        let options: EmbedOptions = serde_json::from_str(json)
            .map_err(|e| BadOption(format!("The widget's options are not valid: {e}")))?;
        let server = options.server.trim_end_matches('/');
        let scheme_ok = server.starts_with("https://") || server.starts_with("http://");
        if !scheme_ok || server.contains(['?', '#', ' ']) {
            return Err(BadOption(format!(
                "The server must be an http(s) origin such as https://ferry.example, not {:?}",
                options.server
            )));
        }
        if let Some(bad) = options.accept.iter().find(|e| !valid_entry(e)) {
            return Err(BadOption(format!(
                "accept: {bad:?} is neither an ending (.pdf) nor a media type (image/*)"
            )));
        }
        if options
            .token
            .as_deref()
            .is_some_and(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(BadOption(
                "token: printable ASCII without spaces, please".into(),
            ));
        }
        Ok(EmbedOptions {
            server: server.to_string(),
            ..options
        })
    }

    /// The settings the widget runs with: the defaults, overridden by the
    /// options, within their ranges. A token cannot travel on a WebSocket
    /// (the browser sends no headers with it), so with one, files go by
    /// HTTP.
    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        let transport = match self.transport.as_deref() {
            Some("websocket") if self.token.is_none() => Transport::WebSocket,
            _ => Transport::Http,
        };
        Settings {
            chunk_mib: self.chunk_mib.unwrap_or(d.chunk_mib),
            parallel: self.parallel.unwrap_or(d.parallel),
            thumb_px: self.thumb_px.unwrap_or(d.thumb_px),
            instant_mib: d.instant_mib,
            transport,
            stall_secs: self.stall_secs.unwrap_or(d.stall_secs),
            ..d
        }
        .clamped()
    }

    /// The language asked for, if any.
    pub fn lang(&self) -> Option<Lang> {
        self.lang.as_deref().map(Lang::from_tag)
    }

    /// The server's rules, narrowed by the host page's: the smaller size
    /// and count, and a file must be of a kind both take.
    pub fn narrow(&self, server: UploadRules) -> UploadRules {
        UploadRules {
            max_size: self
                .max_size
                .map_or(server.max_size, |m| m.min(server.max_size)),
            max_files: match (self.max_files, server.max_files) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            also_types: self.accept.clone(),
            ..server
        }
    }

    pub fn shows_uploaded(&self) -> bool {
        self.show_uploaded.unwrap_or(true)
    }

    pub fn shows_activity(&self) -> bool {
        self.show_activity.unwrap_or(false)
    }

    pub fn autostarts(&self) -> bool {
        self.autostart.unwrap_or(true)
    }
}

/// One file as the host page sees it: the `detail` of the widget's events
/// and the items of its `list()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDetail {
    /// The widget's own ID for the file, stable while the page lives.
    pub id: u32,
    pub name: String,
    /// Its path inside a chosen or dropped folder; empty for a lone file.
    pub path: String,
    pub size: u64,
    #[serde(rename = "type")]
    pub mime: String,
    /// `data-status` of the row: waiting, uploading, done, failed…
    pub status: &'static str,
    /// Bytes the server has (or that are on their way).
    pub bytes_sent: u64,
    /// The upload's URL on the server (tus), once created; a finished
    /// file downloads from it.
    pub url: Option<String>,
    /// The server's SHA-256 of the whole file, once finished.
    pub sha256: Option<String>,
    /// Whether the browser's own SHA-256 matched the server's.
    pub verified: bool,
    /// What went wrong, or what is being waited for.
    pub message: Option<String>,
}

impl FileDetail {
    /// The detail of a row, reading its signals without tracking them;
    /// `absolute` turns the server's paths into URLs.
    pub fn of(row: &Row, absolute: impl Fn(&str) -> String) -> FileDetail {
        let status = row.status.get_untracked();
        FileDetail {
            id: row.id,
            name: row.file.name.clone(),
            path: row.file.path.clone(),
            size: row.file.size,
            mime: row.file.mime.clone(),
            status: status.as_str(),
            bytes_sent: if status.is_finished() {
                row.file.size
            } else {
                row.sent.get_untracked().min(row.file.size)
            },
            url: row.url.get_untracked().map(|u| absolute(&u)),
            sha256: row.server_sha.get_untracked(),
            verified: matches!(
                (row.local_sha.get_untracked(), row.server_sha.get_untracked()),
                (Some(a), Some(b)) if a == b
            ),
            message: row.message.get_untracked(),
        }
    }
}

/// The events the widget dispatches on its element (they bubble and
/// cross the shadow root). Each `detail` is a `FileDetail`, except
/// `progress` (`Progress`) and `all-done` (`{ files: [FileDetail] }`).
pub mod event {
    pub const FILE_ADDED: &str = "ferry:file-added";
    pub const PROGRESS: &str = "ferry:progress";
    pub const FILE_COMPLETE: &str = "ferry:file-complete";
    pub const ERROR: &str = "ferry:error";
    pub const ALL_DONE: &str = "ferry:all-done";
    /// The widget is mounted and its methods work (`detail`: `{ server }`;
    /// sent by `embed.js`).
    pub const READY: &str = "ferry:ready";
}

/// The `detail` of `ferry:progress`: one file's bytes and the batch's.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub id: u32,
    pub name: String,
    pub bytes_sent: u64,
    pub bytes_total: u64,
    pub batch_sent: u64,
    pub batch_total: u64,
}

/// Whether a batch has come to its end: it has files, and each is
/// finished, failed or refused (a paused file is still to come).
pub fn batch_settled(statuses: impl IntoIterator<Item = Status>) -> bool {
    let mut any = false;
    for s in statuses {
        any = true;
        if !(s.is_finished() || matches!(s, Status::Failed | Status::Refused)) {
            return false;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<EmbedOptions, BadOption> {
        EmbedOptions::parse(json)
    }

    #[test]
    fn options_are_read_and_checked() {
        let o = parse(
            r#"{"server":"https://ferry.example/","chunkMib":2,"parallel":99,
                "accept":[".pdf","image/*"],"maxFiles":3,"showActivity":true}"#,
        )
        .unwrap();
        assert_eq!(o.server, "https://ferry.example");
        let s = o.settings();
        assert_eq!((s.chunk_mib, s.parallel), (2, 16), "clamped");
        assert!(o.shows_uploaded() && o.shows_activity() && o.autostarts());
        for bad in [
            r#"{"server":"ftp://x"}"#,
            r#"{"server":""}"#,
            r#"{"server":"https://x.example/?a=1"}"#,
            r#"{"server":"https://x.example","accept":["pdf"]}"#,
            r#"{"server":"https://x.example","token":"a b"}"#,
            r#"{"server":"https://x.example","token":""}"#,
            r#"{"server":"https://x.example","chunkMib":-1}"#,
            "not json",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_never_rides_a_websocket() {
        let ws = parse(r#"{"server":"http://a","transport":"websocket"}"#).unwrap();
        assert_eq!(ws.settings().transport, Transport::WebSocket);
        let with_token =
            parse(r#"{"server":"http://a","transport":"websocket","token":"t"}"#).unwrap();
        assert_eq!(with_token.settings().transport, Transport::Http);
    }

    #[test]
    fn the_host_narrows_the_servers_rules() {
        let server = UploadRules {
            max_size: 1000,
            allow_types: vec!["image/*".into()],
            max_files: Some(10),
            room_left: Some(5000),
            also_types: Vec::new(),
        };
        let host = parse(r#"{"server":"http://a","maxSize":2000,"maxFiles":3,"accept":[".png"]}"#)
            .unwrap();
        let rules = host.narrow(server.clone());
        assert_eq!(rules.max_size, 1000, "the server's limit holds");
        assert_eq!(rules.max_files, Some(3));
        assert_eq!(rules.room_left, Some(5000));
        use crate::protocol::rules::Broken;
        assert_eq!(rules.check("a.png", 10, "image/png"), None);
        assert_eq!(
            rules.check("a.jpg", 10, "image/jpeg"),
            Some(Broken::TypeNotAllowed),
            "the host's kinds too"
        );
        assert_eq!(
            rules.check("a.png", 10, "text/plain"),
            Some(Broken::TypeNotAllowed),
            "and the server's"
        );
        let open = parse(r#"{"server":"http://a"}"#)
            .unwrap()
            .narrow(server.clone());
        assert_eq!(open, server);
    }

    #[test]
    fn a_batch_settles_when_nothing_is_left_to_do() {
        use Status::*;
        assert!(!batch_settled([]));
        assert!(batch_settled([Done, Failed, Refused, AlreadyUploaded]));
        assert!(
            !batch_settled([Done, Paused]),
            "a paused file is still to come"
        );
        assert!(!batch_settled([Done, Uploading]));
        assert!(!batch_settled([Done, Waiting]));
        assert!(!batch_settled([Checking]));
    }
}
