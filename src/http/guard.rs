//! Guards in front of the handlers: a per-client rate limit, and the
//! refusal of cross-site requests to the endpoints a browser session
//! drives (server functions, WebSocket uploads, the form upload, sign-in),
//! except from the origins `--cors-origin` names (pages embedding the
//! uploader).

use super::error::ApiError;
use crate::core::error::{Error, ErrorCode};
use crate::server::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// The client's address (0.0.0.0 when the request did not come over a
/// socket, as in tests that call the router directly).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// The client's address from a request's extensions.
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Middleware: 429 with `Retry-After` for clients over the limit.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(limit) = &state.rate_limit {
        let ip = client_ip(req.extensions());
        if let Err(wait) = limit.check(ip) {
            let mut resp = ApiError(Error::new(
                ErrorCode::RateLimited,
                "Too many requests from this address; slow down and retry.",
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    next.run(req).await
}

/// Most bytes of a server function's request (`check_files` of 1000 files
/// with long names fits).
pub const MAX_API_BODY: usize = 2 << 20;

/// Middleware for the server functions: their request bodies are read
/// whole here, at most `MAX_API_BODY`, so that a body too large, broken
/// or stalled gets its own clear answer (413, 400, 408) instead of a
/// failure inside the function; arguments the function cannot read are a
/// 400 too, not the 500 the server-function layer would answer. At most
/// `limits::API_CALLS` functions run at once (each may hold a page of records).
pub async fn whole_api_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_API_BODY).await {
        Ok(bytes) => {
            // The body is whole now: its length is what it is.
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            let Ok(_turn) = state.limits.api_calls.acquire().await else {
                return ApiError(Error::internal("server functions", "closed")).into_response();
            };
            let resp = next.run(Request::from_parts(parts, bytes.into())).await;
            unreadable_arguments_are_400(resp).await
        }
        Err(e) => {
            let (code, message) = match body_failure(&e) {
                BodyFailure::TooLarge => (
                    ErrorCode::RequestTooLarge,
                    format!("This request is larger than {MAX_API_BODY} bytes."),
                ),
                BodyFailure::Stalled => (
                    ErrorCode::RequestTimeout,
                    "The request body stopped arriving.".to_string(),
                ),
                BodyFailure::Broken => (
                    ErrorCode::BodyIncomplete,
                    "The request body could not be read to its end.".to_string(),
                ),
            };
            ApiError(Error::new(code, message)).into_response()
        }
    }
}

/// A server function's answer of 500 because it could not read its
/// arguments, as the client's mistake it is.
async fn unreadable_arguments_are_400(resp: Response) -> Response {
    if resp.status() != axum::http::StatusCode::INTERNAL_SERVER_ERROR {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return ApiError(Error::internal("a server function's answer", "unreadable"))
            .into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    if ["Args|", "Deserialization|", "MissingArg|"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return ApiError(Error::new(
            ErrorCode::InvalidArguments,
            "The request's arguments could not be read.",
        ))
        .into_response();
    }
    Response::from_parts(parts, bytes.into())
}

enum BodyFailure {
    TooLarge,
    Stalled,
    Broken,
}

/// What ended a request body early, from its error's chain of causes.
fn body_failure(e: &axum::Error) -> BodyFailure {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return BodyFailure::TooLarge;
        }
        let timed_out = c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        if timed_out {
            return BodyFailure::Stalled;
        }
        cause = c.source();
    }
    BodyFailure::Broken
}

/// Whether a request was sent by a page of another site that the CORS
/// setting does not name (`*` names none): its `Origin` is another host
/// than the one asked, or the browser says so in `Sec-Fetch-Site`. A page
/// the setting names, such as one embedding Ferry's uploader, is no
/// stranger, whichever site it is on.
pub fn is_cross_site(headers: &HeaderMap, allowed_origins: &[String]) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        if origin != "null"
            && allowed_origins
                .iter()
                .any(|o| o != "*" && o.trim_end_matches('/') == origin)
        {
            return false;
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") {
            return true;
        }
    }
    let Some(origin) = origin else {
        return false; // not a browser's cross-origin request
    };
    if origin == "null" {
        return true;
    }
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !origin_host.eq_ignore_ascii_case(host)
}

/// Middleware for endpoints a browser session drives and whose every
/// request may change something or reveal the caller's data (the server
/// functions): requests sent by pages of other sites are refused with 403.
pub async fn same_site_always(State(state): State<AppState>, req: Request, next: Next) -> Response {
    refuse_cross_site(&state, req, next, true).await
}

/// Middleware for forms a browser session posts (sign-in, form upload):
/// other sites may link to them (GET) but not post to them.
pub async fn same_site_changes(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    refuse_cross_site(&state, req, next, false).await
}

async fn refuse_cross_site(
    state: &AppState,
    req: Request,
    next: Next,
    reads_too: bool,
) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if (reads_too || !safe) && is_cross_site(req.headers(), &state.config.cors_origin) {
        tracing::warn!(path = req.uri().path(), "cross-site request refused");
        return ApiError(Error::new(
            ErrorCode::Forbidden,
            "Requests from other sites are refused here.",
        ))
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_detection() {
        assert!(!is_cross_site(&headers(&[("host", "ferry.example")]), &[]));
        assert!(!is_cross_site(
            &headers(&[
                ("host", "ferry.example"),
                ("origin", "https://ferry.example")
            ]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[
                ("host", "ferry.example"),
                ("origin", "https://evil.example")
            ]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[("host", "ferry.example"), ("sec-fetch-site", "cross-site")]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[("host", "ferry.example"), ("origin", "null")]),
            &[]
        ));
        let allowed = vec!["https://app.example".to_string()];
        assert!(!is_cross_site(
            &headers(&[("host", "ferry.example"), ("origin", "https://app.example")]),
            &allowed
        ));
        // A page the setting names, on another site, embedding the uploader.
        assert!(!is_cross_site(
            &headers(&[
                ("host", "ferry.example"),
                ("origin", "https://app.example"),
                ("sec-fetch-site", "cross-site")
            ]),
            &allowed
        ));
        assert!(is_cross_site(
            &headers(&[
                ("host", "ferry.example"),
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site")
            ]),
            &allowed
        ));
        let any = vec!["*".to_string()];
        assert!(
            is_cross_site(
                &headers(&[
                    ("host", "ferry.example"),
                    ("origin", "https://evil.example")
                ]),
                &any
            ),
            "`*` opens the tus API to every page, not the session's calls"
        );
    }
}
