//! Renderings of a read pass for the outside world: JSON (pipestatic's
//! `/stats` shape and the per-source views) and Prometheus text exposition.
//!
//! Every renderer appends to a `Vec<u8>` and never fails: whatever a writer
//! sent (odd names, NaN, huge integers) comes out as valid output.

pub mod influx;
pub mod json;
pub mod prometheus;

use std::time::{SystemTime, UNIX_EPOCH};

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
