//! Typed handles for the hot path: look a stat up once, then record with one
//! atomic operation per call. Handles are cheap to clone and `Send + Sync`.

use std::sync::Arc;

use crate::cell::Scalar;
use crate::value::Value;

/// What both scalar handles have besides their own recording calls: the
/// current value, the name, and a `Debug` that shows both.
macro_rules! scalar_handle {
    ($handle:ident) => {
        impl $handle {
            /// The current value.
            pub fn value(&self) -> Value {
                self.scalar.value()
            }

            /// The stat's (sanitised) name.
            pub fn name(&self) -> &str {
                self.scalar.name()
            }
        }

        impl std::fmt::Debug for $handle {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($handle))
                    .field("name", &self.name())
                    .field("value", &self.value())
                    .finish()
            }
        }
    };
}

scalar_handle!(Counter);
scalar_handle!(Gauge);

/// A stat that only counts up. Increments are one relaxed atomic add on the
/// calling thread's stripe.
#[derive(Clone)]
pub struct Counter {
    scalar: Arc<Scalar>,
}

impl Counter {
    pub(crate) fn new(scalar: Arc<Scalar>) -> Counter {
        Counter { scalar }
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.scalar.add_int(1);
    }

    /// Adds `by`. Amounts above `i64::MAX` (or a total that overflows `i64`)
    /// make the stat a float.
    #[inline]
    pub fn incr_by(&self, by: u64) {
        self.scalar.add_unsigned(by);
    }

    /// Adds a float amount (seconds, bytes as a float, ...); the stat becomes
    /// a float for good. A negative or NaN amount makes the stat a gauge.
    #[inline]
    pub fn incr_by_float(&self, by: f64) {
        self.scalar.add(Value::Float(by));
    }
}

/// A stat that is set to a level, or moved up and down.
#[derive(Clone)]
pub struct Gauge {
    scalar: Arc<Scalar>,
}

impl Gauge {
    pub(crate) fn new(scalar: Arc<Scalar>) -> Gauge {
        Gauge { scalar }
    }

    /// Sets the value. An integer set on a float stat keeps it a float.
    #[inline]
    pub fn set(&self, value: impl Into<Value>) {
        self.scalar.set(value.into());
    }

    /// Adds `by` (negative to subtract).
    #[inline]
    pub fn add(&self, by: impl Into<Value>) {
        self.scalar.add(by.into());
    }
}

#[cfg(test)]
mod tests {
    use crate::{Registry, Value};

    #[test]
    fn handles_share_the_stat_with_by_name_calls() {
        let r = Registry::new();
        let c = r.counter("requests");
        c.incr();
        c.incr_by(4);
        r.incr("requests", 1);
        assert_eq!(c.value(), Value::Int(6));
        let g = r.gauge("depth");
        g.set(10);
        g.add(-3);
        assert_eq!(r.get("depth"), Some(Value::Int(7)));
        g.set(2.5);
        assert_eq!(g.value(), Value::Float(2.5));
        assert_eq!(
            format!("{c:?}"),
            "Counter { name: \"requests\", value: Int(6) }"
        );
    }
}
