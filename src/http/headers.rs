//! Typed parsing of request headers, in one place: strict integers,
//! `Upload-Concat`, `Upload-Checksum`, the tus version, the method override
//! and the PATCH media type. Each parser answers a catalogue error that
//! names the header. (Two one-line headers are read where they are used:
//! `Upload-Defer-Length` in `tus/create.rs`, `Last-Event-ID` in
//! `events.rs`.)

use crate::core::error::{Error, ErrorCode, Result};
use crate::core::{ChecksumAlgorithm, ChunkChecksum, Concat, UploadId, UploadRecord};
use crate::protocol::header;
use crate::protocol::{concat, FILES, OFFSET_OCTET_STREAM, TUS_VERSION};
use crate::server::state::AppState;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The error for a header that is missing, malformed or out of range; the
/// message names it as people write it (`Upload-Offset`).
pub fn header_error(name: &str, problem: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::InvalidHeader,
        format!("Header {}: {problem}.", display_name(name)),
    )
}

/// `upload-offset` as `Upload-Offset`.
fn display_name(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A header as text; `None` when absent.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| header_error(name, "not visible ASCII")),
    }
}

/// The request's `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header:
/// a Structured Field string, `"…"`; a bare token is taken too, as some
/// clients send it): 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    const NAME: &str = header::IDEMPOTENCY_KEY;
    let Some(value) = header_str(headers, NAME)? else {
        return Ok(None);
    };
    let key = match value.strip_prefix('"') {
        Some(quoted) => quoted
            .strip_suffix('"')
            .ok_or_else(|| header_error(NAME, "a quoted string must end with a quote"))?,
        None => value,
    };
    if key.is_empty() || key.len() > 255 {
        return Err(header_error(NAME, "give 1 to 255 characters"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(header_error(
            NAME,
            "only visible ASCII characters, without quotes or backslashes",
        ));
    }
    Ok(Some(key.to_string()))
}

/// Parses a non-negative decimal integer header strictly: digits only, no
/// sign, no spaces inside, and it must fit in 63 bits.
pub fn parse_u64(name: &str, value: &str) -> Result<u64> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(header_error(
            name,
            format!("{:?} is not a non-negative integer", truncate(value)),
        ));
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= i64::MAX as u64)
        .ok_or_else(|| header_error(name, "the number is too large"))
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

pub(crate) fn u64_header(headers: &HeaderMap, name: &str) -> Result<Option<u64>> {
    header_str(headers, name)?
        .map(|v| parse_u64(name, v))
        .transpose()
}

/// Parses `Upload-Concat`: `partial`, or `final;` and the URLs of the parts.
pub fn parse_concat(value: &str) -> Result<Concat> {
    let value = value.trim();
    if value == concat::PARTIAL {
        return Ok(Concat::Partial);
    }
    let Some(list) = value.strip_prefix(concat::FINAL_PREFIX) else {
        return Err(header_error(
            header::UPLOAD_CONCAT,
            "expected \"partial\" or \"final;<urls>\"",
        ));
    };
    let parts = list
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|url| {
            let path = url.split(['?', '#']).next().unwrap_or("");
            let id = path
                .rsplit_once(&format!("{FILES}/"))
                .map(|(_, id)| id)
                .and_then(UploadId::parse);
            id.ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidConcatPart,
                    format!(
                        "{:?} is not the URL of an upload on this server.",
                        truncate(url)
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if parts.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidConcatPart,
            "A final upload needs at least one part.",
        ));
    }
    if parts.len() > 1000 {
        return Err(Error::new(
            ErrorCode::InvalidConcatPart,
            "At most 1000 parts can be concatenated.",
        ));
    }
    Ok(Concat::Final(parts))
}

/// The method a request means: its own, or for a POST the one in
/// `X-HTTP-Method-Override` (for clients that cannot send PATCH or DELETE).
pub(crate) fn effective_method(req: &Request) -> Result<Method> {
    let Some(over) = req.headers().get(header::METHOD_OVERRIDE) else {
        return Ok(req.method().clone());
    };
    let wanted = over.to_str().unwrap_or("").trim().to_ascii_uppercase();
    if req.method() != Method::POST {
        return Err(Error::new(
            ErrorCode::InvalidMethodOverride,
            "X-HTTP-Method-Override is only honoured on POST requests.",
        ));
    }
    match wanted.as_str() {
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        _ => Err(Error::new(
            ErrorCode::InvalidMethodOverride,
            "X-HTTP-Method-Override may only ask for PATCH or DELETE.",
        )),
    }
}

/// Every tus request but OPTIONS (and downloads, which plain browsers
/// make) must say it speaks 1.0.0.
pub(crate) fn check_version(headers: &HeaderMap) -> Result<()> {
    match headers.get(header::TUS_RESUMABLE).map(|v| v.as_bytes()) {
        Some(v) if v == TUS_VERSION.as_bytes() => Ok(()),
        _ => Err(Error::new(
            ErrorCode::UnsupportedVersion,
            format!("This server speaks tus {TUS_VERSION}; send Tus-Resumable: {TUS_VERSION}."),
        )),
    }
}

pub(crate) fn is_offset_stream(headers: &HeaderMap) -> bool {
    content_type_is(headers, OFFSET_OCTET_STREAM)
}

/// Whether `Content-Type` names `media_type` (its parameters aside).
pub(crate) fn content_type_is(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// Where the client reached this server, as `scheme://host[:port]`, to
/// make absolute URLs of: the request's `Host` (or HTTP/2 authority), and
/// with `behind_proxy` what the proxy says in `Forwarded` or
/// `X-Forwarded-Proto`/`X-Forwarded-Host`. `None` when the host is missing
/// or is not a plain authority (then URLs stay relative).
pub fn public_base(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    behind_proxy: bool,
) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (mut scheme, mut host) = (None, None);
    if behind_proxy {
        if let Some(forwarded) = text("forwarded") {
            // The first proxy's element: `for=...;proto=https;host=...`.
            let first = forwarded.split(',').next().unwrap_or("");
            for pair in first.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    let v = v.trim().trim_matches('"');
                    match k.trim().to_ascii_lowercase().as_str() {
                        "proto" => scheme = Some(v.to_string()),
                        "host" => host = Some(v.to_string()),
                        _ => {}
                    }
                }
            }
        }
        let first = |v: &str| v.split(',').next().unwrap_or("").trim().to_string();
        scheme = scheme.or_else(|| text("x-forwarded-proto").map(first));
        host = host.or_else(|| text("x-forwarded-host").map(first));
    }
    let host = host
        .or_else(|| text("host").map(str::to_string))
        .or_else(|| uri.authority().map(|a| a.as_str().to_string()))?;
    let scheme = scheme
        .unwrap_or_else(|| "http".to_string())
        .to_ascii_lowercase();
    // Only a host and port: nothing that could carry a path, user or space.
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    let plain = authority.as_str() == host && !host.contains('@') && !host.is_empty();
    (plain && matches!(scheme.as_str(), "http" | "https")).then(|| format!("{scheme}://{host}"))
}

/// Sets a response header, when `value` is a valid header value.
pub(crate) fn set(resp: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// A finished upload's SHA-256 as `Repr-Digest` (RFC 9530), so the client
/// that sent its last bytes, or any that did not create it, can verify
/// it without asking again. Nothing while the upload is unfinished.
pub(crate) fn set_repr_digest(resp: &mut Response, record: &UploadRecord) {
    if let Some(bytes) = record.sha256.as_deref().and_then(crate::core::hash::unhex) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        set(resp, "repr-digest", format!("sha-256=:{b64}:"));
    }
}

/// `Upload-Expires`: when an upload expires (an unfinished one, or a
/// part), as an HTTP date.
pub(crate) fn set_expires(resp: &mut Response, record: &UploadRecord) {
    if let Some(ms) = record.expires_at {
        // HTTP dates end with the year 9999.
        let ms = ms.clamp(0, 253_402_300_799_000) as u64;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        set(resp, header::UPLOAD_EXPIRES, httpdate::fmt_http_date(t));
    }
}

/// The SHA-256 in an RFC 9530 digest field (`Content-Digest`,
/// `Repr-Digest`): a structured dictionary such as
/// `sha-256=:<base64>:, sha-512=:<base64>:`. `None` when the field has no
/// SHA-256 (other algorithms are not checked); an error when it has one
/// that is not 32 bytes of base64.
pub fn parse_sha256_digest(name: &str, value: &str) -> Result<Option<Vec<u8>>> {
    for member in value.split(',') {
        let Some((algorithm, digest)) = member.trim().split_once('=') else {
            continue;
        };
        if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let bytes = digest
            .trim()
            .strip_prefix(':')
            .and_then(|d| d.strip_suffix(':'))
            .and_then(|d| STANDARD.decode(d).ok())
            .filter(|d| d.len() == 32)
            .ok_or_else(|| header_error(name, "sha-256 must be 32 bytes as :base64:"))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

/// Parses `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn parse_checksum(header: &str) -> Result<ChunkChecksum> {
    let (name, value) = header.trim().split_once(' ').ok_or_else(|| {
        header_error(
            header::UPLOAD_CHECKSUM,
            "expected \"<algorithm> <base64 digest>\"",
        )
    })?;
    let algorithm = ChecksumAlgorithm::parse(name).ok_or_else(|| {
        Error::new(
            ErrorCode::ChecksumAlgorithmUnsupported,
            format!(
                "Checksum algorithm {:?} is not supported; use one of {}.",
                name.chars().take(32).collect::<String>(),
                ChecksumAlgorithm::ALL
            ),
        )
    })?;
    let expected = STANDARD
        .decode(value.trim())
        .map_err(|_| header_error(header::UPLOAD_CHECKSUM, "the digest is not base64"))?;
    if expected.len() != algorithm.digest_len() {
        // It can never match: the checksum fails (460, as tus says), not
        // the header's form.
        return Err(Error::new(
            ErrorCode::ChecksumMismatch,
            format!(
                "A {name} digest has {} bytes, not {}; none of the bytes were kept.",
                algorithm.digest_len(),
                expected.len()
            ),
        ));
    }
    Ok(ChunkChecksum {
        algorithm,
        expected,
    })
}

/// The request as hooks see it (its effective method: an overridden POST
/// is the PATCH or DELETE it stands for); `None` when no hook is called.
pub(crate) fn caller(state: &AppState, req: &Request) -> Option<crate::core::Caller> {
    let method = effective_method(req).unwrap_or_else(|_| req.method().clone());
    state.hook_caller(&method, req.uri(), req.headers(), req.extensions())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_strings_of_visible_ascii() {
        let key = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("idempotency-key", HeaderValue::from_str(v).unwrap());
            idempotency_key(&h)
        };
        assert_eq!(
            key("\"8e03978e-40d5\"").unwrap().as_deref(),
            Some("8e03978e-40d5")
        );
        assert_eq!(key("abc").unwrap().as_deref(), Some("abc"));
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        for bad in ["\"\"", "\"open", "a b", "a\\b", &"k".repeat(256)] {
            assert_eq!(
                key(bad).unwrap_err().code,
                ErrorCode::InvalidHeader,
                "{bad}"
            );
        }
    }

    #[test]
    fn digest_fields_give_their_sha256() {
        let sha = STANDARD.encode([7u8; 32]);
        let field = format!("sha-512=:AAAA:, sha-256=:{sha}:");
        assert_eq!(
            parse_sha256_digest("content-digest", &field).unwrap(),
            Some(vec![7u8; 32])
        );
        assert_eq!(
            parse_sha256_digest("content-digest", "md5=:AAAA:").unwrap(),
            None
        );
        assert!(parse_sha256_digest("content-digest", "sha-256=:AAAA:").is_err());
        assert!(parse_sha256_digest("content-digest", "sha-256=nocolons").is_err());
    }

    #[test]
    fn header_names_are_shown_as_people_write_them() {
        assert_eq!(display_name(header::UPLOAD_OFFSET), "Upload-Offset");
        assert_eq!(display_name("content-length"), "Content-Length");
        let e = header_error(header::UPLOAD_DEFER_LENGTH, "the only allowed value is 1");
        assert_eq!(
            e.message,
            "Header Upload-Defer-Length: the only allowed value is 1."
        );
    }

    #[test]
    fn integers_are_parsed_strictly() {
        assert_eq!(parse_u64("X", "0").unwrap(), 0);
        assert_eq!(parse_u64("X", "123").unwrap(), 123);
        assert_eq!(
            parse_u64("X", &i64::MAX.to_string()).unwrap(),
            i64::MAX as u64
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "0x10",
            " 1",
            "1 2",
            "9223372036854775808",
            "99999999999999999999",
            "١٢",
        ] {
            assert!(parse_u64("X", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn concat_headers() {
        assert_eq!(parse_concat("partial").unwrap(), Concat::Partial);
        let a = UploadId::random();
        let b = UploadId::random();
        let v = format!("final;/files/{a} http://example.com/files/{b}");
        assert_eq!(parse_concat(&v).unwrap(), Concat::Final(vec![a, b]));
        assert!(parse_concat("final;").is_err());
        assert!(parse_concat("final;/files/../../etc").is_err());
        assert!(parse_concat("whole").is_err());
    }

    #[test]
    fn parses_checksums() {
        let c = parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        let mut h = crate::core::hash::ChunkHasher::new(c.algorithm);
        h.update(b"hello world");
        assert_eq!(h.finalize(), c.expected);

        assert_eq!(
            parse_checksum("crc32 AAAA").unwrap_err().code,
            ErrorCode::ChecksumAlgorithmUnsupported
        );
        assert_eq!(
            parse_checksum("sha1").unwrap_err().code,
            ErrorCode::InvalidHeader
        );
        assert_eq!(
            parse_checksum("sha1 !!").unwrap_err().code,
            ErrorCode::InvalidHeader
        );
        assert_eq!(
            parse_checksum("md5 AAAA").unwrap_err().code,
            ErrorCode::ChecksumMismatch,
            "a digest of the wrong length can never match"
        );
    }
}
