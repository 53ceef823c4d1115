//! `host-aggregator traces` and `funcs`: the trace index and the call graph
//! on the terminal, rendered by the same code as `/traces` and `/funcs*`.

use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;
use host_aggregator::args::duration as parse_duration;
use host_aggregator::funcs::{self, Format};
use host_aggregator::traces::{IndexQuery, TraceReader, query};
use host_aggregator::{Collector, ReadOptions};

use super::{Failure, write_out};

/// `traces`' flags.
#[derive(Debug, clap::Args)]
pub(super) struct TracesArgs {
    /// Only traces whose root task matches this regular expression
    /// (anywhere in the name; `^request$` for exactly one).
    #[arg(long, value_name = "RE")]
    task: Option<String>,
    /// Only traces that took at least this long (e.g. 2ms, 1s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    min: Option<Duration>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = query::DEFAULT_LIMIT, value_name = "N")]
    limit: usize,
    /// Only this process's traces.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Print `/traces`' JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `funcs`' flags.
#[derive(Debug, clap::Args)]
pub(super) struct FuncsArgs {
    /// Only this process's call graph.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Output: the text tree, JSON, or a Graphviz dot graph.
    #[arg(long, value_enum, default_value_t = FuncsFormat::Text)]
    format: FuncsFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FuncsFormat {
    /// The tree of callers and callees (`/funcs`).
    Text,
    /// `/funcs.json`.
    Json,
    /// `/funcs.dot` (pipe it to `dot -Tsvg`).
    Dot,
}

/// Reads the trace FIFOs once and prints the index.
pub(super) fn traces(args: TracesArgs, read: ReadOptions) -> Result<ExitCode, Failure> {
    let query = IndexQuery {
        task: args
            .task
            .as_deref()
            .map(query::task_regex)
            .transpose()
            .map_err(Failure::Usage)?,
        min: args.min.unwrap_or(Duration::ZERO),
        limit: args.limit.min(query::MAX_LIMIT),
        pid: args.pid,
    };
    let set = TraceReader::new(read).read_index(args.pid, query.limit, |r| query.selects(r))?;
    if args.json {
        write_out(&query.to_json(&set))?;
    } else {
        write_out(query.to_text(&set).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads one pass and prints its call graph.
pub(super) fn funcs(args: FuncsArgs, read: ReadOptions) -> Result<ExitCode, Failure> {
    let dir = read.dir.clone();
    let pass = Collector::new(read).collect()?;
    let format = match args.format {
        FuncsFormat::Text => Format::Text,
        FuncsFormat::Json => Format::Json,
        FuncsFormat::Dot => Format::Dot,
    };
    let body = funcs::render(format, &pass, args.pid)
        .map_err(|message| Failure::Message(format!("{message} in {}", dir.display())))?;
    write_out(&body)?;
    Ok(ExitCode::SUCCESS)
}
