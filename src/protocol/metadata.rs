//! `Upload-Metadata`: comma-separated `key base64value` pairs (tus 1.0.0).
//! The one parser and encoder of it: the server parses strictly and keeps
//! the canonical text form; the page encodes what it sends with the same
//! code. Read for the few keys Ferry understands (file name, type, SHA-256).

use super::key;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

/// Why an `Upload-Metadata` value was refused (the text completes
/// "Upload-Metadata: ...").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataError(pub String);

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upload-Metadata: {}.", self.0)
    }
}

impl std::error::Error for MetadataError {}

/// Most metadata Ferry stores for one upload, as header text.
pub const MAX_METADATA_LEN: usize = 16 * 1024;
/// Most keys in one `Upload-Metadata`.
pub const MAX_METADATA_KEYS: usize = 64;
/// Longest file name kept, in bytes (what file systems allow, four times
/// over for UTF-8); a relative path may have four times that.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest media type kept, in bytes (RFC 6838 allows 127 + 1 + 127).
pub const MAX_TYPE_LEN: usize = 255;

/// The most bytes a key's value may have: names and types are listed and
/// sent with every event, so they are held to what a real one needs.
fn max_value_len(key: &str) -> usize {
    match key {
        key::FILENAME | key::NAME => MAX_NAME_LEN,
        key::RELATIVE_PATH => MAX_NAME_LEN * 4,
        key::FILETYPE | key::TYPE => MAX_TYPE_LEN,
        _ => MAX_METADATA_LEN,
    }
}

/// The keys whose values name or type a file (tus clients, Uppy and Ferry's
/// page use these).
pub const NAME_KEYS: [&str; 5] = [
    key::FILENAME,
    key::NAME,
    key::FILETYPE,
    key::TYPE,
    key::RELATIVE_PATH,
];

/// Parsed upload metadata, in the order the client gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pairs: Vec<(String, Option<Vec<u8>>)>,
}

impl Metadata {
    /// Parses an `Upload-Metadata` header value.
    pub fn parse(header: &str) -> Result<Self, MetadataError> {
        let bad = MetadataError;
        if header.len() > MAX_METADATA_LEN {
            return Err(bad(format!("longer than {MAX_METADATA_LEN} bytes")));
        }
        let mut pairs: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        if header.trim().is_empty() {
            return Ok(Metadata { pairs });
        }
        for item in header.split(',') {
            let item = item.trim();
            let (key, value) = match item.split_once(' ') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            if key.is_empty() {
                return Err(bad("a key is empty".into()));
            }
            if !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                return Err(bad(format!(
                    "key {key:?} has characters other than visible ASCII"
                )));
            }
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(bad(format!("key {key:?} appears twice")));
            }
            let value = match value {
                None | Some("") => None,
                Some(v) => Some(
                    STANDARD
                        .decode(v)
                        .map_err(|_| bad(format!("the value of {key:?} is not base64")))?,
                ),
            };
            let limit = max_value_len(key);
            if value.as_ref().is_some_and(|v| v.len() > limit) {
                return Err(bad(format!(
                    "the value of {key:?} is longer than {limit} bytes"
                )));
            }
            pairs.push((key.to_string(), value));
            if pairs.len() > MAX_METADATA_KEYS {
                return Err(bad(format!("more than {MAX_METADATA_KEYS} keys")));
            }
        }
        Ok(Metadata { pairs })
    }

    /// Metadata from text pairs, in order; an empty value is sent as a key
    /// alone.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Metadata {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        (!v.is_empty()).then(|| v.as_bytes().to_vec()),
                    )
                })
                .collect(),
        }
    }

    /// This metadata with `key` set to `value` (replacing what it had).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        let value = (!value.is_empty()).then(|| value.as_bytes().to_vec());
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((key.to_string(), value)),
        }
        self
    }

    /// The canonical header form (what HEAD answers).
    pub fn encode(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k} {}", STANDARD.encode(v)),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every key with its value as text (invalid UTF-8 replaced; a key
    /// alone has an empty value), in order.
    pub fn texts(&self) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
        self.pairs.iter().map(|(k, v)| {
            let text = v.as_deref().map_or("".into(), String::from_utf8_lossy);
            (k.as_str(), text)
        })
    }

    /// The raw bytes of a key's value.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// A key's value as text, when it is valid UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The file name the client gave (`filename`, or `name` as Uppy sends).
    pub fn filename(&self) -> Option<&str> {
        self.get_str(key::FILENAME)
            .or_else(|| self.get_str(key::NAME))
    }

    /// The media type the client gave (`filetype`, or `type`).
    pub fn filetype(&self) -> Option<&str> {
        self.get_str(key::FILETYPE)
            .or_else(|| self.get_str(key::TYPE))
    }

    /// Rewrites the text values of the keys that name or type the file
    /// (`NAME_KEYS`): `clean` gets the key and the text, and answers the
    /// text to keep when it differs.
    pub fn rewrite_names(&mut self, clean: impl Fn(&str, &str) -> Option<String>) {
        for (key, value) in &mut self.pairs {
            if !NAME_KEYS.contains(&key.as_str()) {
                continue;
            }
            let text = value.as_deref().and_then(|v| std::str::from_utf8(v).ok());
            if let Some(clean) = text.and_then(|text| clean(key, text)) {
                *value = Some(clean.into_bytes());
            }
        }
    }

    /// The whole file's SHA-256 the client computed, as lowercase hex, when
    /// `sha256` holds 64 hex digits.
    pub fn sha256(&self) -> Option<String> {
        let v = self.get_str(key::SHA256)?;
        (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes_round_trip() {
        let m = Metadata::parse("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
            .unwrap();
        assert_eq!(m.filename(), Some("world_domination_plan.pdf"));
        assert_eq!(m.get("is_confidential"), None);
        assert_eq!(
            m.encode(),
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"
        );
        assert_eq!(Metadata::parse(&m.encode()).unwrap(), m);
    }

    #[test]
    fn rejects_malformed_metadata() {
        for bad in [
            "filename !!!notbase64",
            "a YQ==,a Yg==",
            "key YQ== extra",
            ",",
            "k\u{1}ey YQ==",
        ] {
            assert!(Metadata::parse(bad).is_err(), "{bad:?}");
        }
        let huge = format!("k {}", "A".repeat(MAX_METADATA_LEN));
        assert!(Metadata::parse(&huge).is_err());
        let long_type = format!("filetype {}", STANDARD.encode("a".repeat(MAX_TYPE_LEN + 1)));
        assert!(Metadata::parse(&long_type).is_err());
        let many: Vec<String> = (0..=MAX_METADATA_KEYS).map(|i| format!("k{i}")).collect();
        assert!(Metadata::parse(&many.join(",")).is_err());
    }

    #[test]
    fn sha256_must_be_hex() {
        let hex = "ab".repeat(32);
        let m = Metadata::parse(&format!("sha256 {}", STANDARD.encode(&hex))).unwrap();
        assert_eq!(m.sha256(), Some(hex));
        let m = Metadata::parse(&format!("sha256 {}", STANDARD.encode("xyz"))).unwrap();
        assert_eq!(m.sha256(), None);
    }

    #[test]
    fn pairs_encode_as_the_page_sends_them() {
        let m = Metadata::from_pairs([
            ("filename", "a b.txt"),
            ("filetype", ""),
            ("lastmodified", "5"),
        ]);
        assert_eq!(
            m.encode(),
            "filename YSBiLnR4dA==,filetype,lastmodified NQ=="
        );
        assert_eq!(Metadata::parse(&m.encode()).unwrap(), m);
    }
}
