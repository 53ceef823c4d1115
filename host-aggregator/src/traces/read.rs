//! Reading the trace FIFOs: `<dir>/traces/*.traces` listed like the pipe
//! directory (the same ownership rules, links never followed), read by the
//! safe reader with the traces framing (FORMAT.md, "Traces"), and each
//! answer's JSON lines parsed into [`Record`]s. A torn answer is retried
//! and then counted, never parsed; a line that is not a trace is skipped
//! and counted; a FIFO with no writer costs the deadline once and
//! a 50 ms grace (the reader's `SILENT_GRACE`) on later reads.
//!
//! What a read holds is bounded whatever the writers serve: the answers
//! up to a byte budget for the whole read ([`DEFAULT_BUDGET`]), each
//! parsed and dropped pipe by pipe, into the newest [`SHARED_KEEP`] short
//! records for the index, or the one record asked for. Reads of every
//! pipe are shared by the requests that want one at the same time
//! ([`TraceReader::shared_index`]); single-pipe reads run a few at once
//! ([`MAX_PIPE_READS`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::newest::Newest;
use super::record::{Record, Short, parse_record};
use super::shared::{Gate, Shared};
use crate::single_flight::SingleFlight;
use crate::source::{ReadOptions, Source, Status};
use crate::{Error, discovery, reader};

/// Bytes one read of the trace FIFOs takes in at most, over all pipes and
/// retries; past it the pipe being read and all not yet read end
/// `too_large` and are counted in `skipped_budget`. A full ring is about
/// 0.4 MB of JSON for short traces (4 MB at the span limit) and each pipe
/// is capped at [`ReadOptions::DEFAULT_MAX_BYTES`], so without it a
/// thousand hostile writers could make one read take 16 GB; 256 MiB reads
/// about 600 full rings of short traces. Every answer is held until the
/// read ends, so this bounds a read's memory.
pub const DEFAULT_BUDGET: usize = 256 << 20;

/// How long ago a shared read of every trace FIFO may have ended for
/// `/traces` to answer from it: as `serve`'s pass max-age, brief enough
/// that a person sees no lag, long enough that a flood of requests costs
/// the writers at most about one read a second beyond the reads' own time.
pub const SHARED_MAX_AGE: Duration = Duration::from_secs(1);

/// Single-pipe reads (`/traces/<pid>/<id>`, `/traces?pid=`, the record
/// `/trace/next` answers) running at once, at most; more wait. Each holds
/// its pipe's answer, up to the per-pipe byte cap, while it is read.
pub const MAX_PIPE_READS: usize = 4;

/// Traces a shared read keeps, the newest: the most any request may list
/// (`limit=` of `/traces`).
pub const SHARED_KEEP: usize = 10_000;

/// What one read of the trace FIFOs found.
#[derive(Clone, Debug, Default)]
pub struct TraceSet {
    /// The newest traces read (at most the limit the read kept), newest
    /// first (by start; then PID and id).
    pub records: Vec<Short>,
    /// Every FIFO tried, with its status.
    pub sources: Vec<Source>,
    /// Lines skipped because they were not a trace record.
    pub bad_records: u64,
    /// FIFOs cut short or never read because the read's byte budget was
    /// spent (their status is `too_large`).
    pub skipped_budget: usize,
}

/// What a read of one process's FIFO found for one trace.
#[derive(Clone, Debug, Default)]
pub struct OneTrace {
    /// The trace, if the process still keeps it.
    pub record: Option<Record>,
    /// The FIFO tried (none if the process has none), with its status.
    pub sources: Vec<Source>,
}

/// Reads trace FIFOs on demand, remembering across reads which ones sent
/// nothing (a FIFO with no writer, which any local user can make), so they
/// cost a 50 ms grace (the reader's `SILENT_GRACE`) instead of the whole
/// deadline each time, as in a pass; shares reads of every FIFO between
/// requests and bounds how many single-pipe reads run at once.
#[derive(Debug)]
pub struct TraceReader {
    options: ReadOptions,
    budget: usize,
    silent: Mutex<Vec<PathBuf>>,
    shared: SingleFlight<Shared<Result<TraceSet, Error>>>,
    pipes: Gate,
}

impl TraceReader {
    /// A reader of `options.dir`'s trace FIFOs with `options`' limits and
    /// a budget of [`DEFAULT_BUDGET`] bytes per read.
    pub fn new(options: ReadOptions) -> TraceReader {
        TraceReader {
            options,
            budget: DEFAULT_BUDGET,
            silent: Mutex::new(Vec::new()),
            shared: SingleFlight::default(),
            pipes: Gate::new(MAX_PIPE_READS),
        }
    }

    /// The same reader with a budget of `bytes` per read instead.
    pub fn with_budget(self, bytes: usize) -> TraceReader {
        TraceReader {
            budget: bytes,
            ..self
        }
    }

    /// The trace directory, `<dir>/traces`.
    pub fn dir(&self) -> PathBuf {
        self.options.dir.join(pipe_writer::TRACES_DIR)
    }

    /// How many reads of every FIFO [`TraceReader::shared_index`] ran.
    pub fn shared_reads(&self) -> u64 {
        self.shared.made()
    }

    /// The newest [`SHARED_KEEP`] traces of every FIFO, from a read ended
    /// at most `max_age` ago, or the one in flight, or a new one: however
    /// many requests ask at once, one read runs and one index is held.
    pub fn shared_index(&self, max_age: Duration) -> Arc<Shared<Result<TraceSet, Error>>> {
        self.shared.get(
            |read| read.ended.elapsed() <= max_age,
            |_| Shared::read(|| self.read_index(None, SHARED_KEEP, |_| true)),
        )
    }

    /// Reads every trace FIFO (only `pid`'s, if given) and keeps the
    /// newest `keep` traces that `wanted` selects. A missing trace
    /// directory reads as no traces (no writer has made one yet). Reads
    /// of one PID run at most [`MAX_PIPE_READS`] at once.
    ///
    /// # Errors
    /// [`Error::Dir`] if the trace directory cannot be listed;
    /// [`Error::UntrustedDir`] if it or the pipe directory is one another
    /// user could take over.
    pub fn read_index(
        &self,
        pid: Option<u32>,
        keep: usize,
        wanted: impl Fn(&Short) -> bool,
    ) -> Result<TraceSet, Error> {
        let mut set = TraceSet::default();
        let mut newest = Newest::new(keep);
        let (sources, skipped) = self.read_pipes(pid, |pid, body| {
            for line in lines(body) {
                match std::str::from_utf8(line).ok().and_then(parse_record) {
                    Some(record) if record.pid == pid => {
                        let short = Short::from(record);
                        if wanted(&short) {
                            newest.push(short);
                        }
                    }
                    _ => set.bad_records += 1,
                }
            }
        })?;
        set.records = newest.into_sorted();
        set.sources = sources;
        set.skipped_budget = skipped;
        Ok(set)
    }

    /// Reads the FIFO of `pid` for its trace `id`, keeping only that one.
    /// At most [`MAX_PIPE_READS`] run at once.
    ///
    /// # Errors
    /// As [`TraceReader::read_index`].
    pub fn read_one(&self, pid: u32, id: u64) -> Result<OneTrace, Error> {
        let mut found = None;
        let (sources, _) = self.read_pipes(Some(pid), |pid, body| {
            for line in lines(body) {
                if found.is_none()
                    && let Some(record) = std::str::from_utf8(line).ok().and_then(parse_record)
                    && record.pid == pid
                    && record.id == id
                {
                    found = Some(record);
                }
            }
        })?;
        Ok(OneTrace {
            record: found,
            sources,
        })
    }

    /// Reads the FIFOs (only `pid`'s, if given) within the budget and
    /// hands each complete answer's trace lines to `each` with the PID of
    /// its FIFO, dropping each answer once handed; returns every source
    /// tried and how many the budget cut.
    fn read_pipes(
        &self,
        pid: Option<u32>,
        mut each: impl FnMut(u32, &[u8]),
    ) -> Result<(Vec<Source>, usize), Error> {
        discovery::check_dir(&self.options.dir)?;
        let dir = self.dir();
        let mut paths = match discover(&dir) {
            Ok(paths) => paths,
            Err(Error::Dir { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        if let Some(pid) = pid {
            paths.retain(|path| crate::pid_from_path(path) == Some(pid));
        }
        let silent = self
            .silent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (read, skipped) = match pid {
            Some(_) => self
                .pipes
                .through(|| reader::read_traces(paths, &silent, &self.options, self.budget)),
            None => reader::read_traces(paths, &silent, &self.options, self.budget),
        };
        if pid.is_none() {
            let mut now_silent: Vec<PathBuf> = read
                .iter()
                .filter(|(source, _)| source.status == Status::TimedOut && source.bytes == 0)
                .map(|(source, _)| source.path.clone())
                .collect();
            now_silent.sort_unstable();
            *self.silent.lock().unwrap_or_else(PoisonError::into_inner) = now_silent;
        }
        let mut sources = Vec::with_capacity(read.len());
        for (source, body) in read {
            if let (Status::Ok, Some(pid)) = (&source.status, source.pid) {
                each(pid, &body);
            }
            drop(body);
            sources.push(source);
        }
        Ok((sources, skipped))
    }
}

/// The non-empty lines of an answer.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// Every `*.traces` entry directly in `dir` (not hidden), sorted; links
/// are listed, not followed: the reader refuses them.
fn discover(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = discovery::list(dir)?;
    found.retain(|path| {
        path.file_name().is_some_and(|name| {
            let name = name.as_encoded_bytes();
            name.len() > ".traces".len() && name.ends_with(b".traces") && !name.starts_with(b".")
        })
    });
    Ok(found)
}
