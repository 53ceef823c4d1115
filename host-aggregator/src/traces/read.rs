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
//! parsed and dropped pipe by pipe, into the newest [`MAX_LIMIT`] short
//! records for the index, or the one record asked for. Reads of every
//! pipe are shared by the requests that want one at the same time
//! ([`TraceReader::shared_index`]); single-pipe reads run a few at once
//! ([`MAX_PIPE_READS`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value as Json;
use stats_core::Outcome;
use stats_core::trace::Span;

use super::newest::Newest;
use super::query::MAX_LIMIT;
use super::shared::{Gate, Shared, SingleFlight};
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

/// How old a shared read of every trace FIFO may be for `/traces` to
/// answer from it: as `serve`'s pass max-age, brief enough that a person
/// sees no lag, long enough that a flood of requests reads once a second.
pub const SHARED_MAX_AGE: Duration = Duration::from_secs(1);

/// Single-pipe reads (`/traces/<pid>/<id>`, `/traces?pid=`, the record
/// `/trace/next` answers) running at once, at most; more wait. Each holds
/// its pipe's answer, up to the per-pipe byte cap, while it is read.
pub const MAX_PIPE_READS: usize = 4;

/// One trace: the fields of the index, its spans and the line it came in.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The writer's PID (from the FIFO's name, which the reader checked).
    pub pid: u32,
    /// Unique within its process.
    pub id: u64,
    /// The root task's name.
    pub root: String,
    /// The root task's tags, in the writer's order.
    pub tags: Vec<(String, String)>,
    /// When the root run started, Unix seconds.
    pub start: f64,
    /// How long the root run took, nanoseconds.
    pub duration_ns: u64,
    /// How the root run ended.
    pub outcome: String,
    /// Runs under the root beyond the writer's span limit.
    pub dropped_spans: u64,
    /// The spans, root first, as the writer's [`stats_core::Trace`] holds them (a
    /// parent index that does not point at an earlier span, which a writer
    /// of ours never sends, is read as none).
    pub spans: Vec<Span>,
    /// The JSON line as the writer served it (`/traces/<pid>/<id>`).
    pub line: String,
}

/// A trace as the index lists it (appstats' short record): a record
/// without its spans and line, so the index of a thousand full rings
/// holds a few hundred bytes per trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Short {
    /// The writer's PID.
    pub pid: u32,
    /// Unique within its process.
    pub id: u64,
    /// The root task's name.
    pub root: String,
    /// The root task's tags, in the writer's order.
    pub tags: Vec<(String, String)>,
    /// When the root run started, Unix seconds.
    pub start: f64,
    /// How long the root run took, nanoseconds.
    pub duration_ns: u64,
    /// How the root run ended.
    pub outcome: String,
    /// How many spans the writer kept.
    pub spans: usize,
    /// Runs under the root beyond the writer's span limit.
    pub dropped_spans: u64,
}

impl From<Record> for Short {
    fn from(r: Record) -> Short {
        Short {
            pid: r.pid,
            id: r.id,
            root: r.root,
            tags: r.tags,
            start: r.start,
            duration_ns: r.duration_ns,
            outcome: r.outcome,
            spans: r.spans.len(),
            dropped_spans: r.dropped_spans,
        }
    }
}

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
    shared: SingleFlight<Result<TraceSet, Error>>,
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
        self.shared.reads()
    }

    /// The newest [`MAX_LIMIT`] traces of every FIFO, from a read started
    /// at most `max_age` ago, or the one in flight, or a new one: however
    /// many requests ask at once, one read runs and one index is held.
    pub fn shared_index(&self, max_age: Duration) -> Arc<Shared<Result<TraceSet, Error>>> {
        self.shared
            .get(max_age, || self.read_index(None, MAX_LIMIT, |_| true))
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

/// One trace line (FORMAT.md, "Traces"), or `None` if it is not one.
pub(crate) fn parse_record(line: &str) -> Option<Record> {
    let json: Json = serde_json::from_str(line).ok()?;
    let mut tags = Vec::new();
    for (k, v) in json.get("tags")?.as_object()? {
        tags.push((k.clone(), v.as_str()?.to_owned()));
    }
    let mut spans = Vec::new();
    for (i, span) in json.get("spans")?.as_array()?.iter().enumerate() {
        let parent = match span.get("parent")? {
            Json::Null => None,
            p => Some(usize::try_from(p.as_u64()?).ok()?).filter(|&p| p < i),
        };
        spans.push(Span {
            name: span.get("name")?.as_str()?.to_owned(),
            parent,
            offset: Duration::from_nanos(span.get("offset_ns")?.as_u64()?),
            duration: span
                .get("duration_ns")
                .and_then(Json::as_u64)
                .map(Duration::from_nanos),
            outcome: span
                .get("outcome")
                .and_then(Json::as_str)
                .and_then(Outcome::from_label),
        });
    }
    Some(Record {
        pid: u32::try_from(json.get("pid")?.as_u64()?).ok()?,
        id: json.get("id")?.as_u64()?,
        root: json.get("root")?.as_str()?.to_owned(),
        tags,
        start: json.get("start")?.as_f64()?,
        duration_ns: json.get("duration_ns")?.as_u64()?,
        outcome: json.get("outcome")?.as_str()?.to_owned(),
        dropped_spans: json
            .get("dropped_spans")
            .and_then(Json::as_u64)
            .unwrap_or(0),
        spans,
        line: line.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writers_line_parses_and_garbage_does_not() {
        let registry = stats_core::Registry::new();
        registry.tracer().set_sample_every(1);
        let (request, query) = (registry.task("request"), registry.task("db.query"));
        let _ = request.run(|| query.run(|| Err::<(), _>("x")));
        let mut text = String::new();
        registry.tracer().write_json_lines(42, &mut text);
        let parsed: Vec<Option<Record>> = lines(text.as_bytes())
            .chain(lines(b"{\"pid\":42}\nnot json\n"))
            .map(|line| std::str::from_utf8(line).ok().and_then(parse_record))
            .collect();
        assert_eq!(parsed.len(), 3);
        assert!(parsed[1].is_none() && parsed[2].is_none());
        let record = parsed[0].clone().expect("the writer's line");
        assert_eq!(
            (record.pid, record.root.as_str(), record.spans.len()),
            (42, "request", 2)
        );
        assert_eq!(record.spans[1].parent, Some(0));
        assert_eq!(record.spans[1].outcome, Some(Outcome::Error));
        assert_eq!(record.line, text.trim_end());
        let short = Short::from(record);
        assert_eq!((short.spans, short.id), (2, 1));
    }
}
