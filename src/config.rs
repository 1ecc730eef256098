//! Server configuration: command-line flags, each also read from a
//! `FERRY_*` environment variable. The doc comment of each field is its
//! `--help` text.

use crate::upload::{FsyncPolicy, ServiceConfig};
use clap::{Parser, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Ferry: resumable uploads of large files from a browser to a server.
///
/// Every flag can also be given as an environment variable (shown in
/// brackets); a flag on the command line wins over the variable.
#[derive(Parser, Debug, Clone)]
#[command(name = "ferry", version, about, long_about)]
pub struct Config {
    /// Address and port to listen on. Under `cargo leptos`, the
    /// `LEPTOS_SITE_ADDR` it sets is the default.
    #[arg(long, env = "FERRY_ADDR", default_value_t = default_addr())]
    pub addr: SocketAddr,

    /// Folder for everything Ferry stores (uploaded bytes and the metadata
    /// database). Created if it does not exist.
    #[arg(long, env = "FERRY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Folder with the built page assets (the cargo-leptos site root: the
    /// WebAssembly, JavaScript and CSS under `pkg/`, and `public/` files).
    /// Under `cargo leptos`, the `LEPTOS_SITE_ROOT` it sets is the default.
    #[arg(long, env = "FERRY_SITE_ROOT", default_value_t = default_site_root())]
    pub site_root: String,

    /// Log filter, in `tracing` env-filter syntax (for example `info` or
    /// `ferry=debug,tower_http=debug`).
    #[arg(long, env = "FERRY_LOG", default_value = "info")]
    pub log: String,

    /// Largest upload accepted (announced as Tus-Max-Size), in bytes or with
    /// a unit: `500MiB`, `10GiB`, `1TiB`.
    #[arg(long, env = "FERRY_MAX_SIZE", default_value = "1TiB", value_parser = parse_size)]
    pub max_size: u64,

    /// How long an unfinished upload may sit without new bytes before it
    /// expires and its bytes are removed: `30m`, `24h`, `7days`.
    #[arg(long, env = "FERRY_EXPIRE_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub expire_after: Duration,

    /// When uploaded bytes are forced to disk. `request`: before every
    /// acknowledgement, so nothing acknowledged is lost even to a power cut.
    /// `never`: left to the operating system (a crash of Ferry loses
    /// nothing, a power cut may).
    #[arg(long, env = "FERRY_FSYNC", value_enum, default_value_t = Fsync::Request)]
    pub fsync: Fsync,

    /// Within one long request, bytes are made durable and recorded at least
    /// this often, so a crash mid-request loses at most this much.
    #[arg(long, env = "FERRY_CHECKPOINT_EVERY", default_value = "64MiB", value_parser = parse_size)]
    pub checkpoint_every: u64,

    /// A request body that sends nothing for this long is ended (the bytes
    /// before are kept).
    #[arg(long, env = "FERRY_BODY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// How long events stay in the log for `/events` replay and long polling.
    #[arg(long, env = "FERRY_EVENTS_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub events_retention: Duration,

    /// Progress events of one upload are at least this far apart.
    #[arg(long, env = "FERRY_PROGRESS_EVERY", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub progress_every: Duration,

    /// How often expired uploads are looked for and removed.
    #[arg(long, env = "FERRY_SWEEP_EVERY", default_value = "1m", value_parser = humantime::parse_duration)]
    pub sweep_every: Duration,

    /// Closes the server: every request but `/healthz` and the sign-in page
    /// then needs `Authorization: Bearer <token>` or a browser session that
    /// signed in with the token.
    #[arg(long, env = "FERRY_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: Option<Secret>,

    /// An origin allowed to call the API from another site (CORS), such as
    /// `https://app.example.com`. Repeat the flag (or separate with commas
    /// in the variable) for several. Default: same origin only.
    #[arg(long, env = "FERRY_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,

    /// A client that has not sent its request headers within this time is
    /// cut off (slow or stuck clients cannot hold connections).
    #[arg(long, env = "FERRY_HEADER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Most bytes of request line and headers; larger requests get 431.
    #[arg(long, env = "FERRY_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_size)]
    pub max_header_bytes: u64,

    /// Requests per second allowed from one client address (0: no limit).
    /// Clients over it get 429 with Retry-After.
    #[arg(long, env = "FERRY_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,

    /// Requests a client may send at once before the rate limit applies.
    #[arg(long, env = "FERRY_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,

    /// Mark cookies `Secure` (serve over HTTPS, directly or behind a proxy).
    #[arg(long, env = "FERRY_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Where upload records and events are kept: `sqlite://PATH` (default:
    /// `sqlite://<data-dir>/ferry.db`), or `postgres://USER:PASSWORD@HOST/DB`
    /// for several instances sharing one database.
    #[arg(long, env = "FERRY_DATABASE", hide_env_values = true)]
    pub database: Option<Secret>,

    /// Where uploaded bytes are kept: a folder (default: the data folder),
    /// or `s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]` for S3-compatible
    /// object storage, with credentials from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (and the other usual `AWS_*` variables).
    #[arg(long, env = "FERRY_STORAGE")]
    pub storage: Option<String>,

    /// With S3 storage: the size of multipart upload parts (at least 5MiB).
    /// Each upload being written holds one part in memory.
    #[arg(long, env = "FERRY_S3_PART_SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub s3_part_size: u64,

    /// With PostgreSQL: most uploads this instance writes at once (each
    /// holds a database connection for its lock while it is written).
    #[arg(long, env = "FERRY_MAX_WRITERS", default_value_t = 64)]
    pub max_writers: u32,
}

/// Where bytes go, as `--storage` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Files in a folder.
    Folder(PathBuf),
    /// Objects in an S3-compatible bucket.
    S3(crate::upload::s3::S3Location),
}

/// The `--fsync` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    /// Sync before every acknowledgement.
    Request,
    /// Never sync explicitly.
    Never,
}

/// A secret from the command line or environment; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            Err("the value cannot be empty".into())
        } else {
            Ok(Secret(s.to_string()))
        }
    }
}

/// Parses a size: plain bytes or a number with a unit (`KiB`, `MB`, ...).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a size: {e}"))?;
    if size.as_u64() > i64::MAX as u64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(size.as_u64())
}

fn default_addr() -> SocketAddr {
    std::env::var("LEPTOS_SITE_ADDR")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)))
}

fn default_site_root() -> String {
    std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".to_string())
}

impl Config {
    /// A configuration for tests and embedding: defaults everywhere but the
    /// data folder.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Config::parse_from(["ferry"]);
        config.data_dir = data_dir.into();
        config
    }

    /// The database URL: `--database`, or SQLite in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(url) => url.expose().to_string(),
            None => crate::upload::meta::sqlite_url(&self.data_dir.join("ferry.db")),
        }
    }

    /// Where bytes go: `--storage`, or the data folder.
    pub fn storage(&self) -> Result<Storage, String> {
        match self.storage.as_deref() {
            None | Some("") => Ok(Storage::Folder(self.data_dir.clone())),
            Some(url) if url.starts_with("s3://") => {
                if self.s3_part_size < crate::upload::s3::MIN_PART_SIZE as u64 {
                    return Err("--s3-part-size must be at least 5MiB (S3's smallest part)".into());
                }
                crate::upload::s3::S3Location::parse(url).map(Storage::S3)
            }
            Some(url) if url.contains("://") && !url.starts_with("file://") => {
                Err(format!("--storage {url:?}: give a folder or an s3:// URL"))
            }
            Some(path) => Ok(Storage::Folder(PathBuf::from(
                path.strip_prefix("file://").unwrap_or(path),
            ))),
        }
    }

    /// The rules of the upload service.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            max_size: self.max_size,
            expire_after: self.expire_after,
            fsync: match self.fsync {
                Fsync::Request => FsyncPolicy::Request,
                Fsync::Never => FsyncPolicy::Never,
            },
            checkpoint_bytes: self.checkpoint_every.max(1),
            body_idle_timeout: self.body_timeout,
            ..ServiceConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_parse_and_help_is_consistent() {
        Config::command().debug_assert();
        let c = Config::try_parse_from([
            "ferry",
            "--addr",
            "127.0.0.1:4567",
            "--data-dir",
            "/tmp/x",
            "--site-root",
            "site",
        ])
        .unwrap();
        assert_eq!(c.addr.port(), 4567);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.site_root, "site");
    }

    #[test]
    fn sizes_durations_and_secrets() {
        let c = Config::try_parse_from([
            "ferry",
            "--max-size",
            "10GiB",
            "--expire-after",
            "30m",
            "--access-token",
            "hunter2",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example",
        ])
        .unwrap();
        assert_eq!(c.max_size, 10 * 1024 * 1024 * 1024);
        assert_eq!(c.expire_after, Duration::from_secs(1800));
        assert_eq!(c.cors_origin.len(), 2);
        assert_eq!(c.access_token.as_ref().unwrap().expose(), "hunter2");
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "secrets never reach logs"
        );
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("lots").is_err());
        assert!(Config::try_parse_from(["ferry", "--fsync", "sometimes"]).is_err());
    }

    #[test]
    fn database_and_storage_choices() {
        let c = Config::try_parse_from(["ferry", "--data-dir", "/srv/ferry data"]).unwrap();
        assert_eq!(c.database_url(), "sqlite:///srv/ferry%20data/ferry.db");
        assert_eq!(
            c.storage().unwrap(),
            Storage::Folder(PathBuf::from("/srv/ferry data"))
        );
        let c = Config::try_parse_from([
            "ferry",
            "--database",
            "postgres://ferry:s3cret@db/ferry",
            "--storage",
            "s3://uploads/ferry?endpoint=http://127.0.0.1:9000",
        ])
        .unwrap();
        assert_eq!(c.database_url(), "postgres://ferry:s3cret@db/ferry");
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "passwords never reach logs"
        );
        match c.storage().unwrap() {
            Storage::S3(l) => {
                assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("uploads", "ferry"));
            }
            other => panic!("{other:?}"),
        }
        let c = Config::try_parse_from(["ferry", "--storage", "file:///mnt/blobs"]).unwrap();
        assert_eq!(c.storage().unwrap(), Storage::Folder("/mnt/blobs".into()));
        for bad in [
            vec!["ferry", "--storage", "gs://bucket"],
            vec!["ferry", "--storage", "s3://b", "--s3-part-size", "1MiB"],
        ] {
            let c = Config::try_parse_from(bad.clone()).unwrap();
            assert!(c.storage().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_address_is_rejected() {
        let err = Config::try_parse_from(["ferry", "--addr", "not-an-address"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
