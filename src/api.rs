//! Server functions: the page's calls to the server for everything that is
//! not a chunk body. Each one is thin: read the state, call the core, map
//! the error.

use crate::model::ServerInfo;
use leptos::prelude::*;

/// Describes the running server (version, uptime) to the page.
#[server(prefix = "/api", endpoint = "describe_server")]
pub async fn describe_server() -> Result<ServerInfo, ServerFnError> {
    let state = expect_context::<crate::AppState>();
    Ok(ServerInfo {
        version: crate::VERSION.to_string(),
        uptime_secs: state.started.elapsed().as_secs(),
    })
}
