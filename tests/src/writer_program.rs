//! The loop this package's test writer programs (`kinds_writer`,
//! `calls_writer`, `traced_app` in `src/bin/`) share: `--dir DIR`, serve a
//! registry there through pipe-writer, print `serving <path>`, then answer
//! stdin's commands one line at a time until `exit` or the end of input,
//! and stop serving (the FIFOs removed) before exiting 0. Each program only
//! says what its commands do.

use std::io::{BufRead, StdoutLock, Write};
use std::sync::Arc;

use stats_core::Registry;

/// What a program made of one command line.
pub enum Step {
    /// Print `ok`, or `error: <why>`.
    Answer(Result<(), String>),
    /// The command printed its own answer.
    Printed,
}

/// Runs program `name`: parses `--dir DIR`, calls `setup` on the registry
/// before serving starts, then `command` on each stdin line (`exit` ends
/// without it). Panics in the programs' tasks are expected, so the panic
/// hook is silenced.
pub fn serve_commands(
    name: &str,
    setup: impl FnOnce(&Registry),
    mut command: impl FnMut(&Registry, &str, &mut StdoutLock<'_>) -> Step,
) {
    let mut args = std::env::args().skip(1);
    let dir = match (args.next().as_deref(), args.next()) {
        (Some("--dir"), Some(dir)) => dir,
        _ => {
            eprintln!("usage: {name} --dir DIR");
            std::process::exit(2);
        }
    };
    let registry = Arc::new(Registry::new());
    setup(&registry);
    let server = match pipe_writer::Builder::new()
        .dir(&dir)
        .registry(Arc::clone(&registry))
        .start()
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "serving {}", server.path().display());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "exit" {
            break;
        }
        let _ = match command(&registry, &line, &mut out) {
            Step::Answer(Ok(())) => writeln!(out, "ok"),
            Step::Answer(Err(e)) => writeln!(out, "error: {e}"),
            Step::Printed => Ok(()),
        };
        let _ = out.flush();
    }
    if let Err(e) = server.stop() {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}
