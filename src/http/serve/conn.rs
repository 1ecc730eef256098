//! The connections being served: each one's clock (when it last made
//! progress, whether a request is in flight), the registry that finds the
//! one idle the longest, and the socket wrapper that notices a client that
//! stops reading.

use super::*;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Milliseconds since the process first asked, for atomics.
pub(super) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What the reaper knows of one connection.
pub(super) struct Conn {
    /// Requests whose handling or answer is under way.
    pub(super) busy: AtomicUsize,
    /// When the connection last had no request under way.
    pub(super) idle_since: AtomicU64,
    /// When a write started waiting for the client to read (0: none waits).
    pub(super) blocked_since: AtomicU64,
    pub(super) close: Notify,
    /// Requests begun on the connection so far.
    pub(super) begun: AtomicU64,
    /// Whether the connection was handed to another protocol (WebSocket).
    pub(super) upgraded: AtomicBool,
}

impl Conn {
    pub(super) fn new() -> Arc<Conn> {
        Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now_ms()),
            blocked_since: AtomicU64::new(0),
            close: Notify::new(),
            begun: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
        })
    }

    /// Whether the connection has run out of time.
    pub(super) fn expired(&self, now: u64, options: &ServeOptions) -> bool {
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
pub(super) struct InFlight(Arc<Conn>);

impl InFlight {
    pub(super) fn new(conn: Arc<Conn>) -> Self {
        conn.begun.fetch_add(1, Ordering::AcqRel);
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
pub(super) struct Registry {
    pub(super) conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for one more connection: asks the connection idle the longest
    /// to close when the bound is reached. False when none is idle.
    pub(super) fn make_room(&self, max: usize) -> bool {
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
    pub(super) fn reap(&self, options: &ServeOptions) {
        let now = now_ms();
        for conn in self.lock().values() {
            if conn.expired(now, options) {
                conn.close.notify_one();
            }
        }
    }
}

/// A socket that tells its connection when a write waits on the client,
/// and holds HTTP/1 request heads to their size limit.
pub(super) struct Watched {
    pub(super) io: TcpStream,
    pub(super) conn: Arc<Conn>,
    pub(super) metrics: Option<Arc<crate::server::metrics::Metrics>>,
    pub(super) head: HeadLimit,
}

/// The bytes an HTTP/1 connection may read between two requests: a head's
/// worth. Hyper parses a head as soon as its read buffer holds one, and
/// starts the request (`InFlight`) before reading again; so a connection
/// that has read `max` bytes since its last request began, and is asked
/// for more with none begun, is sending a head larger than `max`. It is
/// answered 431 and closed, having had at most `max` bytes read.
///
/// HTTP/2 (whose header lists hyper bounds itself, and whose frames for a
/// new stream may come with the stream's first data) and connections
/// handed to another protocol are not held.
pub(super) struct HeadLimit {
    max: usize,
    /// Bytes read since the request `begun` counted began (or the
    /// connection opened).
    read: usize,
    begun: u64,
    /// How much of the HTTP/2 preface the first bytes matched, until they
    /// tell: `Some(true)` for HTTP/2.
    preface: usize,
    http2: Option<bool>,
}

/// The HTTP/2 connection preface: hyper serves HTTP/2 when a connection
/// starts with all of it, HTTP/1 otherwise (even a request line that
/// starts like it).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl HeadLimit {
    pub(super) fn new(max: usize) -> Self {
        HeadLimit {
            max,
            read: 0,
            begun: 0,
            preface: 0,
            http2: None,
        }
    }

    /// How many bytes the next read may take (`None`: any number).
    fn room(&mut self, conn: &Conn) -> Option<usize> {
        if self.http2 == Some(true) || conn.upgraded.load(Ordering::Relaxed) {
            return None;
        }
        let begun = conn.begun.load(Ordering::Acquire);
        if begun != self.begun {
            self.begun = begun;
            self.read = 0;
        }
        if conn.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.max - self.read.min(self.max))
    }

    /// Notes `bytes` read while `limited`.
    fn note(&mut self, bytes: &[u8], limited: bool) {
        if limited {
            self.read += bytes.len();
        }
        for &b in bytes {
            if self.http2.is_some() {
                break;
            }
            if b != PREFACE[self.preface] {
                self.http2 = Some(false);
            } else {
                self.preface += 1;
                if self.preface == PREFACE.len() {
                    self.http2 = Some(true);
                }
            }
        }
    }
}

/// What a head past the limit gets before the connection closes: the
/// catalogue's answer, as every error is.
fn head_too_large() -> &'static [u8] {
    use crate::protocol::error::{ErrorBody, ErrorCode};
    static ANSWER: OnceLock<Vec<u8>> = OnceLock::new();
    ANSWER.get_or_init(|| {
        let code = ErrorCode::HeadersTooLarge;
        let status = axum::http::StatusCode::from_u16(code.status())
            .unwrap_or(axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let body = serde_json::to_string(&ErrorBody {
            error: code,
            message: code.message().to_string(),
        })
        .unwrap_or_default();
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let room = this.head.room(&this.conn);
        if room == Some(0) {
            // Best effort: the answer is small, and the connection ends
            // here either way (hyper reads the end of the stream).
            let _ = this.io.try_write(head_too_large());
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = match room {
            None => Pin::new(&mut this.io).poll_read(cx, buf),
            Some(room) => {
                let mut limited = buf.take(room);
                let poll = Pin::new(&mut this.io).poll_read(cx, &mut limited);
                let n = limited.filled().len();
                // SAFETY: the read initialised the first `n` bytes of the
                // unfilled part, which `limited` is a view of.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                poll
            }
        };
        if let Poll::Ready(Ok(())) = &poll {
            let bytes = &buf.filled()[before..];
            this.head.note(bytes, room.is_some());
            if let Some(m) = &this.metrics {
                m.traffic(bytes.len() as u64, 0);
            }
        }
        poll
    }
}

impl Watched {
    fn count_written(&self, poll: &Poll<std::io::Result<usize>>) {
        if let (Some(m), Poll::Ready(Ok(n))) = (&self.metrics, poll) {
            m.traffic(0, *n as u64);
        }
    }

    pub(super) fn note<T>(&self, poll: &Poll<std::io::Result<T>>) {
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
        self.count_written(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&poll);
        self.count_written(&poll);
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
