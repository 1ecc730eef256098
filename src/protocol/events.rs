//! Live events: what happened to an upload, as `/events` streams them and
//! `/events/poll` pages them.

use super::model::UploadSummary;
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "upload.created")]
    Created,
    #[serde(rename = "upload.progress")]
    Progress,
    #[serde(rename = "upload.completed")]
    Completed,
    #[serde(rename = "upload.deleted")]
    Deleted,
    #[serde(rename = "upload.expired")]
    Expired,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 5] = [
        EventKind::Created,
        EventKind::Progress,
        EventKind::Completed,
        EventKind::Deleted,
        EventKind::Expired,
    ];

    /// The name on the wire (the SSE `event:` field and the JSON `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "upload.created",
            EventKind::Progress => "upload.progress",
            EventKind::Completed => "upload.completed",
            EventKind::Deleted => "upload.deleted",
            EventKind::Expired => "upload.expired",
        }
    }

    /// The kind named on the wire.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The short name people and the page's markup see: `created`,
    /// `progress`, `completed`, `deleted`, `expired`.
    pub fn short(self) -> &'static str {
        self.as_str().trim_start_matches("upload.")
    }

    /// Whether the upload is still on its way (created or moving): other
    /// kinds change the list of finished uploads.
    pub fn is_in_flight(self) -> bool {
        matches!(self, EventKind::Created | EventKind::Progress)
    }
}

/// Something that happened to an upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEvent {
    /// Increasing; the cursor to resume after.
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The upload as it was at that moment.
    pub upload: UploadSummary,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

/// One answer of `/events/poll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<LiveEvent>,
    /// The `after` to send next.
    pub cursor: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_alike_in_json_and_text() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(format!("upload.{}", kind.short()), kind.as_str());
        }
    }
}
