//! `Registry`: every stat of a process, by name, plus the process-wide default.
//!
//! A by-name call first looks in a small per-thread cache keyed by the name
//! exactly as given, so the common case takes no lock and writes no shared
//! memory but the stat's own stripe. A miss sanitises the name (see
//! [`crate::name::sanitize`]), finds or creates the stat under a mutex, and
//! fills the cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use crate::cell::{Kind, Scalar};
use crate::format::write_line;
use crate::handles::{Counter, Gauge};
use crate::name::sanitize;
use crate::snapshot::{Entry, Snapshot};
use crate::value::Value;

/// Per-thread cache size at which the cache is emptied and refilled, so a
/// thread that uses endless generated names does not grow without bound.
const CACHE_LIMIT: usize = 16 * 1024;

static NEXT_REGISTRY_ID: AtomicU64 = AtomicU64::new(1);
static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

struct NameCache {
    registry: u64,
    map: HashMap<Box<str>, Arc<Scalar>, foldhash::fast::FixedState>,
}

thread_local! {
    static CACHE: RefCell<NameCache> = const {
        RefCell::new(NameCache {
            registry: 0,
            map: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x5eed_57a7)),
        })
    };
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

#[derive(Default)]
struct Index {
    by_name: HashMap<Box<str>, Arc<Scalar>, foldhash::fast::RandomState>,
    /// Stats in name order, rebuilt only after a new name arrives, so a
    /// snapshot of an unchanged set of names costs one `Arc` clone.
    sorted: Option<Arc<[Arc<Scalar>]>>,
}

/// A set of stats, recorded by name or through handles.
///
/// Use [`Registry::global`] (what the crate-level [`crate::incr`] and
/// [`crate::set`] use, and what a pipe writer serves) or make your own with
/// [`Registry::new`] for tests and embedding.
pub struct Registry {
    id: u64,
    index: Mutex<Index>,
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

    /// Number of stats.
    pub fn len(&self) -> usize {
        self.lock().by_name.len()
    }

    /// Whether there are no stats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(name, value, kind)` for every stat in name order.
    pub fn for_each(&self, mut f: impl FnMut(&str, Value, Kind)) {
        for scalar in self.sorted().iter() {
            f(scalar.name(), scalar.value(), scalar.kind());
        }
    }

    /// Appends every stat as a `name: value\n` line in name order.
    pub fn render_into(&self, buf: &mut Vec<u8>) {
        let sorted = self.sorted();
        buf.reserve(sorted.len() * 32);
        for scalar in sorted.iter() {
            write_line(buf, scalar.name(), scalar.value());
        }
    }

    /// Every stat's current value.
    pub fn snapshot(&self) -> Snapshot {
        let sorted = self.sorted();
        Snapshot::from_sorted(
            sorted
                .iter()
                .map(|s| Entry {
                    name: s.name().to_owned(),
                    value: s.value(),
                })
                .collect(),
        )
    }

    #[inline]
    fn apply(&self, name: &str, op: Op) {
        let applied = CACHE
            .try_with(|cell| {
                let Ok(mut cache) = cell.try_borrow_mut() else {
                    return false;
                };
                if cache.registry != self.id {
                    cache.map.clear();
                    cache.registry = self.id;
                }
                if let Some(scalar) = cache.map.get(name) {
                    op.apply(scalar);
                    return true;
                }
                let scalar = self.lookup_or_insert(name, op.kind_if_new());
                op.apply(&scalar);
                if cache.map.len() >= CACHE_LIMIT {
                    cache.map.clear();
                }
                cache.map.insert(name.into(), scalar);
                true
            })
            .unwrap_or(false);
        if !applied {
            // Thread-local storage is being torn down (recording from a
            // thread-local destructor): go straight to the shared index.
            op.apply(&self.lookup_or_insert(name, op.kind_if_new()));
        }
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

    fn sorted(&self) -> Arc<[Arc<Scalar>]> {
        let mut index = self.lock();
        if let Some(sorted) = &index.sorted {
            return Arc::clone(sorted);
        }
        let mut all: Vec<Arc<Scalar>> = index.by_name.values().cloned().collect();
        all.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        let sorted: Arc<[Arc<Scalar>]> = all.into();
        index.sorted = Some(Arc::clone(&sorted));
        sorted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipestatic_semantics() {
        let r = Registry::new();
        r.incr("hits", 2);
        r.incr("hits", 3);
        assert_eq!(r.get("hits"), Some(Value::Int(5)));
        r.incr("hits", 0.5);
        assert_eq!(r.get("hits"), Some(Value::Float(5.5)));
        r.set("hits", 1);
        assert_eq!(r.get("hits"), Some(Value::Float(1.0)));
        r.set("temp", 21);
        assert_eq!(r.get("temp"), Some(Value::Int(21)));
        assert_eq!(r.get("missing"), None);
    }

    #[test]
    fn names_are_sanitised_once_and_shared() {
        let r = Registry::new();
        r.incr("two\nlines", 1);
        r.incr("two_lines", 1);
        r.incr("  two_lines ", 1);
        assert_eq!(r.get("two_lines"), Some(Value::Int(3)));
        assert_eq!(r.len(), 1);
        r.counter("two\nlines").incr();
        assert_eq!(r.get("two_lines"), Some(Value::Int(4)));
    }

    #[test]
    fn registries_are_independent_on_one_thread() {
        let a = Registry::new();
        let b = Registry::new();
        a.incr("x", 1);
        b.incr("x", 10);
        a.incr("x", 1);
        assert_eq!(a.get("x"), Some(Value::Int(2)));
        assert_eq!(b.get("x"), Some(Value::Int(10)));
    }

    #[test]
    fn kinds_follow_use() {
        let r = Registry::new();
        r.incr("requests", 1);
        r.incr("balance", -1);
        r.set("temp", 3);
        r.counter("handled").incr();
        r.incr("queue", 1);
        r.gauge("queue");
        let kinds: Vec<_> = ["requests", "balance", "temp", "handled", "queue"]
            .iter()
            .map(|n| r.kind(n).unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::Counter,
                Kind::Gauge,
                Kind::Gauge,
                Kind::Counter,
                Kind::Gauge
            ]
        );
    }

    #[test]
    fn renders_sorted_and_sees_new_names() {
        let r = Registry::new();
        r.set("b", 2);
        r.set("a", 1.0);
        let mut buf = Vec::new();
        r.render_into(&mut buf);
        assert_eq!(buf, b"a: 1.0\nb: 2\n");
        r.incr("c d", 1);
        buf.clear();
        r.render_into(&mut buf);
        assert_eq!(buf, b"a: 1.0\nb: 2\nc d: 1\n");
        assert_eq!(r.snapshot().len(), 3);
    }
}
