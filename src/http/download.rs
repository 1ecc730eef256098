//! `GET /files/{id}`: the bytes of a finished upload, with Range requests.
//! A download is always an attachment of type application/octet-stream
//! with `nosniff` and a sandboxing CSP, so nothing uploaded can ever be
//! rendered as a page of Ferry's origin.

use super::error::ApiError;
use crate::core::error::{Error, ErrorCode};
use crate::core::UploadId;
use crate::core::{sanitize_filename, UploadRecord};
use crate::server::state::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// `Content-Disposition: attachment` with an ASCII fallback name and the
/// exact UTF-8 name (RFC 6266, RFC 8187).
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            // Characters no file system takes, quotes, and anything not ASCII.
            '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, NON_ALPHANUMERIC)
    )
}

pub async fn download(
    state: &AppState,
    id: &UploadId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let record = state.uploads.get(id).await?;
    if !record.is_complete() {
        return Err(Error::new(
            ErrorCode::UploadIncomplete,
            "This upload is not finished yet, so it cannot be downloaded.",
        )
        .into());
    }
    let len = record.offset;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(value) => match http_range_header::parse_range_header(value) {
            // A malformed Range is ignored (RFC 9110 §14.2): the whole file.
            Err(_) => None,
            Ok(parsed) => match parsed.validate(len) {
                Ok(ranges) if ranges.len() == 1 => Some(ranges[0].clone()),
                // Several ranges: answered with the whole file, which is allowed.
                Ok(_) => None,
                Err(_) => {
                    let mut resp = ApiError(Error::new(
                        ErrorCode::RangeNotSatisfiable,
                        format!("The file has {len} bytes; the requested range is outside it."),
                    ))
                    .into_response();
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        resp.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    return Ok(resp);
                }
            },
        },
    };
    let (status, start, end) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, *r.start(), *r.end() + 1),
        None => (StatusCode::OK, 0, len),
    };
    let (record, stream) = state.uploads.read(id, start..end).await?;
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&download_name(&record))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(sha) = &record.sha256 {
        if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
            h.insert(header::ETAG, v);
        }
    }
    if range.is_some() {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// The file name to offer for a download.
fn download_name(record: &UploadRecord) -> String {
    sanitize_filename(record.metadata.filename().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_escapes_everything_risky() {
        let d = content_disposition("a\"b\\c 照片.png");
        assert!(
            d.starts_with("attachment; filename=\"a_b_c __.png\"; filename*=UTF-8''"),
            "{d}"
        );
        assert!(d.contains("%E7%85%A7"), "{d}");
        assert!(!d.contains('\n'));
    }
}
