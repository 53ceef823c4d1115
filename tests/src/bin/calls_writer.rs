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

use std::time::Duration;

use stats_core::{Registry, Task};
use stats_pipe_tests::writer_program::{Step, serve_commands};

fn main() {
    serve_commands(
        "calls_writer",
        |_| {},
        |registry, line, _| {
            let fields: Vec<&str> = line.split('\t').collect();
            Step::Answer(match fields.as_slice() {
                ["sample", n] => n
                    .parse()
                    .map(|n| registry.tracer().set_sample_every(n))
                    .map_err(|_| format!("not a count: {n:?}")),
                ["run", outcome, ms, names @ ..] if !names.is_empty() => ms
                    .parse()
                    .map_err(|_| format!("not milliseconds: {ms:?}"))
                    .and_then(|ms| run(registry, names, outcome, Duration::from_millis(ms))),
                _ => Err(format!("unknown command {line:?}")),
            })
        },
    );
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
