//! What each path of `serve` answers: routing a request target, the token
//! check, and the replies (JSON, Prometheus, InfluxDB, history, health, the
//! dashboard), all without I/O but the shared pass.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use hyper::header;

use crate::connections::Registry;
use crate::dashboard;
use crate::export::{FORMATS, Format, json};
use crate::history::{History, Query};
use crate::pass_cache::{CachedPass, PassCache};
use crate::reply::Reply;
use crate::traces::{self, TraceReader, answer::TraceFormat};

/// Longest request target (path and query) answered; longer ones get
/// `414`. Far above any real query (a `/history` with many globs), far
/// below what would make parsing it costly.
pub const MAX_TARGET_BYTES: usize = 8 << 10;

/// What a request path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/`: the dashboard or the list of paths.
    Index,
    /// `/dashboard.css`, `/dashboard*.js`: the dashboard's parts
    /// (separate files, so its content security policy needs no inline
    /// script).
    Asset(dashboard::Asset),
    /// What is answered from the shared pass.
    Pass(PassRoute),
    /// `/healthz`: answered without reading pipes.
    Health,
    /// `/history`: the recorded series.
    History,
    /// `/funcs`, `/funcs.json`, `/funcs.dot`: the call graph (`?pid=`: one
    /// process's).
    Funcs(crate::funcs::Format),
    /// `/traces`: recent traces across processes, newest first (short
    /// records).
    Traces,
    /// `/traces/<pid>/<id>` (the record) and `/traces/<pid>/<id>.svg`
    /// (the timeline).
    Trace(u32, u64, TraceFormat),
    /// `/trace/next.json`, `/trace/next.svg`: wait for the next trace whose
    /// root matches `task=` (answered asynchronously by `traces::next::wait`).
    TraceNext(TraceFormat),
}

/// The routes answered from the shared pass: their own type, so the
/// function answering them has no arm for any other route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassRoute {
    /// A format of [`FORMATS`] at its path: `/stats` (JSON), `/metrics`
    /// (Prometheus), `/influx` (InfluxDB line protocol).
    Export(&'static dyn Format),
    /// `/stats/<pid>`: one source.
    Process(u32),
    /// `/processes`: every source with its status.
    Processes,
}

/// Every fixed path and its route; with the formats' paths (in
/// [`FORMATS`]) and `/stats/<pid>`, the routing and the index at `/`.
const FIXED: [(&str, Route); 10] = [
    ("/", Route::Index),
    ("/processes", Route::Pass(PassRoute::Processes)),
    ("/healthz", Route::Health),
    ("/history", Route::History),
    ("/funcs", Route::Funcs(crate::funcs::Format::Text)),
    ("/funcs.json", Route::Funcs(crate::funcs::Format::Json)),
    ("/funcs.dot", Route::Funcs(crate::funcs::Format::Dot)),
    ("/traces", Route::Traces),
    ("/trace/next.json", Route::TraceNext(TraceFormat::Json)),
    ("/trace/next.svg", Route::TraceNext(TraceFormat::Svg)),
];

/// The paths with parameters ([`PassRoute::Process`], [`Route::Trace`]), as the
/// index shows them.
const PARAMETER_PATHS: [&str; 3] = [
    "/stats/<pid>",
    "/traces/<pid>/<id>",
    "/traces/<pid>/<id>.svg",
];

impl Route {
    /// Whether answering needs the shared pass or the history (work done
    /// off the connection threads), rather than only what is in memory.
    pub fn is_slow(self) -> bool {
        match self {
            Route::Pass(_)
            | Route::History
            | Route::Funcs(_)
            | Route::Traces
            | Route::Trace(..)
            | Route::TraceNext(_) => true,
            Route::Index | Route::Asset(_) | Route::Health => false,
        }
    }
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
    route_in(path, FORMATS)
}

/// The route `path` names, with `formats` as the table of formats.
pub(crate) fn route_in(path: &str, formats: &[&'static dyn Format]) -> Option<Route> {
    // `/stats/` as `/stats`: a trailing slash some clients add.
    let trimmed = match path.strip_suffix('/') {
        Some(json::PATH) => json::PATH,
        _ => path,
    };
    if let Some((_, route)) = FIXED.iter().find(|(fixed, _)| *fixed == trimmed) {
        return Some(*route);
    }
    if let Some(format) = formats.iter().find(|f| f.path() == Some(trimmed)) {
        return Some(Route::Pass(PassRoute::Export(*format)));
    }
    if let Some(asset) = dashboard::Asset::at(path) {
        return Some(Route::Asset(asset));
    }
    if let Some(rest) = path.strip_prefix("/traces/") {
        let (pid, id, format) = crate::traces::answer::parse_path(rest)?;
        return Some(Route::Trace(pid, id, format));
    }
    let pid = path.strip_prefix(json::PATH)?.strip_prefix('/')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Route::Pass(PassRoute::Process(pid.parse().ok()?)))
}

/// Every path served, for the index and the 404 message: the fixed ones,
/// the formats' and those with parameters.
fn paths() -> Vec<&'static str> {
    let mut paths: Vec<&str> = FORMATS.iter().filter_map(|f| f.path()).collect();
    paths.extend(PARAMETER_PATHS);
    paths.extend(FIXED.iter().map(|(path, _)| *path));
    paths.sort_unstable();
    paths
}

/// What the routes need of a request: its method, target and the two
/// headers that change an answer.
#[derive(Debug)]
pub struct RequestHead {
    /// The method, as sent.
    pub method: String,
    /// The request target (path and query).
    pub url: String,
    /// `Authorization` values.
    pub authorization: Vec<String>,
    /// Whether `Accept` names `text/html` (a browser).
    pub accepts_html: bool,
}

/// What the routes share: the pass cache, the history, the token and the
/// connection counts for `/healthz`.
pub struct Context {
    /// The shared passes.
    pub cache: Arc<PassCache>,
    /// The history, when `serve` keeps one.
    pub history: Option<Arc<Mutex<History>>>,
    /// The bearer token every path but `/healthz` needs, if any.
    pub token: Option<String>,
    pub(crate) registry: Arc<Registry>,
    /// The trace FIFOs' reader, when `serve` serves traces.
    pub(crate) traces: Option<Arc<TraceReader>>,
    /// Room for requests waiting in `/trace/next.*`.
    pub(crate) trace_waiters: Arc<tokio::sync::Semaphore>,
}

/// Checks what needs no pass (route, method, token, target length): the
/// answer when that settles it, else the route to answer.
pub fn precheck(head: &RequestHead, context: &Context) -> Result<(Route, String), Reply> {
    if head.url.len() > MAX_TARGET_BYTES {
        return Err(Reply::error(
            414,
            &format!(
                "request target of {} bytes is too long (at most {MAX_TARGET_BYTES})",
                head.url.len()
            ),
        ));
    }
    let Target { path, query, route } = target(&head.url);
    let Some(route) = route else {
        return Err(Reply::error(
            404,
            &format!("no such path: {path} (try {})", paths().join(", ")),
        ));
    };
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        let mut reply = Reply::error(405, &format!("method {} not allowed: use GET", head.method));
        reply.extra = Some((header::ALLOW, "GET, HEAD"));
        return Err(reply);
    }
    if route != Route::Health
        && let Some(token) = &context.token
        && !authorized(&head.authorization, token)
    {
        let mut reply = Reply::error(401, "a bearer token is required");
        reply.extra = Some((header::WWW_AUTHENTICATE, "Bearer"));
        return Err(reply);
    }
    Ok((route, query.to_owned()))
}

/// The answer to `route` (after [`precheck`]). Slow routes (see
/// [`Route::is_slow`]) may wait for a pass: call them off the connection
/// threads.
pub fn answer(route: Route, query: &str, accepts_html: bool, context: &Context) -> Reply {
    match route {
        // A browser asks for HTML: it gets the dashboard; scripts get JSON.
        Route::Index if accepts_html => Reply {
            content_type: "text/html; charset=utf-8",
            extra: Some((
                header::CONTENT_SECURITY_POLICY,
                dashboard::CONTENT_SECURITY_POLICY,
            )),
            ..Reply::json(200, dashboard::PAGE.as_bytes())
        },
        Route::Index => Reply::json(200, index()),
        Route::Asset(asset) => Reply {
            content_type: asset.content_type(),
            ..Reply::json(200, asset.text().as_bytes())
        },
        Route::History => history(query, context),
        Route::Health => health(context),
        Route::Pass(route) => from_pass(route, &context.cache.get()),
        Route::Funcs(format) => crate::funcs::answer(format, query, &context.cache.get()),
        Route::Traces => with_traces(context, |reader| traces::answer::index(query, reader)),
        Route::Trace(pid, id, format) => with_traces(context, |reader| {
            traces::answer::one(pid, id, format, reader)
        }),
        // It waits: `http` answers it with `traces::next::wait`.
        Route::TraceNext(_) => Reply::error(500, "not an immediate route"),
    }
}

/// `answer` with the trace reader, or `404` when `serve` serves no traces.
fn with_traces(context: &Context, answer: impl FnOnce(&TraceReader) -> Reply) -> Reply {
    match &context.traces {
        Some(reader) => answer(reader),
        None => Reply::error(404, "traces are off in this server"),
    }
}

fn from_pass(route: PassRoute, cached: &CachedPass) -> Reply {
    let pass = match &cached.result {
        Ok(pass) => pass,
        Err(error) => {
            let mut reply = Reply::error(503, &error.to_string());
            reply.pass = Some(cached.number);
            return reply;
        }
    };
    let mut reply = match route {
        PassRoute::Export(format) => Reply {
            content_type: format.content_type(),
            ..Reply::json(
                200,
                cached.rendered(format.name(), pass, |pass| format.render(pass)),
            )
        },
        PassRoute::Processes => {
            Reply::json(200, cached.rendered("processes", pass, json::processes))
        }
        PassRoute::Process(pid) => match pass.source(pid) {
            Some(source) => Reply::json(200, json::process(pass, source)),
            None => Reply::error(404, &format!("no stats pipe for PID {pid}")),
        },
    };
    reply.pass = Some(cached.number);
    reply
}

fn index() -> Vec<u8> {
    let mut buf = b"{\"paths\":[".to_vec();
    for (i, path) in paths().iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json::write_string(&mut buf, path);
    }
    buf.extend_from_slice(b"]}");
    buf
}

/// `{"status": "ok"|"failing", "passes": N, ...}` with `200`, or `503`
/// while the last pass failed (the directory is missing or unreadable), so
/// a liveness probe sees it. Reads no pipe and never waits for a pass:
/// only counters and the latest pass, which are always at hand.
/// `connections` tells how the connection bound fares (see
/// [`connections`]).
fn health(context: &Context) -> Reply {
    let latest = context.cache.latest();
    let failed = latest.as_ref().is_some_and(|l| l.result.is_err());
    let mut buf = b"{\"status\":".to_vec();
    buf.extend_from_slice(if failed { b"\"failing\"" } else { b"\"ok\"" });
    let write_count = |buf: &mut Vec<u8>, name: &str, count: u64| {
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\":");
        buf.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
    };
    write_count(&mut buf, "passes", context.cache.passes());
    buf.extend_from_slice(b",\"connections\":{");
    let registry = &context.registry;
    let counts = registry.counts();
    let mut first = true;
    for (name, count) in [
        ("open", registry.open() as u64),
        ("max", registry.limit() as u64),
        ("evicted", counts.evicted.load(Ordering::Relaxed)),
        ("refused", counts.refused.load(Ordering::Relaxed)),
        (
            "write_timeouts",
            counts.write_timeouts.load(Ordering::Relaxed),
        ),
        (
            "accept_errors",
            counts.accept_errors.load(Ordering::Relaxed),
        ),
        ("bad_versions", counts.bad_versions.load(Ordering::Relaxed)),
    ] {
        let mut part = Vec::new();
        write_count(&mut part, name, count);
        // Drop the comma before the first member.
        buf.extend_from_slice(if first { &part[1..] } else { &part });
        first = false;
    }
    buf.push(b'}');
    if let Some(latest) = &latest {
        buf.extend_from_slice(b",\"last_pass_age\":");
        json::write_value(
            &mut buf,
            stats_core::Value::Float(latest.started.elapsed().as_secs_f64()),
        );
        match &latest.result {
            Ok(pass) => {
                write_count(&mut buf, "sources", pass.sources.len() as u64);
                write_count(&mut buf, "ok_sources", pass.ok_count() as u64);
            }
            Err(error) => {
                buf.extend_from_slice(b",\"last_error\":");
                json::write_string(&mut buf, &error.to_string());
            }
        }
    }
    buf.push(b'}');
    Reply::json(if failed { 503 } else { 200 }, buf)
}

/// `/history`: the recorded series (see [`History::to_json`]); 404 when
/// `serve` runs without history. The query's globs are matched with the
/// history unlocked, so a costly query never holds up the recorder.
fn history(query: &str, context: &Context) -> Reply {
    let Some(history) = &context.history else {
        return Reply::error(404, "history is off in this server");
    };
    let query = match Query::parse(query) {
        Ok(query) => query,
        Err(message) => return Reply::error(400, &message),
    };
    let latest = if query.sources {
        context.cache.latest()
    } else {
        None
    };
    let pass = latest
        .as_ref()
        .and_then(|cached| cached.result.as_ref().ok());
    let lock = || history.lock().unwrap_or_else(PoisonError::into_inner);
    let names = lock().stat_names();
    let selected: Vec<Arc<str>> = names.into_iter().filter(|n| query.selects(n)).collect();
    let body = lock().to_json_of(&selected, &query, pass);
    Reply::json(200, body)
}

/// Whether one of the `Authorization` values is `Bearer <token>`.
fn authorized(values: &[String], token: &str) -> bool {
    values.iter().any(|value| {
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
    use super::*;

    #[test]
    fn route_table() {
        let cases = [
            ("/", Some(Route::Index)),
            ("/stats", Some(Route::Pass(PassRoute::Export(&json::Json)))),
            ("/stats/", Some(Route::Pass(PassRoute::Export(&json::Json)))),
            ("/stats/42", Some(Route::Pass(PassRoute::Process(42)))),
            ("/stats/-1", None),
            ("/stats/+1", None),
            ("/stats/99999999999", None),
            ("/stats/42/x", None),
            ("/processes", Some(Route::Pass(PassRoute::Processes))),
            (
                "/metrics",
                Some(Route::Pass(PassRoute::Export(
                    &crate::export::prometheus::Prometheus,
                ))),
            ),
            (
                "/influx",
                Some(Route::Pass(PassRoute::Export(
                    &crate::export::influx::INFLUX,
                ))),
            ),
            ("/history", Some(Route::History)),
            ("/healthz", Some(Route::Health)),
            (
                "/dashboard.js",
                Some(Route::Asset(dashboard::Asset::Script)),
            ),
            ("/traces", Some(Route::Traces)),
            ("/traces/12/3", Some(Route::Trace(12, 3, TraceFormat::Json))),
            (
                "/traces/12/3.svg",
                Some(Route::Trace(12, 3, TraceFormat::Svg)),
            ),
            ("/traces/12", None),
            ("/trace/next.svg", Some(Route::TraceNext(TraceFormat::Svg))),
            (
                "/trace/next.json",
                Some(Route::TraceNext(TraceFormat::Json)),
            ),
            ("/trace/next", None),
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
    fn authorization_takes_bearer_in_any_case_and_nothing_else() {
        let token = "s3cret";
        assert!(authorized(&["bearer s3cret".into()], token));
        assert!(authorized(&["x".into(), "Bearer  s3cret ".into()], token));
        assert!(!authorized(&["Basic s3cret".into()], token));
        assert!(!authorized(&["Bearer".into(), "é".into()], token));
        assert!(!authorized(&[], token));
    }
}
