//! A test writer for the call-graph and trace tests: serves its own
//! registry through pipe-writer in `--dir DIR` and runs nested tasks as
//! told on stdin, one command per line, fields separated by tabs (so task
//! names may hold spaces), answering `ok` (or `error: ...`) after each:
//!
//! - `run<TAB>OUTCOME<TAB>MS<TAB>NAME<TAB>NAME...` runs the first task, the
//!   second inside it, and so on; the innermost sleeps MS milliseconds and
//!   ends with OUTCOME (`success`, `error` or `panic`), which every outer
//!   run passes on (an error is returned up, a panic unwinds through all of
//!   them and is caught at the top);
//! - `sample<TAB>N` captures one root run in N as a trace (1: every one);
//! - `exit` (or end of input) stops serving, removes the FIFOs, exits 0.
//!
//! Prints `serving <path>` once the FIFO is up.
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use stats_core::{Registry, Task};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = match (args.next().as_deref(), args.next()) {
        (Some("--dir"), Some(dir)) => dir,
        _ => {
            eprintln!("usage: calls_writer --dir DIR");
            std::process::exit(2);
        }
    };
    let registry = Arc::new(Registry::new());
    let server = match pipe_writer::Builder::new()
        .dir(&dir)
        .registry(Arc::clone(&registry))
        .start()
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("calls_writer: {e}");
            std::process::exit(1);
        }
    };
    // The panics are expected: keep stderr quiet about them.
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "serving {}", server.path().display());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let fields: Vec<&str> = line.split('\t').collect();
        let answer = match fields.as_slice() {
            ["exit"] => break,
            ["sample", n] => n
                .parse()
                .map(|n| registry.tracer().set_sample_every(n))
                .map_err(|_| format!("not a count: {n:?}")),
            ["run", outcome, ms, names @ ..] if !names.is_empty() => ms
                .parse()
                .map_err(|_| format!("not milliseconds: {ms:?}"))
                .and_then(|ms| run(&registry, names, outcome, Duration::from_millis(ms))),
            _ => Err(format!("unknown command {line:?}")),
        };
        let _ = match answer {
            Ok(()) => writeln!(out, "ok"),
            Err(e) => writeln!(out, "error: {e}"),
        };
        let _ = out.flush();
    }
    if let Err(e) = server.stop() {
        eprintln!("calls_writer: {e}");
        std::process::exit(1);
    }
}

fn run(registry: &Registry, names: &[&str], outcome: &str, pause: Duration) -> Result<(), String> {
    if !["success", "error", "panic"].contains(&outcome) {
        return Err(format!("unknown outcome {outcome:?}"));
    }
    let tasks: Vec<Task> = names.iter().map(|n| registry.task(n)).collect();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        nest(&tasks, outcome, pause)
    }));
    match (outcome, caught) {
        ("success", Ok(Ok(()))) | ("error", Ok(Err(()))) | ("panic", Err(_)) => Ok(()),
        _ => Err("the outcome was lost on the way up".into()),
    }
}

/// Runs `tasks[0]` with the rest nested inside it.
fn nest(tasks: &[Task], outcome: &str, pause: Duration) -> Result<(), ()> {
    match tasks {
        [] => {
            std::thread::sleep(pause);
            match outcome {
                "success" => Ok(()),
                "error" => Err(()),
                _ => panic!("expected"),
            }
        }
        [first, rest @ ..] => first.run(|| nest(rest, outcome, pause)),
    }
}
