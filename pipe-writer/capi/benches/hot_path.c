/* The C ABI's recording calls, timed in a loop (scripts/bench-capi.sh).
 *
 * Each case runs ITERATIONS calls, ROUNDS times; the median ns per call is
 * printed as `<case> <ns/call>`. Serving is off (STATS_PIPE_AUTOSTART=0 in
 * the script): recording does no I/O either way, and the cases measure the
 * call into the library, not the pipe. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stats_pipe.h"

#define ITERATIONS 2000000
#define ROUNDS 9

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const StatsPipeCounter *counter;
static const StatsPipeGauge *gauge;
static const StatsPipeHistogram *histogram;
static const StatsPipeTask *task;

static void counter_incr(long i) { stats_pipe_counter_incr(counter, (uint64_t)(i & 1)); }
static void gauge_set(long i) { stats_pipe_gauge_set(gauge, i); }
static void histogram_observe(long i) { stats_pipe_histogram_observe(histogram, (double)(i & 1023) * 1e-4); }
static void incr_by_name(long i) { stats_pipe_incr("bench.by_name", i & 1); }
static void task_run(long i) { stats_pipe_task_end(stats_pipe_task_begin(task), (int)(i & 1)); }

static void time_case(const char *name, void (*call)(long), long iterations) {
    double per_call[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double start = now_ns();
        for (long i = 0; i < iterations; i++) {
            call(i);
        }
        per_call[r] = (now_ns() - start) / (double)iterations;
    }
    qsort(per_call, ROUNDS, sizeof per_call[0], by_value);
    printf("%s %.2f\n", name, per_call[ROUNDS / 2]);
}

int main(void) {
    counter = stats_pipe_counter("bench.counter");
    gauge = stats_pipe_gauge("bench.gauge");
    histogram = stats_pipe_histogram("bench.histogram");
    task = stats_pipe_task("bench.task");
    if (!counter || !gauge || !histogram || !task) {
        fprintf(stderr, "a handle is NULL\n");
        return 1;
    }
    time_case("counter_incr", counter_incr, ITERATIONS);
    time_case("gauge_set", gauge_set, ITERATIONS);
    time_case("histogram_observe", histogram_observe, ITERATIONS);
    time_case("incr_by_name", incr_by_name, ITERATIONS / 4);
    time_case("task_begin_end", task_run, ITERATIONS / 4);
    return 0;
}
