//! `Value`: a stat's value, an `i64` or an `f64`, with pipestatic's "once a
//! float, always a float" arithmetic.

use std::fmt;

/// Spelling of a float NaN on the wire; Python's `float()` reads it.
pub const NAN: &str = "nan";
/// Spelling of positive infinity on the wire; Python's `float()` reads it.
pub const INFINITY: &str = "inf";
/// Spelling of negative infinity on the wire; Python's `float()` reads it.
pub const NEG_INFINITY: &str = "-inf";

/// Appends the wire spelling of `value` to `buf`.
///
/// Integers are plain decimals. Finite floats use the shortest representation
/// that reads back to the same bits, always with a `.` or an exponent so they
/// read back as floats (`3.0`, `1e-7`, `-0.0`); NaN and infinities are `nan`,
/// `inf`, `-inf`.
#[inline]
pub fn write_value(buf: &mut Vec<u8>, value: Value) {
    write_number(buf, value, [NAN, INFINITY, NEG_INFINITY]);
}

/// Appends `value` as [`write_value`] does, but with the given spellings
/// for NaN, +infinity and -infinity: what an output format with other
/// names for them (JSON strings, Prometheus `+Inf`) shares with the wire
/// format.
// Always inlined: every caller passes constant spellings, and as a call the
// three of them are stored to the stack for every number written (9 % of a
// snapshot's render, measured in `render/snapshot_10000`).
#[inline(always)]
pub fn write_number(buf: &mut Vec<u8>, value: Value, [nan, inf, neg_inf]: [&str; 3]) {
    match value {
        Value::Int(i) => buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Float(f) if f.is_finite() => {
            buf.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
        }
        Value::Float(f) if f.is_nan() => buf.extend_from_slice(nan.as_bytes()),
        Value::Float(f) if f > 0.0 => buf.extend_from_slice(inf.as_bytes()),
        Value::Float(_) => buf.extend_from_slice(neg_inf.as_bytes()),
    }
}

/// The value of one stat: an integer or a float.
///
/// Arithmetic follows pipestatic: integer plus integer stays an integer, any
/// float makes the result a float, and an integer sum that would overflow
/// `i64` becomes a float instead of wrapping.
///
/// Equality is *representation* equality, which is what a wire format needs:
/// `Int(3) != Float(3.0)`, `Float(-0.0) != Float(0.0)`, and a NaN equals a NaN.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    /// An integer stat.
    Int(i64),
    /// A float stat; stays a float through every hop.
    Float(f64),
}

impl Value {
    /// Whether this is a float.
    pub fn is_float(self) -> bool {
        matches!(self, Value::Float(_))
    }

    /// The value as an `f64` (an integer is converted, possibly rounding).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }

    /// The pipestatic sum: int + int stays int unless it overflows `i64`, in
    /// which case the result is the (rounded) float sum; any float makes a float.
    #[must_use]
    pub fn sum(self, other: Value) -> Value {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => match a.checked_add(b) {
                Some(s) => Value::Int(s),
                None => Value::Float(a as f64 + b as f64),
            },
            (a, b) => Value::Float(a.as_f64() + b.as_f64()),
        }
    }

    /// Whether the value is below zero (NaN is not).
    pub fn is_negative(self) -> bool {
        match self {
            Value::Int(i) => i < 0,
            Value::Float(f) => f < 0.0,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (*self, *other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => {
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
            }
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    /// Writes the wire spelling (see `FORMAT.md`): `3`, `3.0`, `1e-7`, `nan`, `-inf`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(24);
        write_value(&mut buf, *self);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
int_from!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    /// Values above `i64::MAX` become floats rather than wrapping.
    fn from(v: u64) -> Value {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<usize> for Value {
    /// Values above `i64::MAX` become floats rather than wrapping.
    fn from(v: usize) -> Value {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<isize> for Value {
    fn from(v: isize) -> Value {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}

impl From<std::time::Duration> for Value {
    /// A duration is recorded in seconds, as a float.
    fn from(v: std::time::Duration) -> Value {
        Value::Float(v.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_plus_int_stays_int() {
        assert_eq!(Value::Int(2).sum(Value::Int(3)), Value::Int(5));
    }

    #[test]
    fn overflow_becomes_float() {
        assert_eq!(
            Value::Int(i64::MAX).sum(Value::Int(1)),
            Value::Float(i64::MAX as f64 + 1.0)
        );
        assert!(Value::Int(i64::MIN).sum(Value::Int(-1)).is_float());
    }

    #[test]
    fn any_float_makes_float() {
        assert_eq!(Value::Int(1).sum(Value::Float(0.0)), Value::Float(1.0));
        assert_eq!(Value::Float(0.5).sum(Value::Int(1)), Value::Float(1.5));
    }

    #[test]
    fn equality_is_representation_equality() {
        assert_ne!(Value::Int(3), Value::Float(3.0));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    }

    #[test]
    fn big_unsigned_becomes_float() {
        assert_eq!(Value::from(u64::MAX), Value::Float(u64::MAX as f64));
        assert_eq!(Value::from(7u64), Value::Int(7));
    }
}
