//! The traces FIFO (`<dir>/traces/<pid>.traces`, issue 16) is served by
//! the same code as `.stats`, so it gets issue 15's lighter writer too: its
//! serving thread probes retired FIFOs after serves and its sweeper sleeps
//! on a timer that serves push back, a traces pipe nobody reads wakes
//! nothing, and an orphaned `cat` of it found by the spare pool's peek is
//! served one whole answer while reads storm. Alone in this file: the
//! sweepers are found by their thread names, which another test's server
//! would share.

mod util;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use pipe_writer::{Builder, TracesRead, verify_traces};
use stats_core::Registry;
use util::{TempDir, complete_body, output_within, read_once};

const READ_DEADLINE: Duration = Duration::from_secs(2);
/// A `cat` left waiting longer than this hangs (an orphan is served within
/// about 2 s).
const CAT_DEADLINE: Duration = Duration::from_secs(10);
/// The sweeper threads, by the 15 bytes of their names `comm` keeps.
const STATS_SWEEPER: &str = "stats-pipe-orph";
const TRACES_SWEEPER: &str = "traces-orphans";

/// Sleeps that ended (voluntary context switches) of this process's threads
/// named `name`, and how many there are.
fn wake_ups_of(name: &str) -> (u64, usize) {
    let (mut total, mut threads) = (0, 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        threads += 1;
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    (total, threads)
}

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
    assert_eq!(wake_ups_of(TRACES_SWEEPER).1, 1, "one traces sweeper");
    let (traces_before, _) = wake_ups_of(TRACES_SWEEPER);

    // The stats read regularly: the traces side, unread, wakes for nothing.
    for _ in 0..10 {
        complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        wake_ups_of(TRACES_SWEEPER).0,
        traces_before,
        "the traces sweeper woke while only the stats were read"
    );

    // The traces read regularly, 300 ms apart: every retired FIFO is probed
    // by a later serve, so its sweeper's timer is moved on and never fires
    // (one spare for a hiccup of the machine), and the stats side, unread
    // meanwhile, goes quiet after its last probe.
    std::thread::sleep(Duration::from_secs(3));
    let (stats_idle, _) = wake_ups_of(STATS_SWEEPER);
    let (traces_before, _) = wake_ups_of(TRACES_SWEEPER);
    for _ in 0..20 {
        assert_eq!(trace_lines(&read_traces(&traces)), Some(5));
        std::thread::sleep(Duration::from_millis(300));
    }
    let read = wake_ups_of(TRACES_SWEEPER).0 - traces_before;
    assert!(
        read <= 1,
        "the traces sweeper woke {read} times for 20 reads"
    );
    assert_eq!(wake_ups_of(STATS_SWEEPER).0, stats_idle);

    // An orphaned `cat` of the traces FIFO (its path lookup found a FIFO
    // that was then served and retired) while reads come back to back: the
    // spare pool's peek finds it long before any timed probe and hands it
    // to the sweeper, which serves it one whole answer, never a bare
    // end-of-file.
    for _ in 0..5 {
        let looked_up = open(
            &traces,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        assert_eq!(trace_lines(&read_traces(&traces)), Some(5));
        let own = format!("/proc/{}/fd/{}", std::process::id(), looked_up.as_raw_fd());
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
    let (idle_from, _) = wake_ups_of(TRACES_SWEEPER);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        wake_ups_of(TRACES_SWEEPER).0,
        idle_from,
        "a traces FIFO nobody reads woke its sweeper"
    );
    server.stop().unwrap();
}
