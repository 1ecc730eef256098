//! The pure half of the browser's tus client (`crate::client::tus`): which
//! headers each step sends, the metadata a file is created with, how a
//! refusal or a closed WebSocket is classified, and how long to wait before
//! trying again. Every wire fact comes from `crate::protocol`.
//!
//! It lives here, compiled into both halves, only so that host tests run
//! it. What this module must not know: how requests are sent (XHR,
//! WebSocket), the page's signals, or the clock and the random numbers
//! (callers pass them in).

use crate::protocol::error::ErrorCode;
use crate::protocol::metadata::Metadata;
use crate::protocol::model::FileFingerprint;
use crate::protocol::ws::{close, parse_close_reason};
use crate::protocol::{header, key, FILES, OFFSET_OCTET_STREAM, TUS_VERSION};

/// Attempts in a row without progress before a file is marked failed.
pub const MAX_ATTEMPTS: u32 = 12;

/// The headers of one request: `(name, value)`.
pub type Headers = Vec<(&'static str, String)>;

/// How an attempt ended when it did not finish the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again (network, 5xx, 409, 423).
    Retry(String),
    /// Not worth trying again: the server refused with a reason.
    Fatal(String),
    /// The person cancelled.
    Cancelled,
    /// Something on the way (a proxy, not Ferry) refused a request this
    /// large with 413: a smaller one may pass.
    TooLargeOnTheWay(String),
}

/// Whether a request whose last sign of life was at `last_ms` has stalled
/// by `now_ms`: nothing left the browser and no answer came for
/// `stall_ms` (the `stall_secs` setting), so it is given up and tried
/// again from the server's offset.
pub fn is_stalled(now_ms: f64, last_ms: f64, stall_ms: f64) -> bool {
    now_ms - last_ms >= stall_ms
}

/// The hex SHA-256 in a `Repr-Digest` field (`sha-256=:<base64>:`, RFC
/// 9530), as Ferry's HEAD sends it for a finished upload.
pub fn sha256_of_digest(value: &str) -> Option<String> {
    use base64::Engine;
    let b64 = value
        .split(',')
        .filter_map(|item| item.trim().strip_prefix("sha-256=:"))
        .find_map(|rest| rest.strip_suffix(':'))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (bytes.len() == 32).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The smallest PATCH the page falls back to when something on the way
/// refuses larger ones.
pub const MIN_CHUNK: u64 = 256 * 1024;

/// The next chunk size to try after a 413 from something on the way: half,
/// down to `MIN_CHUNK`; `None` when there is nothing smaller to try.
pub fn smaller_chunk(chunk: u64) -> Option<u64> {
    (chunk > MIN_CHUNK).then(|| (chunk / 2).max(MIN_CHUNK))
}

/// Where uploads are created: the collection, with the trailing slash the
/// page has always posted to.
pub fn create_url() -> String {
    format!("{FILES}/")
}

/// The headers every tus request carries.
pub fn headers() -> Headers {
    vec![(header::TUS_RESUMABLE, TUS_VERSION.to_string())]
}

/// The headers of a POST that creates an upload: `key` (the file's, for
/// as long as it is sent) makes the same request sent twice create one
/// upload.
fn creation_headers(key: &str) -> Headers {
    let mut h = headers();
    h.push((header::IDEMPOTENCY_KEY, format!("\"{key}\"")));
    h
}

/// The headers of a POST that creates an upload of `size` bytes.
pub fn create_headers(size: u64, metadata: String, key: &str) -> Headers {
    let mut h = creation_headers(key);
    h.push((header::UPLOAD_LENGTH, size.to_string()));
    h.push((header::UPLOAD_METADATA, metadata));
    h
}

/// The headers of a POST that creates a part of `size` bytes of a file
/// sent in parts (tus concatenation).
pub fn part_headers(size: u64, key: &str) -> Headers {
    let mut h = creation_headers(key);
    h.push((header::UPLOAD_LENGTH, size.to_string()));
    h.push((
        header::UPLOAD_CONCAT,
        crate::protocol::concat::PARTIAL.into(),
    ));
    h
}

/// The headers of the POST that joins finished parts (their paths, in
/// order) into the file `metadata` describes.
pub fn final_headers(parts: &[String], metadata: String, key: &str) -> Headers {
    let mut h = creation_headers(key);
    h.push((header::UPLOAD_METADATA, metadata));
    h.push((
        header::UPLOAD_CONCAT,
        format!(
            "{}{}",
            crate::protocol::concat::FINAL_PREFIX,
            parts.join(" ")
        ),
    ));
    h
}

/// A file of `size` bytes in `n` parts: `(start, end)` of each, in whole
/// MiB but the last, which takes the rest; fewer parts when the file is
/// too small for `n` of at least a MiB.
pub fn part_ranges(size: u64, n: u32) -> Vec<(u64, u64)> {
    const MIB: u64 = 1024 * 1024;
    let n = u64::from(n.max(1)).min(size.div_ceil(MIB).max(1));
    let each = size.div_ceil(n).div_ceil(MIB) * MIB;
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < size || ranges.is_empty() {
        let end = (start + each).min(size);
        ranges.push((start, end));
        start = end;
    }
    ranges
}

/// The headers of a PATCH that appends at `offset`.
pub fn patch_headers(offset: u64) -> Headers {
    let mut h = headers();
    h.push((header::UPLOAD_OFFSET, offset.to_string()));
    h.push(("content-type", OFFSET_OCTET_STREAM.to_string()));
    h
}

/// The `Upload-Metadata` a file is created with: its name, type and
/// modification time, and its SHA-256 when the page computed it (so the
/// server can complete a duplicate at once).
pub fn metadata(file: &FileFingerprint, sha256: Option<&str>) -> String {
    let modified = file.last_modified.to_string();
    let mut pairs = vec![
        (key::FILENAME, file.name.as_str()),
        (key::FILETYPE, file.mime.as_str()),
        (key::LAST_MODIFIED, modified.as_str()),
    ];
    if let Some(sha) = sha256 {
        pairs.push((key::SHA256, sha));
    }
    if !file.path.is_empty() {
        pairs.push((key::RELATIVE_PATH, file.path.as_str()));
    }
    Metadata::from_pairs(pairs).encode()
}

/// The path of an upload's `Location`: the server answers absolute URLs
/// (for clients that cannot follow relative ones); the page, served by the
/// same server, keeps the path, which also makes its WebSocket address.
pub fn upload_path(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => match rest.find('/') {
            Some(at) => rest[at..].to_string(),
            None => "/".to_string(),
        },
        _ => location.to_string(),
    }
}

/// Reads an offset or length header's value.
pub fn parse_offset(value: Option<&str>) -> Option<u64> {
    value?.parse().ok()
}

/// Classifies an answer that is not what the protocol step expected:
/// `status` 0 means no answer; `message` is the server's, when its body
/// was Ferry's JSON error.
pub fn refusal(status: u16, message: Option<String>) -> Failure {
    if status == 413 && message.is_none() {
        // Ferry's own 413 always carries its JSON error; a bare one comes
        // from a proxy that limits request sizes.
        return Failure::TooLargeOnTheWay(
            "Something between this page and the server refuses requests this large".into(),
        );
    }
    let message = message.unwrap_or_else(|| format!("The server answered {status}"));
    match status {
        0 | 409 | 423 | 500..=599 => Failure::Retry(message),
        // A 4xx with Ferry's JSON error is a refusal with a reason.
        _ => Failure::Fatal(message),
    }
}

/// Classifies how an upload's WebSocket closed before it was done: a
/// refusal the next attempt can get past (the offset moved, another writer
/// held the upload) is retried, other refusals and oversized frames are
/// not, and anything else (a dropped connection) is retried.
pub fn close_failure(code: u16, reason: &str) -> Failure {
    let (error, message) = parse_close_reason(reason);
    let error = error.and_then(ErrorCode::parse);
    let message = message.to_string();
    match (code, error) {
        (close::REFUSED, Some(ErrorCode::OffsetMismatch | ErrorCode::UploadLocked)) => {
            Failure::Retry(message)
        }
        (close::REFUSED | close::TOO_LARGE, _) => Failure::Fatal(message),
        _ if message.is_empty() => Failure::Retry(format!("The connection closed ({code})")),
        _ => Failure::Retry(message),
    }
}

/// Exponential back-off with full jitter: 0.5 s, 1 s, 2 s ... up to 30 s,
/// each scaled by `0.5 + random`, where `random` is in [0, 1).
pub fn backoff_ms(attempt: u32, random: f64) -> i32 {
    let base = (500.0 * 2f64.powi(attempt.saturating_sub(1).min(10) as i32)).min(30_000.0);
    (base * (0.5 + random)) as i32
}

/// What a row says while it waits to try again.
pub fn retry_message(reason: &str, attempt: u32, delay_ms: i32) -> String {
    format!(
        "{reason} — retry {attempt} in {:.1} s",
        delay_ms as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_give_their_sha256() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let field = "sha-512=:AAAA:, sha-256=:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=:";
        assert_eq!(sha256_of_digest(field).as_deref(), Some(sha));
        assert_eq!(sha256_of_digest("sha-256=:AAAA:"), None, "not 32 bytes");
        assert_eq!(sha256_of_digest("sha-256=:n4bQ"), None);
        assert_eq!(sha256_of_digest(""), None);
    }

    #[test]
    fn silence_for_the_stall_time_is_a_stall() {
        const STALL_MS: f64 = 15_000.0;
        assert!(!is_stalled(1_000.0, 0.0, STALL_MS));
        assert!(!is_stalled(STALL_MS - 1.0, 0.0, STALL_MS));
        assert!(is_stalled(STALL_MS, 0.0, STALL_MS));
        assert!(!is_stalled(100_000.0, 100_000.0 - STALL_MS + 1.0, STALL_MS));
        assert!(is_stalled(4_000.0, 0.0, 4_000.0), "a shorter setting");
    }

    #[test]
    fn a_bare_413_asks_for_smaller_requests() {
        assert!(matches!(refusal(413, None), Failure::TooLargeOnTheWay(_)));
        assert!(
            matches!(refusal(413, Some("Too large.".into())), Failure::Fatal(_)),
            "Ferry's own 413 is final"
        );
        assert_eq!(smaller_chunk(8 << 20), Some(4 << 20));
        assert_eq!(smaller_chunk(300 * 1024), Some(MIN_CHUNK));
        assert_eq!(smaller_chunk(MIN_CHUNK), None);
        let mut chunk = 64 << 20;
        let mut steps = 0;
        while let Some(next) = smaller_chunk(chunk) {
            chunk = next;
            steps += 1;
        }
        assert_eq!((chunk, steps), (MIN_CHUNK, 8));
    }

    #[test]
    fn locations_become_paths() {
        assert_eq!(upload_path("http://h.example:3000/files/abc"), "/files/abc");
        assert_eq!(
            upload_path("https://h.example/files/abc?x=1"),
            "/files/abc?x=1"
        );
        assert_eq!(upload_path("/files/abc"), "/files/abc");
        assert_eq!(upload_path("http://h.example"), "/");
    }

    fn file() -> FileFingerprint {
        FileFingerprint {
            name: "a b.txt".into(),
            size: 3,
            last_modified: 5,
            mime: String::new(),
            path: String::new(),
        }
    }

    #[test]
    fn requests_carry_the_protocol_headers() {
        assert_eq!(create_url(), "/files/");
        assert_eq!(headers(), vec![("tus-resumable", "1.0.0".to_string())]);
        let part = part_headers(9, "k2");
        assert!(part.contains(&("upload-concat", "partial".into())));
        assert!(part.contains(&("idempotency-key", "\"k2\"".into())));
        assert!(!part.iter().any(|(n, _)| *n == "upload-metadata"));
        let joined = final_headers(&["/files/a".into(), "/files/b".into()], "m".into(), "k3");
        assert!(joined.contains(&("upload-concat", "final;/files/a /files/b".into())));
        let create = create_headers(3, "m".into(), "k1");
        assert!(create.contains(&("idempotency-key", "\"k1\"".into())));
        assert!(create.contains(&("upload-length", "3".into())));
        assert!(create.contains(&("upload-metadata", "m".into())));
        let patch = patch_headers(7);
        assert!(patch.contains(&("upload-offset", "7".into())));
        assert!(patch.contains(&("content-type", "application/offset+octet-stream".into())));
    }

    #[test]
    fn metadata_names_the_file_and_its_hash() {
        assert_eq!(
            metadata(&file(), None),
            "filename YSBiLnR4dA==,filetype,lastmodified NQ=="
        );
        let sha = "ab".repeat(32);
        let with_sha = Metadata::parse(&metadata(&file(), Some(&sha))).unwrap();
        assert_eq!(with_sha.sha256(), Some(sha));
        assert_eq!(with_sha.filename(), Some("a b.txt"));
    }

    #[test]
    fn parts_cover_the_file_once_in_order() {
        const MIB: u64 = 1024 * 1024;
        for (size, n) in [
            (0, 4),
            (1, 4),
            (MIB, 4),
            (3 * MIB + 1, 4),
            (100 * MIB + 7, 4),
            (9 * MIB, 3),
            (5 * MIB, 1),
        ] {
            let ranges = part_ranges(size, n);
            assert!(
                !ranges.is_empty() && ranges.len() <= n as usize,
                "{size} {n}: {ranges:?}"
            );
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, size);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "{size} {n}: {ranges:?}");
                assert_eq!(pair[0].0 % MIB, 0);
            }
        }
        assert_eq!(part_ranges(100 * MIB, 4).len(), 4);
        assert_eq!(part_ranges(MIB + 1, 4).len(), 2, "parts of at least a MiB");
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset(Some("42")), Some(42));
        assert_eq!(parse_offset(Some("-1")), None);
        assert_eq!(parse_offset(None), None);
    }

    #[test]
    fn refusals_are_retried_only_when_retrying_can_help() {
        assert_eq!(
            refusal(0, None),
            Failure::Retry("The server answered 0".into())
        );
        for status in [409, 423, 500, 503] {
            assert!(
                matches!(refusal(status, None), Failure::Retry(_)),
                "{status}"
            );
        }
        assert_eq!(
            refusal(413, Some("Too large.".into())),
            Failure::Fatal("Too large.".into())
        );
        assert!(matches!(refusal(404, None), Failure::Fatal(_)));
    }

    #[test]
    fn closes_are_classified_by_their_error_code() {
        let retry = close_failure(close::REFUSED, "offset_mismatch: Resume at 5.");
        assert_eq!(retry, Failure::Retry("Resume at 5.".into()));
        assert!(matches!(
            close_failure(close::REFUSED, "upload_locked: Busy."),
            Failure::Retry(_)
        ));
        assert_eq!(
            close_failure(close::REFUSED, "upload_too_large: Too large."),
            Failure::Fatal("Too large.".into())
        );
        assert!(matches!(
            close_failure(close::TOO_LARGE, "frames may carry at most 4 bytes"),
            Failure::Fatal(_)
        ));
        assert_eq!(
            close_failure(1006, ""),
            Failure::Retry("The connection closed (1006)".into())
        );
        assert_eq!(
            close_failure(close::SERVER_ERROR, "internal: Logged."),
            Failure::Retry("Logged.".into())
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1, 0.5), 500);
        assert_eq!(backoff_ms(2, 0.5), 1000);
        assert_eq!(backoff_ms(3, 0.0), 1000);
        assert_eq!(backoff_ms(30, 0.5), 30_000);
        assert!(backoff_ms(30, 0.999) < 45_000);
        assert_eq!(backoff_ms(0, 0.5), 500);
    }

    #[test]
    fn retry_messages_say_when() {
        assert_eq!(
            retry_message("The connection failed", 2, 1500),
            "The connection failed — retry 2 in 1.5 s"
        );
    }
}
