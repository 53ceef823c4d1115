//! Writing answers off the HTTP workers: one responder thread per connection
//! with answers waiting, bounded in number and in answers queued, so a
//! client that never reads costs its own connection's thread, not a worker.
//!
//! # What tiny_http 0.12 does, and why this is shaped the way it is
//!
//! - tiny_http reads each connection on a thread of its own and hands every
//!   request it parses to our workers at once, pipelined ones included. It
//!   keeps answers in order per connection: the writer of answer N+1 waits
//!   until the writer of answer N is dropped. So a second thread writing to
//!   the same connection would only wait; one thread per connection, taking
//!   its answers in order from a queue, is all the parallelism there is.
//! - `respond` blocks while the client does not read, up to the socket's
//!   write timeout per `write` call (`SO_SNDTIMEO`, set by the server).
//! - Dropping an unanswered `Request` writes a `500` (which blocks the same
//!   way), and dropping a request whose body tiny_http has not read reads
//!   the rest of it first, with no read timeout at all.
//! - [`Request::into_writer`] takes the answer's writer without writing; when
//!   that writer is dropped, tiny_http lets the next answer go out. That is
//!   the one way to let go of a request without writing: it is what
//!   *discarding* means here. The discarded request's client gets no answer,
//!   so every later answer on that connection is discarded too (otherwise
//!   a pipelining client would take answer N+1 for request N).
//! - [`Request::remote_addr`] is the peer address of the connection, which
//!   names one open TCP connection.
//!
//! # Bounds
//!
//! At most [`Limits::connections`] connections have a responder thread (a
//! thread with nothing to write lingers [`LINGER`] for its connection's
//! next request, and gives its place up at once to a new connection); an
//! answer for another connection while all are busy is discarded. At most
//! [`Limits::queued_per_connection`] answers wait behind the one being
//! written; past that, that connection's answers are discarded. After a
//! failed write (the write timeout), the stream is torn mid-answer, so the
//! rest of that connection's answers are discarded as well. Discarded
//! answers are counted ([`Responders::shed`]), failed writes too
//! ([`Responders::failed_writes`]); `/healthz` shows both.
//!
//! # What is left
//!
//! - A worker may still wait in one case: it discards at the connection
//!   bound, that connection's last write had failed with bytes left in
//!   tiny_http's 1 KiB write buffer, and tiny_http has already stopped
//!   reading the connection (the client half-closed): dropping the last
//!   handle on the writer flushes that buffer, for at most the write
//!   timeout.
//! - A connection discarded at the connection bound has no responder
//!   thread to remember it is cut off: should it pipeline more requests,
//!   their answers go out, one place off.
//! - A client reading a trickle (a byte per write timeout) keeps its
//!   responder thread as long as it likes; 64 such clients make every
//!   other answer be discarded until they stop. The loopback-only default
//!   keeps such clients local.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tiny_http::{Request, Response};

/// An answer's body as the server makes it (shared with the pass cache).
pub type Body = std::io::Cursor<Arc<[u8]>>;

/// How many responder threads and waiting answers there may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections with a responder thread at once.
    pub connections: usize,
    /// Answers waiting per connection behind the one being written.
    pub queued_per_connection: usize,
}

impl Limits {
    /// 64 connections: far more than the clients a host's stats serve
    /// (a scraper, a dashboard, a few scripts), few enough that 64 stuck
    /// threads stay small. 8 queued: pipelining clients rarely send more
    /// before reading, and a client that does not read is cut off at its
    /// first write timeout anyway.
    pub const DEFAULT: Limits = Limits {
        connections: 64,
        queued_per_connection: 8,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Hands answers to responder threads (see the module docs). Cheap to
/// clone: every clone shares the same threads and counts.
#[derive(Clone)]
pub struct Responders {
    inner: Arc<Inner>,
}

/// How long a responder thread with nothing to write waits for its
/// connection's next request before it ends. A keep-alive client's next
/// request then costs a wake-up, not a thread (spawning one per answer
/// held `/stats` to 13,000 requests/s); an idle responder gives its place up
/// at once to a new connection when the bound is reached.
pub const LINGER: Duration = Duration::from_secs(1);

struct Inner {
    limits: Limits,
    connections: Mutex<HashMap<Option<SocketAddr>, Connection>>,
    shed: AtomicU64,
    failed_writes: AtomicU64,
    /// Hands out [`Connection::id`]s.
    next_id: AtomicU64,
}

struct Connection {
    /// Which responder thread owns this entry: a lingering thread whose
    /// entry was given up must not take over a new connection that reuses
    /// the address.
    id: u64,
    jobs: VecDeque<Job>,
    /// Set once an answer was discarded or a write failed: nothing more is
    /// written to this connection.
    cut_off: bool,
    /// The responder is waiting (at most [`LINGER`]) for a new job.
    idle: bool,
    /// Where the idle responder waits.
    wake: Arc<Condvar>,
}

enum Job {
    Answer(Request, Response<Body>),
    Discard(Request),
}

impl Responders {
    /// Responders within `limits` (each limit at least 1).
    pub fn new(limits: Limits) -> Responders {
        Responders {
            inner: Arc::new(Inner {
                limits: Limits {
                    connections: limits.connections.max(1),
                    queued_per_connection: limits.queued_per_connection.max(1),
                },
                connections: Mutex::new(HashMap::new()),
                shed: AtomicU64::new(0),
                failed_writes: AtomicU64::new(0),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `response` to `request` on its connection's responder thread,
    /// starting one if there is room; otherwise discards the request. Does
    /// not wait on the client (but see "What is left" in the module docs).
    pub fn send(&self, request: Request, response: Response<Body>) {
        let key = request.remote_addr().copied();
        let mut connections = self.inner.lock();
        if let Some(connection) = connections.get_mut(&key) {
            let job = if connection.cut_off
                || connection.jobs.len() >= self.inner.limits.queued_per_connection
            {
                connection.cut_off = true;
                self.inner.shed.fetch_add(1, Ordering::Relaxed);
                Job::Discard(request)
            } else {
                Job::Answer(request, response)
            };
            connection.jobs.push_back(job);
            if connection.idle {
                connection.wake.notify_one();
            }
            return;
        }
        if connections.len() >= self.inner.limits.connections {
            // An idle responder gives its place up (its thread sees its
            // entry gone and ends).
            let idle = connections
                .iter()
                .find(|(_, c)| c.idle && c.jobs.is_empty())
                .map(|(k, _)| *k);
            match idle.and_then(|k| connections.remove(&k)) {
                Some(given_up) => given_up.wake.notify_one(),
                None => {
                    drop(connections);
                    self.inner.shed.fetch_add(1, Ordering::Relaxed);
                    discard_off_thread(request);
                    return;
                }
            }
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut connection = Connection {
            id,
            jobs: VecDeque::new(),
            cut_off: false,
            idle: false,
            wake: Arc::new(Condvar::new()),
        };
        connection.jobs.push_back(Job::Answer(request, response));
        connections.insert(key, connection);
        drop(connections);

        let inner = Arc::clone(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("stats-pipe-respond".into())
            .spawn(move || inner.respond_until_idle(key, id));
        if spawned.is_err() {
            // No thread to write with: let go of what was queued meanwhile.
            let jobs = self.inner.lock().remove(&key).map(|c| c.jobs);
            for job in jobs.into_iter().flatten() {
                self.inner.shed.fetch_add(1, Ordering::Relaxed);
                discard_off_thread(job.into_request());
            }
        }
    }

    /// Answers discarded so far (see the module docs).
    pub fn shed(&self) -> u64 {
        self.inner.shed.load(Ordering::Relaxed)
    }

    /// Writes that failed (the write timeout, mostly) so far.
    pub fn failed_writes(&self) -> u64 {
        self.inner.failed_writes.load(Ordering::Relaxed)
    }

    /// Connections with a responder thread right now (busy, or idle for
    /// at most [`LINGER`]).
    pub fn connections(&self) -> usize {
        self.inner.lock().len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<Option<SocketAddr>, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The responder thread of connection `key` (entry `id`): writes its
    /// answers in order; ends, removing the entry, when none has come for
    /// [`LINGER`], or at once when its entry was given up.
    fn respond_until_idle(&self, key: Option<SocketAddr>, id: u64) {
        loop {
            let job = {
                let mut connections = self.lock();
                let mut lingered = false;
                loop {
                    let Some(connection) = connections.get_mut(&key).filter(|c| c.id == id) else {
                        return;
                    };
                    match connection.jobs.pop_front() {
                        Some(Job::Answer(request, _)) if connection.cut_off => {
                            self.shed.fetch_add(1, Ordering::Relaxed);
                            connection.idle = false;
                            break Job::Discard(request);
                        }
                        Some(job) => {
                            connection.idle = false;
                            break job;
                        }
                        None if lingered => {
                            connections.remove(&key);
                            return;
                        }
                        None => {
                            connection.idle = true;
                            let wake = Arc::clone(&connection.wake);
                            let (guard, waited) = wake
                                .wait_timeout(connections, LINGER)
                                .unwrap_or_else(PoisonError::into_inner);
                            connections = guard;
                            lingered = waited.timed_out();
                        }
                    }
                }
            };
            match job {
                Job::Answer(request, response) => {
                    // tiny_http already takes a client's hang-up as done.
                    if request.respond(response).is_err() {
                        self.failed_writes.fetch_add(1, Ordering::Relaxed);
                        if let Some(connection) = self.lock().get_mut(&key).filter(|c| c.id == id) {
                            connection.cut_off = true;
                        }
                    }
                }
                Job::Discard(request) => discard(request),
            }
        }
    }
}

impl Job {
    fn into_request(self) -> Request {
        match self {
            Job::Answer(request, _) | Job::Discard(request) => request,
        }
    }
}

/// Lets go of `request` without answering it. Dropping the writer writes
/// nothing; dropping the request reads what is left of a body it carries.
fn discard(request: Request) {
    drop(request.into_writer());
}

/// [`discard`] without blocking the caller: a request with a body that
/// tiny_http would read to the end on drop (a client can dribble it
/// forever) is let go on a short-lived thread of its own. GET and HEAD
/// requests, all this server serves, carry none.
fn discard_off_thread(request: Request) {
    if request.body_length().is_some_and(|length| length > 0) {
        // Should no thread be had, the closure and the request in it are
        // dropped here: tiny_http then answers 500 and reads the body on
        // this thread, the old behaviour, as a last resort.
        let _ = std::thread::Builder::new()
            .name("stats-pipe-discard".into())
            .spawn(move || discard(request));
    } else {
        discard(request);
    }
}
