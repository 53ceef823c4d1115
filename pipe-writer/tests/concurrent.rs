//! Four readers opening the pipe in the same instant, round after round:
//! nobody hangs, and whatever is not one complete snapshot says so.

mod util;

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pipe_writer::Builder;
use stats_core::envelope::{Verdict, verify};
use util::{TempDir, body_of, read_once, registry_with};

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
/// No single read may take longer (the acceptance bound for a hang).
const READ_DEADLINE: Duration = Duration::from_secs(1);
/// Retries after an empty or incomplete read before a round fails.
const MAX_TRIES: usize = 200;

#[derive(Debug, Default)]
struct Tally {
    complete: u64,
    empty: u64,
    incomplete: u64,
    slowest: Duration,
}

fn rounds(stats: usize) {
    let rounds = rounds_for(stats);
    let dir = TempDir::new(&format!("concurrent-{stats}"));
    let registry = registry_with(stats, 0);
    let expected = Arc::new(body_of(&registry));
    let server = Builder::new()
        .dir(dir.path())
        .registry(Arc::clone(&registry))
        .start()
        .unwrap();
    let path: PathBuf = server.path().to_path_buf();
    let barrier = Arc::new(Barrier::new(READERS));
    let started = Instant::now();
    let readers: Vec<_> = (0..READERS)
        .map(|reader| {
            let (path, barrier, expected) =
                (path.clone(), Arc::clone(&barrier), Arc::clone(&expected));
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                for round in 0..rounds {
                    barrier.wait();
                    let mut tries = 0;
                    loop {
                        let began = Instant::now();
                        let bytes = read_once(&path, READ_DEADLINE)
                            .unwrap_or_else(|e| panic!("reader {reader} round {round}: {e:?}"));
                        tally.slowest = tally.slowest.max(began.elapsed());
                        match verify(&bytes) {
                            Verdict::Complete { header, body } => {
                                // Never a wrong "complete".
                                assert_eq!(&bytes[body], &expected[..], "round {round}");
                                assert_eq!(header.pid, std::process::id());
                                tally.complete += 1;
                                break;
                            }
                            Verdict::Empty => tally.empty += 1,
                            Verdict::Incomplete(_) => tally.incomplete += 1,
                            Verdict::Foreign => panic!(
                                "reader {reader} round {round}: a piece that passes for \
                                 foreign: {:?}",
                                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                            ),
                        }
                        tries += 1;
                        assert!(tries < MAX_TRIES, "reader {reader} round {round}: no luck");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for reader in readers {
        let t = reader.join().unwrap();
        total.complete += t.complete;
        total.empty += t.empty;
        total.incomplete += t.incomplete;
        total.slowest = total.slowest.max(t.slowest);
    }
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
