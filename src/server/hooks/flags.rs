//! The `--hooks-*` flags (flattened into `Config`; like it, each is also
//! read from a `FERRY_*` variable, and its doc comment is its `--help`).

use crate::core::hooks::{HookPoint, HookSettings};
use crate::server::values::{parse_duration, parse_positive_duration, Secret};
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct HookFlags {
    /// Calls hooks over HTTP: a POST of the hook's JSON to this URL (see the
    /// README's "Hooks"). Give this or `--hooks-command`, not both.
    #[arg(long, env = "FERRY_HOOKS_URL", value_parser = parse_hook_url)]
    pub hooks_url: Option<String>,

    /// Calls hooks by running this program: the hook's name as its argument,
    /// its JSON on standard input, the answer on standard output.
    #[arg(long, env = "FERRY_HOOKS_COMMAND")]
    pub hooks_command: Option<String>,

    /// Signs every HTTP hook: `Ferry-Signature: t=<unix time>,v1=<hex
    /// HMAC-SHA256 of "<t>.<body>">` with this secret.
    #[arg(long, env = "FERRY_HOOKS_SECRET", hide_env_values = true)]
    pub hooks_secret: Option<Secret>,

    /// The hooks that are called, separated by commas (default: all):
    /// pre-create, post-create, post-receive, pre-finish, post-finish,
    /// pre-terminate, post-terminate, post-expire.
    #[arg(long, env = "FERRY_HOOKS_ENABLED", value_delimiter = ',', value_parser = parse_point)]
    pub hooks_enabled: Vec<HookPoint>,

    /// Pre-hooks that let a request through when they cannot be asked (by
    /// default such a request is refused with 503).
    #[arg(long, env = "FERRY_HOOKS_FAIL_OPEN", value_delimiter = ',', value_parser = parse_pre_point)]
    pub hooks_fail_open: Vec<HookPoint>,

    /// How long one hook call may take before it counts as failed.
    #[arg(long, env = "FERRY_HOOKS_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub hooks_timeout: Duration,

    /// `post-receive` of one upload at most this often.
    #[arg(long, env = "FERRY_HOOKS_PROGRESS_EVERY", default_value = "10s", value_parser = parse_duration)]
    pub hooks_progress_every: Duration,

    /// How long a failing post-hook delivery is retried before it is kept
    /// as dead (listed at `/admin/hooks/dead`).
    #[arg(long, env = "FERRY_HOOKS_RETRY_FOR", default_value = "24h", value_parser = parse_duration)]
    pub hooks_retry_for: Duration,

    /// The longest wait between two tries of a delivery (the wait doubles
    /// from half a second up to this).
    #[arg(long, env = "FERRY_HOOKS_BACKOFF_MAX", default_value = "1m", value_parser = parse_positive_duration)]
    pub hooks_backoff_max: Duration,

    /// Request headers passed to hooks (so the application can recognise
    /// the uploader), separated by commas.
    #[arg(
        long,
        env = "FERRY_HOOKS_FORWARD_HEADERS",
        value_delimiter = ',',
        default_value = "authorization,cookie"
    )]
    pub hooks_forward_headers: Vec<String>,

    /// Post-hook deliveries in flight at once, per instance.
    #[arg(long, env = "FERRY_HOOKS_IN_FLIGHT", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub hooks_in_flight: u32,

    /// Dead deliveries kept (the oldest are forgotten first).
    #[arg(long, env = "FERRY_HOOKS_KEEP_DEAD", default_value_t = 10_000)]
    pub hooks_keep_dead: u32,
}

fn parse_point(s: &str) -> Result<HookPoint, String> {
    HookPoint::parse(s.trim()).ok_or_else(|| {
        let names: Vec<_> = HookPoint::ALL.iter().map(|p| p.as_str()).collect();
        format!("{s:?} is not a hook; the hooks are {}", names.join(", "))
    })
}

fn parse_pre_point(s: &str) -> Result<HookPoint, String> {
    let point = parse_point(s)?;
    match point.is_pre() {
        true => Ok(point),
        false => Err(format!(
            "{s:?} is a post-hook: post-hooks never hold a request up, they are retried"
        )),
    }
}

fn parse_hook_url(s: &str) -> Result<String, String> {
    let uri: axum::http::Uri = s.parse().map_err(|_| format!("{s:?} is not a URL"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http") | Some("https"), Some(host)) if !host.is_empty() => Ok(s.to_string()),
        _ => Err(format!("{s:?}: give an http:// or https:// URL")),
    }
}

impl HookFlags {
    /// Whether any hook is called.
    pub fn on(&self) -> bool {
        self.hooks_url.is_some() || self.hooks_command.is_some()
    }

    /// The header names forwarded, lowercase.
    pub fn forwarded(&self) -> Vec<String> {
        self.hooks_forward_headers
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    }

    pub fn settings(&self) -> HookSettings {
        let defaults = HookSettings::default();
        HookSettings {
            enabled: match self.hooks_enabled.is_empty() {
                true => defaults.enabled,
                false => self.hooks_enabled.iter().copied().collect(),
            },
            fail_open: self.hooks_fail_open.iter().copied().collect(),
            progress_every: self.hooks_progress_every,
            retry_for: self.hooks_retry_for,
            backoff_max: self.hooks_backoff_max,
            timeout: self.hooks_timeout,
            in_flight: self.hooks_in_flight as usize,
            keep_dead: self.hooks_keep_dead,
        }
    }
}
