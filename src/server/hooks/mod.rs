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
/// only the headers the operator forwards (`--hooks-forward-headers`).
/// `None` when no hook is called.
pub fn caller(
    flags: &HookFlags,
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
            let values: Vec<&str> = headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
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
