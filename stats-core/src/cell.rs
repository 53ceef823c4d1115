//! The storage behind one scalar stat: striped atomics, so threads that
//! record into the same stat do not fight over one cache line.
//!
//! Each thread is given a stripe on first use (the one fewest live threads
//! hold, handed back when the thread exits, so two live threads share a
//! stripe only when more than [`STRIPES`] threads record); an integer
//! increment is one relaxed `fetch_add` on that thread's stripe. Reading sums
//! the stripes. A float increment is a compare-and-swap loop on the
//! thread's stripe's float half; once any float has been recorded the stat
//! reads as a float for good.
//!
//! Whether a float was recorded is kept in each stripe's own block, not in
//! the stat's header: reading a value where one thread records (the usual
//! case) then touches one cache line, not two. A writer's render of its
//! registry, after a second asleep, finds every stat out of the caches,
//! and that miss was most of a serve's user time (BENCHMARKS.md).

use std::cell::Cell;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

use crate::value::Value;

/// Stripes per stat. Four stripes of 128 bytes (two cache lines, because
/// x86's adjacent-line prefetcher couples pairs) keep a stat at 512 bytes
/// while two to four hot threads never share a line.
pub(crate) const STRIPES: usize = 4;

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    int: AtomicI64,
    float: AtomicU64,
    /// A float was recorded through this stripe (or, on the first stripe,
    /// set): the stat reads as a float for good. Never cleared.
    is_float: AtomicBool,
}

/// What the registry knows about how a stat is used; drives merge rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Only ever increased: safe to keep counting after its process exits.
    Counter,
    /// Set, or moved both ways: its value means something only while its
    /// process lives.
    Gauge,
}

impl Kind {
    /// What a reader is told of a scalar of this kind: a counter declares
    /// itself (`#counter NAME: 1`), a gauge needs no line (an undeclared
    /// stat is a gauge). The two enums stay apart because a scalar can only
    /// be one of these two, while [`crate::kinds::WireKind`] also names
    /// histograms and task high-water marks, which are not scalars.
    pub fn wire(self) -> Option<crate::kinds::WireKind> {
        match self {
            Kind::Counter => Some(crate::kinds::WireKind::Counter),
            Kind::Gauge => None,
        }
    }
}

/// Bumped whenever a declaration line of any registry changes without its
/// set of stats changing: a scalar changes kind (a counter made a gauge,
/// the only change there is), or a task gets a new call edge, whose
/// counters are made on its first call ([`crate::span`]). A registry's
/// cached declaration lines ([`crate::Registry::render_kinds_into`]) are
/// then rendered again.
pub(crate) static DECLARATION_EPOCH: AtomicU64 = AtomicU64::new(0);

const COUNTER: u8 = 0;
const GAUGE: u8 = 1;

/// One scalar stat.
pub(crate) struct Scalar {
    name: Box<str>,
    kind: AtomicU8,
    stripes: [Stripe; STRIPES],
}

/// How many live threads hold each stripe.
static STRIPE_HOLDERS: [AtomicUsize; STRIPES] = [const { AtomicUsize::new(0) }; STRIPES];

/// One past the highest stripe any thread ever claimed. Stripes are claimed
/// lowest first, so in a process where one thread records, reading a value
/// touches one stripe instead of [`STRIPES`]. It never goes down, and a
/// stripe only holds data once claimed, so skipping the rest loses nothing.
static STRIPES_IN_USE: AtomicUsize = AtomicUsize::new(1);

/// No stripe chosen yet.
const UNCLAIMED: usize = usize::MAX;

thread_local! {
    /// This thread's stripe: a const, destructor-free thread-local, so the
    /// hot path is one TLS load.
    static STRIPE: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the stripe back when the thread exits. Kept apart from
    /// [`STRIPE`] so only the first record of a thread pays for registering
    /// a destructor.
    static STRIPE_LEASE: StripeLease = const { StripeLease(Cell::new(UNCLAIMED)) };
}

struct StripeLease(Cell<usize>);

impl Drop for StripeLease {
    fn drop(&mut self) {
        if let Some(holders) = STRIPE_HOLDERS.get(self.0.get()) {
            holders.fetch_sub(1, Relaxed);
        }
    }
}

/// Takes the stripe fewest live threads hold. Two threads starting at the
/// same instant may pick the same one; that costs speed, never correctness.
#[cold]
fn claim_stripe() -> usize {
    let index = (0..STRIPES)
        .min_by_key(|&i| STRIPE_HOLDERS[i].load(Relaxed))
        .unwrap_or(0);
    STRIPE_HOLDERS[index].fetch_add(1, Relaxed);
    // Release pairs with the Acquire in `stripes_in_use`: a reader that sees
    // this stripe's adds also sees that it must read it.
    STRIPES_IN_USE.fetch_max(index + 1, Release);
    if STRIPE_LEASE.try_with(|lease| lease.0.set(index)).is_err() {
        // The thread is exiting and cannot hold a lease: do not count it.
        STRIPE_HOLDERS[index].fetch_sub(1, Relaxed);
    }
    index
}

/// How many stripes, from the first, can hold data.
#[inline]
pub(crate) fn stripes_in_use() -> usize {
    STRIPES_IN_USE.load(Acquire).min(STRIPES)
}

#[inline]
pub(crate) fn stripe_index() -> usize {
    // During thread teardown the thread-local may be gone; any stripe is
    // still correct, only slower.
    STRIPE
        .try_with(|cell| {
            let index = cell.get();
            if index != UNCLAIMED {
                return index;
            }
            let index = claim_stripe();
            cell.set(index);
            index
        })
        .unwrap_or(0)
        % STRIPES
}

impl Scalar {
    pub(crate) fn new(name: Box<str>, kind: Kind) -> Scalar {
        Scalar {
            name,
            kind: AtomicU8::new(match kind {
                Kind::Counter => COUNTER,
                Kind::Gauge => GAUGE,
            }),
            stripes: Default::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn kind(&self) -> Kind {
        if self.kind.load(Relaxed) == COUNTER {
            Kind::Counter
        } else {
            Kind::Gauge
        }
    }

    /// Makes the stat a gauge for good (a gauge handle was asked for).
    pub(crate) fn mark_gauge(&self) {
        if self.kind.load(Relaxed) != GAUGE {
            self.demote_to_gauge();
        }
    }

    #[cold]
    fn demote_to_gauge(&self) {
        self.kind.store(GAUGE, Relaxed);
        // Release: whoever reads the new epoch sees the new kind.
        DECLARATION_EPOCH.fetch_add(1, Release);
    }

    /// Adds a non-negative integer: the counter hot path.
    #[inline]
    pub(crate) fn add_unsigned(&self, by: u64) {
        match i64::try_from(by) {
            Ok(by) => self.add_int(by),
            Err(_) => self.add_float(by as f64),
        }
    }

    /// Adds any integer; a negative one makes the stat a gauge.
    #[inline]
    pub(crate) fn add_int(&self, by: i64) {
        let stripe = &self.stripes[stripe_index()];
        let before = stripe.int.fetch_add(by, Relaxed);
        if before.checked_add(by).is_none() {
            self.int_overflowed(stripe, by);
        }
    }

    #[inline]
    pub(crate) fn add(&self, by: Value) {
        if by.is_negative() && self.kind.load(Relaxed) == COUNTER {
            self.demote_to_gauge();
        }
        match by {
            Value::Int(i) => self.add_int(i),
            Value::Float(f) => self.add_float(f),
        }
    }

    /// The wrapped add is undone and the amount moved to the float half, so
    /// the total stays right and the stat reads as a float from now on.
    #[cold]
    fn int_overflowed(&self, stripe: &Stripe, by: i64) {
        stripe.int.fetch_sub(by, Relaxed);
        self.add_float_to(stripe, by as f64);
    }

    pub(crate) fn add_float(&self, by: f64) {
        self.add_float_to(&self.stripes[stripe_index()], by);
    }

    fn add_float_to(&self, stripe: &Stripe, by: f64) {
        if !stripe.is_float.load(Relaxed) {
            stripe.is_float.store(true, Relaxed);
        }
        let mut current = stripe.float.load(Relaxed);
        loop {
            let next = (f64::from_bits(current) + by).to_bits();
            match stripe
                .float
                .compare_exchange_weak(current, next, Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Replaces the value; makes the stat a gauge. An integer set on a float
    /// stat keeps it a float.
    pub(crate) fn set(&self, value: Value) {
        self.mark_gauge();
        let (int, float) = match value {
            Value::Int(i) => (i, 0.0f64),
            Value::Float(f) => {
                self.stripes[0].is_float.store(true, Relaxed);
                (0, f)
            }
        };
        for (i, stripe) in self.stripes.iter().enumerate() {
            stripe.int.store(if i == 0 { int } else { 0 }, Relaxed);
            stripe
                .float
                .store(if i == 0 { float } else { 0.0 }.to_bits(), Relaxed);
        }
    }

    /// The current value: the sum of the stripes.
    pub(crate) fn value(&self) -> Value {
        let stripes = stripes_in_use();
        if stripes == 1 {
            // Only one thread has ever recorded (the usual case when a
            // snapshot of many stats is rendered): one stripe, no carry.
            let first = &self.stripes[0];
            let (int, bits) = (first.int.load(Relaxed), first.float.load(Relaxed));
            if bits == 0 {
                return if first.is_float.load(Relaxed) {
                    Value::Float(int as f64)
                } else {
                    Value::Int(int)
                };
            }
        }
        let mut int: i128 = 0;
        // Float halves holding +0.0 are skipped, not added: -0.0 + 0.0 is
        // +0.0, and a gauge set to -0.0 must read back as -0.0.
        let mut float: Option<f64> = None;
        let mut is_float = false;
        for stripe in &self.stripes[..stripes] {
            int += i128::from(stripe.int.load(Relaxed));
            let bits = stripe.float.load(Relaxed);
            if bits != 0 {
                let part = f64::from_bits(bits);
                float = Some(float.map_or(part, |sum| sum + part));
            }
            is_float |= stripe.is_float.load(Relaxed);
        }
        match float {
            Some(float) if int == 0 => Value::Float(float),
            Some(float) => Value::Float(int as f64 + float),
            None if is_float => Value::Float(int as f64),
            None => i64::try_from(int).map_or(Value::Float(int as f64), Value::Int),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar() -> Scalar {
        Scalar::new("s".into(), Kind::Counter)
    }

    #[test]
    fn ints_stay_ints_until_a_float_arrives() {
        let s = scalar();
        s.add_int(2);
        s.add_int(3);
        assert_eq!(s.value(), Value::Int(5));
        s.add_float(0.0);
        assert_eq!(s.value(), Value::Float(5.0));
        s.set(Value::Int(1));
        assert_eq!(s.value(), Value::Float(1.0), "once a float, always a float");
    }

    #[test]
    fn overflow_moves_to_float_and_keeps_the_total() {
        let s = scalar();
        s.add_int(i64::MAX);
        s.add_int(10);
        assert_eq!(s.value(), Value::Float(i64::MAX as f64 + 10.0));
    }

    #[test]
    fn kind_follows_use() {
        let s = scalar();
        s.add(Value::Int(1));
        assert_eq!(s.kind(), Kind::Counter);
        s.add(Value::Int(-1));
        assert_eq!(s.kind(), Kind::Gauge);
        let t = scalar();
        t.set(Value::Int(4));
        assert_eq!(t.kind(), Kind::Gauge);
        assert_eq!(t.value(), Value::Int(4));
    }

    #[test]
    fn negative_zero_set_reads_back() {
        let s = scalar();
        s.add_int(3);
        s.set(Value::Float(-0.0));
        assert_eq!(s.value(), Value::Float(-0.0));
        s.add_int(1);
        assert_eq!(s.value(), Value::Float(1.0));
    }

    /// The float mark lives in the stripe it was recorded through: a float
    /// of another thread (here `0.0`, which leaves no bits to see) must still
    /// make the stat read as a float, and keep it one after an integer set.
    #[test]
    fn a_float_from_another_stripe_makes_the_stat_a_float() {
        let s = scalar();
        s.add_int(2);
        let mine = stripe_index();
        std::thread::scope(|scope| {
            // Live threads hold their stripes, and a stripe goes to the
            // fewest holders: of STRIPES + 1 live threads, one at least
            // is on a stripe other than this thread's.
            let (report, reports) = std::sync::mpsc::channel();
            let mut orders = Vec::new();
            for turn in 0..=STRIPES {
                let (order, told) = std::sync::mpsc::channel::<bool>();
                orders.push(order);
                let report = report.clone();
                let s = &s;
                scope.spawn(move || {
                    let _ = report.send((turn, stripe_index()));
                    if told.recv() == Ok(true) {
                        s.add_float(0.0);
                    }
                });
            }
            let stripes: Vec<(usize, usize)> = reports.iter().take(STRIPES + 1).collect();
            let other = stripes
                .iter()
                .find(|&&(_, index)| index != mine)
                .map(|&(turn, _)| turn);
            assert!(
                other.is_some(),
                "every thread got stripe {mine}: {stripes:?}"
            );
            for (turn, order) in orders.iter().enumerate() {
                let _ = order.send(Some(turn) == other);
            }
        });
        assert_eq!(s.value(), Value::Float(2.0));
        s.set(Value::Int(1));
        assert_eq!(s.value(), Value::Float(1.0), "once a float, always a float");
    }

    #[test]
    fn huge_unsigned_becomes_float() {
        let s = scalar();
        s.add_unsigned(u64::MAX);
        assert_eq!(s.value(), Value::Float(u64::MAX as f64));
    }
}
