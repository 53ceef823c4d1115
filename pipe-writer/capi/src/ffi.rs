//! The C ABI (`include/stats_pipe.h`, generated from this file by
//! cbindgen): with `atfork.rs` (one libc call), the crate's only unsafe
//! code.
//!
//! Rules every function here keeps:
//! - no panic crosses the boundary: each body runs in `catch_unwind`, and
//!   a panic becomes an error return (or nothing, for `void` calls);
//! - strings are NUL-terminated UTF-8, borrowed for the call only; a NULL
//!   or non-UTF-8 name records nothing;
//! - handles (`StatsPipeCounter *` ...) are owned by the library, live
//!   until the process exits (in its children too), are never freed by
//!   the caller, and may be used from any thread at once;
//! - every call is thread-safe, and safe to use in a child of `fork`: the
//!   child records into its own, empty registry and serves its own pipe.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use stats_core::{Counter, Gauge, Histogram, Task, TaskGuard};

use crate::error::Error;
use crate::fork::PerProcess;
use crate::runtime;

// ---------------------------------------------------------------- helpers

thread_local! {
    static LAST_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

fn set_error(error: Error) {
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = Some(error));
}

/// Runs `f` with a panic turned into `fallback` and a recorded error.
fn guarded<R>(function: &'static str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            set_error(Error::Panicked { function });
            fallback
        }
    }
}

/// The string behind `ptr`, or `None` (and a recorded error) for NULL or
/// invalid UTF-8.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
unsafe fn name<'a>(function: &'static str, ptr: *const c_char) -> Option<&'a str> {
    if ptr.is_null() {
        set_error(Error::BadArgument {
            function,
            what: "name is NULL",
        });
        return None;
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string
    // valid for 'a (the header says so for every `const char *`).
    let text = unsafe { CStr::from_ptr(ptr) };
    match text.to_str() {
        Ok(s) => Some(s),
        Err(_) => {
            set_error(Error::BadArgument {
                function,
                what: "name is not UTF-8",
            });
            None
        }
    }
}

/// Records through the registry by name, for the calls that take one:
/// `record` gets the running process's registry (its serving started if
/// need be) and the name, unless `name` is NULL or not UTF-8 (then an
/// error is recorded). A panic is caught and recorded.
///
/// # Safety
///
/// As [`name`]: `name` is NULL or a NUL-terminated string valid for the
/// call.
unsafe fn by_name(
    function: &'static str,
    name: *const c_char,
    record: impl FnOnce(&stats_core::Registry, &str),
) {
    guarded(function, (), || {
        // SAFETY: the caller's promise, passed on.
        if let Some(name) = unsafe { self::name(function, name) } {
            record(runtime::recording().registry(), name);
        }
    });
}

/// Turns an owned handle into the pointer the caller keeps forever.
fn leak<T>(value: T) -> *const T {
    Box::leak(Box::new(value))
}

/// The handle behind `ptr`, or `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or was returned by this library's constructor for `T`
/// (those are never freed).
unsafe fn handle<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: the constructors return pointers from `Box::leak`, valid and
    // immutable (interior atomics aside) until the process exits.
    unsafe { ptr.as_ref() }
}

/// Copies `text` into `buf` (at most `len - 1` bytes and a NUL, like
/// `snprintf`) and returns its full length.
///
/// # Safety
///
/// `buf` is NULL (then `len` must be 0) or points to `len` writable bytes.
unsafe fn copy_out(text: &str, buf: *mut c_char, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let n = text.len().min(len - 1);
        // SAFETY: `buf` holds `len` writable bytes (caller), `n < len`, and
        // `text` cannot overlap a buffer the caller owns.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    text.len()
}

// ---------------------------------------------------------------- serving

/// Starts serving this process's stats at `<dir>/<pid>.stats`. `dir` NULL:
/// `STATS_PIPE_DIR`, else `/tmp/stats-pipe`. Already serving there: does
/// nothing. Recording starts serving by itself (unless
/// `STATS_PIPE_AUTOSTART=0`); call this to choose the directory or to
/// learn about a failure at once.
///
/// Returns 0, or -1 with the reason in `stats_pipe_last_error`.
/// Thread-safe. `dir` is borrowed for the call.
///
/// # Safety
///
/// `dir` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_start(dir: *const c_char) -> c_int {
    guarded("stats_pipe_start", -1, || {
        let dir = if dir.is_null() {
            None
        } else {
            // SAFETY: non-NULL `dir` is a NUL-terminated string (header).
            match unsafe { name("stats_pipe_start", dir) } {
                Some(d) => Some(Path::new(d)),
                None => return -1,
            }
        };
        match runtime::start(dir) {
            Ok(_) => 0,
            Err(e) => {
                set_error(e);
                -1
            }
        }
    })
}

/// Stops serving and removes this process's FIFO; recording goes on, but
/// no longer starts serving by itself. First waits up to `linger_seconds`
/// for a reader to take a snapshot made after this call (so an aggregator
/// sees the last counts of an exiting process); 0 stops at once.
///
/// Returns 0, or -1 if serving had ended with an error (see
/// `stats_pipe_last_error`). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn stats_pipe_stop(linger_seconds: f64) -> c_int {
    guarded("stats_pipe_stop", -1, || {
        let linger = Duration::try_from_secs_f64(linger_seconds).unwrap_or(Duration::ZERO);
        match runtime::stop(linger) {
            Ok(()) => 0,
            Err(e) => {
                set_error(e);
                -1
            }
        }
    })
}

/// Copies the path being served into `buf` (NUL-terminated, cut to
/// `len - 1` bytes) and returns the path's full length in bytes; 0 when
/// not serving. `buf` may be NULL with `len` 0 to ask for the length.
/// Thread-safe; the caller owns `buf`.
///
/// # Safety
///
/// `buf` is NULL (with `len` 0) or points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_path(buf: *mut c_char, len: usize) -> usize {
    guarded("stats_pipe_path", 0, || {
        let Some(path) = runtime::path() else {
            return 0;
        };
        let text = path.to_string_lossy();
        // SAFETY: the header asks for `len` writable bytes at `buf`.
        unsafe { copy_out(&text, buf, len) }
    })
}

/// Copies the message of the last error into `buf` like
/// `stats_pipe_path` and returns its full length; 0 if none. The error of
/// the calling thread's last failed call comes first; otherwise why
/// serving failed to start by itself or ended. Thread-safe.
///
/// # Safety
///
/// `buf` is NULL (with `len` 0) or points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_last_error(buf: *mut c_char, len: usize) -> usize {
    guarded("stats_pipe_last_error", 0, || {
        let own = LAST_ERROR.try_with(|e| e.borrow().clone()).ok().flatten();
        let Some(error) = own.or_else(runtime::last_error) else {
            return 0;
        };
        // SAFETY: the header asks for `len` writable bytes at `buf`.
        unsafe { copy_out(&error.to_string(), buf, len) }
    })
}

// ---------------------------------------------------------------- by name

/// Adds `by` to the stat `name` (created at `by`; pipestatic's `incr`). A
/// stat only ever increased by amounts >= 0 is a counter. Thread-safe;
/// `name` is borrowed for the call; NULL or non-UTF-8 records nothing.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_incr(name: *const c_char, by: i64) {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { by_name("stats_pipe_incr", name, |r, name| r.incr(name, by)) };
}

/// Like `stats_pipe_incr` with a float amount: the stat is a float from
/// now on.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_incr_float(name: *const c_char, by: f64) {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { by_name("stats_pipe_incr_float", name, |r, name| r.incr(name, by)) };
}

/// Sets the stat `name` to `value` (a gauge; pipestatic's `set`; a float
/// stat stays a float). Thread-safe; `name` borrowed for the call.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_set(name: *const c_char, value: i64) {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { by_name("stats_pipe_set", name, |r, name| r.set(name, value)) };
}

/// Sets the stat `name` to a float `value`.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_set_float(name: *const c_char, value: f64) {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { by_name("stats_pipe_set_float", name, |r, name| r.set(name, value)) };
}

/// Records `value` into the histogram `name` (durations in seconds).
/// Thread-safe; `name` borrowed for the call.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_observe(name: *const c_char, value: f64) {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { by_name("stats_pipe_observe", name, |r, name| r.record(name, value)) };
}

// ---------------------------------------------------------------- handles

/// A counter handle (`stats_pipe_counter`): owned by the library, valid
/// until exit, usable from any thread and in children of `fork`.
pub struct StatsPipeCounter {
    name: Box<str>,
    chain: &'static PerProcess<Counter>,
}

/// A gauge handle (`stats_pipe_gauge`); same ownership as a counter's.
pub struct StatsPipeGauge {
    name: Box<str>,
    chain: &'static PerProcess<Gauge>,
}

/// A histogram handle (`stats_pipe_histogram`); same ownership as a
/// counter's.
pub struct StatsPipeHistogram {
    name: Box<str>,
    chain: &'static PerProcess<Histogram>,
}

/// A task handle (`stats_pipe_task`); same ownership as a counter's.
pub struct StatsPipeTask {
    name: Box<str>,
    chain: &'static PerProcess<&'static Task>,
}

/// One run of a task, from `stats_pipe_task_begin` until
/// `stats_pipe_task_end`, which frees it. Owned by the caller in between;
/// it may be ended on another thread than the one that began it.
pub struct StatsPipeRun {
    guard: TaskGuard<'static>,
}

/// What the four handle types share: a name looked up once per process
/// into the metric recorded through.
trait Handle: Sized + 'static {
    /// What the handle records into.
    type Metric: Send + Sync + 'static;
    /// The metric called `name` in `runtime` (a child of `fork` looks its
    /// own up again, on first use).
    fn lookup(runtime: &'static runtime::Runtime, name: &str) -> Self::Metric;
    /// The handle for `name`, with its chain of per-process metrics.
    fn new(name: Box<str>, chain: &'static PerProcess<Self::Metric>) -> Self;
    /// Its name and chain.
    fn parts(&self) -> (&str, &'static PerProcess<Self::Metric>);
}

macro_rules! handle_kind {
    ($handle:ident => $metric:ty, |$runtime:ident, $name:ident| $lookup:expr) => {
        impl Handle for $handle {
            type Metric = $metric;
            fn lookup($runtime: &'static runtime::Runtime, $name: &str) -> $metric {
                $lookup
            }
            fn new(name: Box<str>, chain: &'static PerProcess<$metric>) -> Self {
                $handle { name, chain }
            }
            fn parts(&self) -> (&str, &'static PerProcess<$metric>) {
                (&self.name, self.chain)
            }
        }
    };
}

handle_kind!(StatsPipeCounter => Counter, |r, name| r.registry().counter(name));
handle_kind!(StatsPipeGauge => Gauge, |r, name| r.registry().gauge(name));
handle_kind!(StatsPipeHistogram => Histogram, |r, name| r.registry().histogram(name));
handle_kind!(StatsPipeTask => &'static Task, |r, name| r.task(name));

/// Makes a handle: look the name up once per process, then record without
/// a lookup. NULL (and a recorded error) for a NULL or non-UTF-8 name.
///
/// # Safety
///
/// As [`name`]: `name` is NULL or a NUL-terminated string valid for the
/// call.
unsafe fn make<H: Handle>(function: &'static str, name: *const c_char) -> *const H {
    guarded(function, std::ptr::null(), || {
        // SAFETY: the caller's promise, passed on.
        let Some(name) = (unsafe { self::name(function, name) }) else {
            return std::ptr::null();
        };
        let chain = PerProcess::leak(H::lookup(runtime::current(), name));
        leak(H::new(name.into(), chain))
    })
}

/// Runs `op` on this process's metric behind `handle` (nothing for NULL),
/// with serving started if need be. A panic is caught and recorded.
///
/// # Safety
///
/// As [`handle`]: `handle` is NULL or came from [`make`].
unsafe fn with_handle<H: Handle, R: Copy>(
    function: &'static str,
    handle: *const H,
    fallback: R,
    op: impl FnOnce(&H::Metric) -> R,
) -> R {
    guarded(function, fallback, || {
        // SAFETY: the caller's promise, passed on.
        let Some(handle) = (unsafe { self::handle(handle) }) else {
            return fallback;
        };
        let runtime = runtime::recording();
        let (name, chain) = handle.parts();
        op(chain.get(|_| H::lookup(runtime, name)))
    })
}

/// A counter handle for `name`, or NULL if `name` is NULL or not UTF-8.
/// Make it once and keep it: each call allocates a handle that lives
/// until the process exits. The caller must not free it.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_counter(name: *const c_char) -> *const StatsPipeCounter {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { make("stats_pipe_counter", name) }
}

/// Adds `by` to the counter (NULL handle: nothing). One atomic add.
/// Thread-safe.
///
/// # Safety
///
/// `counter` is NULL or a handle from `stats_pipe_counter`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_counter_incr(counter: *const StatsPipeCounter, by: u64) {
    // SAFETY: NULL or a handle from `stats_pipe_counter` (header).
    unsafe { with_handle("stats_pipe_counter_incr", counter, (), |c| c.incr_by(by)) };
}

/// A gauge handle for `name` (ownership as `stats_pipe_counter`).
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_gauge(name: *const c_char) -> *const StatsPipeGauge {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { make("stats_pipe_gauge", name) }
}

/// Sets the gauge to an integer (NULL handle: nothing). Thread-safe.
///
/// # Safety
///
/// `gauge` is NULL or a handle from `stats_pipe_gauge`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_gauge_set(gauge: *const StatsPipeGauge, value: i64) {
    // SAFETY: NULL or a handle from `stats_pipe_gauge` (header).
    unsafe { with_handle("stats_pipe_gauge_set", gauge, (), |g| g.set(value)) };
}

/// Sets the gauge to a float; it stays a float. Thread-safe.
///
/// # Safety
///
/// `gauge` is NULL or a handle from `stats_pipe_gauge`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_gauge_set_float(gauge: *const StatsPipeGauge, value: f64) {
    // SAFETY: NULL or a handle from `stats_pipe_gauge` (header).
    unsafe { with_handle("stats_pipe_gauge_set_float", gauge, (), |g| g.set(value)) };
}

/// Adds `by` (may be negative) to the gauge. Thread-safe.
///
/// # Safety
///
/// `gauge` is NULL or a handle from `stats_pipe_gauge`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_gauge_add(gauge: *const StatsPipeGauge, by: i64) {
    // SAFETY: NULL or a handle from `stats_pipe_gauge` (header).
    unsafe { with_handle("stats_pipe_gauge_add", gauge, (), |g| g.add(by)) };
}

/// A histogram handle for `name` (ownership as `stats_pipe_counter`).
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_histogram(name: *const c_char) -> *const StatsPipeHistogram {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { make("stats_pipe_histogram", name) }
}

/// Records a float (durations in seconds) into the histogram. Thread-safe.
///
/// # Safety
///
/// `histogram` is NULL or a handle from `stats_pipe_histogram`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_histogram_observe(
    histogram: *const StatsPipeHistogram,
    value: f64,
) {
    // SAFETY: NULL or a handle from `stats_pipe_histogram` (header).
    unsafe {
        with_handle("stats_pipe_histogram_observe", histogram, (), |h| {
            h.record_float(value)
        })
    };
}

/// Records an integer into the histogram (`.sum`, `.min`, `.max` stay
/// integers while only integers are recorded). Thread-safe.
///
/// # Safety
///
/// `histogram` is NULL or a handle from `stats_pipe_histogram`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_histogram_observe_int(
    histogram: *const StatsPipeHistogram,
    value: i64,
) {
    // SAFETY: NULL or a handle from `stats_pipe_histogram` (header).
    unsafe {
        with_handle("stats_pipe_histogram_observe_int", histogram, (), |h| {
            h.record(value)
        })
    };
}

/// A task handle for `name` (monkit's `mon.Task()`; ownership as
/// `stats_pipe_counter`).
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_task(name: *const c_char) -> *const StatsPipeTask {
    // SAFETY: `name` is NULL or a NUL-terminated string (header).
    unsafe { make("stats_pipe_task", name) }
}

/// Begins a run of the task: `.current` goes up, the clock starts.
/// Returns a run the caller owns until `stats_pipe_task_end`; NULL for a
/// NULL task. Thread-safe. A run begun before a `fork` and ended in the
/// child counts in the parent's (unserved) copy, not the child's stats.
///
/// # Safety
///
/// `task` is NULL or a handle from `stats_pipe_task`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_task_begin(task: *const StatsPipeTask) -> *mut StatsPipeRun {
    let begin = |task: &&'static Task| {
        Box::into_raw(Box::new(StatsPipeRun {
            guard: task.start(),
        }))
    };
    // SAFETY: NULL or a handle from `stats_pipe_task` (header).
    unsafe { with_handle("stats_pipe_task_begin", task, std::ptr::null_mut(), begin) }
}

/// Ends a run and frees it: `ok` nonzero counts a success, 0 an error; its
/// duration goes to the histogram of that outcome. NULL: nothing. `run`
/// must come from `stats_pipe_task_begin` and not be used again.
///
/// # Safety
///
/// `run` is NULL or a run from `stats_pipe_task_begin` not ended yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn stats_pipe_task_end(run: *mut StatsPipeRun, ok: c_int) {
    guarded("stats_pipe_task_end", (), || {
        if run.is_null() {
            return;
        }
        // SAFETY: a pointer from `stats_pipe_task_begin` (Box::into_raw),
        // handed back once (header): we own it again.
        let run = unsafe { Box::from_raw(run) };
        if ok != 0 {
            run.guard.success();
        } else {
            run.guard.error();
        }
    });
}
