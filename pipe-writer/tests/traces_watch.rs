//! The traces FIFO (`<dir>/traces/<pid>.traces`, issue 16) is served by
//! the same code as `.stats`, so it gets issue 15's lighter writer too: its
//! serving thread probes retired FIFOs after serves and its sweeper sleeps
//! on a timer that serves push back, a traces pipe nobody reads wakes
//! nothing, and an orphaned `cat` of it found by the spare pool's peek is
//! served one whole answer while reads storm. Alone in this file: the
//! sweepers are found by their thread names, which another test's server
//! would share.

mod util;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pipe_writer::{Builder, TracesRead, verify_traces};
use stats_core::Registry;
use util::{LookedUp, TempDir, complete_body, output_within, read_once, threads_named};

const READ_DEADLINE: Duration = Duration::from_secs(2);
/// A `cat` left waiting longer than this hangs (an orphan is served within
/// about 2 s).
const CAT_DEADLINE: Duration = Duration::from_secs(10);
/// The sweeper threads, by the 15 bytes of their names `comm` keeps.
const STATS_SWEEPER: &str = "stats-pipe-orph";
const TRACES_SWEEPER: &str = "traces-orphans";

/// The trace lines of one complete answer.
fn trace_lines(bytes: &[u8]) -> Option<usize> {
    match verify_traces(bytes) {
        TracesRead::Complete { body, .. } => Some(bytes[body].split(|&b| b == b'\n').count() - 1),
        _ => None,
    }
}

fn read_traces(path: &Path) -> Vec<u8> {
    // Empty: another reader took the answer; a careful reader retries.
    loop {
        let bytes = read_once(path, READ_DEADLINE).unwrap();
        if !bytes.is_empty() {
            return bytes;
        }
    }
}

#[test]
fn the_traces_fifo_is_probed_at_its_serves_wakes_nothing_unread_and_serves_its_orphans() {
    let dir = TempDir::new("traceswatch");
    let registry = Arc::new(Registry::new());
    registry.tracer().set_sample_every(1);
    let request = registry.task("request");
    for _ in 0..5 {
        let _ = request.run(|| Ok::<_, ()>(()));
    }
    let server = Builder::new()
        .dir(dir.path())
        .registry(Arc::clone(&registry))
        .start()
        .unwrap();
    let traces = server.traces_path().unwrap().to_path_buf();
    // Both sweepers have gone to sleep on their (unset) timers.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        threads_named(TRACES_SWEEPER).threads,
        1,
        "one traces sweeper"
    );
    let traces_before = threads_named(TRACES_SWEEPER).wake_ups;

    // The stats read regularly: the traces side, unread, wakes for nothing.
    for _ in 0..10 {
        complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        threads_named(TRACES_SWEEPER).wake_ups,
        traces_before,
        "the traces sweeper woke while only the stats were read"
    );

    // The traces read regularly, 300 ms apart: every retired FIFO is probed
    // by a later serve, so its sweeper's timer is moved on and never fires
    // (one spare for a hiccup of the machine), and the stats side, unread
    // meanwhile, goes quiet after its last probe.
    std::thread::sleep(Duration::from_secs(3));
    let stats_idle = threads_named(STATS_SWEEPER).wake_ups;
    let traces_before = threads_named(TRACES_SWEEPER).wake_ups;
    for _ in 0..20 {
        assert_eq!(trace_lines(&read_traces(&traces)), Some(5));
        std::thread::sleep(Duration::from_millis(300));
    }
    let read = threads_named(TRACES_SWEEPER).wake_ups - traces_before;
    assert!(
        read <= 1,
        "the traces sweeper woke {read} times for 20 reads"
    );
    assert_eq!(threads_named(STATS_SWEEPER).wake_ups, stats_idle);

    // An orphaned `cat` of the traces FIFO (its path lookup found a FIFO
    // that was then served and retired) while reads come back to back: the
    // spare pool's peek finds it long before any timed probe and hands it
    // to the sweeper, which serves it one whole answer, never a bare
    // end-of-file.
    for _ in 0..5 {
        let looked_up = LookedUp::new(&traces);
        assert_eq!(trace_lines(&read_traces(&traces)), Some(5));
        let own = looked_up.proc_path();
        let orphan =
            std::thread::spawn(move || output_within(Command::new("cat").arg(&own), CAT_DEADLINE));
        std::thread::sleep(Duration::from_millis(150));
        for _ in 0..6 {
            assert_eq!(trace_lines(&read_traces(&traces)), Some(5));
        }
        let out = orphan.join().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            trace_lines(&out.stdout),
            Some(5),
            "the orphan read {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        drop(looked_up);
    }

    // Reads stop: the last FIFOs are probed by the sweeper (one wake-up, at
    // most 2 s later, or a few for orphans still being served), then
    // nothing is watched and nothing wakes it.
    std::thread::sleep(Duration::from_secs(3));
    let idle_from = threads_named(TRACES_SWEEPER).wake_ups;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        threads_named(TRACES_SWEEPER).wake_ups,
        idle_from,
        "a traces FIFO nobody reads woke its sweeper"
    );
    server.stop().unwrap();
}
