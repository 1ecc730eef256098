//! The tus 1.0.0 resumable-upload protocol at `/files/`, with the
//! extensions creation, creation-with-upload, creation-defer-length,
//! termination, checksum, expiration and concatenation, and the download of
//! finished uploads. Handlers parse headers, call `UploadService`, and map
//! the answer; all rules live in the service.

use super::error::ApiError;
use crate::error::{Error, ErrorCode};
use crate::state::AppState;
use crate::upload::Owner;
use crate::upload::{
    sanitize_filename, AppendRequest, BodyStream, ChecksumAlgorithm, ChunkChecksum, Concat,
    CreateRequest, Metadata, UploadId, UploadRecord,
};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use futures_util::TryStreamExt;

/// The protocol version Ferry speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions Ferry supports, as `Tus-Extension` lists them.
pub const TUS_EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation";
/// The media type of PATCH bodies.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// The routes under `/files`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/files", any(collection))
        .route("/files/", any(collection))
        .route("/files/{id}", any(resource))
}

type Result<T> = std::result::Result<T, ApiError>;

/// The method a request means: its own, or for a POST the one in
/// `X-HTTP-Method-Override` (for clients that cannot send PATCH or DELETE).
fn effective_method(req: &Request) -> Result<Method> {
    let Some(over) = req.headers().get("x-http-method-override") else {
        return Ok(req.method().clone());
    };
    let wanted = over.to_str().unwrap_or("").trim().to_ascii_uppercase();
    if req.method() != Method::POST {
        return Err(Error::new(
            ErrorCode::InvalidMethodOverride,
            "X-HTTP-Method-Override is only honoured on POST requests.",
        )
        .into());
    }
    match wanted.as_str() {
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        _ => Err(Error::new(
            ErrorCode::InvalidMethodOverride,
            "X-HTTP-Method-Override may only ask for PATCH or DELETE.",
        )
        .into()),
    }
}

/// Every tus request but OPTIONS (and downloads, which plain browsers
/// make) must say it speaks 1.0.0.
fn check_version(headers: &HeaderMap) -> Result<()> {
    match headers.get("tus-resumable").map(|v| v.as_bytes()) {
        Some(v) if v == TUS_VERSION.as_bytes() => Ok(()),
        _ => Err(Error::new(
            ErrorCode::UnsupportedVersion,
            format!("This server speaks tus {TUS_VERSION}; send Tus-Resumable: {TUS_VERSION}."),
        )
        .into()),
    }
}

fn unsupported_version_response(err: ApiError) -> Response {
    let mut resp = err.into_response();
    resp.headers_mut()
        .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    resp
}

/// A header as text; `None` when absent.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| Error::header(name, "not visible ASCII").into()),
    }
}

/// Parses a non-negative decimal integer header strictly: digits only, no
/// sign, no spaces inside, and it must fit in 63 bits.
pub fn parse_u64(name: &str, value: &str) -> crate::error::Result<u64> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::header(
            name,
            format!("{:?} is not a non-negative integer", truncate(value)),
        ));
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= i64::MAX as u64)
        .ok_or_else(|| Error::header(name, "the number is too large"))
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn u64_header(headers: &HeaderMap, name: &str) -> Result<Option<u64>> {
    header_str(headers, name)?
        .map(|v| parse_u64(name, v))
        .transpose()
        .map_err(ApiError::from)
}

/// Parses `Upload-Concat`: `partial`, or `final;` and the URLs of the parts.
pub fn parse_concat(value: &str) -> crate::error::Result<Concat> {
    let value = value.trim();
    if value == "partial" {
        return Ok(Concat::Partial);
    }
    let Some(list) = value.strip_prefix("final;") else {
        return Err(Error::header(
            "Upload-Concat",
            "expected \"partial\" or \"final;<urls>\"",
        ));
    };
    let parts = list
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|url| {
            let path = url.split(['?', '#']).next().unwrap_or("");
            let id = path
                .rsplit_once("/files/")
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
        .collect::<crate::error::Result<Vec<_>>>()?;
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

fn parse_id(id: &str) -> Result<UploadId> {
    UploadId::parse(id).ok_or_else(|| Error::not_found().into())
}

fn with_tus(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    resp
}

fn set(resp: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

fn set_expires(resp: &mut Response, record: &UploadRecord) {
    if let Some(ms) = record.expires_at {
        // HTTP dates end with the year 9999.
        let ms = ms.clamp(0, 253_402_300_799_000) as u64;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        set(resp, "upload-expires", httpdate::fmt_http_date(t));
    }
}

fn options(state: &AppState) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set(&mut resp, "tus-version", TUS_VERSION);
    set(&mut resp, "tus-extension", TUS_EXTENSIONS);
    set(&mut resp, "tus-max-size", state.uploads.config().max_size);
    set(&mut resp, "tus-checksum-algorithm", ChecksumAlgorithm::ALL);
    resp
}

/// `/files`: OPTIONS and POST (creation).
async fn collection(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    req: Request,
) -> Response {
    let method = match effective_method(&req) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    if method == Method::OPTIONS {
        return options(&state);
    }
    if let Err(e) = check_version(req.headers()) {
        return unsupported_version_response(e);
    }
    let result = match method {
        Method::POST => create(&state, owner, req).await,
        _ => Err(method_not_allowed("OPTIONS, POST")),
    };
    with_tus(result.unwrap_or_else(IntoResponse::into_response))
}

/// `/files/{id}`: OPTIONS, HEAD, PATCH, DELETE and GET (download).
async fn resource(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let method = match effective_method(&req) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    if method == Method::OPTIONS {
        return options(&state);
    }
    if method != Method::GET {
        if let Err(e) = check_version(req.headers()) {
            return unsupported_version_response(e);
        }
    }
    let result = match parse_id(&id) {
        Err(e) => Err(e),
        Ok(id) => match method {
            Method::HEAD => head(&state, &id).await,
            Method::PATCH => patch(&state, &id, req).await,
            Method::DELETE => delete(&state, &id).await,
            Method::GET => super::download::download(&state, &id, req.headers()).await,
            _ => Err(method_not_allowed("OPTIONS, HEAD, PATCH, DELETE, GET")),
        },
    };
    with_tus(result.unwrap_or_else(IntoResponse::into_response))
}

fn method_not_allowed(allowed: &'static str) -> ApiError {
    Error::new(
        ErrorCode::MethodNotAllowed,
        format!("Use one of {allowed} here."),
    )
    .into()
}

/// A request body as the core reads it; a body that sent nothing for too
/// long (the connection's idle timeout) ends with `TimedOut`.
fn body_stream(body: Body) -> BodyStream {
    Box::pin(body.into_data_stream().map_err(
        |e| match e.into_inner().downcast::<std::io::Error>() {
            Ok(io) => *io,
            Err(other) => std::io::Error::other(other),
        },
    ))
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

async fn create(state: &AppState, owner: Owner, req: Request) -> Result<Response> {
    let headers = req.headers();
    let concat = match header_str(headers, "Upload-Concat")? {
        Some(v) => parse_concat(v)?,
        None => Concat::None,
    };
    let length = u64_header(headers, "Upload-Length")?;
    let deferred = match header_str(headers, "Upload-Defer-Length")? {
        None => false,
        Some("1") => true,
        Some(_) => {
            return Err(Error::header("Upload-Defer-Length", "the only allowed value is 1").into())
        }
    };
    match (length, deferred, &concat) {
        (Some(_), true, _) => {
            return Err(Error::header(
                "Upload-Length",
                "give either Upload-Length or Upload-Defer-Length, not both",
            )
            .into())
        }
        (None, false, Concat::None | Concat::Partial) => return Err(Error::new(
            ErrorCode::LengthRequired,
            "Give the upload's size in Upload-Length, or Upload-Defer-Length: 1 to give it later.",
        )
        .into()),
        _ => {}
    }
    let metadata = match header_str(headers, "Upload-Metadata")? {
        Some(v) => Metadata::parse(v)?,
        None => Metadata::default(),
    };
    let with_body = is_offset_stream(headers) && !matches!(concat, Concat::Final(_));
    let checksum = match (with_body, header_str(headers, "Upload-Checksum")?) {
        (true, Some(v)) => Some(ChunkChecksum::parse(v)?),
        _ => None,
    };
    let content_length = u64_header(headers, "Content-Length")?;

    let mut record = state
        .uploads
        .create(CreateRequest {
            owner,
            length,
            metadata,
            concat,
        })
        .await?;

    // creation-with-upload: the body is the upload's first bytes. The upload
    // exists whatever happens to them, so the answer is 201 with the offset
    // really reached; the client resumes from there.
    if with_body && !record.is_complete() && content_length != Some(0) {
        let append = AppendRequest {
            offset: 0,
            declare_length: None,
            checksum,
            content_length,
            ..AppendRequest::default()
        };
        match state
            .uploads
            .append(&record.id, append, body_stream(req.into_body()))
            .await
        {
            Ok(updated) => record = updated,
            Err(e) => {
                tracing::info!(id = %record.id, "first bytes of a new upload not stored: {e}");
                if let Ok(current) = state.uploads.get(&record.id).await {
                    record = current;
                }
            }
        }
    }

    let mut resp = StatusCode::CREATED.into_response();
    set(&mut resp, "location", record.id.path());
    if with_body || record.is_complete() {
        set(&mut resp, "upload-offset", record.offset);
    }
    set_expires(&mut resp, &record);
    Ok(resp)
}

async fn head(state: &AppState, id: &UploadId) -> Result<Response> {
    let record = state.uploads.get(id).await?;
    let mut resp = StatusCode::OK.into_response();
    let is_final = matches!(record.concat, Concat::Final(_));
    if !is_final || record.is_complete() {
        set(&mut resp, "upload-offset", record.offset);
    }
    match record.length {
        Some(length) => set(&mut resp, "upload-length", length),
        None => set(&mut resp, "upload-defer-length", 1),
    }
    if !record.metadata.is_empty() {
        set(&mut resp, "upload-metadata", record.metadata.encode());
    }
    match &record.concat {
        Concat::None => {}
        Concat::Partial => set(&mut resp, "upload-concat", "partial"),
        Concat::Final(parts) => set(
            &mut resp,
            "upload-concat",
            format!(
                "final;{}",
                parts
                    .iter()
                    .map(UploadId::path)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
    }
    set(&mut resp, "cache-control", "no-store");
    set_expires(&mut resp, &record);
    Ok(resp)
}

async fn patch(state: &AppState, id: &UploadId, req: Request) -> Result<Response> {
    let headers = req.headers();
    if !is_offset_stream(headers) {
        return Err(Error::new(
            ErrorCode::UnsupportedContentType,
            format!("PATCH bodies must be sent as Content-Type: {OFFSET_OCTET_STREAM}."),
        )
        .into());
    }
    let offset = u64_header(headers, "Upload-Offset")?
        .ok_or_else(|| Error::header("Upload-Offset", "missing"))?;
    let append = AppendRequest {
        offset,
        declare_length: u64_header(headers, "Upload-Length")?,
        checksum: header_str(headers, "Upload-Checksum")?
            .map(ChunkChecksum::parse)
            .transpose()?,
        content_length: u64_header(headers, "Content-Length")?,
        ..AppendRequest::default()
    };
    let record = state
        .uploads
        .append(id, append, body_stream(req.into_body()))
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set(&mut resp, "upload-offset", record.offset);
    set_expires(&mut resp, &record);
    Ok(resp)
}

async fn delete(state: &AppState, id: &UploadId) -> Result<Response> {
    state.uploads.delete(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The file name to offer for a download.
pub fn download_name(record: &UploadRecord) -> String {
    sanitize_filename(record.metadata.filename().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
