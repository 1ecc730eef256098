//! The hooks' wire: the points where Ferry calls the operator's
//! application (named as tusd names them), the headers of an HTTP hook
//! call, and the JSON answer a hook gives. How hooks are called and
//! delivered is the server's (`core::hooks`); these are the facts a
//! receiver written against Ferry relies on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The header naming the hook of an HTTP call.
pub const HOOK_HEADER: &str = "Ferry-Hook";
/// The header carrying a post-hook's delivery ID.
pub const DELIVERY_HEADER: &str = "Ferry-Delivery";
/// The header carrying the HMAC signature (`t=<unix time>,v1=<hex>`).
pub const SIGNATURE_HEADER: &str = "Ferry-Signature";

/// Where in an upload's life a hook is called (named as tusd names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookPoint {
    PreCreate,
    PostCreate,
    PostReceive,
    PreFinish,
    PostFinish,
    PreTerminate,
    PostTerminate,
    PostExpire,
}

impl HookPoint {
    pub const ALL: [HookPoint; 8] = [
        HookPoint::PreCreate,
        HookPoint::PostCreate,
        HookPoint::PostReceive,
        HookPoint::PreFinish,
        HookPoint::PostFinish,
        HookPoint::PreTerminate,
        HookPoint::PostTerminate,
        HookPoint::PostExpire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::PreCreate => "pre-create",
            HookPoint::PostCreate => "post-create",
            HookPoint::PostReceive => "post-receive",
            HookPoint::PreFinish => "pre-finish",
            HookPoint::PostFinish => "post-finish",
            HookPoint::PreTerminate => "pre-terminate",
            HookPoint::PostTerminate => "post-terminate",
            HookPoint::PostExpire => "post-expire",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// Whether the request waits for this hook (and it may refuse).
    pub fn is_pre(self) -> bool {
        matches!(
            self,
            HookPoint::PreCreate | HookPoint::PreFinish | HookPoint::PreTerminate
        )
    }
}

impl std::fmt::Display for HookPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a refused pre-finish does with the upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    /// The upload and its bytes are removed.
    #[default]
    Remove,
    /// The upload stays unfinished, without the refused request's bytes: the
    /// client sending them again asks again.
    Keep,
}

/// What a hook answered. An empty answer (or `{}`) allows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Answer {
    /// `false` refuses.
    pub allow: Option<bool>,
    /// The refusal's HTTP status (4xx; 403 when not given).
    pub status: Option<u16>,
    /// The refusal's message, shown to the uploader.
    pub message: Option<String>,
    /// For `pre-finish`: what becomes of a refused upload.
    pub then: Option<Then>,
    /// For `pre-create`: the metadata the upload gets instead.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Most bytes of a hook's answer that are read.
pub const MAX_ANSWER: usize = 64 * 1024;

impl Answer {
    /// Reads an answer; empty text allows.
    pub fn from_json(text: &str) -> std::result::Result<Answer, String> {
        if text.trim().is_empty() {
            return Ok(Answer::default());
        }
        serde_json::from_str(text).map_err(|e| format!("the answer is not Ferry's hook JSON: {e}"))
    }

    /// A refusal with this status and message (how a transport reads a 4xx).
    pub fn refusal(status: u16, message: String) -> Answer {
        Answer {
            allow: Some(false),
            status: Some(status),
            message: Some(message),
            ..Answer::default()
        }
    }

    pub fn refuses(&self) -> bool {
        self.allow == Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_back_and_only_three_are_pre() {
        for p in HookPoint::ALL {
            assert_eq!(HookPoint::parse(p.as_str()), Some(p));
        }
        let pre: Vec<_> = HookPoint::ALL.into_iter().filter(|p| p.is_pre()).collect();
        assert_eq!(
            pre,
            [
                HookPoint::PreCreate,
                HookPoint::PreFinish,
                HookPoint::PreTerminate
            ]
        );
        assert_eq!(HookPoint::parse("pre_create"), None);
    }

    #[test]
    fn answers_allow_unless_they_say_no() {
        assert!(!Answer::from_json("").unwrap().refuses());
        assert!(!Answer::from_json("{}").unwrap().refuses());
        assert!(!Answer::from_json(r#"{"allow": true}"#).unwrap().refuses());
        let no = Answer::from_json(
            r#"{"allow": false, "status": 422, "message": "no", "then": "keep"}"#,
        )
        .unwrap();
        assert!(no.refuses());
        assert_eq!((no.status, no.then), (Some(422), Some(Then::Keep)));
        assert!(Answer::from_json("not json").is_err());
        assert!(Answer::from_json(r#"{"then": "explode"}"#).is_err());
    }
}
