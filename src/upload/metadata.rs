//! `Upload-Metadata`: comma-separated `key base64value` pairs (tus 1.0.0).
//! Parsed strictly, kept in its canonical text form, and read for the few
//! keys Ferry understands (file name, type, SHA-256).

use crate::error::{Error, ErrorCode, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

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
        "filename" | "name" => MAX_NAME_LEN,
        "relativePath" => MAX_NAME_LEN * 4,
        "filetype" | "type" => MAX_TYPE_LEN,
        _ => MAX_METADATA_LEN,
    }
}

/// The keys whose values name or type a file (tus clients, Uppy and Ferry's
/// page use these).
const NAME_KEYS: [&str; 5] = ["filename", "name", "filetype", "type", "relativePath"];

/// Parsed upload metadata, in the order the client gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pairs: Vec<(String, Option<Vec<u8>>)>,
}

impl Metadata {
    /// Parses an `Upload-Metadata` header value.
    pub fn parse(header: &str) -> Result<Self> {
        let bad = |why: String| {
            Error::new(
                ErrorCode::InvalidMetadata,
                format!("Upload-Metadata: {why}."),
            )
        };
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
        self.get_str("filename").or_else(|| self.get_str("name"))
    }

    /// The media type the client gave (`filetype`, or `type`).
    pub fn filetype(&self) -> Option<&str> {
        self.get_str("filetype").or_else(|| self.get_str("type"))
    }

    /// Removes disguising characters (`is_disguising`) from the values that
    /// name or type the file, and control characters from its type, so
    /// they are stored, echoed and listed clean.
    pub fn clean_names(&mut self) {
        for (key, value) in &mut self.pairs {
            if !NAME_KEYS.contains(&key.as_str()) {
                continue;
            }
            // A media type has no control characters either.
            let is_type = matches!(key.as_str(), "filetype" | "type");
            let unwanted = |c: char| is_disguising(c) || (is_type && c.is_control());
            if let Some(text) = value.as_deref().and_then(|v| std::str::from_utf8(v).ok()) {
                if text.chars().any(unwanted) {
                    let clean: String = text.chars().filter(|c| !unwanted(*c)).collect();
                    *value = Some(clean.into_bytes());
                }
            }
        }
    }

    /// The whole file's SHA-256 the client computed, as lowercase hex, when
    /// `sha256` holds 64 hex digits.
    pub fn sha256(&self) -> Option<String> {
        let v = self.get_str("sha256")?;
        (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
    }
}

/// Whether a character is an invisible formatting character that can
/// disguise a name: Unicode's format characters (the bidirectional
/// overrides that make `invoice\u{202e}fdp.exe` show as "invoiceexe.pdf",
/// zero-width spaces, the byte-order mark), except the zero-width joiner
/// and non-joiner, which Persian, Indic scripts and emoji need.
pub fn is_disguising(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format && !matches!(c, '\u{200c}' | '\u{200d}')
}

/// A file name made safe to show and to put in a `Content-Disposition`:
/// no control characters, no path separators, no disguising characters
/// (`is_disguising`), no leading dots, at most 255 characters; `download`
/// when nothing is left.
pub fn sanitize_filename(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !is_disguising(*c))
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            '\u{2028}' | '\u{2029}' => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let limited: String = trimmed.chars().take(255).collect();
    if limited.is_empty() {
        "download".to_string()
    } else {
        limited
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
            let err = Metadata::parse(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidMetadata, "{bad:?}");
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
    fn filenames_are_sanitized() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(sanitize_filename("a\r\nb\0.txt"), "a__b_.txt");
        assert_eq!(sanitize_filename("..."), "download");
        assert_eq!(sanitize_filename("照片.png"), "照片.png");
        assert_eq!(sanitize_filename(&"é".repeat(1000)).chars().count(), 255);
        assert_eq!(
            sanitize_filename("invoice\u{202e}fdp.exe"),
            "invoicefdp.exe"
        );
        let mut m = Metadata::parse(&format!(
            "filename {},note {}",
            STANDARD.encode("invoice\u{202e}fdp.exe"),
            STANDARD.encode("a\u{202e}b")
        ))
        .unwrap();
        m.clean_names();
        assert_eq!(m.filename(), Some("invoicefdp.exe"));
        assert_eq!(
            m.get_str("note"),
            Some("a\u{202e}b"),
            "other keys are the client's"
        );
        assert_eq!(
            sanitize_filename("ab\u{200c}c\u{200d}d"),
            "ab\u{200c}c\u{200d}d"
        );
        assert_eq!(
            sanitize_filename("a\u{200b}b\u{2066}c\u{feff}d\u{061c}e\u{2028}f"),
            "abcde_f"
        );
    }
}
