//! The HTTP/1.1 server behind `host-aggregator serve`, on hyper and tokio:
//! `/stats`, `/stats/<pid>`, `/processes`, `/metrics`, `/influx`,
//! `/history`, `/healthz`, `/funcs`, the traces and the dashboard, with one shared, briefly
//! cached read pass for any number of concurrent requests
//! ([`PassCache`]).
//!
//! # Why hyper
//!
//! tiny_http 0.12, the first server, could not give the guarantees of
//! issue 12: it reads a request head with no bound (a 500 MB header line
//! grew the server by 518 MB before any token check), has no read timeout,
//! and its accept thread panics on `EMFILE`, leaving a process with no
//! listener. hyper (the server of `metrics`' Prometheus exporter) bounds
//! the head ([`ConnectionLimits::max_head_bytes`], `431`), times out a
//! slow head, and leaves accepting to us; tokio holds an idle connection in
//! a few hundred bytes instead of a thread.
//!
//! # Safety of the listener
//!
//! - Loopback only unless told otherwise ([`ServeOptions::allow_remote`]);
//!   a bearer token can be required on every path but `/healthz`.
//! - Connections are bounded, idle ones make room for new ones, and a
//!   client that does not read is let go after the write timeout (see
//!   `connections.rs`).
//! - An `accept` failure never stops the listener: out of descriptors, the
//!   quietest idle connection is closed and accepting goes on; any other
//!   lasting failure ends [`Server::wait`] with an error (`serve` exits 1,
//!   and a supervisor restarts it).
//! - Answers that need a pass or the history are computed on at most
//!   [`ServeOptions::threads`] threads; `/healthz`, the index and the
//!   dashboard are answered at once, whatever the passes do.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use nix::errno::Errno;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::Error;
use crate::connections::{self, Connection, Registry, RequestLine, TrackedStream};
pub use crate::connections::{ConnectionLimits, raise_descriptor_limit};
use crate::history::{History, HistoryOptions, Recorder};
pub use crate::pass_cache::{CachedPass, CollectFn, PassCache};
use crate::reply::Reply;
use crate::routes::{self, Context, RequestHead};
pub use crate::routes::{PassRoute, Route, Target, target};

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
    /// Threads computing answers that need a pass or the history.
    pub threads: usize,
    /// Bounds on connections, request heads and stalled writes.
    pub connections: ConnectionLimits,
    /// When set, a thread reads a pass every interval into a history for
    /// `/history` and the dashboard at `/` (and requests reuse its passes).
    pub history: Option<HistoryOptions>,
    /// When set, the trace FIFOs under this directory are read on demand
    /// for `/traces`, `/traces/<pid>/<id>` and `/trace/next.*` (never by
    /// the passes); when not, those paths answer 404.
    pub traces: Option<crate::ReadOptions>,
    /// Bytes one read of the trace FIFOs takes in at most, over all of
    /// them (see [`crate::traces::read::DEFAULT_BUDGET`]).
    pub trace_budget: usize,
}

impl ServeOptions {
    /// The default address: loopback, port 7828.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7828);
    /// Default pass reuse: one second bounds what any request rate costs the
    /// writers (one snapshot each per second) and is finer than any scrape
    /// interval or dashboard refresh.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);
    /// Default answer threads: enough that answers waiting for a pass do
    /// not hold up rendering, few enough to stay small on a 2-core host.
    pub const DEFAULT_THREADS: usize = 4;

    /// Loopback port 7828, no token, the defaults above.
    pub fn new() -> ServeOptions {
        ServeOptions {
            listen: ServeOptions::DEFAULT_LISTEN,
            allow_remote: false,
            token: None,
            max_age: ServeOptions::DEFAULT_MAX_AGE,
            threads: ServeOptions::DEFAULT_THREADS,
            connections: ConnectionLimits::DEFAULT,
            history: None,
            traces: None,
            trace_budget: crate::traces::read::DEFAULT_BUDGET,
        }
    }
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions::new()
    }
}

/// A running server: answers requests until dropped.
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    local_addr: SocketAddr,
    context: Arc<Context>,
    stop: Arc<Notify>,
    accepting: Option<tokio::task::JoinHandle<io::Result<()>>>,
    _recorder: Option<Recorder>,
}

impl Server {
    /// Binds `options.listen` and starts serving; passes are read with
    /// `collect`.
    ///
    /// # Errors
    /// [`Error::BadArgument`] for a non-loopback address without
    /// `allow_remote` or an empty token; [`Error::Io`] when binding or
    /// starting the runtime fails.
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(options.threads.max(1))
            .thread_name("stats-pipe-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(listen_error)?;
        let listener = StdListener::bind(options.listen).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener).map_err(listen_error)?
        };
        let cache = Arc::new(PassCache::new(collect, options.max_age));
        let history = options
            .history
            .clone()
            .map(|limits| Arc::new(Mutex::new(History::new(limits))));
        let context = Arc::new(Context {
            cache: Arc::clone(&cache),
            history: history.clone(),
            token: options.token.clone(),
            registry: Arc::new(Registry::new(options.connections.max_connections)),
            traces: options.traces.clone().map(|read| {
                Arc::new(crate::traces::TraceReader::new(read).with_budget(options.trace_budget))
            }),
            trace_waiters: Arc::new(tokio::sync::Semaphore::new(
                crate::traces::next::MAX_WAITERS,
            )),
        });
        let recorder = options
            .history
            .as_ref()
            .zip(history)
            .map(|(limits, history)| {
                Recorder::start(limits.interval, move || {
                    if let Ok(pass) = &cache.refresh().result {
                        history
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .record(pass);
                    }
                })
            });
        if recorder.is_none() {
            // One pass at start, so `/healthz` knows at once whether the
            // directory can be read (the recorder's first tick does this
            // when there is a history).
            let cache = Arc::clone(&context.cache);
            runtime.spawn_blocking(move || cache.get());
        }
        let stop = Arc::new(Notify::new());
        let accepting = runtime.spawn(accept_loop(
            listener,
            Arc::clone(&context),
            options.connections,
            Arc::clone(&stop),
        ));
        Ok(Server {
            runtime: Some(runtime),
            local_addr,
            context,
            stop,
            accepting: Some(accepting),
            _recorder: recorder,
        })
    }

    /// The address actually bound (the chosen port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The pass cache, to see how many passes ran.
    pub fn cache(&self) -> &PassCache {
        &self.context.cache
    }

    /// Serves until the listener fails for good (not for running out of
    /// descriptors, which is waited out).
    ///
    /// # Errors
    /// [`Error::Io`] with the accept error.
    pub fn wait(mut self) -> Result<(), Error> {
        let (Some(runtime), Some(accepting)) = (self.runtime.as_ref(), self.accepting.take())
        else {
            return Ok(());
        };
        match runtime.block_on(accepting) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(listen_error(self.local_addr, source)),
            Err(join) => Err(listen_error(self.local_addr, io::Error::other(join))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(runtime) = self.runtime.take() {
            // Answers waiting on a pass are not waited for.
            runtime.shutdown_background();
        }
    }
}

fn listen_error(addr: SocketAddr, source: io::Error) -> Error {
    Error::Io {
        action: "listen on",
        path: addr.to_string().into(),
        source,
    }
}

/// How long to wait before accepting again after a failure that a retry at
/// once would only repeat (no descriptors, no memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
    limits: ConnectionLimits,
    stop: Arc<Notify>,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes.max(8 << 10))
        .max_header_size(limits.max_head_bytes)
        .max_headers(limits.max_headers)
        // `Content-Type`, not `content-type`: what `curl -i` readers and
        // line-oriented scripts expect (names are case-insensitive anyway).
        .title_case_headers(true);
    let http = Arc::new(http);
    loop {
        let accepted = tokio::select! {
            () = stop.notified() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let Some(connection) = context.registry.admit() else {
                    // Every open connection is answering: refuse this one.
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(
                    stream,
                    connection,
                    Arc::clone(&context),
                    Arc::clone(&http),
                    limits,
                ));
            }
            Err(error) => {
                context
                    .registry
                    .counts()
                    .accept_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match error.raw_os_error().map(Errno::from_raw) {
                    // Out of descriptors: free one, and try again shortly.
                    Some(Errno::EMFILE | Errno::ENFILE) => {
                        context.registry.evict_one();
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    Some(Errno::ENOBUFS | Errno::ENOMEM) => {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    // The connection died before we took it, or a signal:
                    // nothing is wrong with the listener.
                    Some(Errno::ECONNABORTED | Errno::EINTR | Errno::EPROTO | Errno::EPERM) => {}
                    _ => return Err(error),
                }
            }
        }
    }
}

/// Leaves the registry when the connection's task ends, however it ends.
struct Registered {
    registry: Arc<Registry>,
    connection: Arc<Connection>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(&self.connection);
    }
}

async fn serve_connection(
    stream: TcpStream,
    connection: Arc<Connection>,
    context: Arc<Context>,
    http: Arc<http1::Builder>,
    limits: ConnectionLimits,
) {
    let registered = Registered {
        registry: Arc::clone(&context.registry),
        connection: Arc::clone(&connection),
    };
    let stream = Arc::new(stream);
    let read_ahead = tokio::select! {
        () = connection.closed_by_registry() => return,
        line = connections::read_request_line(
            &stream,
            limits.max_head_bytes,
            limits.header_read_timeout,
        ) => line,
    };
    let read_ahead = match read_ahead {
        RequestLine::Serve(bytes) => bytes,
        RequestLine::Gone => return,
        RequestLine::UnsupportedVersion => {
            context
                .registry
                .counts()
                .bad_versions
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(registered);
            connections::answer_and_close(&stream, &version_not_supported(), limits.write_timeout)
                .await;
            return;
        }
    };
    let io = TrackedStream::new(
        Arc::clone(&stream),
        Arc::clone(&context.registry),
        Arc::clone(&connection),
        read_ahead,
        limits.write_timeout,
    );
    let service = {
        let (context, connection) = (Arc::clone(&context), Arc::clone(&connection));
        service_fn(move |request| {
            let (context, connection) = (Arc::clone(&context), Arc::clone(&connection));
            async move {
                connection.set_busy(true);
                let response = respond(request, context).await;
                connection.set_busy(false);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let served = tokio::select! {
        () = connection.closed_by_registry() => return,
        served = http.serve_connection(TokioIo::new(io), service) => served,
    };
    if served.is_err() {
        // Evictable while it lingers: it answers nothing more.
        drop(registered);
        connections::linger_and_close(&stream).await;
    }
}

/// The answer to a request line naming a version other than 1.0 and 1.1.
fn version_not_supported() -> Vec<u8> {
    let body = crate::export::json::error("HTTP version not supported: use HTTP/1.1 or HTTP/1.0");
    let mut response = format!(
        "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

async fn respond(request: Request<Incoming>, context: Arc<Context>) -> Response<Full<Bytes>> {
    let header_text = |name| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let head = RequestHead {
        method: request.method().as_str().to_owned(),
        url: request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().to_string(), |p| p.as_str().to_owned()),
        authorization: header_text(hyper::header::AUTHORIZATION),
        accepts_html: header_text(hyper::header::ACCEPT)
            .iter()
            .any(|accept| accept.contains("text/html")),
    };
    drop(request);
    let reply = match routes::precheck(&head, &context) {
        Err(reply) => reply,
        Ok((Route::TraceNext(format), query)) => {
            crate::traces::next::wait(
                format,
                &query,
                context.traces.clone(),
                Arc::clone(&context.trace_waiters),
                Arc::clone(&context.cache),
            )
            .await
        }
        Ok((route, query)) if route.is_slow() => {
            let context = Arc::clone(&context);
            let accepts_html = head.accepts_html;
            tokio::task::spawn_blocking(move || {
                routes::answer(route, &query, accepts_html, &context)
            })
            .await
            .unwrap_or_else(|_| Reply::error(500, "the answer failed"))
        }
        Ok((route, query)) => routes::answer(route, &query, head.accepts_html, &context),
    };
    into_response(reply)
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_owner(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    headers.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(number) = reply.pass {
        headers.insert(
            HeaderName::from_static("x-stats-pipe-pass"),
            HeaderValue::from(number),
        );
    }
    if let Some((name, value)) = reply.extra {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use super::*;
    use crate::pass_cache::tests::counting;

    /// A collector whose every pass fails as a missing directory does.
    fn failing() -> CollectFn {
        Box::new(|| {
            Err(Error::Dir {
                path: "/missing".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
        })
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

        let (status, _, body) = get(addr, &request("GET", "/nope?x=%22", ""));
        assert_eq!(status, 404);
        serde_json::from_str::<serde_json::Value>(&body).unwrap();
        // A raw quote is not allowed in a request target (RFC 3986).
        assert_eq!(get(addr, &request("GET", "/nope?x=\"", "")).0, 400);

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
        assert!(head.contains("Www-Authenticate: Bearer"), "{head}");
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
    fn a_failed_pass_is_a_json_503_and_makes_healthz_failing() {
        let server = start(
            ServeOptions {
                history: Some(HistoryOptions {
                    interval: Duration::from_secs(3600),
                    ..HistoryOptions::new()
                }),
                ..ServeOptions::new()
            },
            failing(),
        );
        let addr = server.local_addr();
        let (status, _, body) = get(addr, &request("GET", "/stats", ""));
        assert_eq!(status, 503);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            parsed["error"].as_str().unwrap().contains("/missing"),
            "{body}"
        );
        let (status, _, body) = get(addr, &request("GET", "/healthz", ""));
        assert_eq!(status, 503, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "failing");
        assert!(health["last_error"].as_str().unwrap().contains("/missing"));
    }

    #[test]
    fn other_http_versions_get_505_and_the_connection_closes() {
        let (collect, calls) = counting(Duration::ZERO);
        let server = start(ServeOptions::new(), collect);
        // The one pass every server runs at start.
        let started = Instant::now();
        while calls.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for line in [
            "GET /stats HTTP/2.0",
            "PRI * HTTP/2.0",
            "GET /stats HTTP/0.9",
        ] {
            let (status, head, _) = get(server.local_addr(), &format!("{line}\r\n\r\n"));
            assert_eq!(status, 505, "{line}: {head}");
            assert!(head.contains("Connection: close"), "{head}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no pass for a refused request"
        );
    }

    #[test]
    fn a_head_over_the_limit_gets_431_and_the_server_stays_up() {
        let (collect, _) = counting(Duration::ZERO);
        let server = start(ServeOptions::new(), collect);
        let addr = server.local_addr();
        let huge = format!("X-Big: {}\r\n", "a".repeat(64 << 10));
        let (status, _, _) = get(addr, &request("GET", "/stats", &huge));
        assert_eq!(status, 431);
        let many: String = (0..200).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(get(addr, &request("GET", "/stats", &many)).0, 431);
        let long_target = format!("/stats?{}", "x".repeat(9 << 10));
        assert_eq!(get(addr, &request("GET", &long_target, "")).0, 414);
        assert_eq!(get(addr, &request("GET", "/healthz", "")).0, 200);
    }

    #[test]
    fn every_answer_says_nosniff_and_the_dashboard_has_a_strict_policy() {
        let (collect, _) = counting(Duration::ZERO);
        let server = start(ServeOptions::new(), collect);
        let addr = server.local_addr();
        for path in ["/stats", "/nope", "/healthz", "/dashboard.js"] {
            let (_, head, _) = get(addr, &request("GET", path, ""));
            assert!(
                head.to_ascii_lowercase()
                    .contains("x-content-type-options: nosniff"),
                "{path}: {head}"
            );
        }
        let (status, head, body) = get(addr, &request("GET", "/", "Accept: text/html\r\n"));
        assert_eq!(status, 200);
        assert!(body.contains("<script src=\"/dashboard.js\">"), "{body}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{head}"
        );
    }

    #[test]
    fn idle_connections_at_the_bound_make_room_for_a_new_client() {
        let (collect, _) = counting(Duration::ZERO);
        let options = ServeOptions {
            connections: ConnectionLimits {
                max_connections: 8,
                ..ConnectionLimits::DEFAULT
            },
            ..ServeOptions::new()
        };
        let server = start(options, collect);
        let addr = server.local_addr();
        let idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let asked = Instant::now();
        let (status, _, body) = get(addr, &request("GET", "/healthz", ""));
        assert_eq!(status, 200, "{body}");
        assert!(asked.elapsed() < Duration::from_secs(5));
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            health["connections"]["open"].as_u64().unwrap() <= 8,
            "{body}"
        );
        assert!(
            health["connections"]["evicted"].as_u64().unwrap() >= 32,
            "{body}"
        );
        drop(idle);
    }
}
