//! The orphan watch of issue 15's lighter writer: a writer read regularly
//! probes its retired FIFOs at its serves and never wakes its sweeper
//! thread, and a writer nobody reads makes no wake-up (an orphan found by
//! a serve is served: serve.rs). Alone in this file: the sweeper is found
//! by its thread name, which another test's server would share.

mod util;

use std::sync::Arc;
use std::time::Duration;

use pipe_writer::Builder;
use util::{TempDir, complete_body, read_once, registry_with};

const READ_DEADLINE: Duration = Duration::from_secs(2);

/// Sleeps that ended (voluntary context switches) of this process's threads
/// named `name`.
fn wake_ups_of(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// CPU time (ns, `/proc/self/task/*/schedstat`) of this process's threads
/// named `name`.
fn cpu_of(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += schedstat
            .split(' ')
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

#[test]
fn a_writer_read_regularly_never_wakes_its_sweeper_and_one_unread_not_at_all() {
    let dir = TempDir::new("wakeups");
    let registry = registry_with(50, 0);
    let server = Builder::new()
        .dir(dir.path())
        .registry(Arc::clone(&registry))
        .start()
        .unwrap();
    // The sweeper has gone to sleep on its (unset) timer.
    std::thread::sleep(Duration::from_millis(200));
    let before = wake_ups_of("stats-pipe-orph");
    // Twenty reads, 300 ms apart: every retired FIFO is probed by a later
    // serve, so the sweeper's timer is moved on and never fires.
    for _ in 0..20 {
        complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
        std::thread::sleep(Duration::from_millis(300));
    }
    let read = wake_ups_of("stats-pipe-orph") - before;
    // One spare for a hiccup of the machine longer than 1.5 s between two
    // reads; the design before issue 15's lighter writer woke it about
    // once every two reads (10 here), the first one once per read.
    assert!(read <= 1, "the sweeper woke {read} times for 20 reads");
    // Reads stop: the last FIFOs are probed by the sweeper (one wake-up, 2
    // to 3 s after the last snapshot: LATEST_PROBE plus ARM_SLACK), then
    // nothing is watched and nothing wakes any of the server's threads.
    std::thread::sleep(Duration::from_secs(4));
    let threads = [
        "stats-pipe",
        "stats-pipe-orph",
        "traces-pipe",
        "traces-orphans",
    ];
    let idle_from = threads.map(wake_ups_of);
    let cpu_from = threads.map(cpu_of);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        threads.map(wake_ups_of),
        idle_from,
        "a writer nobody reads woke one of {threads:?}"
    );
    assert_eq!(
        threads.map(cpu_of),
        cpu_from,
        "a writer nobody reads ran one of {threads:?}"
    );
    assert_eq!(server.stats().orphans, 0);
    server.stop().unwrap();
}
