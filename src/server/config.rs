//! Server configuration: command-line flags, each also read from a
//! `FERRY_*` environment variable. The doc comment of each field is its
//! `--help` text. The `--hooks-*` flags are in `hooks::flags`, flattened
//! in here; nothing else reads the environment.

use super::values::*;
pub use super::values::{Secret, Share};
use crate::core::{FsyncPolicy, ServiceConfig};
use clap::Parser;
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
    #[arg(long, env = "FERRY_MAX_SIZE", default_value = "1TiB", value_parser = parse_positive_size)]
    pub max_size: u64,

    /// How long an unfinished upload may sit without new bytes before it
    /// expires and its bytes are removed: `30m`, `24h`, `7days`.
    #[arg(long, env = "FERRY_EXPIRE_AFTER", default_value = "24h", value_parser = parse_positive_duration)]
    pub expire_after: Duration,

    /// When uploaded bytes are forced to disk. `request`: before every
    /// acknowledgement, so nothing acknowledged is lost even to a power cut.
    /// `never`: left to the operating system (a crash of Ferry loses
    /// nothing, a power cut may).
    #[arg(long, env = "FERRY_FSYNC", default_value = "request", value_parser = fsync_parser())]
    pub fsync: FsyncPolicy,

    /// Within one long request, bytes are made durable and recorded at least
    /// this often, so a crash mid-request loses at most this much.
    #[arg(long, env = "FERRY_CHECKPOINT_EVERY", default_value = "64MiB", value_parser = parse_positive_size)]
    pub checkpoint_every: u64,

    /// Within one long request, bytes are also made durable and recorded at
    /// least this often, so a crash of the machine loses at most this much
    /// time of sending (a crash of Ferry alone loses nothing it wrote).
    #[arg(long, env = "FERRY_CHECKPOINT_INTERVAL", default_value = "1s", value_parser = parse_positive_duration)]
    pub checkpoint_interval: Duration,

    /// A request body that sends nothing for this long is ended (the bytes
    /// before are kept). Applies to every route.
    #[arg(long, env = "FERRY_BODY_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub body_timeout: Duration,

    /// How long events stay in the log for `/events` replay and long polling.
    #[arg(long, env = "FERRY_EVENTS_RETENTION", default_value = "24h", value_parser = parse_positive_duration)]
    pub events_retention: Duration,

    /// Progress events of one upload are at least this far apart.
    #[arg(long, env = "FERRY_PROGRESS_EVERY", default_value = "250ms", value_parser = parse_duration)]
    pub progress_every: Duration,

    /// How often expired uploads are looked for and removed.
    #[arg(long, env = "FERRY_SWEEP_EVERY", default_value = "1m", value_parser = parse_positive_duration)]
    pub sweep_every: Duration,

    /// Closes the server: every request but `/healthz` and the sign-in page
    /// then needs `Authorization: Bearer <token>` or a browser session that
    /// signed in with the token.
    #[arg(long, env = "FERRY_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: Option<Secret>,

    /// The key a host page's back end signs embed tokens with: each names
    /// a person as an owner of their own for the embedded uploader, and
    /// stands for the access token everywhere but `/admin` (see the
    /// README's "Embedding").
    #[arg(long, env = "FERRY_EMBED_SECRET", hide_env_values = true)]
    pub embed_secret: Option<Secret>,

    /// An origin allowed to call the API from another site (CORS), such as
    /// `https://app.example.com`, or `*` for any. A named origin may also
    /// send the browser's credentials (Ferry's session cookie) and call the
    /// page's own endpoints, as a page embedding the uploader does; `*`
    /// never (bearer-token clients only), and cannot be mixed with names.
    /// Repeat the flag (or separate with commas in the variable) for
    /// several. Default: same origin only.
    #[arg(long, env = "FERRY_CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origin: Vec<String>,

    /// A client that has not sent its request headers within this time is
    /// cut off (slow or stuck clients cannot hold connections).
    #[arg(long, env = "FERRY_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub header_timeout: Duration,

    /// Most bytes of request line and headers; larger requests get 431.
    #[arg(long, env = "FERRY_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_header_bytes)]
    pub max_header_bytes: u64,

    /// Most bytes a connection reads at once from a request body: bodies
    /// are handed over in pieces of up to this size, and fewer, larger
    /// pieces cost less work per byte (a fifth less CPU for large PATCHes
    /// at 256 KiB than at 64 KiB; 128 KiB costs the same as 256). A
    /// connection's buffer grows only while its body arrives faster than it
    /// is stored, and then holds up to about three times this: the buffer,
    /// which can grow to twice this, and the pieces on their way to disk.
    /// Request heads are held to `--max-header-bytes` whatever this is.
    #[arg(long, env = "FERRY_READ_BUFFER", default_value = "128KiB", value_parser = parse_header_bytes)]
    pub read_buffer: u64,

    /// Requests per second allowed from one client address (0: no limit).
    /// Clients over it get 429 with Retry-After.
    #[arg(long, env = "FERRY_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,

    /// Requests a client may send at once before the rate limit applies.
    #[arg(long, env = "FERRY_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,

    /// Most connections open at once. Past it, the connection idle the
    /// longest is closed to make room, or the new one is refused when none
    /// is idle. Kept below the process's file limit.
    #[arg(long, env = "FERRY_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most WebSocket uploads open at once.
    #[arg(long, env = "FERRY_MAX_WEBSOCKETS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_websockets: u32,

    /// Most live event streams and long polls (`/events`, `/events/poll`)
    /// one owner may hold at once (a browser tab holds one).
    #[arg(long, env = "FERRY_MAX_STREAMS_PER_OWNER", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_owner: u32,

    /// Most live event streams and long polls from one client address at
    /// once.
    #[arg(long, env = "FERRY_MAX_STREAMS_PER_ADDRESS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_address: u32,

    /// Most bytes one owner may store: declared lengths of unfinished
    /// uploads and sizes of finished ones (bytes shared by instant uploads
    /// count once). A size, or a share of the data disk such as `50%`;
    /// `0` for no limit. With S3 storage a share means no limit.
    #[arg(long, env = "FERRY_MAX_BYTES_PER_OWNER", default_value = "50%", value_parser = parse_share)]
    pub max_bytes_per_owner: Share,

    /// Most unfinished uploads one owner may have at once (`0`: no limit).
    #[arg(long, env = "FERRY_MAX_UNFINISHED_PER_OWNER", default_value_t = 10_000)]
    pub max_unfinished_per_owner: u64,

    /// The only kinds of file accepted, separated by commas: name endings
    /// (`.pdf`, `.tar.gz`) and media types (`image/png`, `image/*`). A file
    /// matching any is accepted; others are refused with 415
    /// `type_not_allowed` on every route. Default: any file.
    #[arg(long, env = "FERRY_ALLOW_TYPES", value_delimiter = ',', value_parser = parse_type_entry)]
    pub allow_types: Vec<String>,

    /// Most files sent at once: the page refuses more in one choice or
    /// drop, and a form upload stops at the limit (`0`: no limit).
    #[arg(long, env = "FERRY_MAX_FILES_PER_BATCH", default_value_t = 0)]
    pub max_files_per_batch: u32,

    /// Free space kept on the data disk: an upload that would leave less
    /// is refused (507) before it starts. A size or a share of the disk
    /// such as `2%`; `0` to turn the guard off.
    #[arg(long, env = "FERRY_MIN_FREE_SPACE", default_value = "2%", value_parser = parse_share)]
    pub min_free_space: Share,

    /// Mark cookies `Secure` (serve over HTTPS, directly or behind a proxy).
    #[arg(long, env = "FERRY_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Serve `/metrics` (Prometheus) on this address only, instead of on
    /// the main one, e.g. `127.0.0.1:9090` to keep it off the internet.
    #[arg(long, env = "FERRY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Trust `Forwarded` and `X-Forwarded-Proto`/`X-Forwarded-Host` when
    /// building absolute upload URLs: set it when Ferry runs behind a
    /// reverse proxy that sets them (and strips what clients send).
    #[arg(long, env = "FERRY_BEHIND_PROXY")]
    pub behind_proxy: bool,

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

    /// With S3 storage: the memory for parts being gathered, over all
    /// uploads being written (each reserves its current part when its first
    /// byte arrives). Past it, a request waits up to 10 s for room, then is
    /// answered 503 `server_busy` (the upload resumes from its offset).
    /// At least the largest part (256MiB, or --s3-part-size if larger).
    #[arg(long, env = "FERRY_S3_MEMORY", default_value = "1GiB", value_parser = parse_size)]
    pub s3_memory: u64,

    /// Accepted for compatibility and ignored: with PostgreSQL, the locks of
    /// every upload being written now share one database connection.
    #[arg(long, env = "FERRY_MAX_WRITERS", default_value_t = 64, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_writers: u32,

    /// `DEV` under `cargo leptos watch`, which wants the live-reload script;
    /// a binary started on its own is in production mode.
    #[arg(long, env = "LEPTOS_ENV", default_value = "PROD", hide = true)]
    pub leptos_env: String,

    /// Where `cargo leptos watch` listens for the live-reload script.
    #[arg(long, env = "LEPTOS_RELOAD_PORT", default_value_t = 3001, hide = true)]
    pub leptos_reload_port: u32,

    #[command(flatten)]
    pub hooks: super::hooks::flags::HookFlags,
}

/// Where bytes go, as `--storage` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Files in a folder.
    Folder(PathBuf),
    /// Objects in an S3-compatible bucket.
    S3(crate::store::blob::s3::S3Location),
}

/// The `--fsync` choices: `request` (sync before every acknowledgement) or
/// `never` (never sync explicitly).
fn fsync_parser() -> impl clap::builder::TypedValueParser<Value = FsyncPolicy> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["request", "never"]).map(|s| match s.as_str() {
        "never" => FsyncPolicy::Never,
        _ => FsyncPolicy::Request,
    })
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
            None => crate::store::sql::sqlite_url(&self.data_dir.join("ferry.db")),
        }
    }

    /// Where bytes go: `--storage`, or the data folder.
    pub fn storage(&self) -> Result<Storage, String> {
        match self.storage.as_deref() {
            None | Some("") => Ok(Storage::Folder(self.data_dir.clone())),
            Some(url) if url.starts_with("s3://") => {
                if self.s3_part_size < crate::store::blob::s3::MIN_PART_SIZE as u64 {
                    return Err("--s3-part-size must be at least 5MiB (S3's smallest part)".into());
                }
                if self.s3_part_size > crate::store::blob::s3::MAX_CONFIGURED_PART as u64 {
                    return Err(
                        "--s3-part-size must be at most 512MiB (a tail must fit a database row)"
                            .into(),
                    );
                }
                let largest = crate::store::blob::s3::largest_part(self.s3_part_size as usize);
                if self.s3_memory < largest as u64 {
                    return Err(format!(
                        "--s3-memory must hold the largest part ({}: parts grow to 256MiB, or --s3-part-size if larger)",
                        bytesize::ByteSize(largest as u64)
                    ));
                }
                crate::store::blob::s3::S3Location::parse(url).map(Storage::S3)
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
    /// Whether cargo-leptos runs Ferry in development (watch) mode.
    pub fn leptos_dev(&self) -> bool {
        self.leptos_env.eq_ignore_ascii_case("dev")
            || self.leptos_env.eq_ignore_ascii_case("development")
    }

    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            max_size: self.max_size,
            expire_after: self.expire_after,
            fsync: self.fsync,
            checkpoint_bytes: self.checkpoint_every.max(1),
            checkpoint_interval: self.checkpoint_interval,
            max_unfinished_per_owner: (self.max_unfinished_per_owner > 0)
                .then_some(self.max_unfinished_per_owner),
            body_idle_timeout: self.body_timeout,
            allow_types: self.allow_types.clone(),
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
            vec!["ferry", "--storage", "s3://b", "--s3-memory", "128MiB"],
            vec!["ferry", "--storage", "s3://b", "--s3-part-size", "1GiB"],
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
