//! The `archive` command: its flags and one run (read a pass, write it as
//! one transaction, say what happened).

use std::path::PathBuf;
use std::time::Duration;

use super::remote::Remote;
use super::{Batch, Database, Outcome, WriteOptions};
use crate::procfs::local_host_name;
use crate::{Collector, Error, ReadOptions};

/// Flags of `host-aggregator archive`.
#[derive(Clone, Debug, clap::Args)]
pub struct ArchiveArgs {
    /// Database: PATH or sqlite:PATH (the default, embedded:
    /// /var/lib/stats-pipe/archive.db for root, else
    /// $XDG_DATA_HOME or ~/.local/share/stats-pipe/archive.db) or
    /// postgres://USER:PASSWORD@HOST:PORT/DB (password and port optional;
    /// TLS as libpq: ?sslmode=disable|prefer|require|verify-ca|verify-full,
    /// default prefer, and sslrootcert=PATH|system, default
    /// ~/.postgresql/root.crt).
    #[arg(long, value_name = "URL", value_parser = crate::args::Quiet(Database::parse))]
    pub db: Option<Database>,
    /// Read a running aggregator (http://HOST:PORT) instead of the pipes.
    #[arg(long, value_name = "URL", value_parser = crate::args::Quiet(Remote::check_url))]
    pub from: Option<String>,
    /// File holding the bearer token the --from aggregator requires.
    #[arg(long, value_name = "PATH", requires = "from")]
    pub token_file: Option<PathBuf>,
    /// Also store every process's own stats (rows with its pid; host-wide
    /// sums have pid 0).
    #[arg(long)]
    pub per_process: bool,
    /// Host name the samples are filed under [default: this machine's].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Sample time in Unix seconds [default: the pass start, truncated to
    /// the second]. A run at a (time, host) already archived writes
    /// nothing, so repeating a failed run with its time is always safe.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub time: Option<i64>,
    /// How long to wait for a database locked by another run (or to
    /// connect) before giving up (e.g. 500ms, 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::args::duration)]
    pub lock_timeout: Duration,
}

/// Runs `archive`: one pass (from the pipes under `read`, or `--from`) into
/// the database, as one transaction, read once the database's lock is held
/// (kept in the database: see docs/ARCHIVE.md, "Counters across runs"). Returns the line to print.
///
/// # Errors
/// Bad flags, an unreadable pass or aggregator, or a database that is down,
/// locked, read-only or refuses the write ([`Error::Database`]: nothing of
/// the run was stored).
pub fn run(args: &ArchiveArgs, read: ReadOptions) -> Result<String, Error> {
    let db = args.db.clone().unwrap_or_default();
    let lock_timeout = args.lock_timeout;
    let host = args.host.clone().unwrap_or_else(local_host_name);
    if host.is_empty() {
        return Err(Error::BadArgument {
            what: "--host",
            given: host,
            expected: "a non-empty host name",
        });
    }
    let options = WriteOptions {
        lock_timeout,
        ..WriteOptions::from_env()
    };
    let remote = match &args.from {
        Some(url) => {
            let token = match &args.token_file {
                Some(path) => Some(read_token(path)?),
                None => None,
            };
            Some(Remote::new(
                url,
                token,
                read.deadline.max(Duration::from_secs(5)),
            )?)
        }
        None => None,
    };
    // Read under the database's lock, from the state the last run stored.
    let (batch, outcome) = db.run(&host, &options, |retention| match &remote {
        // The server retains exited processes' counters itself: its sums
        // are stored as they are, and the state is left alone.
        Some(remote) => Ok((remote.batch(&host, args.time, args.per_process)?, None)),
        None => {
            let mut collector = Collector::new(read).with_retention(retention);
            let pass = collector.collect()?;
            let batch = Batch::from_pass(&pass, &host, args.time, args.per_process);
            Ok((batch, Some(collector.retention().state())))
        }
    })?;
    let where_ = db.describe();
    Ok(match outcome {
        Outcome::Written {
            samples,
            new_floats,
        } => format!(
            "archived {samples} samples from {} sources (host {}, time {}) into {where_}{}",
            batch.sources,
            batch.host,
            batch.time,
            if new_floats > 0 {
                format!("; {new_floats} stats recorded as float for good")
            } else {
                String::new()
            }
        ),
        Outcome::AlreadyArchived => format!(
            "already archived: host {}, time {} in {where_}; nothing written",
            batch.host, batch.time
        ),
    })
}

fn read_token(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read the token file",
        path: path.to_owned(),
        source,
    })?;
    Ok(text.trim().to_owned())
}
