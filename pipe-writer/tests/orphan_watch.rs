//! The orphan watch of issue 15's lighter writer: a writer read regularly
//! probes its retired FIFOs at its serves and never wakes its sweeper
//! thread, and a writer nobody reads makes no wake-up (an orphan found by
//! a serve is served: serve.rs). Alone in this file: the sweeper is found
//! by its thread name, which another test's server would share.

mod util;

use std::sync::Arc;
use std::time::Duration;

use pipe_writer::Builder;
use util::{TempDir, complete_body, read_once, registry_with, threads_named};

const READ_DEADLINE: Duration = Duration::from_secs(2);

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
    let before = threads_named("stats-pipe-orph").wake_ups;
    // Twenty reads, 300 ms apart: every retired FIFO is probed by a later
    // serve, so the sweeper's timer is moved on and never fires.
    for _ in 0..20 {
        complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
        std::thread::sleep(Duration::from_millis(300));
    }
    let read = threads_named("stats-pipe-orph").wake_ups - before;
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
    let idle_from = threads.map(threads_named);
    std::thread::sleep(Duration::from_secs(3));
    let idle_to = threads.map(threads_named);
    assert_eq!(
        idle_to.map(|t| t.wake_ups),
        idle_from.map(|t| t.wake_ups),
        "a writer nobody reads woke one of {threads:?}"
    );
    assert_eq!(
        idle_to.map(|t| t.cpu_ns),
        idle_from.map(|t| t.cpu_ns),
        "a writer nobody reads ran one of {threads:?}"
    );
    assert_eq!(server.stats().orphans, 0);
    server.stop().unwrap();
}
