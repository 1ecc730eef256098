//! Types shared by the server and the browser: what crosses the wire in
//! server functions and JSON answers.

use serde::{Deserialize, Serialize};

/// What the server says about itself to the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's version (the crate version).
    pub version: String,
    /// Seconds the server process has been up.
    pub uptime_secs: u64,
}
