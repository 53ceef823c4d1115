//! The C ABI (`include/stats_pipe.h`, written from the table below by
//! [`c_header`]). Its unsafe code is the export of each function by name
//! and `lent.rs`; with `atfork.rs` (one libc call), that is all the
//! crate's.
//!
//! The rules every function keeps (thread-safe and fork-safe, no panic
//! across the boundary, who owns each pointer) are written once, at the
//! top of the header (`RULES` in `header.rs`). Each body runs in
//! `guard.rs`'s `catch_unwind`, so a panic becomes an error return.
//!
//! The pointer contracts live in the argument types, not in each
//! function: a string is a [`StatsPipeText`] (made in Rust only from a
//! `&CStr`), a buffer a [`StatsPipeBuffer`] (made only by C), a handle an
//! `Option<&'static StatsPipeCounter>` (made only by its constructor), a
//! run an `Option<Box<StatsPipeRun>>` (owned, given back once). So every
//! function is a safe Rust function and the same pointers in C, and the
//! only reads and writes of a caller's memory are in `lent.rs`.
//!
//! Adding a function is one entry in the `c_abi!` table below (then
//! `STATS_PIPE_BLESS=1 cargo test -p stats-pipe-capi --test header`); a new
//! argument type needs a line in the `c_types!` table.

use std::ffi::c_int;
use std::path::Path;
use std::time::Duration;

use stats_core::{Counter, Gauge, Histogram, Task};

use crate::error::Error;
use crate::runtime;

mod abi;
mod guard;
mod handles;
mod header;
mod lent;

pub use abi::{CFunction, COpaque};
pub use handles::{StatsPipeHandle, TaskRun};
pub use lent::{StatsPipeBuffer, StatsPipeText};

use abi::{c_abi, c_opaque, c_types};
use guard::{guarded, last_error, set_error};
use handles::{begin, make, with_handle};
use lent::Argument;

/// Records through the registry by name, for the calls that take one:
/// `record` gets the running process's registry (its serving started if
/// need be) and the name, unless `name` is NULL or not UTF-8 (then an
/// error is recorded). A panic is caught and recorded.
fn by_name(
    function: &'static str,
    name: StatsPipeText<'_>,
    record: impl FnOnce(&stats_core::Registry, &str),
) {
    guarded(function, (), || {
        if let Some(name) = name.get(function, Argument::Name) {
            record(runtime::recording().registry(), name);
        }
    });
}

/// Starts serving in `dir` (NULL: the default): 0, or -1 and an error.
fn start(function: &'static str, dir: StatsPipeText<'_>) -> c_int {
    let dir = if dir.is_null() {
        None
    } else {
        let Some(dir) = dir.get(function, Argument::Dir) else {
            return -1;
        };
        Some(Path::new(dir))
    };
    status(runtime::start(dir))
}

/// Stops serving after up to `linger_seconds`: 0, or -1 and an error.
fn stop(linger_seconds: f64) -> c_int {
    let linger = Duration::try_from_secs_f64(linger_seconds).unwrap_or(Duration::ZERO);
    status(runtime::stop(linger))
}

/// A C status: 0, or -1 with the error recorded for `stats_pipe_last_error`.
fn status<T>(result: Result<T, Error>) -> c_int {
    match result {
        Ok(_) => 0,
        Err(e) => {
            set_error(e);
            -1
        }
    }
}

/// The text of `include/stats_pipe.h`: the table below, in C.
pub fn c_header() -> String {
    header::render(TYPES, FUNCTIONS)
}

c_types! {
    i64 => "int64_t",
    u64 => "uint64_t",
    f64 => "double",
    c_int => "int",
    usize => "size_t",
    StatsPipeText<'_> => "const char *",
    StatsPipeBuffer => "char *",
    Option<&StatsPipeCounter> => "const StatsPipeCounter *",
    Option<&StatsPipeGauge> => "const StatsPipeGauge *",
    Option<&StatsPipeHistogram> => "const StatsPipeHistogram *",
    Option<&StatsPipeTask> => "const StatsPipeTask *",
    Option<Box<StatsPipeRun>> => "StatsPipeRun *",
}

c_opaque! {
    /// A counter handle (`stats_pipe_counter`): owned by the library, valid
    /// until exit, usable from any thread and in children of `fork`.
    StatsPipeCounter = StatsPipeHandle<Counter>;
    /// A gauge handle (`stats_pipe_gauge`); same ownership as a counter's.
    StatsPipeGauge = StatsPipeHandle<Gauge>;
    /// A histogram handle (`stats_pipe_histogram`); same ownership as a
    /// counter's.
    StatsPipeHistogram = StatsPipeHandle<Histogram>;
    /// A task handle (`stats_pipe_task`); same ownership as a counter's.
    StatsPipeTask = StatsPipeHandle<&'static Task>;
    /// One run of a task, from `stats_pipe_task_begin` until
    /// `stats_pipe_task_end`, which frees it. Owned by the caller in between;
    /// it may be ended on another thread than the one that began it.
    StatsPipeRun = TaskRun;
}

c_abi! {
    /// Starts serving this process's stats at `<dir>/<pid>.stats`. `dir` NULL:
    /// `STATS_PIPE_DIR`, else `/tmp/stats-pipe`. Already serving there: does
    /// nothing. Recording starts serving by itself (unless
    /// `STATS_PIPE_AUTOSTART=0`); call this to choose the directory or to
    /// learn about a failure at once.
    ///
    /// Returns 0, or -1 with the reason in `stats_pipe_last_error`.
    /// Thread-safe. `dir` is borrowed for the call.
    fn stats_pipe_start(dir: StatsPipeText<'_>) -> c_int { guarded(FUNCTION, -1, || start(FUNCTION, dir)) }

    /// Stops serving and removes this process's FIFO; recording goes on, but
    /// no longer starts serving by itself. First waits up to `linger_seconds`
    /// for a reader to take a snapshot made after this call (so an aggregator
    /// sees the last counts of an exiting process); 0 stops at once.
    ///
    /// Returns 0, or -1 if serving had ended with an error (see
    /// `stats_pipe_last_error`). Thread-safe.
    fn stats_pipe_stop(linger_seconds: f64) -> c_int { guarded(FUNCTION, -1, || stop(linger_seconds)) }

    /// Copies the path being served into `buf` (NUL-terminated, cut to
    /// `len - 1` bytes) and returns the path's full length in bytes; 0 when
    /// not serving. `buf` may be NULL with `len` 0 to ask for the length.
    /// Thread-safe; the caller owns `buf`.
    fn stats_pipe_path(buf: StatsPipeBuffer, len: usize) -> usize {
        guarded(FUNCTION, 0, || runtime::path().map_or(0, |p| buf.fill(len, &p.to_string_lossy())))
    }

    /// Copies the message of the last error into `buf` like
    /// `stats_pipe_path` and returns its full length; 0 if none. The error of
    /// the calling thread's last failed call comes first; otherwise why
    /// serving failed to start by itself or ended. Thread-safe.
    fn stats_pipe_last_error(buf: StatsPipeBuffer, len: usize) -> usize {
        guarded(FUNCTION, 0, || last_error().map_or(0, |e| buf.fill(len, &e)))
    }

    /// Adds `by` to the stat `name` (created at `by`; pipestatic's `incr`). A
    /// stat only ever increased by amounts >= 0 is a counter. Thread-safe;
    /// `name` is borrowed for the call; NULL or non-UTF-8 records nothing.
    fn stats_pipe_incr(name: StatsPipeText<'_>, by: i64) { by_name(FUNCTION, name, |r, n| r.incr(n, by)) }

    /// Like `stats_pipe_incr` with a float amount: the stat is a float from
    /// now on.
    fn stats_pipe_incr_float(name: StatsPipeText<'_>, by: f64) { by_name(FUNCTION, name, |r, n| r.incr(n, by)) }

    /// Sets the stat `name` to `value` (a gauge; pipestatic's `set`; a float
    /// stat stays a float). Thread-safe; `name` borrowed for the call.
    fn stats_pipe_set(name: StatsPipeText<'_>, value: i64) { by_name(FUNCTION, name, |r, n| r.set(n, value)) }

    /// Sets the stat `name` to a float `value`.
    fn stats_pipe_set_float(name: StatsPipeText<'_>, value: f64) { by_name(FUNCTION, name, |r, n| r.set(n, value)) }

    /// Records `value` into the histogram `name` (durations in seconds).
    /// Thread-safe; `name` borrowed for the call.
    fn stats_pipe_observe(name: StatsPipeText<'_>, value: f64) { by_name(FUNCTION, name, |r, n| r.record(n, value)) }

    /// A counter handle for `name`, or NULL if `name` is NULL or not UTF-8.
    /// Make it once and keep it: each call allocates a handle that lives
    /// until the process exits. The caller must not free it.
    fn stats_pipe_counter(name: StatsPipeText<'_>) -> Option<&'static StatsPipeCounter> { make(FUNCTION, name) }

    /// Adds `by` to the counter (NULL handle: nothing). One atomic add.
    /// Thread-safe.
    fn stats_pipe_counter_incr(counter: Option<&StatsPipeCounter>, by: u64) { with_handle(FUNCTION, counter, |c| c.incr_by(by)); }

    /// A gauge handle for `name` (ownership as `stats_pipe_counter`).
    fn stats_pipe_gauge(name: StatsPipeText<'_>) -> Option<&'static StatsPipeGauge> { make(FUNCTION, name) }

    /// Sets the gauge to an integer (NULL handle: nothing). Thread-safe.
    fn stats_pipe_gauge_set(gauge: Option<&StatsPipeGauge>, value: i64) { with_handle(FUNCTION, gauge, |g| g.set(value)); }

    /// Sets the gauge to a float; it stays a float. Thread-safe.
    fn stats_pipe_gauge_set_float(gauge: Option<&StatsPipeGauge>, value: f64) { with_handle(FUNCTION, gauge, |g| g.set(value)); }

    /// Adds `by` (may be negative) to the gauge. Thread-safe.
    fn stats_pipe_gauge_add(gauge: Option<&StatsPipeGauge>, by: i64) { with_handle(FUNCTION, gauge, |g| g.add(by)); }

    /// A histogram handle for `name` (ownership as `stats_pipe_counter`).
    fn stats_pipe_histogram(name: StatsPipeText<'_>) -> Option<&'static StatsPipeHistogram> { make(FUNCTION, name) }

    /// Records a float (durations in seconds) into the histogram. Thread-safe.
    fn stats_pipe_histogram_observe(histogram: Option<&StatsPipeHistogram>, value: f64) { with_handle(FUNCTION, histogram, |h| h.record_float(value)); }

    /// Records an integer into the histogram (`.sum`, `.min`, `.max` stay
    /// integers while only integers are recorded). Thread-safe.
    fn stats_pipe_histogram_observe_int(histogram: Option<&StatsPipeHistogram>, value: i64) { with_handle(FUNCTION, histogram, |h| h.record(value)); }

    /// A task handle for `name` (monkit's `mon.Task()`; ownership as
    /// `stats_pipe_counter`).
    fn stats_pipe_task(name: StatsPipeText<'_>) -> Option<&'static StatsPipeTask> { make(FUNCTION, name) }

    /// Begins a run of the task: `.current` goes up, the clock starts.
    /// Returns a run the caller owns until `stats_pipe_task_end`; NULL for a
    /// NULL task. Thread-safe. A run begun before a `fork` and ended in the
    /// child counts in the parent's (unserved) copy, not the child's stats.
    fn stats_pipe_task_begin(task: Option<&StatsPipeTask>) -> Option<Box<StatsPipeRun>> { with_handle(FUNCTION, task, begin) }

    /// Ends a run and frees it: `ok` nonzero counts a success, 0 an error; its
    /// duration goes to the histogram of that outcome. NULL: nothing. `run`
    /// must come from `stats_pipe_task_begin` and not be used again.
    fn stats_pipe_task_end(run: Option<Box<StatsPipeRun>>, ok: c_int) {
        if let Some(run) = run {
            guarded(FUNCTION, (), || run.end(ok != 0));
        }
    }
}

#[cfg(test)]
mod tests;
