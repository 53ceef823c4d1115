//! The storage of a history: fixed-capacity rings of `f64`, a series (a
//! ring ending at the tick it was last updated), and the rate of a counter
//! between two points.

/// A fixed-capacity ring of `f64`: pushing onto a full ring overwrites the
/// oldest value. Grows as filled, never past its capacity.
#[derive(Clone, Debug)]
pub(super) struct Ring {
    pub(super) values: Vec<f64>,
    /// Index of the oldest value once the ring is full.
    pub(super) oldest: usize,
    pub(super) capacity: usize,
}

impl Ring {
    pub(super) fn new(capacity: usize) -> Ring {
        Ring {
            values: Vec::new(),
            oldest: 0,
            capacity: capacity.max(1),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    pub(super) fn push(&mut self, value: f64) {
        if self.values.len() < self.capacity {
            if self.values.len() == self.values.capacity() {
                // Doubling, but never past the capacity, so a full ring holds
                // exactly `capacity` slots (Vec's own growth could leave up to
                // twice that).
                let grow = self
                    .values
                    .len()
                    .max(4)
                    .min(self.capacity - self.values.len());
                self.values.reserve_exact(grow);
            }
            self.values.push(value);
        } else {
            self.values[self.oldest] = value;
            self.oldest = (self.oldest + 1) % self.capacity;
        }
    }

    /// The `i`-th value, oldest first.
    pub(super) fn get(&self, i: usize) -> f64 {
        self.values[(self.oldest + i) % self.values.len()]
    }

    pub(super) fn last(&self) -> Option<f64> {
        (!self.values.is_empty()).then(|| self.get(self.values.len() - 1))
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.values.capacity() * size_of::<f64>()
    }
}

/// The values of one series: a ring ending at tick `last_tick`.
#[derive(Clone, Debug)]
pub(super) struct Series {
    pub(super) values: Ring,
    pub(super) last_tick: u64,
    pub(super) created_tick: u64,
}

impl Series {
    pub(super) fn new(capacity: usize, tick: u64) -> Series {
        Series {
            values: Ring::new(capacity),
            last_tick: tick,
            created_tick: tick,
        }
    }

    /// Records `value` at `tick`, NaN for the ticks missed since the last
    /// update.
    pub(super) fn record(&mut self, tick: u64, value: f64) {
        if self.values.len() > 0 {
            let missed = tick.saturating_sub(self.last_tick + 1);
            for _ in 0..missed.min(self.values.capacity as u64) {
                self.values.push(f64::NAN);
            }
        }
        self.values.push(value);
        self.last_tick = tick;
    }

    pub(super) fn first_tick(&self) -> u64 {
        self.last_tick + 1 - self.values.len() as u64
    }

    /// The value at `tick`, if the ring covers it.
    pub(super) fn at(&self, tick: u64) -> Option<f64> {
        let first = self.first_tick();
        (tick >= first && tick <= self.last_tick).then(|| self.values.get((tick - first) as usize))
    }

    /// The latest value before `tick` that is not NaN, with its tick.
    pub(super) fn previous(&self, tick: u64) -> Option<(u64, f64)> {
        let first = self.first_tick();
        let mut k = tick.min(self.last_tick + 1);
        while k > first {
            k -= 1;
            let value = self.values.get((k - first) as usize);
            if !value.is_nan() {
                return Some((k, value));
            }
        }
        None
    }
}

/// Time of `tick`, if still in the ring (`next_tick` is the next tick's number).
pub(super) fn time_of(times: &Ring, next_tick: u64, tick: u64) -> Option<f64> {
    let oldest = next_tick - times.len() as u64;
    (tick >= oldest && tick < next_tick).then(|| times.get((tick - oldest) as usize))
}

/// Per-second rate of a counter that went from `before` to `now` in
/// `seconds`: a decrease is a reset, so the new value is what was counted.
pub fn step_rate(before: f64, now: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return f64::NAN;
    }
    let delta = if now < before { now } else { now - before };
    delta / seconds
}
