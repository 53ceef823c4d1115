//! `Registry`: every stat of a process, by name, plus the process-wide default.
//!
//! A by-name call first looks in a small per-thread cache keyed by the name
//! exactly as given, so the common case takes no lock and writes no shared
//! memory but the stat's own stripe. A miss sanitises the name (see
//! [`crate::name::sanitize`]), finds or creates the stat under a mutex, and
//! fills the cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed},
};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::thread::LocalKey;

use crate::cell::{DECLARATION_EPOCH, Kind, Scalar};
use crate::format::{write_line, write_value_line_end};
use crate::handles::{Counter, Gauge};
use crate::histogram::{Histogram, HistogramCell};
use crate::histogram_lines;
use crate::kinds::{WireKind, write_kind_line};
use crate::name::sanitize;
use crate::snapshot::{Entry, Snapshot};
use crate::task::{Task, TaskCell};
use crate::trace::Tracer;
use crate::value::Value;

/// Per-thread cache size at which the cache is emptied and refilled, so a
/// thread that uses endless generated names does not grow without bound.
const CACHE_LIMIT: usize = 16 * 1024;

/// How many stats' values [`Registry::render_into`] reads before writing
/// their lines: more than the loads a core keeps in flight, few enough
/// for the stack.
const VALUES_AHEAD: usize = 64;

static NEXT_REGISTRY_ID: AtomicU64 = AtomicU64::new(1);
static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

/// A thread's by-name shortcut into one registry: name as given → metric.
struct NameCache<V> {
    registry: u64,
    map: HashMap<Box<str>, V, foldhash::fast::FixedState>,
}

impl<V> NameCache<V> {
    const fn new() -> NameCache<V> {
        NameCache {
            registry: 0,
            map: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x5eed_57a7)),
        }
    }
}

thread_local! {
    static SCALARS: RefCell<NameCache<Arc<Scalar>>> = const { RefCell::new(NameCache::new()) };
    static HISTOGRAMS: RefCell<NameCache<Arc<HistogramCell>>> = const { RefCell::new(NameCache::new()) };
}

/// Runs `act` on the metric `name` resolves to, through the thread's cache;
/// `lookup` (the shared index, under its mutex) only on a miss. When the
/// thread-local is gone (recording from a thread-local destructor during
/// thread teardown), it goes straight to the shared index.
#[inline]
fn with_cached<V, R>(
    cache: &'static LocalKey<RefCell<NameCache<V>>>,
    registry: u64,
    name: &str,
    lookup: impl Fn() -> V,
    act: impl Fn(&V) -> R,
) -> R {
    cache
        .try_with(|cell| {
            let mut cache = cell.try_borrow_mut().ok()?;
            if cache.registry != registry {
                cache.map.clear();
                cache.registry = registry;
            }
            if let Some(metric) = cache.map.get(name) {
                return Some(act(metric));
            }
            let metric = lookup();
            let result = act(&metric);
            if cache.map.len() >= CACHE_LIMIT {
                cache.map.clear();
            }
            cache.map.insert(name.into(), metric);
            Some(result)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| act(&lookup()))
}

#[derive(Clone, Copy)]
enum Op {
    Add(Value),
    Set(Value),
}

impl Op {
    fn kind_if_new(self) -> Kind {
        match self {
            Op::Add(v) if !v.is_negative() => Kind::Counter,
            _ => Kind::Gauge,
        }
    }

    #[inline]
    fn apply(self, scalar: &Scalar) {
        match self {
            Op::Add(v) => scalar.add(v),
            Op::Set(v) => scalar.set(v),
        }
    }
}

type ByName<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// One named metric of any kind.
#[derive(Clone)]
enum Metric {
    Scalar(Arc<Scalar>),
    Histogram(Arc<HistogramCell>),
    Task(Arc<TaskCell>),
}

impl Metric {
    fn name(&self) -> &str {
        match self {
            Metric::Scalar(s) => s.name(),
            Metric::Histogram(h) => h.name(),
            Metric::Task(t) => t.name(),
        }
    }
}

#[derive(Default)]
struct Index {
    by_name: ByName<Arc<Scalar>>,
    histograms: ByName<Arc<HistogramCell>>,
    tasks: ByName<Arc<TaskCell>>,
    /// Metrics in name order, rebuilt only after a new name arrives, so a
    /// snapshot of an unchanged set of names costs one `Arc` clone.
    sorted: Option<Arc<Sorted>>,
}

/// The metrics in name order, with what rendering needs laid out for it.
struct Sorted {
    metrics: Box<[Metric]>,
    /// Every scalar's `name: ` back to back, in order. Rendering 10,000 stats
    /// was dominated by fetching each name from its own heap allocation
    /// (cache misses charged to `memmove`); this it reads front to back.
    prefixes: Box<[u8]>,
    /// Where each metric's prefix ends in `prefixes` (unchanged after a
    /// metric that is not a scalar).
    prefix_ends: Box<[usize]>,
}

impl Sorted {
    /// Bytes of slack after the last prefix, so any prefix up to this long
    /// can be copied as a fixed-size block (see [`Sorted::write_prefix`]).
    const SLACK: usize = 64;

    fn new(mut metrics: Vec<Metric>) -> Sorted {
        metrics.sort_by(|a, b| a.name().cmp(b.name()));
        let mut prefixes = Vec::new();
        let prefix_ends = metrics
            .iter()
            .map(|metric| {
                if let Metric::Scalar(scalar) = metric {
                    prefixes.extend_from_slice(scalar.name().as_bytes());
                    prefixes.extend_from_slice(b": ");
                }
                prefixes.len()
            })
            .collect();
        prefixes.resize(prefixes.len() + Sorted::SLACK, 0);
        Sorted {
            metrics: metrics.into(),
            prefixes: prefixes.into(),
            prefix_ends,
        }
    }

    /// Appends `prefixes[start..end]`. A short one is copied as a fixed
    /// [`Sorted::SLACK`]-byte block and cut back: an inlined copy instead of
    /// a `memcpy` call per line.
    #[inline]
    fn write_prefix(&self, buf: &mut Vec<u8>, start: usize, end: usize) {
        let len = end - start;
        if len <= Sorted::SLACK {
            let at = buf.len();
            buf.extend_from_slice(&self.prefixes[start..start + Sorted::SLACK]);
            buf.truncate(at + len);
        } else {
            buf.extend_from_slice(&self.prefixes[start..end]);
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, Metric> {
        self.metrics.iter()
    }
}

/// A set of stats, recorded by name or through handles.
///
/// Use [`Registry::global`] (what the crate-level [`crate::incr`] and
/// [`crate::set`] use, and what a pipe writer serves) or make your own with
/// [`Registry::new`] for tests and embedding.
pub struct Registry {
    id: u64,
    index: Mutex<Index>,
    tracer: Arc<Tracer>,
    /// The declaration lines last rendered, reused while neither the set
    /// of stats (call edges included) nor any kind changed (issue 15:
    /// rendering them was 13 % of a writer's CPU read once a second, for
    /// the same bytes every time).
    kinds: Mutex<Option<KindLines>>,
}

/// Declaration lines rendered for one set of stats at one kind epoch.
struct KindLines {
    sorted: Arc<Sorted>,
    epoch: u64,
    lines: Vec<u8>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("id", &self.id)
            .field("stats", &self.len())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry {
            id: NEXT_REGISTRY_ID.fetch_add(1, Relaxed),
            index: Mutex::default(),
            tracer: Arc::default(),
            kinds: Mutex::default(),
        }
    }

    /// The process-wide registry.
    pub fn global() -> &'static Registry {
        &GLOBAL
    }

    /// Adds `by` to the stat `name`, creating it at `by` if missing. An
    /// integer stat stays an integer until a float is added or it would
    /// overflow `i64`; from then on it is a float.
    #[inline]
    pub fn incr(&self, name: &str, by: impl Into<Value>) {
        self.apply(name, Op::Add(by.into()));
    }

    /// Sets the stat `name` to `value`. Setting an integer on a float stat
    /// keeps it a float.
    #[inline]
    pub fn set(&self, name: &str, value: impl Into<Value>) {
        self.apply(name, Op::Set(value.into()));
    }

    /// The current value of `name` (after sanitising), if it exists.
    pub fn get(&self, name: &str) -> Option<Value> {
        let name = sanitize(name);
        self.lock().by_name.get(name.as_ref()).map(|s| s.value())
    }

    /// How the stat `name` is used so far, if it exists.
    pub fn kind(&self, name: &str) -> Option<Kind> {
        let name = sanitize(name);
        self.lock().by_name.get(name.as_ref()).map(|s| s.kind())
    }

    /// A counter handle for `name`: look it up once, then each increment is
    /// one atomic add.
    pub fn counter(&self, name: &str) -> Counter {
        Counter::new(self.lookup_or_insert(name, Kind::Counter))
    }

    /// A gauge handle for `name`. The stat is a gauge from now on.
    pub fn gauge(&self, name: &str) -> Gauge {
        let scalar = self.lookup_or_insert(name, Kind::Gauge);
        scalar.mark_gauge();
        Gauge::new(scalar)
    }

    /// A histogram handle for `name` (a distribution of ints, floats or
    /// durations; see [`Histogram`]). Histograms have their own namespace.
    pub fn histogram(&self, name: &str) -> Histogram {
        Histogram::new(self.histogram_cell(name))
    }

    /// Records `value` into the histogram `name`, creating it if missing.
    #[inline]
    pub fn record(&self, name: &str, value: impl Into<Value>) {
        let value = value.into();
        with_cached(
            &HISTOGRAMS,
            self.id,
            name,
            || self.histogram_cell(name),
            |cell| match value {
                Value::Int(i) => cell.record_int(i),
                Value::Float(f) => cell.record_float(f),
            },
        );
    }

    /// A task handle for `name` (see [`Task`]). Tasks have their own
    /// namespace.
    pub fn task(&self, name: &str) -> Task {
        let name = sanitize(name);
        let mut index = self.lock();
        if let Some(cell) = index.tasks.get(name.as_ref()) {
            return Task::new(Arc::clone(cell));
        }
        let cell = Arc::new(TaskCell::new(
            name.as_ref().into(),
            Arc::clone(&self.tracer),
        ));
        index.tasks.insert(name.as_ref().into(), Arc::clone(&cell));
        index.sorted = None;
        Task::new(cell)
    }

    /// The tracer of this registry's tasks: sampling and the ring of
    /// completed traces (see [`crate::trace`]).
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Number of metrics (stats, histograms and tasks).
    pub fn len(&self) -> usize {
        let index = self.lock();
        index.by_name.len() + index.histograms.len() + index.tasks.len()
    }

    /// Whether there are no stats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(name, value, kind)` for every scalar stat (counter or
    /// gauge) in name order; histograms and tasks are not included.
    pub fn for_each(&self, mut f: impl FnMut(&str, Value, Kind)) {
        for metric in self.sorted().iter() {
            if let Metric::Scalar(scalar) = metric {
                f(scalar.name(), scalar.value(), scalar.kind());
            }
        }
    }

    /// Appends every metric as `name: value\n` lines in name order: a
    /// scalar as one line, a histogram as the lines of
    /// [`crate::histogram_lines`], a task as its outcome counters,
    /// `.current`, `.highwater` and one duration histogram per outcome.
    pub fn render_into(&self, buf: &mut Vec<u8>) {
        let sorted = self.sorted();
        // Prefixes plus room for a typical value and newline.
        buf.reserve(sorted.prefixes.len() + sorted.metrics.len() * 12);
        let mut prefix_start = 0;
        let mut values = [Value::Int(0); VALUES_AHEAD];
        let metrics = sorted.metrics.chunks(VALUES_AHEAD);
        for (metrics, prefix_ends) in metrics.zip(sorted.prefix_ends.chunks(VALUES_AHEAD)) {
            // A chunk's scalar values first, in a loop that does nothing
            // else: a writer renders after a second asleep, with each
            // stat's storage out of the caches, and loads with no
            // formatting between them are in flight together instead of
            // one after another. A chunk, not the whole registry: the
            // values stay on the stack and in the L1 cache however many
            // stats there are.
            for (value, metric) in values.iter_mut().zip(metrics) {
                if let Metric::Scalar(scalar) = metric {
                    *value = scalar.value();
                }
            }
            for ((metric, &prefix_end), &value) in metrics.iter().zip(prefix_ends).zip(&values) {
                match metric {
                    Metric::Scalar(_) => {
                        sorted.write_prefix(buf, prefix_start, prefix_end);
                        write_value_line_end(buf, value);
                        prefix_start = prefix_end;
                    }
                    Metric::Histogram(cell) => {
                        histogram_lines::render(cell.name(), &cell.distribution(), buf);
                    }
                    Metric::Task(task) => render_task(task, buf),
                }
            }
        }
    }

    /// Appends the metadata lines that tell a reader what each stat is
    /// (`#counter NAME: 1`, `#histogram NAME: 1`, `#max NAME: 1`; see
    /// [`crate::kinds`]). Gauges need no line. The lines are kept and
    /// copied while no stat or call edge was added and none changed kind.
    pub fn render_kinds_into(&self, buf: &mut Vec<u8>) {
        // Read before rendering: a kind changed or a call edge added
        // meanwhile bumps it again, so these lines are rendered anew next
        // time.
        let epoch = DECLARATION_EPOCH.load(Acquire);
        let sorted = self.sorted();
        let mut cache = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = cache.as_ref()
            && kept.epoch == epoch
            && Arc::ptr_eq(&kept.sorted, &sorted)
        {
            buf.extend_from_slice(&kept.lines);
            return;
        }
        let mut lines = Vec::new();
        render_kind_lines(&sorted, &mut lines);
        buf.extend_from_slice(&lines);
        *cache = Some(KindLines {
            sorted,
            epoch,
            lines,
        });
    }

    /// Every stat's current value: the lines [`Registry::render_into`]
    /// writes, read back.
    pub fn snapshot(&self) -> Snapshot {
        let sorted = self.sorted();
        let scalars: Option<Vec<Entry>> = sorted
            .iter()
            .map(|m| match m {
                Metric::Scalar(s) => Some(Entry {
                    name: s.name().into(),
                    value: s.value(),
                }),
                _ => None,
            })
            .collect();
        match scalars {
            Some(entries) => Snapshot::from_sorted(entries),
            None => {
                let mut buf = Vec::new();
                self.render_into(&mut buf);
                Snapshot::parse(&buf, usize::MAX).0
            }
        }
    }

    #[inline]
    fn apply(&self, name: &str, op: Op) {
        with_cached(
            &SCALARS,
            self.id,
            name,
            || self.lookup_or_insert(name, op.kind_if_new()),
            |scalar| op.apply(scalar),
        );
    }

    fn histogram_cell(&self, raw_name: &str) -> Arc<HistogramCell> {
        let name = sanitize(raw_name);
        let mut index = self.lock();
        if let Some(cell) = index.histograms.get(name.as_ref()) {
            return Arc::clone(cell);
        }
        let cell = Arc::new(HistogramCell::new(name.as_ref().into()));
        index
            .histograms
            .insert(name.as_ref().into(), Arc::clone(&cell));
        index.sorted = None;
        cell
    }

    fn lookup_or_insert(&self, raw_name: &str, kind: Kind) -> Arc<Scalar> {
        let name = sanitize(raw_name);
        let mut index = self.lock();
        if let Some(scalar) = index.by_name.get(name.as_ref()) {
            return Arc::clone(scalar);
        }
        let scalar = Arc::new(Scalar::new(name.as_ref().into(), kind));
        index
            .by_name
            .insert(name.as_ref().into(), Arc::clone(&scalar));
        index.sorted = None;
        scalar
    }

    fn sorted(&self) -> Arc<Sorted> {
        let mut index = self.lock();
        if let Some(sorted) = &index.sorted {
            return Arc::clone(sorted);
        }
        let mut all: Vec<Metric> = index
            .by_name
            .values()
            .cloned()
            .map(Metric::Scalar)
            .collect();
        all.extend(index.histograms.values().cloned().map(Metric::Histogram));
        all.extend(index.tasks.values().cloned().map(Metric::Task));
        let sorted = Arc::new(Sorted::new(all));
        index.sorted = Some(Arc::clone(&sorted));
        sorted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A task's lines: its outcomes, `.current`, `.highwater`, its duration
/// histograms and its call edges.
fn render_task(task: &TaskCell, buf: &mut Vec<u8>) {
    for (name, total) in task.outcome_lines() {
        write_line(buf, name, total);
    }
    write_line(buf, &task.sub_name("current"), Value::Int(task.current()));
    write_line(
        buf,
        &task.sub_name("highwater"),
        Value::Int(task.highwater()),
    );
    for histogram in task.duration_histograms() {
        histogram_lines::render(histogram.name(), &histogram.distribution(), buf);
    }
    task.edges()
        .for_each_counter(|edge| write_line(buf, edge.name(), edge.value()));
}

/// The declaration lines of `sorted`, rendered.
fn render_kind_lines(sorted: &Sorted, buf: &mut Vec<u8>) {
    for metric in sorted.iter() {
        match metric {
            Metric::Scalar(scalar) => {
                if let Some(kind) = scalar.kind().wire() {
                    write_kind_line(buf, kind, scalar.name());
                }
            }
            Metric::Histogram(cell) => write_kind_line(buf, WireKind::Histogram, cell.name()),
            Metric::Task(task) => {
                for name in task.outcome_names() {
                    write_kind_line(buf, WireKind::Counter, name);
                }
                write_kind_line(buf, WireKind::Max, &task.sub_name("highwater"));
                for histogram in task.duration_histograms() {
                    write_kind_line(buf, WireKind::Histogram, histogram.name());
                }
                task.edges().for_each_counter(|edge| {
                    write_kind_line(buf, WireKind::Counter, edge.name());
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
