//! The HTTP server behind `host-aggregator serve`: `/stats`, `/stats/<pid>`,
//! `/processes`, `/metrics`, `/influx` and `/healthz` over tiny_http, with one shared,
//! briefly cached read pass for any number of concurrent requests.
//!
//! # Sharing passes
//!
//! Reading every pipe costs each writer a snapshot, so requests never cause a
//! pass each. [`PassCache`] hands out the last pass while it is younger than
//! `max_age`; when it is older, the first request runs a new pass and every
//! request arriving meanwhile waits for that same pass (single flight). A
//! failed pass (say the directory cannot be listed) is shared and cached the
//! same way, so a flood of requests cannot turn into a flood of failures.
//!
//! # Safety of the listener
//!
//! The server binds loopback only unless told otherwise
//! ([`ServeOptions::allow_remote`]); a bearer token can be required on every
//! path but `/healthz`. A fixed pool of worker threads computes the answers;
//! writing them is left to [`respond`](crate::respond), one bounded thread
//! per connection with a write timeout, so a client that stops reading
//! holds its own connection's thread, never a worker. (tiny_http reads
//! requests on its own threads, one per open connection, with no read
//! timeout: an idle connection costs one parked thread, not a worker.)

use std::io::Cursor;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::dashboard;
use crate::export::{influx, json, prometheus};
use crate::history::{History, HistoryOptions, Query, Recorder};
use crate::respond::{Body, Responders};
use crate::{Error, Pass};

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free port (see
    /// [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// Whether a non-loopback `listen` address is allowed.
    pub allow_remote: bool,
    /// When set, every request but `/healthz` needs
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// A pass younger than this is served again instead of reading anew.
    pub max_age: Duration,
    /// Worker threads answering requests.
    pub threads: usize,
    /// Longest a response write may block on a client that does not read.
    pub write_timeout: Duration,
    /// Bounds on the threads that write answers (see
    /// [`respond`](crate::respond)).
    pub responders: crate::respond::Limits,
    /// When set, a thread reads a pass every interval into a history for
    /// `/history` and the dashboard at `/` (and requests reuse its passes).
    pub history: Option<HistoryOptions>,
}

impl ServeOptions {
    /// The default address: loopback, port 7828.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7828);
    /// Default pass reuse: one second bounds what any request rate costs the
    /// writers (one snapshot each per second) and is finer than any scrape
    /// interval or dashboard refresh.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);
    /// Default worker threads: enough that a few slow clients do not stall
    /// the rest, few enough to stay small on a 2-core host.
    pub const DEFAULT_THREADS: usize = 4;
    /// Default write timeout.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

    /// Loopback port 7828, no token, the defaults above.
    pub fn new() -> ServeOptions {
        ServeOptions {
            listen: ServeOptions::DEFAULT_LISTEN,
            allow_remote: false,
            token: None,
            max_age: ServeOptions::DEFAULT_MAX_AGE,
            threads: ServeOptions::DEFAULT_THREADS,
            write_timeout: ServeOptions::DEFAULT_WRITE_TIMEOUT,
            responders: crate::respond::Limits::DEFAULT,
            history: None,
        }
    }
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions::new()
    }
}

/// Runs one read pass; the server calls it from one thread at a time.
pub type CollectFn = Box<dyn FnMut() -> Result<Pass, Error> + Send>;

/// One pass as served: its result, its number, and its renderings, each
/// made at most once however many requests ask.
#[derive(Debug)]
pub struct CachedPass {
    /// 1 for the first pass this cache ran, then 2, 3...
    pub number: u64,
    /// When the pass started.
    pub started: Instant,
    /// What the pass read, or why it failed.
    pub result: Result<Pass, Error>,
    stats_json: OnceLock<Arc<[u8]>>,
    metrics: OnceLock<Arc<[u8]>>,
    influx: OnceLock<Arc<[u8]>>,
    processes: OnceLock<Arc<[u8]>>,
}

impl CachedPass {
    fn stats_json(&self, pass: &Pass) -> Arc<[u8]> {
        Arc::clone(self.stats_json.get_or_init(|| json::stats(pass).into()))
    }

    fn metrics(&self, pass: &Pass) -> Arc<[u8]> {
        Arc::clone(self.metrics.get_or_init(|| prometheus::render(pass).into()))
    }

    fn influx(&self, pass: &Pass) -> Arc<[u8]> {
        Arc::clone(self.influx.get_or_init(|| influx::served(pass).into()))
    }

    /// Cached like the rest: at 1,000 writers it is megabytes, and answers
    /// waiting for slow clients share it instead of holding a copy each.
    fn processes(&self, pass: &Pass) -> Arc<[u8]> {
        Arc::clone(self.processes.get_or_init(|| json::processes(pass).into()))
    }
}

/// Single-flight cache of the latest pass (see the module docs).
pub struct PassCache {
    collect: Mutex<CollectFn>,
    state: Mutex<CacheState>,
    pass_done: Condvar,
    max_age: Duration,
}

#[derive(Default)]
struct CacheState {
    latest: Option<Arc<CachedPass>>,
    collecting: bool,
    passes: u64,
}

impl PassCache {
    /// A cache that runs `collect` for a new pass when the last one is older
    /// than `max_age`.
    pub fn new(collect: CollectFn, max_age: Duration) -> PassCache {
        PassCache {
            collect: Mutex::new(collect),
            state: Mutex::new(CacheState::default()),
            pass_done: Condvar::new(),
            max_age,
        }
    }

    /// How many passes have run.
    pub fn passes(&self) -> u64 {
        self.lock_state().passes
    }

    /// The latest pass without running one, if any ran.
    pub fn latest(&self) -> Option<Arc<CachedPass>> {
        self.lock_state().latest.clone()
    }

    /// A pass no older than `max_age`, or the one in progress, or a new one.
    pub fn get(&self) -> Arc<CachedPass> {
        self.get_within(self.max_age)
    }

    /// A new pass, or the one in progress: the history thread's tick, which
    /// keeps the cached pass fresh for requests.
    pub fn refresh(&self) -> Arc<CachedPass> {
        self.get_within(Duration::ZERO)
    }

    fn get_within(&self, max_age: Duration) -> Arc<CachedPass> {
        let mut state = self.lock_state();
        loop {
            if let Some(latest) = &state.latest
                && latest.started.elapsed() <= max_age
            {
                return Arc::clone(latest);
            }
            if !state.collecting {
                break;
            }
            let before = state.passes;
            state = self
                .pass_done
                .wait_while(state, |s| s.collecting)
                .unwrap_or_else(PoisonError::into_inner);
            // The pass we waited for is the freshest there can be for us.
            if state.passes != before
                && let Some(latest) = &state.latest
            {
                return Arc::clone(latest);
            }
        }
        state.collecting = true;
        drop(state);

        // Clears `collecting` even if the collector panics, so waiters wake.
        let mut in_flight = InFlight {
            cache: self,
            finished: None,
        };
        let started = Instant::now();
        let result = {
            let mut collect = self.collect.lock().unwrap_or_else(PoisonError::into_inner);
            collect()
        };
        let mut state = self.lock_state();
        state.passes += 1;
        let cached = Arc::new(CachedPass {
            number: state.passes,
            started,
            result,
            stats_json: OnceLock::new(),
            metrics: OnceLock::new(),
            influx: OnceLock::new(),
            processes: OnceLock::new(),
        });
        drop(state);
        in_flight.finished = Some(Arc::clone(&cached));
        cached
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct InFlight<'a> {
    cache: &'a PassCache,
    finished: Option<Arc<CachedPass>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.cache.lock_state();
        if let Some(finished) = self.finished.take() {
            state.latest = Some(finished);
        }
        state.collecting = false;
        drop(state);
        self.cache.pass_done.notify_all();
    }
}

/// A running server: worker threads answering requests until dropped.
pub struct Server {
    http: Arc<tiny_http::Server>,
    local_addr: SocketAddr,
    cache: Arc<PassCache>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    _recorder: Option<Recorder>,
}

struct Shared {
    stopping: AtomicBool,
    accept_error: Mutex<Option<std::io::Error>>,
    token: Option<String>,
    threads: usize,
    history: Option<Arc<Mutex<History>>>,
    responders: Responders,
}

impl Server {
    /// Binds `options.listen` and starts the workers; passes are read with
    /// `collect`.
    ///
    /// # Errors
    /// [`Error::BadArgument`] for a non-loopback address without
    /// `allow_remote` or an empty token; [`Error::Io`] when binding fails.
    pub fn start(options: &ServeOptions, collect: CollectFn) -> Result<Server, Error> {
        if !options.listen.ip().is_loopback() && !options.allow_remote {
            return Err(Error::BadArgument {
                what: "listen address",
                given: options.listen.to_string(),
                expected: "a loopback address (allow others with --allow-remote)",
            });
        }
        if options.token.as_deref().is_some_and(str::is_empty) {
            return Err(Error::BadArgument {
                what: "token",
                given: String::new(),
                expected: "a non-empty token",
            });
        }
        let listen_error = |source| listen_error(options.listen, source);
        let listener =
            bind_with_write_timeout(options.listen, options.write_timeout).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| listen_error(std::io::Error::other(e.to_string())))?;
        let http = Arc::new(http);
        let cache = Arc::new(PassCache::new(collect, options.max_age));
        let threads = options.threads.max(1);
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            accept_error: Mutex::new(None),
            token: options.token.clone(),
            threads,
            history: options
                .history
                .clone()
                .map(|limits| Arc::new(Mutex::new(History::new(limits)))),
            responders: Responders::new(options.responders),
        });
        let recorder =
            options
                .history
                .as_ref()
                .zip(shared.history.clone())
                .map(|(limits, history)| {
                    let cache = Arc::clone(&cache);
                    Recorder::start(limits.interval, move || {
                        if let Ok(pass) = &cache.refresh().result {
                            history
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .record(pass);
                        }
                    })
                });
        let workers = (0..threads)
            .map(|_| {
                let (http, cache, shared) =
                    (Arc::clone(&http), Arc::clone(&cache), Arc::clone(&shared));
                std::thread::spawn(move || work(&http, &cache, &shared))
            })
            .collect();
        Ok(Server {
            http,
            local_addr,
            cache,
            workers,
            shared,
            _recorder: recorder,
        })
    }

    /// The address actually bound (the chosen port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The pass cache, to see how many passes ran.
    pub fn cache(&self) -> &PassCache {
        &self.cache
    }

    /// Serves until the listener fails (tiny_http stops accepting after an
    /// accept error such as running out of file descriptors).
    ///
    /// # Errors
    /// [`Error::Io`] with the accept error.
    pub fn wait(mut self) -> Result<(), Error> {
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.join();
        }
        let accept_error = self
            .shared
            .accept_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match accept_error {
            Some(source) => Err(listen_error(self.local_addr, source)),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for _ in 0..self.workers.len() {
            self.http.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn listen_error(addr: SocketAddr, source: std::io::Error) -> Error {
    Error::Io {
        action: "listen on",
        path: addr.to_string().into(),
        source,
    }
}

/// Binds with `SO_SNDTIMEO` and `TCP_NODELAY` set on the listening socket:
/// Linux copies both to every accepted connection, which is the only way to
/// set them on tiny_http's connections (it never exposes their sockets).
/// Without `TCP_NODELAY`, tiny_http's separate header and body writes meet
/// Nagle's algorithm and delayed ACKs: every keep-alive response then waits
/// ~40 ms (measured: 720 requests/s instead of thousands). The
/// receive timeout cannot be set this way: it would make `accept` itself
/// time out, which stops tiny_http's accept loop for good.
fn bind_with_write_timeout(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // A listening socket is a socket like any other to setsockopt; std only
    // offers the call on TcpStream, so lend the descriptor to one.
    let as_stream = TcpStream::from(OwnedFd::from(listener));
    as_stream.set_write_timeout(Some(timeout).filter(|t| !t.is_zero()))?;
    as_stream.set_nodelay(true)?;
    Ok(TcpListener::from(OwnedFd::from(as_stream)))
}

fn work(http: &tiny_http::Server, cache: &PassCache, shared: &Shared) {
    loop {
        match http.recv() {
            Ok(request) => answer(request, cache, shared),
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(error) => {
                // tiny_http's accept loop has ended: nothing more will come.
                // Record why, and wake the other workers so `wait` returns.
                shared
                    .accept_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(error);
                if !shared.stopping.swap(true, Ordering::SeqCst) {
                    for _ in 1..shared.threads {
                        http.unblock();
                    }
                }
                return;
            }
        }
    }
}

/// The paths served, for routing and for the index at `/`.
const PATHS: [&str; 8] = [
    "/",
    "/stats",
    "/stats/<pid>",
    "/processes",
    "/metrics",
    "/influx",
    "/healthz",
    "/history",
];

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/`: the dashboard or the list of paths.
    Index,
    /// `/stats`: the host-wide sums.
    Stats,
    /// `/stats/<pid>`: one source.
    Process(u32),
    /// `/processes`: every source with its status.
    Processes,
    /// `/metrics`: Prometheus text.
    Metrics,
    /// `/influx`: InfluxDB line protocol.
    Influx,
    /// `/healthz`: answered without reading pipes.
    Health,
    /// `/history`: the recorded series.
    History,
}

/// A request URL (path and query, as sent) taken apart. Pure, no I/O:
/// everything a client controls before any pipe is read goes through
/// [`target`] (and, for `/history`, [`Query::parse`]), so both are fuzzed.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The URL up to the first `?` or `#`.
    pub path: &'a str,
    /// What follows `?`, up to a `#`; empty when there is none.
    pub query: &'a str,
    /// The route `path` names; `None` is answered `404`.
    pub route: Option<Route>,
}

/// Takes a request URL apart into path, query and route.
pub fn target(url: &str) -> Target<'_> {
    let url = url.split('#').next().unwrap_or("");
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    Target {
        path,
        query,
        route: route(path),
    }
}

fn route(path: &str) -> Option<Route> {
    Some(match path {
        "/" => Route::Index,
        "/stats" | "/stats/" => Route::Stats,
        "/processes" => Route::Processes,
        "/metrics" => Route::Metrics,
        "/influx" => Route::Influx,
        "/healthz" => Route::Health,
        "/history" => Route::History,
        other => {
            let pid = other.strip_prefix("/stats/")?;
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Route::Process(pid.parse().ok()?)
        }
    })
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Arc<[u8]>,
    pass: Option<u64>,
    extra: Option<(&'static str, &'static str)>,
}

impl Reply {
    fn json(status: u16, body: impl Into<Arc<[u8]>>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.into(),
            pass: None,
            extra: None,
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, json::error(message))
    }

    fn into_response(self) -> Response<Body> {
        let length = self.body.len();
        let number = self.pass.map(|n| itoa::Buffer::new().format(n).to_owned());
        let headers = [
            Some(("Content-Type", self.content_type)),
            Some(("Cache-Control", "no-store")),
            number.as_deref().map(|n| ("X-Stats-Pipe-Pass", n)),
            self.extra,
        ]
        .into_iter()
        .flatten()
        // Only non-ASCII could fail, and every header here is ASCII we wrote.
        .filter_map(|(name, value)| Header::from_bytes(name, value).ok())
        .collect();
        Response::new(
            StatusCode(self.status),
            headers,
            Cursor::new(self.body),
            Some(length),
            None,
        )
    }
}

fn answer(request: Request, cache: &PassCache, shared: &Shared) {
    let reply = reply_to(&request, cache, shared);
    shared.responders.send(request, reply.into_response());
}

fn reply_to(request: &Request, cache: &PassCache, shared: &Shared) -> Reply {
    let Target { path, query, route } = target(request.url());
    let Some(route) = route else {
        return Reply::error(
            404,
            &format!("no such path: {path} (try {})", PATHS.join(", ")),
        );
    };
    if !matches!(request.method(), Method::Get | Method::Head) {
        let mut reply = Reply::error(
            405,
            &format!("method {} not allowed: use GET", request.method()),
        );
        reply.extra = Some(("Allow", "GET, HEAD"));
        return reply;
    }
    if route != Route::Health
        && let Some(token) = &shared.token
        && !authorized(request, token)
    {
        let mut reply = Reply::error(401, "a bearer token is required");
        reply.extra = Some(("WWW-Authenticate", "Bearer"));
        return reply;
    }
    match route {
        // A browser asks for HTML: it gets the dashboard; scripts get JSON.
        Route::Index if accepts_html(request) => Reply {
            content_type: "text/html; charset=utf-8",
            ..Reply::json(200, dashboard::page().as_bytes())
        },
        Route::Index => Reply::json(200, index()),
        Route::History => history(query, cache, shared),
        Route::Health => health(cache, &shared.responders),
        Route::Stats | Route::Process(_) | Route::Processes | Route::Metrics | Route::Influx => {
            from_pass(&route, &cache.get())
        }
    }
}

fn from_pass(route: &Route, cached: &CachedPass) -> Reply {
    let pass = match &cached.result {
        Ok(pass) => pass,
        Err(error) => {
            let mut reply = Reply::error(503, &error.to_string());
            reply.pass = Some(cached.number);
            return reply;
        }
    };
    let mut reply = match route {
        Route::Stats => Reply::json(200, cached.stats_json(pass)),
        Route::Metrics => Reply {
            content_type: prometheus::CONTENT_TYPE,
            ..Reply::json(200, cached.metrics(pass))
        },
        Route::Influx => Reply {
            content_type: influx::CONTENT_TYPE,
            ..Reply::json(200, cached.influx(pass))
        },
        Route::Processes => Reply::json(200, cached.processes(pass)),
        Route::Process(pid) => match pass.source(*pid) {
            Some(source) => Reply::json(200, json::process(pass, source)),
            None => Reply::error(404, &format!("no stats pipe for PID {pid}")),
        },
        Route::Index | Route::Health | Route::History => Reply::error(500, "not a pass route"),
    };
    reply.pass = Some(cached.number);
    reply
}

fn index() -> Vec<u8> {
    let mut buf = b"{\"paths\":[".to_vec();
    for (i, path) in PATHS.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json::write_string(&mut buf, path);
    }
    buf.extend_from_slice(b"]}");
    buf
}

/// `{"status": "ok", "passes": N, ...}`: answers without reading pipes.
/// `responding`, `shed` and `failed_writes` tell how the responders fare
/// (see [`respond`](crate::respond)).
fn health(cache: &PassCache, responders: &Responders) -> Reply {
    let mut buf = b"{\"status\":\"ok\"".to_vec();
    for (name, count) in [
        ("passes", cache.passes()),
        ("responding", responders.connections() as u64),
        ("shed", responders.shed()),
        ("failed_writes", responders.failed_writes()),
    ] {
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\":");
        buf.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
    }
    if let Some(latest) = cache.latest() {
        buf.extend_from_slice(b",\"last_pass_age\":");
        json::write_value(
            &mut buf,
            stats_core::Value::Float(latest.started.elapsed().as_secs_f64()),
        );
        match &latest.result {
            Ok(pass) => {
                buf.extend_from_slice(b",\"sources\":");
                buf.extend_from_slice(itoa::Buffer::new().format(pass.sources.len()).as_bytes());
                buf.extend_from_slice(b",\"ok_sources\":");
                buf.extend_from_slice(itoa::Buffer::new().format(pass.ok_count()).as_bytes());
            }
            Err(error) => {
                buf.extend_from_slice(b",\"last_error\":");
                json::write_string(&mut buf, &error.to_string());
            }
        }
    }
    buf.push(b'}');
    Reply::json(200, buf)
}

fn accepts_html(request: &Request) -> bool {
    request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Accept") && h.value.as_str().contains("text/html"))
}

/// `/history`: the recorded series (see [`History::to_json`]); 404 when
/// `serve` runs without history.
fn history(query: &str, cache: &PassCache, shared: &Shared) -> Reply {
    let Some(history) = &shared.history else {
        return Reply::error(404, "history is off in this server");
    };
    let query = match Query::parse(query) {
        Ok(query) => query,
        Err(message) => return Reply::error(400, &message),
    };
    let latest = if query.sources { cache.latest() } else { None };
    let pass = latest
        .as_ref()
        .and_then(|cached| cached.result.as_ref().ok());
    let body = history
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .to_json(&query, pass);
    Reply::json(200, body)
}

fn authorized(request: &Request, token: &str) -> bool {
    request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Authorization"))
        .any(|h| {
            let value = h.value.as_str();
            value
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                && constant_time_eq(value[7..].trim().as_bytes(), token.as_bytes())
        })
}

/// Compares without an early exit, so the time taken does not tell how much
/// of a guessed token was right (the length still shows).
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicU64;
    use std::time::SystemTime;

    use stats_core::{Entry, Snapshot, Value};

    use super::*;
    use crate::{Source, Status};

    fn synthetic_pass(requests: i64) -> Pass {
        let snapshot = Snapshot::from_entries([Entry {
            name: "requests".into(),
            value: Value::Int(requests),
        }]);
        let mut source = Source::new("/nowhere/77.stats".into());
        source.status = Status::Ok;
        source.snapshot = snapshot.clone();
        Pass {
            started: SystemTime::now(),
            duration: Duration::from_millis(1),
            sources: vec![source],
            merged: snapshot,
            kinds: Default::default(),
        }
    }

    /// A collector that counts its calls and takes `delay` per pass.
    fn counting(delay: Duration) -> (CollectFn, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&calls);
        let collect: CollectFn = Box::new(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(delay);
            Ok(synthetic_pass(n as i64))
        });
        (collect, calls)
    }

    fn get(addr: SocketAddr, request: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    }

    fn request(method: &str, path: &str, extra: &str) -> String {
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
    }

    fn start(options: ServeOptions, collect: CollectFn) -> Server {
        Server::start(
            &ServeOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..options
            },
            collect,
        )
        .unwrap()
    }

    #[test]
    fn route_table() {
        let cases = [
            ("/", Some(Route::Index)),
            ("/stats", Some(Route::Stats)),
            ("/stats/", Some(Route::Stats)),
            ("/stats/42", Some(Route::Process(42))),
            ("/stats/-1", None),
            ("/stats/+1", None),
            ("/stats/99999999999", None),
            ("/stats/42/x", None),
            ("/processes", Some(Route::Processes)),
            ("/metrics", Some(Route::Metrics)),
            ("/healthz", Some(Route::Health)),
            ("/etc/passwd", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path:?}");
        }
    }

    #[test]
    fn target_splits_path_query_and_fragment() {
        let cases = [
            ("/history?stat=a*&pid=4#top", "/history", "stat=a*&pid=4"),
            ("/stats#x?y", "/stats", ""),
            ("/stats?", "/stats", ""),
            ("?x=1", "", "x=1"),
        ];
        for (url, path, query) in cases {
            let got = target(url);
            assert_eq!((got.path, got.query), (path, query), "{url:?}");
            assert_eq!(got.route, route(path), "{url:?}");
        }
    }

    #[test]
    fn constant_time_eq_table() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn concurrent_gets_share_one_pass() {
        let (collect, calls) = counting(Duration::from_millis(100));
        let cache = Arc::new(PassCache::new(collect, Duration::ZERO));
        let numbers: Vec<u64> = (0..8)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || cache.get().number)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let runs = calls.load(Ordering::SeqCst);
        assert!(runs < 8, "8 concurrent gets ran {runs} passes");
        assert_eq!(cache.passes(), runs);
        assert!(numbers.iter().all(|&n| n >= 1 && n <= runs));
    }

    #[test]
    fn a_young_pass_is_reused_and_an_old_one_is_not() {
        let (collect, calls) = counting(Duration::ZERO);
        let cache = PassCache::new(collect, Duration::from_millis(200));
        assert_eq!(cache.get().number, 1);
        assert_eq!(cache.get().number, 1);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get().number, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_collector_does_not_wedge_waiters() {
        let mut first = true;
        let cache = Arc::new(PassCache::new(
            Box::new(move || {
                if std::mem::take(&mut first) {
                    panic!("collector blew up");
                }
                Ok(synthetic_pass(1))
            }),
            Duration::ZERO,
        ));
        let panicking = Arc::clone(&cache);
        assert!(std::thread::spawn(move || panicking.get()).join().is_err());
        assert!(cache.get().result.is_ok());
    }

    #[test]
    fn serves_routes_errors_and_methods() {
        let (collect, _) = counting(Duration::ZERO);
        let server = start(ServeOptions::new(), collect);
        let addr = server.local_addr();

        let (status, head, body) = get(addr, &request("GET", "/stats", ""));
        assert_eq!(status, 200);
        assert!(head.contains("Content-Type: application/json"), "{head}");
        assert!(head.contains("X-Stats-Pipe-Pass: 1"), "{head}");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["stats"]["requests"], 1);

        let (status, _, body) = get(addr, &request("GET", "/stats/77", ""));
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["pid"],
            77
        );

        let (status, _, body) = get(addr, &request("GET", "/stats/78", ""));
        assert_eq!(status, 404);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
            "no stats pipe for PID 78"
        );

        let (status, _, body) = get(addr, &request("GET", "/nope?x=\"", ""));
        assert_eq!(status, 404);
        serde_json::from_str::<serde_json::Value>(&body).unwrap();

        let (status, head, body) = get(addr, &request("POST", "/stats", "Content-Length: 0\r\n"));
        assert_eq!(status, 405);
        assert!(head.contains("Allow: GET, HEAD"), "{head}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap();

        let (status, head, body) = get(addr, &request("GET", "/metrics", ""));
        assert_eq!(status, 200);
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        assert!(body.contains("\nrequests 1\n"), "{body}");

        let (status, _, body) = get(addr, &request("HEAD", "/stats", ""));
        assert_eq!((status, body.as_str()), (200, ""));

        // Garbage on the socket: the server answers or hangs up, and stays up.
        let _ = get(addr, "\x00\x01 not http\r\n\r\n");
        let (status, _, body) = get(addr, &request("GET", "/healthz", ""));
        assert_eq!(status, 200);
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["passes"], 1);
    }

    #[test]
    fn token_is_required_except_for_healthz() {
        let (collect, _) = counting(Duration::ZERO);
        let server = start(
            ServeOptions {
                token: Some("s3cret".into()),
                ..ServeOptions::new()
            },
            collect,
        );
        let addr = server.local_addr();
        let (status, head, _) = get(addr, &request("GET", "/stats", ""));
        assert_eq!(status, 401);
        assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
        let wrong = "Authorization: Bearer s3creT\r\n";
        assert_eq!(get(addr, &request("GET", "/stats", wrong)).0, 401);
        let right = "Authorization: bearer s3cret\r\n";
        assert_eq!(get(addr, &request("GET", "/stats", right)).0, 200);
        assert_eq!(get(addr, &request("GET", "/healthz", "")).0, 200);
    }

    #[test]
    fn remote_listen_needs_permission() {
        let (collect, _) = counting(Duration::ZERO);
        let options = ServeOptions {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..ServeOptions::new()
        };
        assert!(matches!(
            Server::start(&options, collect),
            Err(Error::BadArgument { .. })
        ));
    }

    #[test]
    fn accepted_connections_inherit_write_timeout_and_nodelay() {
        let listener =
            bind_with_write_timeout("127.0.0.1:0".parse().unwrap(), Duration::from_secs(3))
                .unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(
            accepted.write_timeout().unwrap(),
            Some(Duration::from_secs(3))
        );
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn failed_pass_is_a_json_503() {
        let server = start(
            ServeOptions::new(),
            Box::new(|| {
                Err(Error::Dir {
                    path: "/missing".into(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
            }),
        );
        let (status, _, body) = get(server.local_addr(), &request("GET", "/stats", ""));
        assert_eq!(status, 503);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            parsed["error"].as_str().unwrap().contains("/missing"),
            "{body}"
        );
    }
}
