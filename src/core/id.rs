//! Upload IDs: 128 random bits, written as 22 URL-safe base64 characters.
//! They are the capability to an upload, so they come from the operating
//! system's random source and are checked strictly when parsed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;

/// A server-generated upload ID. Only `UploadId::random` and a successful
/// `UploadId::parse` make one, so every value is 22 URL-safe characters
/// and safe to use in a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// A new ID from 16 bytes of the operating system's randomness.
    pub fn random() -> Self {
        let bytes: [u8; 16] = rand::random();
        UploadId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts exactly what `random` produces and nothing else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        if s.len() != 22 {
            return None;
        }
        // decode_slice checks the alphabet and the unused trailing bits.
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            Ok(16) if URL_SAFE_NO_PAD.encode(bytes) == s => Some(UploadId(s.to_string())),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back_and_differ() {
        let a = UploadId::random();
        let b = UploadId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(UploadId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn anything_else_is_rejected() {
        for bad in [
            "",
            "short",
            "../../../../etc/passwd0",
            "AAAAAAAAAAAAAAAAAAAAA/",
            "AAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAB", // non-zero unused bits
            "AAAAAAAAAAAAAAAAAAAA A",
        ] {
            assert_eq!(UploadId::parse(bad), None, "{bad:?}");
        }
        assert!(UploadId::parse("AAAAAAAAAAAAAAAAAAAAAA").is_some());
    }
}
