//! The connections being served: each one's clock (when it last made
//! progress, whether a request is in flight), the registry that finds the
//! one idle the longest, and the socket wrapper that notices a client that
//! stops reading.

use super::*;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
}

impl Conn {
    pub(super) fn new() -> Arc<Conn> {
        Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now_ms()),
            blocked_since: AtomicU64::new(0),
            close: Notify::new(),
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

/// A socket that tells its connection when a write waits on the client.
pub(super) struct Watched {
    pub(super) io: TcpStream,
    pub(super) conn: Arc<Conn>,
    pub(super) metrics: Option<Arc<crate::server::metrics::Metrics>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if let (Some(m), Poll::Ready(Ok(()))) = (&self.metrics, &poll) {
            m.traffic((buf.filled().len() - before) as u64, 0);
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
