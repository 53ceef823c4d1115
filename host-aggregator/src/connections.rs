//! The TCP connections of `serve`: how many there may be, what one may cost
//! before its request is even parsed, and how one that misbehaves is let go.
//!
//! - **Bounded in number.** At most [`ConnectionLimits::max_connections`]
//!   are open. A new connection at the bound closes the open connection
//!   that has been quiet longest and is not waiting for an answer (an idle
//!   keep-alive, a client that stalled mid-header, one that stopped
//!   reading); when every open connection is waiting for an answer, the new
//!   one is refused (closed at once). So 2,000 idle sockets cannot keep a
//!   fresh client out, and cannot use up the process's descriptors.
//! - **A write that makes no progress** for
//!   [`ConnectionLimits::write_timeout`] fails, and the connection closes:
//!   a client that never reads holds a socket buffer, never a thread.
//! - **The request head** (request line and headers) is at most
//!   [`ConnectionLimits::max_head_bytes`] and must arrive within
//!   [`ConnectionLimits::header_read_timeout`] (hyper enforces both, and
//!   answers an oversized head with `431`); the same timeout closes a
//!   keep-alive connection that sends nothing more.
//! - **Versions.** The first request line is read here before hyper sees
//!   it: one that names an HTTP version other than 1.0 or 1.1 is answered
//!   `505` and closed (hyper would answer `400`).
//! - **Closing after an error** half-closes and then reads (and drops)
//!   what the client still sends for up to [`LINGER`]: closing with unread
//!   data would send a reset, which can make the client lose our error
//!   status before it reads it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Sleep;

/// How long a connection that ended with an error keeps reading (and
/// dropping) what its client still sends, so the client reads our answer
/// before the close.
pub const LINGER: Duration = Duration::from_secs(2);

/// Most bytes dropped while lingering: past that the client is told by a
/// reset.
const LINGER_BYTES: usize = 16 << 20;

/// The bounds on connections (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Longest a request head may take to arrive, and longest a keep-alive
    /// connection may wait for its next request.
    pub header_read_timeout: Duration,
    /// Longest a response write may make no progress.
    pub write_timeout: Duration,
    /// Largest request head (request line plus headers), in bytes.
    pub max_head_bytes: usize,
    /// Most header fields in a request.
    pub max_headers: usize,
}

impl ConnectionLimits {
    /// 512 connections (far more than a host's scrapers, dashboards and
    /// scripts, and a quarter of the usual 1,024 descriptors' soft limit
    /// would still leave room for the pipes), 10 s for a head, 5 s of write
    /// stall, 16 KiB and 100 fields per head (what nginx and hyper take as
    /// ordinary).
    pub const DEFAULT: ConnectionLimits = ConnectionLimits {
        max_connections: 512,
        header_read_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(5),
        max_head_bytes: 16 << 10,
        max_headers: 100,
    };
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits::DEFAULT
    }
}

/// The open connections, and what became of the ones let go.
pub(crate) struct Registry {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    limit: usize,
    next_id: AtomicU64,
    epoch: Instant,
    counts: Counts,
}

/// What `/healthz` reports about connections.
#[derive(Default)]
pub(crate) struct Counts {
    /// Idle connections closed to make room for a new one.
    pub(crate) evicted: AtomicU64,
    /// New connections closed at once: every open one was busy.
    pub(crate) refused: AtomicU64,
    /// Writes that made no progress within the write timeout.
    pub(crate) write_timeouts: AtomicU64,
    /// `accept` failures (running out of descriptors, mostly).
    pub(crate) accept_errors: AtomicU64,
    /// Request lines naming an HTTP version other than 1.0 and 1.1.
    pub(crate) bad_versions: AtomicU64,
}

/// One open connection as the registry sees it.
pub(crate) struct Connection {
    id: u64,
    /// Milliseconds after [`Registry::epoch`] of the last byte moved.
    last_active: AtomicU64,
    /// A request of this connection is being answered.
    busy: AtomicBool,
    /// Wakes the connection's task to close it.
    close: Notify,
}

impl Registry {
    pub(crate) fn new(limit: usize) -> Registry {
        Registry {
            open: Mutex::new(HashMap::new()),
            limit: limit.max(1),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
            counts: Counts::default(),
        }
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Open connections now.
    pub(crate) fn open(&self) -> usize {
        self.lock().len()
    }

    /// The bound on open connections.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Registers a new connection, closing the longest-quiet idle one when
    /// at the bound; `None` when every open connection is busy (the new
    /// one is to be closed).
    pub(crate) fn admit(&self) -> Option<Arc<Connection>> {
        let mut open = self.lock();
        if open.len() >= self.limit {
            if !Self::evict_quietest(&mut open) {
                self.counts.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            self.counts.evicted.fetch_add(1, Ordering::Relaxed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            id,
            last_active: AtomicU64::new(self.now_ms()),
            busy: AtomicBool::new(false),
            close: Notify::new(),
        });
        open.insert(id, Arc::clone(&connection));
        Some(connection)
    }

    /// Closes the longest-quiet idle connection to free a descriptor
    /// (after `accept` ran out of them); whether there was one.
    pub(crate) fn evict_one(&self) -> bool {
        let evicted = Self::evict_quietest(&mut self.lock());
        if evicted {
            self.counts.evicted.fetch_add(1, Ordering::Relaxed);
        }
        evicted
    }

    fn evict_quietest(open: &mut HashMap<u64, Arc<Connection>>) -> bool {
        let quietest = open
            .values()
            .filter(|c| !c.busy.load(Ordering::Relaxed))
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed))
            .map(|c| c.id);
        match quietest.and_then(|id| open.remove(&id)) {
            Some(connection) => {
                // Stored as a permit if the task is not waiting yet.
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Forgets `connection` (its task has ended or is lingering).
    pub(crate) fn remove(&self, connection: &Connection) {
        self.lock().remove(&connection.id);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Connection {
    /// Marks the connection as answering a request (not to be evicted) or
    /// done with it.
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// Resolves when the registry wants this connection closed.
    pub(crate) async fn closed_by_registry(&self) {
        self.close.notified().await;
    }
}

/// The socket as hyper uses it: the first request line read ahead (see
/// [`read_request_line`]) is handed out first; every byte moved marks the
/// connection active; a write that makes no progress for the write timeout
/// fails with [`io::ErrorKind::TimedOut`].
pub(crate) struct TrackedStream {
    stream: Arc<TcpStream>,
    registry: Arc<Registry>,
    connection: Arc<Connection>,
    read_ahead: Vec<u8>,
    read_ahead_at: usize,
    write_timeout: Duration,
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl TrackedStream {
    pub(crate) fn new(
        stream: Arc<TcpStream>,
        registry: Arc<Registry>,
        connection: Arc<Connection>,
        read_ahead: Vec<u8>,
        write_timeout: Duration,
    ) -> TrackedStream {
        TrackedStream {
            stream,
            registry,
            connection,
            read_ahead,
            read_ahead_at: 0,
            write_timeout,
            write_stall: None,
        }
    }

    fn moved(&mut self) {
        self.connection
            .last_active
            .store(self.registry.now_ms(), Ordering::Relaxed);
    }

    /// Called when a write cannot go on: arms the stall timer on the first
    /// call, and fails once it fires.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stall.as_mut().poll(cx));
        self.registry
            .counts
            .write_timeouts
            .fetch_add(1, Ordering::Relaxed);
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {timeout:?}"),
        ))
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        match poll_when_ready(&self.stream, cx, Interest::WRITABLE, write) {
            Poll::Pending if self.write_timeout.is_zero() => Poll::Pending,
            Poll::Pending => Poll::Ready(Err(ready!(self.poll_stall(cx)))),
            Poll::Ready(Ok(written)) => {
                self.write_stall = None;
                self.moved();
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

/// Runs the non-blocking `operation` on `stream` once the socket is ready
/// for `interest`, again each time it would still block (readiness can be
/// stale).
fn poll_when_ready<T>(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    interest: Interest,
    mut operation: impl FnMut(&TcpStream) -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        if interest.is_readable() {
            ready!(stream.poll_read_ready(cx))?;
        } else {
            ready!(stream.poll_write_ready(cx))?;
        }
        match operation(stream) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_ahead_at < this.read_ahead.len() {
            let rest = &this.read_ahead[this.read_ahead_at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read_ahead_at += n;
            if this.read_ahead_at == this.read_ahead.len() {
                this.read_ahead = Vec::new();
                this.read_ahead_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let unfilled = buf.initialize_unfilled();
        let read = ready!(poll_when_ready(
            &this.stream,
            cx,
            Interest::READABLE,
            |stream| stream.try_read(unfilled)
        ))?;
        buf.advance(read);
        if read > 0 {
            this.moved();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |stream| stream.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TCP keeps no buffer of ours to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(half_close(&self.stream))
    }
}

/// Sends FIN: the client sees the end of our answers.
fn half_close(stream: &TcpStream) -> io::Result<()> {
    match nix::sys::socket::shutdown(stream.as_raw_fd(), nix::sys::socket::Shutdown::Write) {
        // Already gone: nothing left to close.
        Ok(()) | Err(nix::errno::Errno::ENOTCONN) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// What came of reading a connection's first request line.
pub(crate) enum RequestLine {
    /// The bytes read so far (the whole line, or a head too long to hold a
    /// line end, left for hyper to refuse): hand them to hyper.
    Serve(Vec<u8>),
    /// The line names an HTTP version we do not speak: answer `505`.
    UnsupportedVersion,
    /// The client closed, or sent nothing within the timeout.
    Gone,
}

/// Reads up to the end of the first request line (at most `max` bytes,
/// within `timeout`), to check its version before hyper parses it.
pub(crate) async fn read_request_line(
    stream: &TcpStream,
    max: usize,
    timeout: Duration,
) -> RequestLine {
    let mut line = Vec::new();
    let read = async {
        let mut chunk = [0u8; 2048];
        loop {
            if stream.readable().await.is_err() {
                return false;
            }
            let room = (max - line.len()).min(chunk.len());
            match stream.try_read(&mut chunk[..room]) {
                Ok(0) => return false,
                Ok(n) => {
                    line.extend_from_slice(&chunk[..n]);
                    if chunk[..n].contains(&b'\n') || line.len() >= max {
                        return true;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(true) if names_unsupported_version(&line) => RequestLine::UnsupportedVersion,
        Ok(true) => RequestLine::Serve(line),
        Ok(false) | Err(_) => RequestLine::Gone,
    }
}

/// Whether the request line in `head` (up to its first line end) has the
/// shape `METHOD SP TARGET SP HTTP/x` with a version other than 1.0 and
/// 1.1. Anything else malformed is left to hyper (which answers `400`).
pub(crate) fn names_unsupported_version(head: &[u8]) -> bool {
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let line = head[..end].strip_suffix(b"\r").unwrap_or(&head[..end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && !target.is_empty()
        && version.starts_with(b"HTTP/")
        && version != b"HTTP/1.0"
        && version != b"HTTP/1.1"
}

/// Writes `response` (a whole, small answer) within `timeout`, then closes
/// as [`linger_and_close`] does.
pub(crate) async fn answer_and_close(stream: &TcpStream, response: &[u8], timeout: Duration) {
    let write = async {
        let mut rest = response;
        while !rest.is_empty() {
            if stream.writable().await.is_err() {
                return;
            }
            match stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    if tokio::time::timeout(timeout, write).await.is_ok() {
        linger_and_close(stream).await;
    }
}

/// Half-closes, then drops what the client still sends until it closes,
/// for at most [`LINGER`] and [`LINGER_BYTES`] (see the module docs). The
/// socket itself closes when its last handle is dropped.
pub(crate) async fn linger_and_close(stream: &TcpStream) {
    if half_close(stream).is_err() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 16 << 10];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(n) => dropped += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Raises the soft limit on open descriptors to the hard limit (as Go's
/// runtime does at start): the default soft limit of 1,024 is a relic of
/// `select`, which nothing here uses. Returns the soft limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_other_than_1_0_and_1_1_are_named_unsupported() {
        let cases: [(&[u8], bool); 10] = [
            (b"GET /stats HTTP/2.0\r\n", true),
            (b"GET /stats HTTP/0.9\n", true),
            (b"GET /stats HTTP/3\r\n", true),
            (b"PRI * HTTP/2.0\r\n", true),
            (b"GET /stats HTTP/1.1\r\n", false),
            (b"GET /stats HTTP/1.0\r\n", false),
            // Not a request line of any version: hyper answers 400.
            (b"\x00\x01 not http\r\n", false),
            (b"GET /stats\r\n", false),
            (b"GET  HTTP/2.0\r\n", false),
            // No line end yet.
            (b"GET /stats HTTP/2.0", false),
        ];
        for (line, unsupported) in cases {
            assert_eq!(
                names_unsupported_version(line),
                unsupported,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn at_the_bound_the_quietest_idle_connection_goes_and_busy_ones_stay() {
        let registry = Registry::new(2);
        let first = registry.admit().expect("room");
        std::thread::sleep(Duration::from_millis(5));
        let second = registry.admit().expect("room");
        // The first is the quietest: it makes room for the third.
        let third = registry.admit().expect("an idle one makes room");
        assert_eq!(registry.open(), 2);
        assert!(!registry.lock().contains_key(&first.id));
        assert!(registry.lock().contains_key(&second.id));
        // Both open ones busy: a fourth is refused.
        second.set_busy(true);
        third.set_busy(true);
        assert!(registry.admit().is_none());
        assert_eq!(registry.counts().refused.load(Ordering::Relaxed), 1);
        assert_eq!(registry.counts().evicted.load(Ordering::Relaxed), 1);
        third.set_busy(false);
        assert!(registry.evict_one());
        assert_eq!(registry.open(), 1);
    }
}
