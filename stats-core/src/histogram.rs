//! Histograms (distributions) of ints, floats and durations, on the shared
//! bucket layout of [`crate::buckets`], plus a timer guard.
//!
//! Recording is one bucket increment, one sum update and a min/max check on
//! the calling thread's stripe; stripes are allocated on first use, so a
//! histogram touched by one thread costs one stripe (about 7 KiB).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::buckets::{self, BUCKETS};
use crate::cell::{STRIPES, stripe_index};
use crate::value::Value;

/// Quantiles every histogram reports, with the suffix each is rendered under.
pub const QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")];

/// Two cache lines of its own (like the scalar stripes), so threads on
/// neighbouring stripes never share the line their sums live on.
#[repr(align(128))]
struct Stripe {
    buckets: Box<[AtomicU64]>,
    int_sum: AtomicI64,
    float_sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    nan: AtomicU64,
}

impl Stripe {
    fn new() -> Stripe {
        Stripe {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            int_sum: AtomicI64::new(0),
            float_sum: AtomicU64::new(0f64.to_bits()),
            min: AtomicU64::new(f64::INFINITY.to_bits()),
            max: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
            nan: AtomicU64::new(0),
        }
    }
}

/// The storage behind one histogram stat.
pub(crate) struct HistogramCell {
    name: Box<str>,
    is_float: AtomicBool,
    stripes: [OnceLock<Stripe>; STRIPES],
}

/// Everything a histogram holds, summed over its stripes (or over processes).
#[derive(Clone, Debug, PartialEq)]
pub struct Distribution {
    /// Count per bucket index (see [`crate::buckets`]); `BUCKETS` long.
    pub buckets: Vec<u64>,
    /// Values recorded (NaN excluded).
    pub count: u64,
    /// Their sum: an integer while only integers were recorded.
    pub sum: Value,
    /// Smallest value (`+inf` when empty).
    pub min: f64,
    /// Largest value (`-inf` when empty).
    pub max: f64,
    /// NaN values seen (not in the buckets, sum, min or max).
    pub nan: u64,
    /// Whether any float was recorded (min, max and sum render as floats).
    pub is_float: bool,
}

impl Default for Distribution {
    fn default() -> Distribution {
        Distribution {
            buckets: vec![0; BUCKETS],
            count: 0,
            sum: Value::Int(0),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            nan: 0,
            is_float: false,
        }
    }
}

impl Distribution {
    /// The value at quantile `q` (0..=1), within the error documented in
    /// [`crate::buckets`]; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The rank of the wanted value, 1-based, as "nearest rank".
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank == 1 {
            return Some(self.min);
        }
        if rank >= self.count {
            return Some(self.max);
        }
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(buckets::estimate(index, self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Adds another distribution into this one (the cross-process merge).
    pub fn merge(&mut self, other: &Distribution) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum = self.sum.sum(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.nan += other.nan;
        self.is_float |= other.is_float;
    }
}

impl HistogramCell {
    pub(crate) fn new(name: Box<str>) -> HistogramCell {
        HistogramCell {
            name,
            is_float: AtomicBool::new(false),
            stripes: Default::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn stripe(&self) -> &Stripe {
        self.stripes[stripe_index()].get_or_init(Stripe::new)
    }

    #[inline]
    pub(crate) fn record_int(&self, value: i64) {
        let stripe = self.stripe();
        let as_float = value as f64;
        stripe.buckets[buckets::index(as_float)].fetch_add(1, Relaxed);
        if stripe
            .int_sum
            .fetch_add(value, Relaxed)
            .checked_add(value)
            .is_none()
        {
            // Keep the total: undo the wrapped add and carry it as a float.
            stripe.int_sum.fetch_sub(value, Relaxed);
            self.mark_float();
            add_float(&stripe.float_sum, as_float);
        }
        update_extremes(stripe, as_float);
    }

    #[inline]
    pub(crate) fn record_float(&self, value: f64) {
        if !self.is_float.load(Relaxed) {
            self.mark_float();
        }
        let stripe = self.stripe();
        if value.is_nan() {
            stripe.nan.fetch_add(1, Relaxed);
            return;
        }
        stripe.buckets[buckets::index(value)].fetch_add(1, Relaxed);
        add_float(&stripe.float_sum, value);
        update_extremes(stripe, value);
    }

    #[cold]
    fn mark_float(&self) {
        self.is_float.store(true, Relaxed);
    }

    /// Sums the stripes.
    pub(crate) fn distribution(&self) -> Distribution {
        let mut out = Distribution::default();
        let mut int_sum: i128 = 0;
        let mut float_sum = 0.0;
        for stripe in self.stripes.iter().filter_map(OnceLock::get) {
            for (total, bucket) in out.buckets.iter_mut().zip(stripe.buckets.iter()) {
                *total += bucket.load(Relaxed);
            }
            int_sum += i128::from(stripe.int_sum.load(Relaxed));
            float_sum += f64::from_bits(stripe.float_sum.load(Relaxed));
            out.min = out.min.min(f64::from_bits(stripe.min.load(Relaxed)));
            out.max = out.max.max(f64::from_bits(stripe.max.load(Relaxed)));
            out.nan += stripe.nan.load(Relaxed);
        }
        out.count = out.buckets.iter().sum();
        out.is_float = self.is_float.load(Relaxed);
        out.sum = if out.is_float {
            Value::Float(int_sum as f64 + float_sum)
        } else {
            i64::try_from(int_sum).map_or(Value::Float(int_sum as f64), Value::Int)
        };
        out
    }
}

#[inline]
fn add_float(cell: &AtomicU64, by: f64) {
    let mut current = cell.load(Relaxed);
    loop {
        let next = (f64::from_bits(current) + by).to_bits();
        match cell.compare_exchange_weak(current, next, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// A load and compare in the common case; a write only for a new extreme.
#[inline]
fn update_extremes(stripe: &Stripe, value: f64) {
    let min = stripe.min.load(Relaxed);
    if value < f64::from_bits(min) {
        let _ = stripe.min.fetch_update(Relaxed, Relaxed, |m| {
            (value < f64::from_bits(m)).then_some(value.to_bits())
        });
    }
    let max = stripe.max.load(Relaxed);
    if value > f64::from_bits(max) {
        let _ = stripe.max.fetch_update(Relaxed, Relaxed, |m| {
            (value > f64::from_bits(m)).then_some(value.to_bits())
        });
    }
}

/// A histogram handle: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Histogram {
    cell: std::sync::Arc<HistogramCell>,
}

impl Histogram {
    pub(crate) fn new(cell: std::sync::Arc<HistogramCell>) -> Histogram {
        Histogram { cell }
    }

    /// Records an integer.
    #[inline]
    pub fn record(&self, value: i64) {
        self.cell.record_int(value);
    }

    /// Records a float; the histogram's sum, min and max become floats.
    #[inline]
    pub fn record_float(&self, value: f64) {
        self.cell.record_float(value);
    }

    /// Records a duration, in seconds (a float).
    #[inline]
    pub fn record_duration(&self, duration: Duration) {
        self.cell.record_float(duration.as_secs_f64());
    }

    /// Starts a timer that records the elapsed time here when dropped.
    #[inline]
    pub fn start_timer(&self) -> Timer<'_> {
        Timer {
            histogram: self,
            start: crate::clock::now(),
        }
    }

    /// Everything recorded so far.
    pub fn distribution(&self) -> Distribution {
        self.cell.distribution()
    }

    /// The histogram's (sanitised) name.
    pub fn name(&self) -> &str {
        self.cell.name()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.distribution();
        f.debug_struct("Histogram")
            .field("name", &self.name())
            .field("count", &d.count)
            .finish()
    }
}

/// Records the time from its creation to its drop into a histogram.
#[must_use = "a timer records when it is dropped; bind it to a variable"]
pub struct Timer<'a> {
    histogram: &'a Histogram,
    start: crate::clock::Instant,
}

impl Timer<'_> {
    /// Stops now and records (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram
            .record_duration(crate::clock::elapsed(self.start));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram() -> Histogram {
        Histogram::new(std::sync::Arc::new(HistogramCell::new("h".into())))
    }

    #[test]
    fn ints_keep_an_int_sum() {
        let h = histogram();
        for v in [3, 1, 4, 1, 5] {
            h.record(v);
        }
        let d = h.distribution();
        assert_eq!(
            (d.count, d.sum, d.min, d.max, d.is_float),
            (5, Value::Int(14), 1.0, 5.0, false)
        );
    }

    #[test]
    fn a_float_makes_it_float_and_nan_is_set_apart() {
        let h = histogram();
        h.record(2);
        h.record_float(0.5);
        h.record_float(f64::NAN);
        let d = h.distribution();
        assert_eq!(
            (d.count, d.sum, d.nan, d.is_float),
            (2, Value::Float(2.5), 1, true)
        );
    }

    #[test]
    fn quantiles_are_within_the_documented_error() {
        let h = histogram();
        for i in 1..=10_000 {
            h.record_float(f64::from(i) / 1000.0);
        }
        let d = h.distribution();
        for (q, _) in QUANTILES {
            let exact = q * 10.0;
            let got = d.quantile(q).unwrap();
            assert!(
                ((got - exact) / exact).abs() <= 1.0 / 9.0,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(d.quantile(1.0), Some(10.0));
        assert_eq!(d.quantile(0.0), Some(0.001));
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let parts = [histogram(), histogram(), histogram()];
        let whole = histogram();
        for i in 0..3000i64 {
            let v = (i * 7919) % 5000 - 1000;
            parts[(i % 3) as usize].record(v);
            whole.record(v);
        }
        let mut merged = Distribution::default();
        for p in &parts {
            merged.merge(&p.distribution());
        }
        assert_eq!(merged, whole.distribution());
    }

    #[test]
    fn timer_records_on_drop() {
        let h = histogram();
        {
            let _t = h.start_timer();
            std::thread::sleep(Duration::from_millis(2));
        }
        let d = h.distribution();
        assert_eq!(d.count, 1);
        assert!(d.min >= 0.002 && d.min < 1.0, "{}", d.min);
    }

    #[test]
    fn many_threads_lose_nothing() {
        let h = histogram();
        std::thread::scope(|s| {
            for t in 0..8 {
                let h = &h;
                s.spawn(move || {
                    for i in 0..10_000 {
                        h.record(t * 10_000 + i);
                    }
                });
            }
        });
        let d = h.distribution();
        assert_eq!(d.count, 80_000);
        assert_eq!(d.sum, Value::Int((0..80_000i64).sum()));
        assert_eq!((d.min, d.max), (0.0, 79_999.0));
    }
}
