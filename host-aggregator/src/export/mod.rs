//! Renderings of a read pass for the outside world: JSON (pipestatic's
//! `/stats` shape and the per-source views) and Prometheus text exposition.
//!
//! Every renderer appends to a `Vec<u8>` and never fails: whatever a writer
//! sent (odd names, NaN, huge integers) comes out as valid output.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use host_aggregator::Pass;
//! use host_aggregator::export::{json, prometheus};
//! use stats_core::Snapshot;
//!
//! let (merged, _) = Snapshot::parse(b"requests: 7\nload avg: 0.75\nratio: nan\n", 4096);
//! let pass = Pass {
//!     started: UNIX_EPOCH + Duration::from_millis(1_763_780_000_250),
//!     duration: Duration::from_millis(3),
//!     sources: Vec::new(),
//!     merged,
//!     kinds: Default::default(),
//! };
//! assert_eq!(
//!     String::from_utf8(json::stats(&pass)).unwrap(),
//!     r#"{"stats":{"load avg":0.75,"ratio":"NaN","requests":7},"timestamp":1763780000.25,"sources":{"total":0,"ok":0}}"#
//! );
//! assert_eq!(
//!     String::from_utf8(prometheus::render_snapshot(&pass.merged)).unwrap(),
//!     concat!(
//!         "# HELP load_avg stat load avg\n# TYPE load_avg untyped\nload_avg 0.75\n",
//!         "# HELP ratio stat ratio\n# TYPE ratio untyped\nratio NaN\n",
//!         "# HELP requests stat requests\n# TYPE requests untyped\nrequests 7\n",
//!     )
//! );
//! ```

pub mod influx;
pub mod json;
pub mod prometheus;

use std::time::{SystemTime, UNIX_EPOCH};

use stats_core::Value;

/// Unix seconds of `time` as a float; a time before 1970 reads as `0.0`.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Every [`crate::Status::as_str`] word, in the order the Prometheus
/// source counts list them.
pub const STATUS_WORDS: [&str; 8] = [
    "ok",
    "timed_out",
    "incomplete",
    "too_large",
    "refused",
    "stale",
    "vanished",
    "failed",
];

/// Appends a number the way every format here wants it: an integer exact
/// (`itoa`), a finite float as the shortest text that reads back to the same
/// bits and always has a `.` or an exponent (`ryu`: `3.0`, `1e-7`), and the
/// given spellings for NaN, +infinity and -infinity.
fn write_number(buf: &mut Vec<u8>, value: Value, [nan, inf, neg_inf]: [&str; 3]) {
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

/// How many bytes of `bytes` from `at` on make a control character: 1 for
/// a C0 control (NUL, TAB, LF, VT, CR, ...) or DEL, 2 for a C1 control
/// (U+0080 to U+009F, `0xC2 0x80..=0x9F` in UTF-8), 0 for anything else.
///
/// The reader refuses stat names that hold one (`LineError::ControlInName`,
/// issue 12), but the text formats here must never carry one raw whatever
/// a future source of names lets through, so their escapers replace each
/// with `_` (defence in depth; JSON escapes them as `\u00XX` instead).
fn control_len(bytes: &[u8], at: usize) -> usize {
    match bytes[at] {
        0..0x20 | 0x7f => 1,
        0xc2 if bytes
            .get(at + 1)
            .is_some_and(|next| (0x80..0xa0).contains(next)) =>
        {
            2
        }
        _ => 0,
    }
}

/// Test helper: whether `bytes` holds a byte below 0x20 other than `\n`,
/// DEL, or a C1 control.
#[cfg(test)]
fn holds_raw_control(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|at| bytes[at] != b'\n' && control_len(bytes, at) > 0)
}

/// Test helper: a snapshot of `(name, value)` pairs.
#[cfg(test)]
fn snapshot(pairs: &[(&str, Value)]) -> stats_core::Snapshot {
    stats_core::Snapshot::from_entries(pairs.iter().map(|(name, value)| stats_core::Entry {
        name: (*name).into(),
        value: *value,
    }))
}
