//! A test writer for the metric-kind tests: serves its own registry through
//! pipe-writer in `--dir DIR` and applies commands read from stdin, one per
//! line, answering `ok` (or `error: ...`) on stdout after each:
//!
//! - `record NAME VALUE` records into histogram NAME (a value with `.`, `e`
//!   or `inf`/`nan` is a float, else an integer);
//! - `incr NAME N` adds N to counter NAME; `set NAME V` sets gauge NAME;
//! - `task NAME success|error|panic` runs task NAME once with that outcome
//!   (the panic is caught after the task saw it);
//! - `exit` (or end of input) stops serving, removes the FIFO and exits 0.
//!
//! Prints `serving <path>` once the FIFO is up.
#![forbid(unsafe_code)]

use stats_core::{Registry, Value};
use stats_pipe_tests::writer_program::{Step, serve_commands};

fn main() {
    serve_commands(
        "kinds_writer",
        |_| {},
        |registry, line, _| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Step::Answer(match words.as_slice() {
                ["record", name, value] => parse_value(value).map(|v| registry.record(name, v)),
                ["incr", name, by] => parse_value(by).map(|v| registry.incr(name, v)),
                ["set", name, value] => parse_value(value).map(|v| registry.set(name, v)),
                ["task", name, outcome] => run_task(registry, name, outcome),
                _ => Err(format!("unknown command {line:?}")),
            })
        },
    );
}

fn parse_value(text: &str) -> Result<Value, String> {
    stats_core::format::parse_value(text).ok_or_else(|| format!("not a number: {text:?}"))
}

fn run_task(registry: &Registry, name: &str, outcome: &str) -> Result<(), String> {
    let task = registry.task(name);
    match outcome {
        "success" => task.run(|| Ok::<(), ()>(())).map_err(|()| "failed".into()),
        "error" => match task.run(|| Err::<(), &str>("expected")) {
            Err("expected") => Ok(()),
            _ => Err("the error was lost".into()),
        },
        "panic" => {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                task.run(|| -> Result<(), ()> { panic!("expected") })
            }));
            if caught.is_err() {
                Ok(())
            } else {
                Err("the panic did not go on".into())
            }
        }
        other => Err(format!("unknown outcome {other:?}")),
    }
}
