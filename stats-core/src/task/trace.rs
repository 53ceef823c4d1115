//! Traces: a root task run (one with no parent) and every run under it, on
//! any thread, with start offsets, durations and outcomes (Dapper's spans,
//! appstats' request timelines). A registry's [`Tracer`] decides which roots
//! are captured (sampling) and keeps completed traces in a bounded ring: the
//! newest [`DEFAULT_CAPACITY`], plus the [`SLOWEST_PER_ROOT`] slowest per
//! root task that ended in the last [`SLOWEST_WINDOW`].
//!
//! Keeping a trace costs its spans (32 bytes each, at most
//! [`DEFAULT_MAX_SPANS`] per trace; more are counted, not kept) and names
//! are only looked up when the ring is read.
//!
//! ```
//! let registry = stats_core::Registry::new();
//! registry.tracer().set_sample_every(1); // every root run
//! let (request, query) = (registry.task("request"), registry.task("db.query"));
//! let _ = request.run(|| query.run(|| Ok::<_, ()>(())));
//! let traces = registry.tracer().traces();
//! assert_eq!(traces.len(), 1);
//! let trace = &traces[0];
//! assert_eq!(trace.root, "request");
//! assert_eq!(trace.spans[1].name, "db.query");
//! assert_eq!(trace.spans[1].parent, Some(0));
//! assert!(trace.spans[1].offset + trace.spans[1].duration.unwrap() <= trace.duration);
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Outcome, TaskCell};
use crate::clock;
use crate::tags;

/// One root run in this many is captured unless told otherwise
/// ([`Tracer::set_sample_every`]): a captured root costs about 4 plain
/// task runs (BENCHMARKS.md), so capturing every root by default would
/// make a task used as a root in a tight loop several times slower; at one
/// in 100 that adds about 3 % on average.
pub const DEFAULT_SAMPLE_EVERY: u64 = 100;
/// Completed traces a ring keeps unless told otherwise (appstats' size).
pub const DEFAULT_CAPACITY: usize = 1000;
/// Spans a trace keeps unless told otherwise; later ones are counted in
/// [`Trace::dropped_spans`].
pub const DEFAULT_MAX_SPANS: usize = 100;
/// How many of the slowest traces per root task the ring keeps besides the
/// newest.
pub const SLOWEST_PER_ROOT: usize = 3;
/// How far back the slowest traces are kept.
pub const SLOWEST_WINDOW: Duration = Duration::from_secs(60);

const NO_PARENT: u32 = u32::MAX;

thread_local! {
    /// Root runs this thread has started, for sampling without a shared
    /// counter.
    static ROOTS_SEEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Decides which root runs become traces and keeps the completed ones.
/// Every [`crate::Registry`] has one ([`crate::Registry::tracer`]).
pub struct Tracer {
    /// Capture one root run in this many; 0: none.
    sample_every: AtomicU64,
    next_id: AtomicU64,
    max_spans: AtomicUsize,
    ring: Mutex<Ring>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("sample_every", &self.sample_every.load(Relaxed))
            .field("kept", &self.lock().recent.len())
            .finish()
    }
}

impl Default for Tracer {
    fn default() -> Tracer {
        Tracer {
            sample_every: AtomicU64::new(DEFAULT_SAMPLE_EVERY),
            next_id: AtomicU64::new(1),
            max_spans: AtomicUsize::new(DEFAULT_MAX_SPANS),
            ring: Mutex::new(Ring {
                recent: VecDeque::new(),
                capacity: DEFAULT_CAPACITY,
                slowest: HashMap::new(),
            }),
        }
    }
}

struct Ring {
    recent: VecDeque<Arc<Kept>>,
    capacity: usize,
    slowest: HashMap<Box<str>, Vec<Arc<Kept>>>,
}

/// A completed trace as kept: raw clock readings and task cells, turned
/// into a [`Trace`] only when read.
enum Kept {
    Raw(RawTrace),
    Given(Trace),
}

impl Kept {
    fn id(&self) -> u64 {
        match self {
            Kept::Raw(raw) => raw.id,
            Kept::Given(trace) => trace.id,
        }
    }

    fn root(&self) -> &str {
        match self {
            Kept::Raw(raw) => raw.spans[0].cell.name(),
            Kept::Given(trace) => &trace.root,
        }
    }

    fn duration(&self) -> Duration {
        match self {
            Kept::Raw(raw) => clock::delta(raw.spans[0].start, raw.spans[0].end),
            Kept::Given(trace) => trace.duration,
        }
    }

    /// When it ended, as a raw clock reading.
    fn ended(&self) -> clock::Instant {
        match self {
            Kept::Raw(raw) => raw.spans[0].end,
            Kept::Given(trace) => trace.ended,
        }
    }

    fn to_trace(&self) -> Trace {
        match self {
            Kept::Raw(raw) => raw.to_trace(),
            Kept::Given(trace) => trace.clone(),
        }
    }
}

impl Tracer {
    /// Captures one root run in `n` on each thread (1: every one; 0: none;
    /// [`DEFAULT_SAMPLE_EVERY`] unless set). Runs under a captured root are
    /// always captured with it. Each thread counts its own roots, so the
    /// first root run on a thread is captured.
    pub fn set_sample_every(&self, n: u64) {
        self.sample_every.store(n, Relaxed);
    }

    /// Keeps the newest `n` traces (besides the slowest per root).
    pub fn set_capacity(&self, n: usize) {
        let mut ring = self.lock();
        ring.capacity = n;
        while ring.recent.len() > n {
            ring.recent.pop_front();
        }
    }

    /// Keeps at most `n` spans per trace (the root included).
    pub fn set_max_spans(&self, n: usize) {
        self.max_spans.store(n.max(1), Relaxed);
    }

    /// The kept traces, newest first: the newest ones and the slowest per
    /// root task of the last minute, each once.
    pub fn traces(&self) -> Vec<Trace> {
        let kept: Vec<Arc<Kept>> = {
            let ring = self.lock();
            let mut all: Vec<Arc<Kept>> = ring.recent.iter().cloned().collect();
            all.extend(ring.slowest.values().flatten().cloned());
            all
        };
        let mut kept = kept;
        kept.sort_by_key(|k| std::cmp::Reverse(k.id()));
        kept.dedup_by_key(|k| k.id());
        kept.iter().map(|k| k.to_trace()).collect()
    }

    /// Writes every kept trace as one JSON object per line, newest first
    /// (see [`Trace::write_json`]).
    pub fn write_json_lines(&self, pid: u32, out: &mut String) {
        for trace in self.traces() {
            trace.write_json(pid, out);
            out.push('\n');
        }
    }

    /// Adds a trace recorded elsewhere (a shell pipeline's span reported to
    /// the `pipe-writer` binary): `root`, started `ago` before now and lasting
    /// `duration`, with `spans` as given (the root is added as span 0, and
    /// the spans' parents count from it). Returns its ID.
    pub fn record_finished(
        &self,
        root: &str,
        ago: Duration,
        duration: Duration,
        outcome: Outcome,
        spans: Vec<Span>,
    ) -> u64 {
        let now = clock::now();
        let id = self.next_id.fetch_add(1, Relaxed);
        let root = crate::name::sanitize(root).into_owned();
        let mut all = vec![Span {
            name: root.clone(),
            parent: None,
            offset: Duration::ZERO,
            duration: Some(duration),
            outcome: Some(outcome),
        }];
        all.extend(spans);
        let start_unix = clock::to_unix(now) - ago.as_secs_f64();
        let trace = Trace {
            id,
            tags: tags_of(&root),
            root,
            start_unix,
            duration,
            outcome,
            spans: all,
            dropped_spans: 0,
            ended: now,
        };
        self.keep(Kept::Given(trace));
        id
    }

    /// Whether a root run starting now on this thread is to be captured,
    /// by the sampling ([`Tracer::set_sample_every`]); counts it as seen.
    /// For roots recorded after the fact ([`Tracer::record_finished`]), so
    /// they are sampled like the ones run here.
    pub fn sample_root(&self) -> bool {
        self.sample()
    }

    fn sample(&self) -> bool {
        match self.sample_every.load(Relaxed) {
            0 => false,
            1 => true,
            n => ROOTS_SEEN
                .try_with(|seen| {
                    let count = seen.get();
                    seen.set(count.wrapping_add(1));
                    count % n == 0
                })
                .unwrap_or(false),
        }
    }

    fn keep(&self, kept: Kept) {
        let kept = Arc::new(kept);
        let mut ring = self.lock();
        if ring.capacity > 0 {
            while ring.recent.len() >= ring.capacity {
                ring.recent.pop_front();
            }
            ring.recent.push_back(Arc::clone(&kept));
        }
        let now = kept.ended();
        let fresh = |k: &Arc<Kept>| clock::delta(k.ended(), now) <= SLOWEST_WINDOW;
        let slowest = match ring.slowest.get_mut(kept.root()) {
            Some(list) => list,
            None => ring.slowest.entry(kept.root().into()).or_default(),
        };
        slowest.retain(fresh);
        if slowest.len() < SLOWEST_PER_ROOT {
            slowest.push(kept);
        } else if let Some(fastest) = slowest.iter_mut().min_by_key(|k| k.duration())
            && fastest.duration() < kept.duration()
        {
            *fastest = kept;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A trace being captured, shared by the threads its runs are on.
pub(crate) struct TraceBuf {
    tracer: Arc<Tracer>,
    id: u64,
    max_spans: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    spans: Vec<RawSpan>,
    dropped: u32,
    done: bool,
}

struct RawSpan {
    cell: Arc<TaskCell>,
    parent: u32,
    start: clock::Instant,
    /// 0 while running.
    end: clock::Instant,
    outcome: Option<Outcome>,
}

struct RawTrace {
    id: u64,
    spans: Vec<RawSpan>,
    dropped: u32,
}

impl RawTrace {
    fn to_trace(&self) -> Trace {
        let root = &self.spans[0];
        let start = root.start;
        let name = root.cell.name().to_owned();
        Trace {
            id: self.id,
            tags: tags_of(&name),
            root: name,
            start_unix: clock::to_unix(start),
            duration: clock::delta(start, root.end),
            outcome: root.outcome.unwrap_or(Outcome::Error),
            spans: self
                .spans
                .iter()
                .map(|s| Span {
                    name: s.cell.name().to_owned(),
                    parent: (s.parent != NO_PARENT).then_some(s.parent as usize),
                    offset: clock::delta(start, s.start),
                    duration: (s.end != 0).then(|| clock::delta(s.start, s.end)),
                    outcome: s.outcome,
                })
                .collect(),
            dropped_spans: self.dropped,
            ended: root.end,
        }
    }
}

fn tags_of(name: &str) -> Vec<(String, String)> {
    tags::split(name).tags
}

/// A run's span in a trace being captured.
#[derive(Clone)]
pub(crate) struct SpanRef {
    buf: Arc<TraceBuf>,
    index: u32,
}

impl TraceBuf {
    /// Starts a trace at a root run of `cell`, if the sampling says so.
    #[inline]
    pub(crate) fn maybe_start(cell: &Arc<TaskCell>, started: clock::Instant) -> Option<SpanRef> {
        let tracer = cell.tracer();
        if !tracer.sample() {
            return None;
        }
        let max_spans = tracer.max_spans.load(Relaxed);
        let mut spans = Vec::with_capacity(max_spans.min(8));
        spans.push(RawSpan {
            cell: Arc::clone(cell),
            parent: NO_PARENT,
            start: started,
            end: 0,
            outcome: None,
        });
        let buf = TraceBuf {
            id: tracer.next_id.fetch_add(1, Relaxed),
            tracer: Arc::clone(tracer),
            max_spans,
            inner: Mutex::new(Inner {
                spans,
                dropped: 0,
                done: false,
            }),
        };
        Some(SpanRef {
            buf: Arc::new(buf),
            index: 0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SpanRef {
    /// A child span of this one for a run of `cell`, unless the trace is
    /// full or already finished.
    #[inline]
    pub(crate) fn child(&self, cell: &Arc<TaskCell>, started: clock::Instant) -> Option<SpanRef> {
        let mut inner = self.buf.lock();
        if inner.done || inner.spans.len() >= self.buf.max_spans {
            inner.dropped = inner.dropped.saturating_add(1);
            return None;
        }
        let index = inner.spans.len() as u32;
        inner.spans.push(RawSpan {
            cell: Arc::clone(cell),
            parent: self.index,
            start: started,
            end: 0,
            outcome: None,
        });
        drop(inner);
        Some(SpanRef {
            buf: Arc::clone(&self.buf),
            index,
        })
    }

    #[inline]
    pub(crate) fn end(&self, outcome: Outcome, ended: clock::Instant) {
        let mut inner = self.buf.lock();
        if let Some(span) = inner.spans.get_mut(self.index as usize) {
            span.end = ended;
            span.outcome = Some(outcome);
        }
    }

    /// Hands the finished trace to the ring (the root's run ended); spans
    /// still running elsewhere are kept without an end.
    pub(crate) fn finish_trace(&self) {
        let (spans, dropped) = {
            let mut inner = self.buf.lock();
            inner.done = true;
            (std::mem::take(&mut inner.spans), inner.dropped)
        };
        if spans.is_empty() {
            return;
        }
        self.buf.tracer.keep(Kept::Raw(RawTrace {
            id: self.buf.id,
            spans,
            dropped,
        }));
    }
}

/// One completed trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Unique within its process.
    pub id: u64,
    /// The root task's name.
    pub root: String,
    /// The root task's tags.
    pub tags: Vec<(String, String)>,
    /// When the root run started, Unix seconds.
    pub start_unix: f64,
    /// How long the root run took.
    pub duration: Duration,
    /// How the root run ended.
    pub outcome: Outcome,
    /// The root run (index 0) and every run under it that was kept, in the
    /// order they started.
    pub spans: Vec<Span>,
    /// Runs under the root beyond the span limit: counted, not kept.
    pub dropped_spans: u32,
    ended: clock::Instant,
}

/// One run in a [`Trace`].
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// The task's name.
    pub name: String,
    /// Index of the parent span in [`Trace::spans`]; `None` for the root.
    pub parent: Option<usize>,
    /// Start, from the start of the root.
    pub offset: Duration,
    /// How long it ran; `None` if it still ran when the root ended.
    pub duration: Option<Duration>,
    /// How it ended; `None` if it still ran when the root ended.
    pub outcome: Option<Outcome>,
}

impl Trace {
    /// Appends the trace as one JSON object (no newline):
    ///
    /// ```text
    /// {"pid":42,"id":7,"root":"request","tags":{"k":"v"},"start":1763780000.123456,
    ///  "duration_ns":1500000,"outcome":"success","dropped_spans":0,
    ///  "spans":[{"id":0,"name":"request","parent":null,"offset_ns":0,
    ///            "duration_ns":1500000,"outcome":"success"}, ...]}
    /// ```
    ///
    /// A span still running when the root ended has `"duration_ns":null`
    /// and `"outcome":null`.
    pub fn write_json(&self, pid: u32, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "{{\"pid\":{pid},\"id\":{},\"root\":", self.id);
        json_string(out, &self.root);
        out.push_str(",\"tags\":{");
        for (i, (k, v)) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(out, k);
            out.push(':');
            json_string(out, v);
        }
        let _ = write!(
            out,
            "}},\"start\":{:.6},\"duration_ns\":{},\"outcome\":\"{}\",\"dropped_spans\":{},\"spans\":[",
            self.start_unix,
            self.duration.as_nanos(),
            self.outcome.label(),
            self.dropped_spans
        );
        for (i, span) in self.spans.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"id\":{i},\"name\":");
            json_string(out, &span.name);
            match span.parent {
                Some(p) => {
                    let _ = write!(out, ",\"parent\":{p}");
                }
                None => out.push_str(",\"parent\":null"),
            }
            let _ = write!(out, ",\"offset_ns\":{}", span.offset.as_nanos());
            match span.duration {
                Some(d) => {
                    let _ = write!(out, ",\"duration_ns\":{}", d.as_nanos());
                }
                None => out.push_str(",\"duration_ns\":null"),
            }
            match span.outcome {
                Some(o) => {
                    let _ = write!(out, ",\"outcome\":\"{}\"}}", o.label());
                }
                None => out.push_str(",\"outcome\":null}"),
            }
        }
        out.push_str("]}");
    }
}

/// Appends `s` as a JSON string.
pub fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[test]
    fn spans_nest_across_threads_and_outcomes_are_kept() {
        let r = Registry::new();
        r.tracer().set_sample_every(1);
        let (req, db, cache) = (r.task("request[route=/a]"), r.task("db"), r.task("cache"));
        let guard = req.start();
        let _ = db.run(|| cache.run(|| Err::<(), _>(())));
        let parent = guard.parent();
        std::thread::scope(|s| {
            s.spawn(|| cache.run_in(&parent, || Ok::<_, ()>(())));
        });
        guard.success();
        let traces = r.tracer().traces();
        assert_eq!(traces.len(), 1);
        let t = &traces[0];
        assert_eq!(t.tags, [("route".to_owned(), "/a".to_owned())]);
        let shape: Vec<_> = t
            .spans
            .iter()
            .map(|s| (s.name.as_str(), s.parent, s.outcome))
            .collect();
        assert_eq!(
            shape,
            [
                ("request[route=/a]", None, Some(Outcome::Success)),
                ("db", Some(0), Some(Outcome::Error)),
                ("cache", Some(1), Some(Outcome::Error)),
                ("cache", Some(0), Some(Outcome::Success)),
            ]
        );
        for s in &t.spans[1..] {
            let parent = &t.spans[s.parent.unwrap()];
            assert!(s.offset >= parent.offset);
            assert!(s.offset + s.duration.unwrap() <= parent.offset + parent.duration.unwrap());
        }
        let mut json = String::new();
        t.write_json(9, &mut json);
        assert!(json.starts_with(&format!(
            "{{\"pid\":9,\"id\":{},\"root\":\"request[route=/a]\",\"tags\":{{\"route\":\"/a\"}},\"start\":",
            t.id
        )));
        assert!(json.contains("{\"id\":2,\"name\":\"cache\",\"parent\":1,\"offset_ns\":"));
    }

    #[test]
    fn the_ring_is_bounded_keeps_the_slowest_and_samples() {
        let r = Registry::new();
        let tracer = r.tracer();
        tracer.set_sample_every(1);
        tracer.set_capacity(5);
        let (slow, fast) = (r.task("slow"), r.task("fast"));
        let _ = slow.run(|| {
            std::thread::sleep(Duration::from_millis(20));
            Ok::<_, ()>(())
        });
        for _ in 0..10 {
            let _ = fast.run(|| Ok::<_, ()>(()));
        }
        let traces = tracer.traces();
        // 5 newest + the slow one (slowest of its root) + nothing new for
        // fast (its 3 slowest may be among the newest or not).
        assert!(traces.iter().any(|t| t.root == "slow"), "slowest kept");
        assert!(traces.len() <= 5 + 2 * SLOWEST_PER_ROOT);
        assert!(traces.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        tracer.set_sample_every(0);
        let before = tracer.traces().len();
        let _ = fast.run(|| Ok::<_, ()>(()));
        assert_eq!(tracer.traces().len(), before);
        tracer.set_sample_every(3);
        for _ in 0..9 {
            let _ = slow.run(|| Ok::<_, ()>(()));
        }
        let slow_kept = tracer.traces().iter().filter(|t| t.root == "slow").count();
        assert_eq!(slow_kept, 1 + 3, "one in three sampled");
    }

    #[test]
    fn a_full_trace_counts_what_it_drops() {
        let r = Registry::new();
        r.tracer().set_sample_every(1);
        r.tracer().set_max_spans(3);
        let (a, b) = (r.task("a"), r.task("b"));
        let _ = a.run(|| {
            for _ in 0..5 {
                let _ = b.run(|| Ok::<_, ()>(()));
            }
            Ok::<_, ()>(())
        });
        let t = &r.tracer().traces()[0];
        assert_eq!((t.spans.len(), t.dropped_spans), (3, 3));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\u{1}\n");
        assert_eq!(out, "\"a\\\"b\\\\c\\u0001\\n\"");
    }
}
