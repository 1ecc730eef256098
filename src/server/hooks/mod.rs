//! Hooks as the command line sets them up: the flags (`flags`) and the two
//! transports, HTTP (`http`) and a program (`command`). What hooks are and
//! how post-hooks are delivered is `core::hooks`.

pub mod command;
pub mod flags;
pub mod http;

use crate::core::hooks::{Caller, HookTransport, Hooks, OutboxStore};
use crate::core::observe::Observer;
use flags::HookFlags;
use std::sync::Arc;

/// The hooks the flags ask for (`Hooks::off()` when none).
pub fn build(
    flags: &HookFlags,
    outbox: Arc<dyn OutboxStore>,
    observer: Arc<dyn Observer>,
) -> Result<Hooks, String> {
    let transport: Arc<dyn HookTransport> = match (&flags.hooks_url, &flags.hooks_command) {
        (Some(_), Some(_)) => {
            return Err("give --hooks-url or --hooks-command, not both".to_string())
        }
        (Some(url), None) => {
            if flags.hooks_secret.is_none() {
                tracing::warn!("--hooks-url without --hooks-secret: hook calls are not signed");
            }
            let secret = flags.hooks_secret.as_ref().map(|s| s.expose().to_string());
            Arc::new(http::HttpHooks::new(
                url.clone(),
                secret,
                flags.hooks_timeout,
            )?)
        }
        (None, Some(program)) => Arc::new(command::CommandHooks::new(
            program.clone(),
            flags.hooks_timeout,
        )),
        (None, None) => return Ok(Hooks::off()),
    };
    Ok(Hooks::new(transport, outbox, flags.settings()).observed_by(observer))
}

/// The request as hooks see it: its method, URI and client address, and
/// only the headers the operator forwards (`--hooks-forward-headers`),
/// without Ferry's own secrets (its session cookies, and its access token
/// as a bearer token). `None` when no hook is called.
pub fn caller(
    flags: &HookFlags,
    access_token: Option<&str>,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<Caller> {
    if !flags.on() {
        return None;
    }
    let headers = flags
        .forwarded()
        .into_iter()
        .filter_map(|name| {
            let values: Vec<String> = headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| without_ferrys_secrets(&name, v, access_token))
                .collect();
            (!values.is_empty()).then(|| (name, values.join(", ")))
        })
        .collect();
    let remote_addr = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    Some(Caller {
        method: method.to_string(),
        uri: uri.to_string(),
        remote_addr,
        headers,
    })
}

/// A header's value as a hook may see it: Ferry's cookies (`ferry_*`) taken
/// out of `Cookie`, and `Authorization` dropped when it is Ferry's access
/// token.
fn without_ferrys_secrets(name: &str, value: &str, access_token: Option<&str>) -> Option<String> {
    match name {
        "cookie" => {
            let kept: Vec<&str> = value
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.starts_with("ferry_"))
                .collect();
            (!kept.is_empty()).then(|| kept.join("; "))
        }
        "authorization" => {
            let bearer = value.trim().strip_prefix("Bearer ").map(str::trim);
            match (bearer, access_token) {
                (Some(b), Some(t)) if b == t => None,
                _ => Some(value.to_string()),
            }
        }
        _ => Some(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferrys_own_secrets_are_not_forwarded() {
        let cookie = "app=1; ferry_session=abc.def; ferry_auth=x; theme=dark";
        assert_eq!(
            without_ferrys_secrets("cookie", cookie, None).as_deref(),
            Some("app=1; theme=dark")
        );
        assert_eq!(
            without_ferrys_secrets("cookie", "ferry_session=a", None),
            None
        );
        assert_eq!(
            without_ferrys_secrets("authorization", "Bearer s3cret", Some("s3cret")),
            None
        );
        assert_eq!(
            without_ferrys_secrets("authorization", "Bearer user-token", Some("s3cret")).as_deref(),
            Some("Bearer user-token")
        );
        assert_eq!(
            without_ferrys_secrets("x-request-id", "ferry_1", None).as_deref(),
            Some("ferry_1")
        );
    }
}
