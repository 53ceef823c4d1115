#ifndef STATS_PIPE_H
#define STATS_PIPE_H

/* Written from pipe-writer/capi/src/ffi/mod.rs: do not edit. Regenerate with
   STATS_PIPE_BLESS=1 cargo test -p stats-pipe-capi --test header */

#include <stddef.h>
#include <stdint.h>

// stats-pipe's C ABI: each process serves its own stats at
// <dir>/<pid>.stats (dir: STATS_PIPE_DIR, else /tmp/stats-pipe).
//
// Rules every function keeps:
// - every call is thread-safe, and safe in a child of fork(): the child
//   records into its own, empty registry and serves its own pipe;
// - no panic crosses the boundary: a failure is -1 or NULL (or nothing, for
//   a void call) with the reason in stats_pipe_last_error;
// - a `const char *` is NULL or NUL-terminated UTF-8, borrowed for the call
//   only; a NULL or non-UTF-8 name records nothing;
// - a handle (`const StatsPipeCounter *` ...) is NULL or what its
//   constructor returned; it belongs to the library, lives until the
//   process exits (in its children too) and is never freed by the caller;
// - a `StatsPipeRun *` is the caller's from stats_pipe_task_begin until it
//   is given back, once, to stats_pipe_task_end;
// - a `char *buf` is NULL with `len` 0, or `len` writable bytes.

// A counter handle (`stats_pipe_counter`): owned by the library, valid
// until exit, usable from any thread and in children of `fork`.
typedef struct StatsPipeCounter StatsPipeCounter;

// A gauge handle (`stats_pipe_gauge`); same ownership as a counter's.
typedef struct StatsPipeGauge StatsPipeGauge;

// A histogram handle (`stats_pipe_histogram`); same ownership as a
// counter's.
typedef struct StatsPipeHistogram StatsPipeHistogram;

// A task handle (`stats_pipe_task`); same ownership as a counter's.
typedef struct StatsPipeTask StatsPipeTask;

// One run of a task, from `stats_pipe_task_begin` until
// `stats_pipe_task_end`, which frees it. Owned by the caller in between;
// it may be ended on another thread than the one that began it.
typedef struct StatsPipeRun StatsPipeRun;

#ifdef __cplusplus
extern "C" {
#endif

// Starts serving this process's stats at `<dir>/<pid>.stats`. `dir` NULL:
// `STATS_PIPE_DIR`, else `/tmp/stats-pipe`. Already serving there: does
// nothing. Recording starts serving by itself (unless
// `STATS_PIPE_AUTOSTART=0`); call this to choose the directory or to
// learn about a failure at once.
//
// Returns 0, or -1 with the reason in `stats_pipe_last_error`.
// Thread-safe. `dir` is borrowed for the call.
int stats_pipe_start(const char *dir);

// Stops serving and removes this process's FIFO; recording goes on, but
// no longer starts serving by itself. First waits up to `linger_seconds`
// for a reader to take a snapshot made after this call (so an aggregator
// sees the last counts of an exiting process); 0 stops at once.
//
// Returns 0, or -1 if serving had ended with an error (see
// `stats_pipe_last_error`). Thread-safe.
int stats_pipe_stop(double linger_seconds);

// Copies the path being served into `buf` (NUL-terminated, cut to
// `len - 1` bytes) and returns the path's full length in bytes; 0 when
// not serving. `buf` may be NULL with `len` 0 to ask for the length.
// Thread-safe; the caller owns `buf`.
size_t stats_pipe_path(char *buf, size_t len);

// Copies the message of the last error into `buf` like
// `stats_pipe_path` and returns its full length; 0 if none. The error of
// the calling thread's last failed call comes first; otherwise why
// serving failed to start by itself or ended. Thread-safe.
size_t stats_pipe_last_error(char *buf, size_t len);

// Adds `by` to the stat `name` (created at `by`; pipestatic's `incr`). A
// stat only ever increased by amounts >= 0 is a counter. Thread-safe;
// `name` is borrowed for the call; NULL or non-UTF-8 records nothing.
void stats_pipe_incr(const char *name, int64_t by);

// Like `stats_pipe_incr` with a float amount: the stat is a float from
// now on.
void stats_pipe_incr_float(const char *name, double by);

// Sets the stat `name` to `value` (a gauge; pipestatic's `set`; a float
// stat stays a float). Thread-safe; `name` borrowed for the call.
void stats_pipe_set(const char *name, int64_t value);

// Sets the stat `name` to a float `value`.
void stats_pipe_set_float(const char *name, double value);

// Records `value` into the histogram `name` (durations in seconds).
// Thread-safe; `name` borrowed for the call.
void stats_pipe_observe(const char *name, double value);

// A counter handle for `name`, or NULL if `name` is NULL or not UTF-8.
// Make it once and keep it: each call allocates a handle that lives
// until the process exits. The caller must not free it.
const StatsPipeCounter *stats_pipe_counter(const char *name);

// Adds `by` to the counter (NULL handle: nothing). One atomic add.
// Thread-safe.
void stats_pipe_counter_incr(const StatsPipeCounter *counter, uint64_t by);

// A gauge handle for `name` (ownership as `stats_pipe_counter`).
const StatsPipeGauge *stats_pipe_gauge(const char *name);

// Sets the gauge to an integer (NULL handle: nothing). Thread-safe.
void stats_pipe_gauge_set(const StatsPipeGauge *gauge, int64_t value);

// Sets the gauge to a float; it stays a float. Thread-safe.
void stats_pipe_gauge_set_float(const StatsPipeGauge *gauge, double value);

// Adds `by` (may be negative) to the gauge. Thread-safe.
void stats_pipe_gauge_add(const StatsPipeGauge *gauge, int64_t by);

// A histogram handle for `name` (ownership as `stats_pipe_counter`).
const StatsPipeHistogram *stats_pipe_histogram(const char *name);

// Records a float (durations in seconds) into the histogram. Thread-safe.
void stats_pipe_histogram_observe(const StatsPipeHistogram *histogram, double value);

// Records an integer into the histogram (`.sum`, `.min`, `.max` stay
// integers while only integers are recorded). Thread-safe.
void stats_pipe_histogram_observe_int(const StatsPipeHistogram *histogram, int64_t value);

// A task handle for `name` (monkit's `mon.Task()`; ownership as
// `stats_pipe_counter`).
const StatsPipeTask *stats_pipe_task(const char *name);

// Begins a run of the task: `.current` goes up, the clock starts.
// Returns a run the caller owns until `stats_pipe_task_end`; NULL for a
// NULL task. Thread-safe. A run begun before a `fork` and ended in the
// child counts in the parent's (unserved) copy, not the child's stats.
StatsPipeRun *stats_pipe_task_begin(const StatsPipeTask *task);

// Ends a run and frees it: `ok` nonzero counts a success, 0 an error; its
// duration goes to the histogram of that outcome. NULL: nothing. `run`
// must come from `stats_pipe_task_begin` and not be used again.
void stats_pipe_task_end(StatsPipeRun *run, int ok);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // STATS_PIPE_H
