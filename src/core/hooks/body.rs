//! The JSON body of a hook call: the upload (with where its bytes are and,
//! for hooks that tell types, its first bytes) and the request that made
//! the hook happen. The README's "Hooks" shows one.

use super::Caller;
use crate::core::blob::BlobLocation;
use crate::core::record::{Millis, UploadRecord};
use crate::protocol::hooks::HookPoint;
use base64::Engine;
use std::collections::BTreeMap;

/// An upload as a hook body shows it.
pub struct HookUpload<'a> {
    pub record: &'a UploadRecord,
    pub caller: Option<&'a Caller>,
    pub location: Option<BlobLocation>,
    /// The file's first bytes, for hooks that tell types.
    pub first_bytes: Option<Vec<u8>>,
}

impl<'a> HookUpload<'a> {
    pub fn new(record: &'a UploadRecord, caller: Option<&'a Caller>) -> Self {
        HookUpload {
            record,
            caller,
            location: None,
            first_bytes: None,
        }
    }

    /// The JSON body of a hook (see the README's "Hooks").
    pub(super) fn body(&self, point: HookPoint, delivery: Option<&str>, at: Millis) -> String {
        let r = self.record;
        let metadata: BTreeMap<&str, String> = r
            .metadata
            .texts()
            .map(|(k, v)| (k, v.into_owned()))
            .collect();
        let body = serde_json::json!({
            "type": point.as_str(),
            "delivery_id": delivery,
            "at": at,
            "upload": {
                "id": r.id.as_str(),
                "url": crate::protocol::upload_url(r.id.as_str()),
                "owner": r.owner.as_str(),
                "offset": r.offset,
                "length": r.length,
                "complete": r.is_complete(),
                "partial": r.concat == crate::core::record::Concat::Partial,
                "metadata": metadata,
                "sha256": r.sha256,
                "created_at": r.created_at,
                "completed_at": r.completed_at,
                "storage": self.location,
            },
            "first_bytes": self.first_bytes.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            "request": self.caller,
        });
        body.to_string()
    }
}
