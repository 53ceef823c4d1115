//! Storms: reads far faster than every 0.5 s, so retired FIFOs go back
//! into the spare pool before any timed probe.
//!
//! - Orphaned `cat`s (their path lookup found a FIFO that was then served
//!   and retired) while a reader reads the path back to back: each must
//!   print exactly one complete snapshot. Before the fix the pool's own
//!   probe released such an orphan with a bare end-of-file, so the `cat`
//!   printed nothing.
//! - Many `cat`s of the path at once, for several seconds: every `cat`
//!   prints one complete snapshot or, when it opened in the same instant
//!   as others and one of them took the snapshot, nothing (FORMAT.md, "What
//!   a reader can rely on": one write reaches one reader of a pipe); never
//!   a torn piece or two envelopes, never a hang, and every snapshot served
//!   reached exactly one `cat`.

mod util;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stats_core::envelope::{Verdict, verify};
use util::{LookedUp, TempDir, bare_builder, body_of, output_within, read_once, registry_with};

/// Concurrent `cat` loops.
const THREADS: usize = 12;
/// How long the storm lasts.
const STORM: Duration = Duration::from_secs(5);
/// A `cat` left waiting longer than this hangs (an orphan is served within
/// about 2 s).
const CAT_DEADLINE: Duration = Duration::from_secs(10);

/// How each `cat` of one thread ended: outputs that were not one complete
/// snapshot, with why, and how many were.
#[derive(Default)]
struct Tally {
    good: usize,
    empty: usize,
    bad: Vec<String>,
}

fn envelopes_in(bytes: &[u8]) -> usize {
    let mut count = usize::from(bytes.starts_with(b"#stats-pipe:"));
    count += bytes.windows(13).filter(|w| w == b"\n#stats-pipe:").count();
    count
}

/// Why `bytes` is not exactly one complete snapshot of `expected`.
fn not_one_snapshot(bytes: &[u8], expected: &[u8]) -> Option<String> {
    let envelopes = envelopes_in(bytes);
    match verify(bytes) {
        Verdict::Complete { body, .. } if envelopes == 1 && bytes[body.clone()] == *expected => {
            None
        }
        verdict => Some(format!(
            "{} bytes, {envelopes} envelopes, {verdict:?}",
            bytes.len()
        )),
    }
}

fn cat_loop(path: std::path::PathBuf, expected: Arc<Vec<u8>>) -> Tally {
    let mut tally = Tally::default();
    let end = Instant::now() + STORM;
    while Instant::now() < end {
        let out = output_within(Command::new("cat").arg(&path), CAT_DEADLINE);
        if !out.status.success() {
            tally.bad.push(format!("cat failed: {out:?}"));
            continue;
        }
        if out.stdout.is_empty() {
            tally.empty += 1;
            continue;
        }
        match not_one_snapshot(&out.stdout, &expected) {
            None => tally.good += 1,
            Some(why) => tally.bad.push(why),
        }
    }
    tally
}

/// How many orphaned `cat`s the orphan storm makes.
const ORPHANS: usize = 20;

#[test]
fn orphaned_cats_are_served_one_snapshot_while_reads_storm() {
    let dir = TempDir::new("orphanstorm");
    let registry = registry_with(200, 20);
    let server = bare_builder(&dir, &registry).start().unwrap();
    let expected = Arc::new(body_of(&registry));
    let path = server.path().to_path_buf();
    // A careful reader reads the path back to back, except while the gate
    // is held (an empty read, another reader having taken the snapshot, is
    // retried by such a reader).
    let gate = Arc::new(Mutex::new(()));
    let storming = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicUsize::new(0));
    let storm = {
        let (gate, storming, reads, path, expected) = (
            Arc::clone(&gate),
            Arc::clone(&storming),
            Arc::clone(&reads),
            path.clone(),
            Arc::clone(&expected),
        );
        std::thread::spawn(move || {
            while storming.load(Relaxed) {
                let open = gate.lock().unwrap();
                let bytes = read_once(&path, CAT_DEADLINE).unwrap();
                drop(open);
                if !bytes.is_empty() {
                    assert_eq!(not_one_snapshot(&bytes, &expected), None);
                    reads.fetch_add(1, Relaxed);
                }
            }
        })
    };
    let mut bad = Vec::new();
    for _ in 0..ORPHANS {
        let paused = gate.lock().unwrap();
        // A racing reader's path lookup finds the FIFO now ...
        let looked_up = LookedUp::new(&path);
        // ... another reader is served, which retires it ...
        assert_eq!(
            not_one_snapshot(&read_once(&path, CAT_DEADLINE).unwrap(), &expected),
            None
        );
        // ... and only now does the racing `cat` open it (blocking: no
        // writer) ...
        let own = looked_up.proc_path();
        let orphan =
            std::thread::spawn(move || output_within(Command::new("cat").arg(&own), CAT_DEADLINE));
        std::thread::sleep(Duration::from_millis(150));
        // ... while reads come back to back again: the retired FIFO reaches
        // the front of the spare pool within a few serves, long before any
        // timed probe, and the pool finds the orphan on it.
        drop(paused);
        let out = orphan.join().unwrap();
        assert!(out.status.success(), "{out:?}");
        bad.extend(not_one_snapshot(&out.stdout, &expected));
        drop(looked_up);
    }
    storming.store(false, Relaxed);
    storm.join().unwrap();
    let stats = server.stats();
    eprintln!(
        "{ORPHANS} orphaned cats, {} not served one snapshot; {} storm reads; server: {stats:?}",
        bad.len(),
        reads.load(Relaxed)
    );
    assert!(
        bad.is_empty(),
        "{} of {ORPHANS} orphans: {bad:#?}",
        bad.len()
    );
    // Far faster than every 0.5 s.
    assert!(reads.load(Relaxed) >= 4 * ORPHANS, "{reads:?} storm reads");
    server.stop().unwrap();
}

#[test]
fn every_cat_of_a_storm_prints_one_complete_snapshot_or_nothing_and_none_is_lost() {
    let dir = TempDir::new("storm");
    let registry = registry_with(200, 20);
    let server = bare_builder(&dir, &registry).start().unwrap();
    let expected = Arc::new(body_of(&registry));
    let loops: Vec<_> = (0..THREADS)
        .map(|_| {
            let path = server.path().to_path_buf();
            let expected = Arc::clone(&expected);
            std::thread::spawn(move || cat_loop(path, expected))
        })
        .collect();
    let (mut good, mut empty) = (0, 0);
    let mut bad = Vec::new();
    for handle in loops {
        let tally = handle.join().unwrap();
        good += tally.good;
        empty += tally.empty;
        bad.extend(tally.bad);
    }
    let stats = server.stats();
    eprintln!(
        "{good} cats with one complete snapshot, {empty} empty (opened with others in one \
         instant), {} neither; server: {stats:?}",
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {} cats: {bad:#?}",
        bad.len(),
        good + bad.len()
    );
    // Every snapshot sent whole at the path reached a `cat` (none doubled:
    // above). Only one sent to an orphan may find its reader gone: one
    // that had its snapshot and was closing when probed 0.5 s later.
    assert!(good as u64 <= stats.snapshots, "{good} cats, {stats:?}");
    assert!(
        stats.snapshots - good as u64 <= stats.orphans,
        "{good} cats got a snapshot of {stats:?}"
    );
    // A storm: many reads, far more than one every 0.5 s.
    assert!(
        good >= 2 * STORM.as_secs() as usize * THREADS,
        "{good} cats only"
    );
    server.stop().unwrap();
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}
