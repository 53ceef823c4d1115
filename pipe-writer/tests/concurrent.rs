//! Four readers opening the pipe in the same instant, round after round:
//! nobody hangs, and whatever is not one complete snapshot says so.

mod util;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use stats_core::envelope::{Verdict, verify};
use util::{TempDir, bare_builder, body_of, read_once, registry_with};

const READERS: usize = 4;
/// Rounds for small snapshots; the acceptance number.
const ROUNDS: usize = 1000;
/// Rounds for 10,000-stat snapshots in the default run, scaled down so the
/// crate's debug-build test run stays near a minute (each round builds and
/// checks about four 200 KB snapshots, ~27 ms unoptimised).
/// `PIPE_WRITER_ROUNDS=1000` runs the full acceptance count.
const BIG_ROUNDS: usize = 300;

fn rounds_for(stats: usize) -> usize {
    std::env::var("PIPE_WRITER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if stats > 1000 { BIG_ROUNDS } else { ROUNDS })
}
/// No single read may take longer (the acceptance bound for a hang). A
/// reader that loses the lookup race to a swap is an orphan, served by the
/// writer's one batched probe 0.5 to about 2 s after the snapshot (issue
/// 15: sweep.rs), so the bound is that plus room for a busy machine.
const READ_DEADLINE: Duration = Duration::from_secs(4);
/// Retries after an empty or incomplete read before a round fails.
const MAX_TRIES: usize = 200;

#[derive(Debug, Default)]
struct Tally {
    complete: u64,
    empty: u64,
    incomplete: u64,
    slowest: Duration,
}

/// One reader's round: reads until it gets one complete snapshot, which
/// must be exactly `expected`.
fn one_round(path: &Path, expected: &[u8], tally: &mut Tally) -> Result<(), String> {
    for _ in 0..MAX_TRIES {
        let began = Instant::now();
        let bytes = read_once(path, READ_DEADLINE).map_err(|e| format!("{e:?}"))?;
        tally.slowest = tally.slowest.max(began.elapsed());
        match verify(&bytes) {
            Verdict::Complete { header, body } => {
                // Never a wrong "complete".
                if &bytes[body] != expected {
                    return Err("a complete snapshot with the wrong body".to_owned());
                }
                if header.pid != std::process::id() {
                    return Err(format!("a snapshot from PID {}", header.pid));
                }
                tally.complete += 1;
                return Ok(());
            }
            Verdict::Empty => tally.empty += 1,
            Verdict::Incomplete(_) => tally.incomplete += 1,
            Verdict::Foreign => {
                return Err(format!(
                    "a piece that passes for foreign: {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("no complete snapshot in {MAX_TRIES} tries"))
}

fn rounds(stats: usize) {
    let rounds = rounds_for(stats);
    let dir = TempDir::new(&format!("concurrent-{stats}"));
    let registry = registry_with(stats, 0);
    let expected = Arc::new(body_of(&registry));
    let server = bare_builder(&dir, &registry).start().unwrap();
    let path: PathBuf = server.path().to_path_buf();
    let barrier = Arc::new(Barrier::new(READERS));
    // A reader that fails keeps meeting the others at the barrier (doing
    // nothing else), so one failure fails the test instead of leaving the
    // other readers waiting at the barrier forever.
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let readers: Vec<_> = (0..READERS)
        .map(|reader| {
            let (path, barrier, expected, failed) = (
                path.clone(),
                Arc::clone(&barrier),
                Arc::clone(&expected),
                Arc::clone(&failed),
            );
            std::thread::spawn(move || -> Result<Tally, String> {
                let mut tally = Tally::default();
                let mut failure = None;
                for round in 0..rounds {
                    barrier.wait();
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Err(error) = one_round(&path, &expected, &mut tally) {
                        failed.store(true, Ordering::Relaxed);
                        failure = Some(format!("reader {reader} round {round}: {error}"));
                    }
                }
                failure.map_or(Ok(tally), Err)
            })
        })
        .collect();
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for reader in readers {
        match reader.join().expect("a reader panicked") {
            Ok(t) => {
                total.complete += t.complete;
                total.empty += t.empty;
                total.incomplete += t.incomplete;
                total.slowest = total.slowest.max(t.slowest);
            }
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let served = server.stats();
    eprintln!(
        "{stats} stats, {READERS} readers x {rounds} rounds in {:?}: {total:?}; {served:?}",
        started.elapsed()
    );
    assert_eq!(total.complete, (READERS * rounds) as u64);
    server.stop().unwrap();
}

#[test]
fn four_readers_a_thousand_rounds_100_stats() {
    rounds(100);
}

#[test]
fn four_readers_many_rounds_10000_stats() {
    rounds(10_000);
}
