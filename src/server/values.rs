//! The kinds of values flags take, parsed and checked once: sizes (`64MiB`),
//! durations (`30s`), shares of the data disk (`2%`), secrets that never
//! reach a log, and CORS origins.

use std::fmt;
use std::time::Duration;

/// A size, or a share of the data disk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Share {
    Bytes(u64),
    /// Percent of the disk's size.
    Percent(f64),
}

impl Share {
    /// In bytes, for a disk of `disk` bytes (`None` when unknown).
    /// `None` when there is no limit.
    pub fn bytes(self, disk: Option<u64>) -> Option<u64> {
        match self {
            Share::Bytes(0) => None,
            Share::Bytes(n) => Some(n),
            Share::Percent(p) => disk.map(|d| (d as f64 * p / 100.0) as u64),
        }
    }
}

/// Parses a size (`10GiB`) or a percentage (`5%`).
pub fn parse_share(s: &str) -> Result<Share, String> {
    let t = s.trim();
    if let Some(p) = t.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a percentage"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{s:?}: a share is between 0% and 100%"));
        }
        return Ok(Share::Percent(p));
    }
    parse_size(t).map(Share::Bytes)
}

/// A secret from the command line or environment; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            Err("the value cannot be empty".into())
        } else {
            Ok(Secret(s.to_string()))
        }
    }
}

/// The longest duration any flag takes: every time Ferry computes from one
/// stays within the calendar that HTTP dates can show.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses a duration (`250ms`, `30s`, `24h`, `7days`) of at most 100 years.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write for example 30s, 15m or 24h"))?;
    if d > MAX_DURATION {
        return Err(format!("{s:?} is too long: at most 100 years"));
    }
    Ok(d)
}

/// A duration that must be longer than zero (a timeout or an interval).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(d)
}

/// A size that must be at least one byte.
pub fn parse_positive_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("{s:?}: must be at least one byte")),
        n => Ok(n),
    }
}

/// `--max-header-bytes`: at least 1 KiB (a request line and a few headers),
/// at most 16 MiB.
pub fn parse_header_bytes(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if !(1024..=16 << 20).contains(&n) {
        return Err(format!("{s:?}: must be between 1KiB and 16MiB"));
    }
    Ok(n)
}

/// An entry of `--allow-types`: a name ending (`.pdf`) or a media type
/// (`image/png`, `image/*`).
pub fn parse_type_entry(s: &str) -> Result<String, String> {
    let entry = s.trim().to_ascii_lowercase();
    if crate::protocol::rules::valid_entry(&entry) {
        Ok(entry)
    } else {
        Err(format!(
            "{s:?} is not a kind of file: write a name ending such as .pdf or a media type such as image/png or image/*"
        ))
    }
}

/// A CORS origin: `*`, or `scheme://host[:port]` with nothing after it.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    if s == "*" {
        return Ok(s.to_string());
    }
    let bad = || {
        format!(
            "{s:?} is not an origin: write it as https://host or https://host:port, or * for any"
        )
    };
    let uri: axum::http::Uri = s.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
    let bare = uri
        .path_and_query()
        .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
    if !scheme_ok || uri.host().is_none_or(str::is_empty) || !bare || s.contains('@') {
        return Err(bad());
    }
    // As browsers send it: lower case, no default port.
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = match (scheme.as_str(), uri.port_u16()) {
        ("http", Some(80)) | ("https", Some(443)) | (_, None) => String::new(),
        (_, Some(p)) => format!(":{p}"),
    };
    Ok(format!("{scheme}://{host}{port}"))
}

/// Parses a size: plain bytes or a number with a unit (`KiB`, `MB`, ...).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a size: {e}"))?;
    if size.as_u64() > i64::MAX as u64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(size.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        assert_eq!(
            parse_origin("HTTPS://Shop.Example:443/").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            parse_origin("http://a.example:80").unwrap(),
            "http://a.example"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(parse_origin("*").unwrap(), "*");
        for bad in [
            "null",
            "shop.example",
            "ftp://a",
            "https://a/path",
            "https://u@a",
            "",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
