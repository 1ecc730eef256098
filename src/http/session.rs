//! Who is asking: every request gets an `Owner` (its bearer token, its
//! browser session, or anonymous) and, when `--access-token` closes the
//! server, must prove it knows the token. Browser sessions live in an
//! HttpOnly, SameSite=Lax cookie that the server signs (a session ID it did
//! not issue is ignored, so nobody can plant one); signing in always starts
//! a fresh session and binds it to the token with an HMAC, so no session
//! table is needed and any instance can check it. Sign-in attempts, by form
//! or by bearer token, are limited per client address.

use super::embed_token;
use super::error::ApiError;
use crate::core::error::{Error, ErrorCode};
use crate::core::record::now_millis;
use crate::core::{Owner, UploadId};
use crate::server::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The cookie naming the browser session.
pub const SESSION_COOKIE: &str = "ferry_session";
/// The cookie proving the session signed in with the access token.
pub const AUTH_COOKIE: &str = "ferry_auth";

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The session ID from the cookie, when Ferry issued it: the cookie is
/// `<id>.<signature>`, signed with the server's session key.
fn session_id(headers: &HeaderMap, key: &str) -> Option<String> {
    let (id, signature) = cookie(headers, SESSION_COOKIE)?.split_once('.')?;
    let id = UploadId::parse(id)?;
    same_secret(signature, &sign_session(key, id.as_str())).then(|| id.to_string())
}

/// The signature of a session ID: 128 bits of an HMAC keyed by the
/// server's session key.
fn sign_session(key: &str, id: &str) -> String {
    let mut mac = hmac_hex(key, b"ferry-session-id:", id);
    mac.truncate(32);
    mac
}

/// HMAC-SHA256 of `message` under `key`, with a `domain` prefix so that
/// no two uses of one key sign the same bytes; lowercase hex.
fn hmac_hex(key: &str, domain: &[u8], message: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(domain);
    mac.update(message.as_bytes());
    crate::core::hash::hex(&mac.finalize().into_bytes())
}

/// A new session ID with its signed cookie value.
fn new_session(key: &str) -> (String, String) {
    let id = UploadId::random().to_string();
    let value = signed_session(key, &id);
    (id, value)
}

/// The cookie value of session `id` signed with `key` (`AppState::session_key`).
pub fn signed_session(key: &str, id: &str) -> String {
    format!("{id}.{}", sign_session(key, id))
}

pub(super) fn too_many_attempts() -> Response {
    let mut resp = ApiError(Error::new(
        ErrorCode::RateLimited,
        "Too many sign-in attempts from this address; wait a minute and try again.",
    ))
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    resp
}

fn session_mac(token: &str, session: &str) -> String {
    hmac_hex(token, b"ferry-session:", session)
}

/// Compares secrets by their digests, so the time taken says nothing
/// about how much of a guess was right.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

fn session_cookie(value: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}"
    ))
    .expect("cookie is ASCII")
}

/// Middleware: works out the request's `Owner`, enforces the access token
/// (when one is set), and gives new browsers a session cookie.
pub async fn identify(State(state): State<AppState>, req: Request, next: Next) -> Response {
    identify_as(state, req, next, true).await
}

/// Middleware for what is open without the access token (signing in): an
/// `Owner` and a session cookie as `identify` gives, but no token asked for.
pub async fn welcome(State(state): State<AppState>, req: Request, next: Next) -> Response {
    identify_as(state, req, next, false).await
}

async fn identify_as(
    state: AppState,
    mut req: Request,
    next: Next,
    demand_token: bool,
) -> Response {
    let headers = req.headers();
    let bearer = bearer(headers).map(str::to_owned);
    let session = session_id(headers, &state.session_key);
    // An embed token, when the server has the key to check it: a valid one
    // names its owner; a forged or expired one is refused outright.
    let embedded = match (&bearer, &state.config.embed_secret) {
        (Some(b), Some(secret)) if b.starts_with(embed_token::PREFIX) => {
            match embed_token::verify(secret.expose(), b, now_millis() as u64 / 1000) {
                Ok(owner) => Some(owner),
                Err(why) => return refuse_embed_token(&state, &req, why),
            }
        }
        _ => None,
    };
    if let Some(required) = state.config.access_token.as_ref().map(|t| t.expose()) {
        let by_token =
            embedded.is_some() || bearer.as_deref().is_some_and(|b| same_secret(b, required));
        if bearer.is_some()
            && !by_token
            && !state
                .limits
                .may_sign_in(super::guard::client_ip(req.extensions()))
        {
            return too_many_attempts();
        }
        let by_session = match (&session, cookie(headers, AUTH_COOKIE)) {
            (Some(s), Some(mac)) => same_secret(mac, &session_mac(required, s)),
            _ => false,
        };
        if demand_token && !by_token && !by_session {
            let wants_page = req.method() == Method::GET
                && headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.contains("text/html"));
            if wants_page {
                return Redirect::to("/signin").into_response();
            }
            let mut resp = ApiError(Error::new(
                ErrorCode::Unauthorized,
                "This server needs an access token: send Authorization: Bearer <token>, or sign in.",
            ))
            .into_response();
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    let owner = match (&embedded, &bearer, &session) {
        (Some(name), _, _) => Owner::embedded(name),
        (None, Some(token), _) => Owner::token(token),
        (None, None, Some(s)) => Owner::session(s),
        (None, None, None) => Owner::anonymous(),
    };
    req.extensions_mut().insert(owner);
    let mut resp = next.run(req).await;
    if bearer.is_none() && session.is_none() && !resp.headers().contains_key(header::SET_COOKIE) {
        let (_, value) = new_session(&state.session_key);
        resp.headers_mut().append(
            header::SET_COOKIE,
            session_cookie(&value, state.config.secure_cookies),
        );
    }
    resp
}

/// The answer to an embed token that is not valid (counted as a failed
/// sign-in attempt of the client's address).
fn refuse_embed_token(state: &AppState, req: &Request, why: embed_token::Refused) -> Response {
    if !state
        .limits
        .may_sign_in(super::guard::client_ip(req.extensions()))
    {
        return too_many_attempts();
    }
    let message = match why {
        embed_token::Refused::Expired => {
            "This embed token has expired: the page that embeds the uploader must give a fresh one."
        }
        _ => "This embed token is not valid (not signed with this server's --embed-secret).",
    };
    let mut resp = ApiError(Error::new(ErrorCode::Unauthorized, message)).into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// `GET /signin`: the sign-in form.
pub async fn signin_page() -> Html<String> {
    Html(super::pages::signin(None))
}

#[derive(serde::Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /signin`: checks the token and binds a fresh session to it.
pub async fn signin(
    State(state): State<AppState>,
    peer: super::guard::ClientIp,
    Form(form): Form<SignIn>,
) -> Response {
    let Some(required) = state.config.access_token.as_ref().map(|t| t.expose()) else {
        return Redirect::to("/").into_response();
    };
    if !state.limits.may_sign_in(peer.0) {
        return too_many_attempts();
    }
    if !same_secret(&form.token, required) {
        tracing::warn!("failed sign-in attempt");
        let page = super::pages::signin(Some("That token is not right."));
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    // Never the session the request came with: one planted by someone
    // else must not become signed in.
    let (session, value) = new_session(&state.session_key);
    let mut resp = Redirect::to("/").into_response();
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    resp.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(&value, state.config.secure_cookies),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{AUTH_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000{secure}",
        session_mac(required, &session)
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_and_bearer_tokens() {
        let mut h = HeaderMap::new();
        let (id, value) = new_session("key");
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; ferry_session={value}; b=2")).unwrap(),
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(session_id(&h, "key"), Some(id.clone()));
        assert_eq!(
            session_id(&h, "other key"),
            None,
            "signed by this server only"
        );
        assert_eq!(bearer(&h), Some("s3cret"));
        for planted in [
            "ferry_session=../../x".to_string(),
            "ferry_session=AAAAAAAAAAAAAAAAAAAAAA".to_string(),
            format!("ferry_session={id}.00000000000000000000000000000000"),
        ] {
            h.insert(header::COOKIE, HeaderValue::from_str(&planted).unwrap());
            assert_eq!(session_id(&h, "key"), None, "{planted}");
        }
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn session_macs_depend_on_token_and_session() {
        assert_ne!(session_mac("t", "s1"), session_mac("t", "s2"));
        assert_ne!(session_mac("t1", "s"), session_mac("t2", "s"));
        assert!(same_secret(&session_mac("t", "s"), &session_mac("t", "s")));
    }
}
