//! The `pipe-writer` command: publish stats from a shell script or a program
//! in any language by writing `name: value` / `name += value` lines to its
//! stdin; it serves them at `<dir>/<pid>.stats`. Glue only, not a library:
//! the grammar is `pipe_writer::input`, serving is `pipe_writer::Builder`.

mod inbox;
mod sys;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};

use inbox::Inbox;
use pipe_writer::input::{parse_line, read_line};
use pipe_writer::span_reports::SpanReports;
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

SPANS (a task run that just ended, e.g. a step of a shell pipeline):
  #span NAME DURATION [outcome=success|error|panic] [parent=NAME]

  Counts a run of task NAME as the library's tasks do (NAME.success,
  .errors, .panics, .duration, .highwater) and, with parent=, a call edge
  NAME.calls[caller=PARENT,outcome=...]. DURATION is a number and a unit:
  ns, us, ms, s, m, h ('12ms', '1.5s'). Report a step when it ends, the
  outer step last: a span without parent= is a root, captured as a trace
  (one root in --sample-every; the first one always) with the spans
  reported under it while it ran; traces are served at
  <dir>/traces/<pid>.traces. Quote a name with spaces:
  #span \"nightly backup\" 2.5s outcome=error. Bad #span lines are reported
  and skipped like any other.

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
  If readers no longer reach the FIFO at its path (the pipe directory was
  removed, or removed and made again; serving failed, e.g. ENOSPC), the
  cause is reported on stderr and it is served afresh there, with the same
  stats: at once when the directory or a name in it was removed, or the
  directory's mode or owner changed (inotify; a FIFO renamed away or over by
  hand, which only its owner or root can do, goes unnoticed). Where no
  inotify instance is left (128 per user by default), the path is checked
  by the serving thread right after a serve, at most once a second (no
  wake-up of its own while read), and by a timer ever less often (every 1,
  2, 4 ... up to 32 s) for when nobody reads it. A watched writer nobody
  reads wakes for nothing. A FIFO of another user put at the path is
  reported (path and user ID) and never written to; serving resumes there
  once it is removed. A pipe directory owned by a user other than root and
  us, or writable by others without the sticky bit, is refused.
  With --linger it keeps serving after stdin closes until SIGINT or SIGTERM
  (then removes the FIFO and exits 0). SIGINT/SIGTERM before stdin closes
  without --linger: removes the FIFO and exits 128+signal.

EXAMPLE:
  path=$({ echo 'jobs done += 1'; sleep 60; } | pipe-writer --dir /tmp/demo --print-path &)
  cat \"$path\"

  --print-path prints the path once the FIFO is served, then closes stdout,
  so the command substitution returns as soon as `cat` can open the path
  (`cat /tmp/demo/$!.stats` right after `&` may run before the FIFO exists).";

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

    /// Print the FIFO's path on stdout once it is being served, then close
    /// stdout (so `path=$(... | pipe-writer --print-path &)` returns)
    #[arg(long)]
    print_path: bool,

    /// Leave out this process's own process.* lines (memory, CPU, threads,
    /// open fds, uptime)
    #[arg(long)]
    no_process_stats: bool,

    /// Capture one root span in N as a trace (#span lines without
    /// parent=): 1 keeps every one, 0 none
    #[arg(long, value_name = "N", default_value_t = stats_core::trace::DEFAULT_SAMPLE_EVERY)]
    sample_every: u64,

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

/// Prints the FIFO's path (it exists and is served: `start` returned), then
/// points stdout at `/dev/null`. Nothing else is ever written to stdout,
/// and closing it is what lets `path=$(... | pipe-writer --print-path &)`
/// return: a command substitution waits for the end of its pipe, which
/// the background writer would otherwise hold open until it exits.
fn print_path_and_close_stdout(path: &Path) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    // A reader that went away (`| head -c0`) is not our failure.
    let _ = writeln!(stdout, "{}", path.display()).and_then(|()| stdout.flush());
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null to close stdout: {e}"))?;
    nix::unistd::dup2_stdout(&null).map_err(|e| format!("cannot close stdout: {e}"))
}

/// How often the path is checked to still reach our FIFO while serving
/// cannot resume, and the first gap of the timed checks where the pipe
/// directory cannot be watched.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Unwatched, the gap between timed checks doubles up to this. While the
/// pipe is read the serving thread checks the path after its serves
/// (`Builder::on_unreachable`, at most once a second, no wake-up of its
/// own); the timer is for when nobody reads, and a writer nobody reads has
/// nobody to lose, so it notices a lost path within this.
const CHECK_IDLE_MAX: Duration = Duration::from_secs(32);

/// How long a change in the pipe directory settles before the check.
const SETTLE: Duration = Duration::from_millis(100);

/// What of the pipe directory is watched: everything that can cut readers
/// off from our FIFO (the directory removed or renamed, its mode or owner
/// changed, a name in it removed: ours by someone else, or by the serving
/// thread when serving failed), and nothing that every serve does (renames
/// and opens), so a thousand writers in one directory do not wake one
/// another.
const WATCHED: AddWatchFlags = AddWatchFlags::IN_DELETE_SELF
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_ONLYDIR);

enum Event {
    Eof,
    ReadError(std::io::Error),
    Signal(Signal),
    /// Something happened in or to the pipe directory.
    DirChanged,
    /// The directory watch broke: back to timed checks.
    WatchFailed,
    /// The serving thread's check after a serve found the path lost.
    Unreachable,
}

/// Starts a thread that turns inotify events on the pipe directory into
/// [`Event::DirChanged`]. `None` when no inotify instance can be had (at
/// most `fs.inotify.max_user_instances` per user, 128 by default: a host's
/// 129th writer checks once a second instead).
fn start_dir_watch(events: Inbox<Event>) -> Option<Arc<Inotify>> {
    let inotify = Arc::new(Inotify::init(InitFlags::IN_CLOEXEC).ok()?);
    let reader = Arc::clone(&inotify);
    std::thread::Builder::new()
        .name("dir-watch".into())
        .spawn(move || {
            loop {
                let event = match reader.read_events() {
                    Ok(_) => Event::DirChanged,
                    Err(Errno::EINTR) => continue,
                    Err(_) => Event::WatchFailed,
                };
                let failed = matches!(event, Event::WatchFailed);
                events.send(event);
                if failed {
                    break;
                }
            }
        })
        .ok()?;
    Some(inotify)
}

/// Watches the directory of the FIFO `server` serves; false if there is no
/// server or the watch cannot be set (then the path is checked every
/// second).
fn watch_dir(inotify: Option<&Inotify>, server: Option<&pipe_writer::Server>) -> bool {
    let (Some(inotify), Some(server)) = (inotify, server) else {
        return false;
    };
    server
        .path()
        .parent()
        .is_some_and(|dir| inotify.add_watch(dir, WATCHED).is_ok())
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

    Registry::global()
        .tracer()
        .set_sample_every(args.sample_every);
    let inbox = Inbox::new();
    let events = inbox.clone();
    let lost = inbox.clone();
    let mut builder = pipe_writer::Builder::new()
        .mode(args.mode)
        .process_stats(!args.no_process_stats)
        // Checked after serves at most once a second: the reader being
        // served woke this thread anyway, so no timer is needed while read.
        .on_unreachable(move |_| lost.send(Event::Unreachable));
    if let Some(dir) = &args.dir {
        builder = builder.dir(dir);
    }
    let mut server = Some(builder.clone().start().map_err(|e| e.to_string())?);
    if args.print_path
        && let Some(server) = &server
    {
        print_path_and_close_stdout(server.path())?;
    }

    let mut watch = start_dir_watch(events.clone());
    let mut watching = watch_dir(watch.as_deref(), server.as_ref());
    let stdin_events = events.clone();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let event = match read_commands(&mut std::io::stdin().lock(), Registry::global()) {
                Ok(()) => Event::Eof,
                Err(e) => Event::ReadError(e),
            };
            stdin_events.send(event);
        })
        .map_err(|e| format!("cannot start the stdin thread: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(signal) = signals.wait() {
                events.send(Event::Signal(signal));
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    let mut gap = CHECK_EVERY;
    // An event taken while a directory change settled.
    let mut pending = None;
    let code = loop {
        // Watched, a writer nobody reads wakes for nothing; otherwise the
        // path is checked every second while it is lost, and ever less
        // often otherwise (reads check it after their serves).
        let event = if let Some(event) = pending.take() {
            Some(event)
        } else if watching {
            Some(inbox.recv())
        } else {
            // `None`: the time for a check.
            inbox.recv_timeout(gap)
        };
        match event {
            None | Some(Event::DirChanged | Event::Unreachable) => {
                if matches!(event, Some(Event::DirChanged)) {
                    // Let a burst settle (`rm -r` of the directory is one
                    // event per name), and let whoever removed a name put
                    // what they meant there first, as a timed check would.
                    std::thread::sleep(SETTLE);
                    loop {
                        match inbox.try_recv() {
                            Some(Event::DirChanged) => {}
                            Some(other) => {
                                pending = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                }
                serve_again_if_unreachable(&mut server, &builder);
                // Again after every check: the directory may be a new one.
                watching = watch_dir(watch.as_deref(), server.as_ref());
                gap = if server.is_none() || matches!(event, Some(Event::Unreachable)) {
                    CHECK_EVERY
                } else {
                    (gap * 2).min(CHECK_IDLE_MAX)
                };
            }
            Some(Event::WatchFailed) => {
                watch = None;
                watching = false;
            }
            Some(Event::Eof) if args.linger => {}
            Some(Event::Eof) => break ExitCode::SUCCESS,
            Some(Event::ReadError(e)) => {
                eprintln!("pipe-writer: reading stdin: {e}");
                if !args.linger {
                    break ExitCode::FAILURE;
                }
            }
            Some(Event::Signal(_)) if args.linger => break ExitCode::SUCCESS,
            Some(Event::Signal(signal)) => break ExitCode::from(128 + signal as u8),
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

/// Serves afresh at the same path when readers no longer reach our FIFO
/// there ([`pipe_writer::Server::check`]), or when the last attempt failed;
/// the stats live in the registry, so none is lost. Each loss is reported
/// once on stderr with its cause: the errno (`ENOENT` for a removed
/// directory, `ENOSPC` for a full disk), or the squatter's path and user ID.
/// A name someone else holds is never served into nor taken over: the
/// server is stopped (our spare FIFOs go, theirs stays) and serving resumes
/// only once the name is free again.
fn serve_again_if_unreachable(
    server: &mut Option<pipe_writer::Server>,
    builder: &pipe_writer::Builder,
) {
    let mut reported = None;
    if let Some(running) = server.take() {
        let error = match running.check() {
            Ok(()) => {
                *server = Some(running);
                return;
            }
            Err(error) => error,
        };
        eprintln!("pipe-writer: {}", lost_message(&error, running.path()));
        // Its directory may be gone: removing its names can fail, harmlessly;
        // an error that ended serving was just reported.
        let _ = running.stop();
        reported = Some(error);
    }
    match builder.clone().start() {
        Ok(fresh) => *server = Some(fresh),
        // Said once per loss, unless it was just said; tried every check.
        Err(e) if reported.is_some() && reported != Some(e.clone()) => {
            eprintln!("pipe-writer: cannot serve again yet: {e}; trying every second");
        }
        Err(_) => {}
    }
}

/// What the binary says when readers of `path` no longer reach it.
fn lost_message(error: &pipe_writer::Error, path: &Path) -> String {
    match error {
        pipe_writer::Error::Squatted { .. } | pipe_writer::Error::NotFifo { .. } => format!(
            "{error}; not serving into it: {} is served again once that is removed",
            path.display()
        ),
        _ => format!("{error}; serving {} again", path.display()),
    }
}

/// Applies every command on `input` to `registry`; bad lines are reported on
/// stderr with their line number and a count of the lines skipped so far,
/// and skipped; at the end of input, the count once more.
fn read_commands(input: &mut impl BufRead, registry: &Registry) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut number = 0u64;
    let mut skipped = 0u64;
    let mut spans = SpanReports::new();
    while let Some(line) = read_line(input, &mut buf)? {
        number += 1;
        match line.and_then(parse_line) {
            Ok(Some(command)) => command.apply(registry, &mut spans),
            Ok(None) => {}
            Err(error) => {
                skipped += 1;
                let shown = String::from_utf8_lossy(&buf);
                let shown = shown.trim_end_matches(['\n', '\r']);
                let shown: String = shown.chars().take(80).collect();
                eprintln!(
                    "pipe-writer: stdin line {number}: {error}; skipped ({skipped} so far): {shown:?}"
                );
            }
        }
    }
    if skipped > 0 {
        eprintln!("pipe-writer: end of stdin: {skipped} of {number} lines skipped");
    }
    if spans.waiting() > 0 || spans.let_go() > 0 {
        eprintln!(
            "pipe-writer: end of stdin: {} #span lines never saw their parent's line ({} let go \
             while waiting); their stats are counted, they are in no trace",
            spans.waiting() as u64 + spans.let_go(),
            spans.let_go()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;
    use pipe_writer::Error;

    #[test]
    fn a_lost_fifo_is_reported_by_its_cause_not_a_guess() {
        let path = Path::new("/run/pipes/42.stats");
        let full = Error::Fifo {
            path: PathBuf::from("/run/pipes/.42.stats.tmp"),
            op: "mkfifo",
            errno: Errno::ENOSPC,
        };
        assert_eq!(
            lost_message(&full, path),
            "cannot mkfifo stats FIFO /run/pipes/.42.stats.tmp: ENOSPC: No space left on device; \
             serving /run/pipes/42.stats again"
        );
        let squat = Error::Squatted {
            path: path.to_path_buf(),
            owner: 65534,
            uid: 0,
        };
        assert_eq!(
            lost_message(&squat, path),
            "/run/pipes/42.stats belongs to user 65534, not to us (user 0): another user squats \
             our name; not serving into it: /run/pipes/42.stats is served again once that is removed"
        );
    }
}
