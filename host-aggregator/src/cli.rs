//! The command line: `serve`, `dump`, `show`, `gc`, `top`, `archive`,
//! `funcs` and `traces`, parsed with clap and run against the library.

mod calls;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use host_aggregator::args::{duration as parse_duration, listen_address};
use host_aggregator::export::{self, FORMATS, Format};
use host_aggregator::history::HistoryOptions;
use host_aggregator::http::{ConnectionLimits, ServeOptions, Server};
use host_aggregator::procfs::Staleness;
use host_aggregator::top::{SortBy, TopOptions};
use host_aggregator::{
    Collector, GcOutcome, MergeOverride, MergeOverrides, Pass, ReadOptions, Status,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (also when stdout is closed early, as by `| head`)
  1  runtime error: a pass failed, the PID's pipe was not read, gc could not
     remove a pipe, the server could not listen or stopped
  2  usage error: unknown command, bad flag or value (a duration without a
     unit, a listen address, a --db or --from URL), or a value the run
     refuses (a non-loopback --listen without --allow-remote, an empty
     --host or token)";

/// Reads every stats pipe on this host safely, sums them, and serves them.
#[derive(Debug, Parser)]
#[command(name = "host-aggregator", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The pipe directory [default: $STATS_PIPE_DIR, else /tmp/stats-pipe].
    #[arg(long, global = true, value_name = "DIR")]
    pipe_dir: Option<PathBuf>,
    /// A read pass ends this long after it starts, whatever the writers do
    /// (e.g. 500ms, 2s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    deadline: Option<Duration>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve /stats, /stats/<pid>, /processes, /metrics and /healthz over HTTP.
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Read every pipe once and print the host-wide stats (or one process's).
    #[command(after_help = EXIT_CODES)]
    Dump {
        /// Output format.
        #[arg(long, default_value = "json", value_parser = format_parser())]
        format: &'static dyn Format,
        /// Only this process's stats.
        #[arg(long)]
        pid: Option<u32>,
        /// Merge stats matching GLOB by RULE (sum, min, max or last) instead
        /// of by their declared kind; repeatable, the first match wins.
        #[arg(long = "rule", value_name = "GLOB=RULE")]
        rules: Vec<MergeOverride>,
    },
    /// Print one process's stats as `name: value` lines, like `cat` on its
    /// pipe but through the safe reader (never blocks, never follows links).
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The process ID (its pipe is <pipe-dir>/<PID>.stats).
        pid: u32,
    },
    /// Remove stale pipes: those of dead processes, or older than the
    /// process now holding their PID. A live process's pipe is never removed.
    #[command(after_help = EXIT_CODES)]
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Archive one pass into a database as one transaction (SQLite by
    /// default, PostgreSQL for many hosts; see docs/ARCHIVE.md).
    #[command(after_help = EXIT_CODES)]
    Archive(host_aggregator::archive::ArchiveArgs),
    /// A live terminal view of every stat, refreshed in place and fitted to
    /// the terminal: `s` cycles the order (rate, value, name), `p` shows each
    /// process, arrows, PgUp/PgDn and Home/End scroll, `q` quits. Prints
    /// plain blocks when stdout is not a terminal.
    #[command(after_help = EXIT_CODES)]
    Top(TopArgs),
    /// Print the host's call graph (monkit's /funcs): per task how many run
    /// now and at most, outcomes and p50/p90/p99 durations, and who calls
    /// whom, summed over processes.
    #[command(after_help = EXIT_CODES)]
    Funcs(calls::FuncsArgs),
    /// Read every trace pipe (<pipe-dir>/traces/<pid>.traces) once and list
    /// the recent traces across processes, newest first.
    #[command(after_help = EXIT_CODES)]
    Traces(calls::TracesArgs),
}

#[derive(Debug, clap::Args)]
struct TopArgs {
    /// Time between refreshes (e.g. 500ms, 2s).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    interval: Duration,
    /// Initial order.
    #[arg(long, value_enum, default_value_t = TopSort::Rate)]
    sort: TopSort,
    /// Start with one row per process under each stat.
    #[arg(long)]
    per_process: bool,
    /// Stop after this many refreshes.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TopSort {
    /// Highest rate first (counters), then the rest by value.
    Rate,
    /// Highest value first.
    Value,
    /// By name.
    Name,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on: HOST:PORT (127.0.0.1:7828, localhost:7828,
    /// [::1]:7828) or :PORT for every interface; port 0 picks a free port.
    /// The bound address is printed on the first line of stdout.
    #[arg(long, default_value_t = ServeOptions::DEFAULT_LISTEN, value_name = "ADDR", value_parser = listen_address)]
    listen: SocketAddr,
    /// Allow listening on a non-loopback address (use a token with it).
    #[arg(long)]
    allow_remote: bool,
    /// Require `Authorization: Bearer <TOKEN>` (except on /healthz). Prefer
    /// --token-file: a flag shows in the process list.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the bearer token from this file (surrounding whitespace trimmed).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Serve a pass again while it is younger than this (e.g. 250ms, 1s, 0s
    /// to read anew for every request that does not overlap another).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    max_age: Duration,
    /// Connections open at once; at the bound, the longest-idle one is
    /// closed for a new one. Lowered to half the descriptor limit if that
    /// is smaller (the rest is for the pipes).
    #[arg(long, default_value_t = ConnectionLimits::DEFAULT.max_connections, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// Threads computing answers that need a pass or the history.
    #[arg(long, default_value_t = ServeOptions::DEFAULT_THREADS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Read a pass this often into the history behind /history and the
    /// dashboard at / (requests reuse these passes).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    interval: Duration,
    /// Points kept per series (3600 at a 1 s interval is one hour).
    #[arg(long, default_value_t = HistoryOptions::DEFAULT_POINTS, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..))]
    history_points: usize,
    /// Series kept at most; the least recently updated go first. Values
    /// take at most 8 bytes x points x series.
    #[arg(long, default_value_t = HistoryOptions::DEFAULT_MAX_SERIES, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    history_series: usize,
    /// No history: no background passes, /history answers 404.
    #[arg(long)]
    no_history: bool,
    /// Bytes one read of the trace pipes (for /traces, /trace/next) takes
    /// in at most, over all of them; the pipes past it are skipped and
    /// counted (`skipped_budget`), so hostile writers cannot make a read
    /// take gigabytes.
    #[arg(long, default_value_t = host_aggregator::traces::read::DEFAULT_BUDGET, value_name = "BYTES", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    trace_budget: usize,
    /// Merge stats matching GLOB by RULE (sum, min, max or last) instead of
    /// by their declared kind; repeatable, the first match wins.
    #[arg(long = "rule", value_name = "GLOB=RULE")]
    rules: Vec<MergeOverride>,
    /// Remove stale pipes (as `gc` does) this often, so a crashed writer's
    /// FIFO goes away by itself; 0s turns it off.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    gc_interval: Duration,
}

/// `--format`: one of the names in [`FORMATS`], each with its line of help.
fn format_parser() -> impl clap::builder::TypedValueParser<Value = &'static dyn Format> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        FORMATS
            .iter()
            .map(|format| PossibleValue::new(format.name()).help(format.about())),
    )
    // The parser lets only the names above through.
    .map(|name| export::format(&name).expect("a format of the table"))
}

/// Parses the command line, runs it, and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("host-aggregator: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("host-aggregator: {message}");
            ExitCode::from(2)
        }
    }
}

enum Failure {
    /// Stdout was closed by its reader: not an error for a CLI.
    BrokenPipe,
    Message(String),
    /// A value clap let through but the run refused (exit 2, like clap's own).
    Usage(String),
}

impl From<host_aggregator::Error> for Failure {
    fn from(error: host_aggregator::Error) -> Failure {
        match error {
            host_aggregator::Error::BadArgument { .. } => Failure::Usage(error.to_string()),
            _ => Failure::Message(error.to_string()),
        }
    }
}

/// The one message for a PID without a pipe, from `show` and `dump --pid`.
fn no_pipe(pid: u32, dir: &Path) -> Failure {
    Failure::Message(format!("no stats pipe for PID {pid} in {}", dir.display()))
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("cannot write to stdout: {error}"))
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let mut options = ReadOptions::new(
        cli.pipe_dir
            .clone()
            .unwrap_or_else(host_aggregator::default_dir),
    );
    if let Some(deadline) = cli.deadline {
        options.deadline = deadline;
    }
    match cli.command {
        Command::Serve(args) => serve(args, options),
        Command::Dump { format, pid, rules } => dump(options, format, pid, rules),
        Command::Show { pid } => show(&options, pid),
        Command::Gc { dry_run } => gc(&options.dir, dry_run),
        Command::Top(args) => {
            let sort = match args.sort {
                TopSort::Rate => SortBy::Rate,
                TopSort::Value => SortBy::Value,
                TopSort::Name => SortBy::Name,
            };
            let top = TopOptions {
                interval: args.interval.max(Duration::from_millis(50)),
                sort,
                per_process: args.per_process,
                count: args.count,
            };
            host_aggregator::top::run(Collector::new(options), &top)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Funcs(args) => calls::funcs(args, options),
        Command::Traces(args) => calls::traces(args, options),
        Command::Archive(args) => {
            let done = host_aggregator::archive::run(&args, options)?;
            writeln!(std::io::stdout(), "{done}")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(args: ServeArgs, read: ReadOptions) -> Result<ExitCode, Failure> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(read_token(path)?),
        (None, None) => None,
    };
    let dir = read.dir.clone();
    // Half the descriptors for connections, the rest for pipes and files.
    let descriptors = host_aggregator::http::raise_descriptor_limit();
    let room = usize::try_from(descriptors / 2)
        .unwrap_or(usize::MAX)
        .max(1);
    if args.max_connections > room {
        eprintln!(
            "host-aggregator: warning: --max-connections {} lowered to {room}: the descriptor limit is {descriptors} (raise it, e.g. LimitNOFILE=)",
            args.max_connections
        );
    }
    let traces = Some(read.clone());
    let mut collector = Collector::new(read).with_overrides(MergeOverrides::from_rules(args.rules));
    let options = ServeOptions {
        listen: args.listen,
        allow_remote: args.allow_remote,
        token,
        max_age: args.max_age,
        threads: usize::from(args.threads),
        connections: ConnectionLimits {
            max_connections: args.max_connections.min(room),
            ..ConnectionLimits::DEFAULT
        },
        history: (!args.no_history).then(|| HistoryOptions {
            interval: args.interval.max(Duration::from_millis(50)),
            points: args.history_points,
            max_series: args.history_series,
            ..HistoryOptions::new()
        }),
        traces,
        trace_budget: args.trace_budget,
    };
    let server = Server::start(&options, Box::new(move || collector.collect()))?;
    let addr = server.local_addr();
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    writeln!(
        out,
        "serving {} at http://{addr}/stats /stats/<pid> /processes /metrics /healthz /history /funcs /traces, dashboard at http://{addr}/",
        dir.display()
    )?;
    out.flush()?;
    drop(out);
    if !dir.is_dir() {
        eprintln!(
            "host-aggregator: warning: pipe directory {} does not exist: /stats answers 503 and /healthz says failing until a writer makes it",
            dir.display()
        );
    }
    if !addr.ip().is_loopback() && options.token.is_none() {
        eprintln!("host-aggregator: warning: listening on {addr} with no token");
    }
    let _gc = host_aggregator::gc_sweeper::GcSweeper::start(dir, args.gc_interval)?;
    server.wait()?;
    Ok(ExitCode::SUCCESS)
}

fn read_token(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Message(format!("cannot read token file {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Failure::Message(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

fn dump(
    read: ReadOptions,
    format: &dyn Format,
    pid: Option<u32>,
    rules: Vec<MergeOverride>,
) -> Result<ExitCode, Failure> {
    let dir = read.dir.clone();
    let pass = Collector::new(read)
        .with_overrides(MergeOverrides::from_rules(rules))
        .collect()?;
    let body = match pid {
        None => format.render(&pass),
        Some(pid) => {
            let source = pass.source(pid).ok_or_else(|| no_pipe(pid, &dir))?;
            format.render_source(&pass, source)
        }
    };
    write_out(&body)?;
    match pid.and_then(|pid| pass.source(pid)) {
        Some(source) if !source.status.is_ok() => {
            report_not_ok(&pass, pid.unwrap_or_default());
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn report_not_ok(pass: &Pass, pid: u32) {
    if let Some(source) = pass.source(pid) {
        eprintln!(
            "host-aggregator: {}: {}",
            source.path.display(),
            source.status
        );
    }
}

fn show(read: &ReadOptions, pid: u32) -> Result<ExitCode, Failure> {
    // One pipe, but in a directory another user could take over it could be
    // anyone's: refused like a whole pass.
    host_aggregator::discovery::check_dir(&read.dir)?;
    let path = read.dir.join(format!("{pid}.stats"));
    let source = host_aggregator::read_one(&path, read);
    if source.status == Status::Vanished && std::fs::symlink_metadata(&path).is_err() {
        return Err(no_pipe(pid, &read.dir));
    }
    if source.status != Status::Ok {
        return Err(Failure::Message(format!(
            "{}: {}",
            path.display(),
            source.status
        )));
    }
    write_out(&export::text::lines(&source.snapshot))?;
    if source.bad_lines > 0 {
        eprintln!(
            "host-aggregator: {}: skipped {} bad line(s)",
            path.display(),
            source.bad_lines
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn gc(dir: &Path, dry_run: bool) -> Result<ExitCode, Failure> {
    let actions = host_aggregator::gc(dir, dry_run)?;
    let mut out = Vec::new();
    let mut failed = false;
    for action in &actions {
        let path = action.path.display();
        let why = match action.reason {
            Staleness::Dead => format!("PID {} is dead", action.pid),
            Staleness::Reused => format!("PID {} was reused", action.pid),
        };
        match &action.outcome {
            GcOutcome::Removed => writeln!(out, "removed {path} ({why})")?,
            GcOutcome::WouldRemove => writeln!(out, "would remove {path} ({why})")?,
            GcOutcome::Failed(message) => {
                failed = true;
                eprintln!("host-aggregator: cannot remove {path} ({why}): {message}");
            }
        }
    }
    write_out(&out)?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes `body` to stdout, ending it with a newline if it has none (JSON
/// is one line; shells print the prompt on the next one).
fn write_out(body: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(body)?;
    if body.last().is_some_and(|&last| last != b'\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "host-aggregator",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-age",
            "250ms",
            "--pipe-dir",
            "/x",
        ])
        .unwrap();
        assert_eq!(cli.pipe_dir, Some(PathBuf::from("/x")));
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.max_age, Duration::from_millis(250));
        assert_eq!(
            args.gc_interval,
            host_aggregator::gc_sweeper::DEFAULT_INTERVAL
        );
        assert_eq!(args.listen, "127.0.0.1:0".parse().unwrap());
        assert!(Cli::try_parse_from(["host-aggregator", "serve", "--threads", "0"]).is_err());
        assert!(
            Cli::try_parse_from([
                "host-aggregator",
                "serve",
                "--token",
                "a",
                "--token-file",
                "b"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["host-aggregator", "dump", "--format", "xml"]).is_err());
        Cli::command_for_checks().debug_assert();
    }

    impl Cli {
        fn command_for_checks() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
