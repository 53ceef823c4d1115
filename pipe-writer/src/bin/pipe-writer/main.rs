//! The `pipe-writer` command: publish stats from a shell script or a program
//! in any language by writing `name: value` / `name += value` lines to its
//! stdin; it serves them at `<dir>/<pid>.stats`. Glue only, not a library:
//! the grammar is `pipe_writer::input`, serving is `pipe_writer::Builder`.
#![deny(unsafe_code)]

mod sys;

use std::io::{BufRead, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use crossbeam_channel::RecvTimeoutError;
use nix::sys::signal::{SigSet, Signal};
use pipe_writer::input::{parse_line, read_line};
use stats_core::Registry;

const GRAMMAR: &str = "\
INPUT (one command per line on stdin):
  name: value       set the stat to value
  name += value     add value to the stat (a missing stat starts at value)

  The operator is whichever of ':' and '+=' comes LAST on the line, so names
  may hold spaces, colons and '+=':  'host:port: 3' sets 'host:port',
  'a: b += 1' increments 'a: b'. Name and value are trimmed. A value is an
  integer or a float ('3', '-2', '0.5', '1e3', 'nan', 'inf'); once a stat is a
  float it stays a float. Names must not be empty, hold control characters
  (tabs included) or start with '#'. Blank lines are ignored; any other bad
  line is reported on stderr with its line number and skipped.

PROCESS STATS:
  Every snapshot also carries this process's own figures, read from /proc
  once a second in the background (at most about a second old; uptime is
  exact): process.rss_bytes, process.cpu_seconds (a counter),
  process.threads, process.open_fds, process.uptime_seconds (merged host-wide
  by max). The 'process.' prefix is reserved for them; a stat set on stdin
  under one of these names replaces that line. --no-process-stats leaves
  them out.

LIFETIME:
  Serves from start-up until stdin closes, then removes the FIFO and exits 0.
  If the FIFO disappears from its path (the pipe directory was removed, or
  removed and made again), it is served afresh there within about a second,
  with the same stats.
  With --linger it keeps serving after stdin closes until SIGINT or SIGTERM
  (then removes the FIFO and exits 0). SIGINT/SIGTERM before stdin closes
  without --linger: removes the FIFO and exits 128+signal.

EXAMPLE:
  { echo 'jobs done += 1'; sleep 60; } | pipe-writer --dir /tmp/demo &
  cat /tmp/demo/$!.stats";

/// Serve stats read from stdin as a live FIFO at <dir>/<pid>.stats.
#[derive(Parser, Debug)]
#[command(name = "pipe-writer", version, after_long_help = GRAMMAR)]
struct Args {
    /// Directory of the FIFO [default: $STATS_PIPE_DIR, else /tmp/stats-pipe]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Keep serving after stdin closes, until SIGINT or SIGTERM
    #[arg(long)]
    linger: bool,

    /// Permission bits of the FIFO, in octal
    #[arg(long, value_name = "OCTAL", default_value = "600", value_parser = parse_mode)]
    mode: u32,

    /// Print the FIFO's path on stdout once it is being served
    #[arg(long)]
    print_path: bool,

    /// Leave out this process's own process.* lines (memory, CPU, threads,
    /// open fds, uptime)
    #[arg(long)]
    no_process_stats: bool,

    /// Restore SIGPIPE's default action first (tests: a host program that
    /// does so must survive readers that hang up)
    #[arg(long, hide = true)]
    sigpipe_default: bool,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{text:?} is not an octal mode between 000 and 777")),
    }
}

/// How often the path is checked to still reach our FIFO.
const CHECK_EVERY: Duration = Duration::from_secs(1);

enum Event {
    Eof,
    ReadError(std::io::Error),
    Signal(Signal),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("pipe-writer: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    if args.sigpipe_default {
        sys::restore_default_sigpipe().map_err(|e| format!("cannot reset SIGPIPE: {e}"))?;
    }
    // Blocked before any thread starts, so every thread inherits the mask
    // and the signals wait for `sigwait` in the signal thread.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .map_err(|e| format!("cannot block SIGINT/SIGTERM: {e}"))?;

    let mut builder = pipe_writer::Builder::new()
        .mode(args.mode)
        .process_stats(!args.no_process_stats);
    if let Some(dir) = &args.dir {
        builder = builder.dir(dir);
    }
    let mut server = Some(builder.clone().start().map_err(|e| e.to_string())?);
    if args.print_path
        && let Some(server) = &server
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", server.path().display());
        let _ = stdout.flush();
    }

    let (events, inbox) = crossbeam_channel::unbounded();
    let stdin_events = events.clone();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let event = match read_commands(&mut std::io::stdin().lock(), Registry::global()) {
                Ok(()) => Event::Eof,
                Err(e) => Event::ReadError(e),
            };
            let _ = stdin_events.send(event);
        })
        .map_err(|e| format!("cannot start the stdin thread: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(signal) = signals.wait() {
                if events.send(Event::Signal(signal)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    let code = loop {
        match inbox.recv_timeout(CHECK_EVERY) {
            Err(RecvTimeoutError::Timeout) => serve_again_if_unreachable(&mut server, &builder),
            Ok(Event::Eof) if args.linger => {}
            Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => break ExitCode::SUCCESS,
            Ok(Event::ReadError(e)) => {
                eprintln!("pipe-writer: reading stdin: {e}");
                if !args.linger {
                    break ExitCode::FAILURE;
                }
            }
            Ok(Event::Signal(_)) if args.linger => break ExitCode::SUCCESS,
            Ok(Event::Signal(signal)) => break ExitCode::from(128 + signal as u8),
        }
    };
    if let Some(server) = server {
        let path = server.path().to_path_buf();
        server
            .stop()
            .map_err(|e| format!("serving {} failed: {e}", path.display()))?;
    }
    Ok(code)
}

/// Whether `path` still names a FIFO. The server holds its FIFOs by
/// descriptor, so it goes on serving one that readers can no longer reach
/// once the pipe directory is removed (and perhaps made again) or the FIFO
/// is deleted.
fn reachable(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Serves afresh at the same path when the FIFO is no longer there (or when
/// the last attempt failed); the stats live in the registry, so none is lost.
fn serve_again_if_unreachable(
    server: &mut Option<pipe_writer::Server>,
    builder: &pipe_writer::Builder,
) {
    let was_serving = server.is_some();
    if let Some(running) = server.take() {
        if reachable(running.path()) {
            *server = Some(running);
            return;
        }
        eprintln!(
            "pipe-writer: {} is gone (pipe directory removed?); serving it again",
            running.path().display()
        );
        // Its directory may be gone: removing its names can fail, harmlessly.
        let _ = running.stop();
    }
    match builder.clone().start() {
        Ok(fresh) => *server = Some(fresh),
        // Said once; it is tried again every check.
        Err(e) if was_serving => eprintln!("pipe-writer: cannot serve again yet: {e}"),
        Err(_) => {}
    }
}

/// Applies every command on `input` to `registry`; bad lines are reported on
/// stderr with their line number and skipped.
fn read_commands(input: &mut impl BufRead, registry: &Registry) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut number = 0u64;
    while let Some(line) = read_line(input, &mut buf)? {
        number += 1;
        match line.and_then(parse_line) {
            Ok(Some(command)) => command.apply(registry),
            Ok(None) => {}
            Err(error) => {
                let shown = String::from_utf8_lossy(&buf);
                let shown = shown.trim_end_matches(['\n', '\r']);
                let shown: String = shown.chars().take(80).collect();
                eprintln!("pipe-writer: stdin line {number}: {error}; skipped: {shown:?}");
            }
        }
    }
    Ok(())
}
