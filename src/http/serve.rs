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
//!   HTTP/2 header lists and concurrent streams.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

/// Connection-level limits.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// A client has this long to send a whole request head, from the
    /// moment its connection opened or its last answer was sent.
    pub header_timeout: Duration,
    /// The most bytes of request line and headers (hyper answers 431 past it).
    pub max_header_bytes: usize,
    /// A request body that sends nothing, or an answer the client does not
    /// read, for this long ends the request.
    pub body_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
}

/// Most HTTP/2 streams one connection may have open at once.
const MAX_H2_STREAMS: u32 = 64;

/// Milliseconds since the process first asked, for atomics.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What the reaper knows of one connection.
struct Conn {
    /// Requests whose handling or answer is under way.
    busy: AtomicUsize,
    /// When the connection last had no request under way.
    idle_since: AtomicU64,
    /// When a write started waiting for the client to read (0: none waits).
    blocked_since: AtomicU64,
    close: Notify,
}

impl Conn {
    fn new() -> Arc<Conn> {
        Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now_ms()),
            blocked_since: AtomicU64::new(0),
            close: Notify::new(),
        })
    }

    /// Whether the connection has run out of time.
    fn expired(&self, now: u64, options: &ServeOptions) -> bool {
        let blocked = self.blocked_since.load(Ordering::Relaxed);
        if blocked != 0 && now.saturating_sub(blocked) > options.body_timeout.as_millis() as u64 {
            return true;
        }
        self.busy.load(Ordering::Acquire) == 0
            && now.saturating_sub(self.idle_since.load(Ordering::Relaxed))
                > options.header_timeout.as_millis() as u64
    }
}

/// A request under way on a connection; the connection is idle again when
/// the last one ends.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// The open connections, for the reaper and for making room.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for one more connection: asks the connection idle the longest
    /// to close when the bound is reached. False when none is idle.
    fn make_room(&self, max: usize) -> bool {
        let conns = self.lock();
        if conns.len() < max {
            return true;
        }
        let victim = conns
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes every connection that has run out of time.
    fn reap(&self, options: &ServeOptions) {
        let now = now_ms();
        for conn in self.lock().values() {
            if conn.expired(now, options) {
                conn.close.notify_one();
            }
        }
    }
}

/// A socket that tells its connection when a write waits on the client.
struct Watched {
    io: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Watched {
    fn note<T>(&self, poll: &Poll<std::io::Result<T>>) {
        match poll {
            Poll::Pending => {
                let _ = self.conn.blocked_since.compare_exchange(
                    0,
                    now_ms().max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(_) => self.conn.blocked_since.store(0, Ordering::Relaxed),
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.note(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body that fails when no frame arrives for `idle`.
struct IdleBody<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleBody<B> {
    fn new(inner: B, idle: Duration) -> Self {
        IdleBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> http_body::Body for IdleBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body sent nothing for too long",
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that keeps its request counted until it is sent (or
/// dropped with the connection).
struct Counted {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

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
        .max_buf_size(options.max_header_bytes.max(8192));
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
        let io = Watched {
            io: stream,
            conn: conn.clone(),
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
                async move {
                    let resp = app.oneshot(req).await?;
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
