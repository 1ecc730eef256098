//! Serving the router on a socket, with the limits that only the
//! connection layer can enforce:
//!
//! - **A deadline for every request head.** From the moment a connection
//!   opens, or its last response is sent, the client has `header_timeout`
//!   to send a whole request head; a connection that sends nothing, sends
//!   a byte at a time, or idles between requests is closed when it runs
//!   out (HTTP/1 and HTTP/2 alike).
//! - **An idle timeout for every request body**, on every route: a body
//!   that sends nothing for `body_timeout` ends with an error.
//! - **Clients that stop reading**: a connection whose answer cannot be
//!   written for `body_timeout` is closed.
//! - **A bound on open connections** (`max_connections`, kept below the
//!   process's file limit): past it, the connection idle the longest makes
//!   room, or the new one is refused when none is idle.
//! - The size of request heads (`max_header_bytes`, 431 past it), and of
//!   HTTP/2 header lists and concurrent streams. HTTP/1 heads are held to
//!   it by the socket wrapper as they are read (`HeadLimit`), not by the
//!   size of hyper's read buffer, which is larger (`read_buffer`) so that
//!   a request body arrives in large pieces: each piece costs a hand-over
//!   between tasks and threads, whatever its size.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

mod body;
mod conn;

use body::*;
use conn::*;

/// Connection-level limits.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// A client has this long to send a whole request head, from the
    /// moment its connection opened or its last answer was sent.
    pub header_timeout: Duration,
    /// The most bytes of request line and headers (431 past it).
    pub max_header_bytes: usize,
    /// The most bytes a connection reads ahead: the largest piece a request
    /// body is handed over in.
    pub read_buffer: usize,
    /// A request body that sends nothing, or an answer the client does not
    /// read, for this long ends the request.
    pub body_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
    /// Where connections and their bytes are counted.
    pub metrics: Option<std::sync::Arc<crate::server::metrics::Metrics>>,
}

/// Most HTTP/2 streams one connection may have open at once.
const MAX_H2_STREAMS: u32 = 64;

/// The most connections the file limit leaves room for: each may hold a
/// socket and a file, and the process needs some for itself.
fn connections_the_file_limit_allows() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: getrlimit and setrlimit only read and write the struct.
        let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            let files = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
            return (files.saturating_sub(128) / 2).max(16);
        }
    }
    usize::MAX
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish for up to ten seconds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max_connections = options
        .max_connections
        .min(connections_the_file_limit_allows());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.read_buffer.max(options.max_header_bytes).max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(options.header_timeout)
        .keep_alive_timeout(options.header_timeout);
    let registry = Arc::new(Registry::default());
    let reaper = {
        let registry = registry.clone();
        let options = options.clone();
        let every = (options.header_timeout.min(options.body_timeout) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                registry.reap(&options);
            }
        })
    };
    let graceful = GracefulShutdown::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: make room, go on.
                    tracing::warn!("accepting a connection failed: {e}");
                    registry.make_room(0);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if !registry.make_room(max_connections) {
            tracing::warn!(%peer, "refusing a connection: {max_connections} are open and busy");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = Conn::new();
        next_id += 1;
        let id = next_id;
        registry.lock().insert(id, conn.clone());
        if let Some(m) = &options.metrics {
            m.connection(1);
        }
        let io = Watched {
            io: stream,
            conn: conn.clone(),
            metrics: options.metrics.clone(),
            head: HeadLimit::new(options.max_header_bytes),
        };
        let service = {
            let app = app.clone();
            let conn = conn.clone();
            let body_timeout = options.body_timeout;
            hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                let in_flight = InFlight::new(conn.clone());
                let mut req = req.map(|b| Body::new(IdleBody::new(b, body_timeout)));
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                let app = app.clone();
                let conn = conn.clone();
                async move {
                    let resp = app.oneshot(req).await?;
                    if resp.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
                        // What follows on the socket is another protocol's.
                        conn.upgraded
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok::<_, Infallible>(resp.map(|inner| {
                        Body::new(Counted {
                            inner,
                            _in_flight: in_flight,
                        })
                    }))
                }
            })
        };
        let served = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let served = graceful.watch(served);
        let registry = registry.clone();
        let metrics = options.metrics.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = served => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                }
                _ = conn.close.notified() => {
                    tracing::debug!(%peer, "connection closed: out of time, or room was needed");
                }
            }
            registry.lock().remove(&id);
            if let Some(m) = &metrics {
                m.connection(-1);
            }
        });
    }
    drop(listener);
    reaper.abort();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("some connections were still open after 10 s; stopping anyway");
        }
    }
    Ok(())
}
