//! Reading the trace FIFOs: `<dir>/traces/*.traces` listed like the pipe
//! directory (the same ownership rules, links never followed), read by the
//! safe reader with the traces framing (FORMAT.md, "Traces"), and each
//! answer's JSON lines parsed into [`Record`]s. A torn answer is retried
//! and then counted, never parsed; a line that is not a trace is skipped
//! and counted; a FIFO with no writer costs the deadline once and
//! a 50 ms grace (the reader's `SILENT_GRACE`) on later reads.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value as Json;
use stats_core::Outcome;
use stats_core::trace::Span;

use crate::source::{ReadOptions, Source, Status};
use crate::{Error, discovery, reader};

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

/// What one read of the trace FIFOs found.
#[derive(Clone, Debug, Default)]
pub struct TraceSet {
    /// Every trace read, newest first (by start; then PID and id).
    pub records: Vec<Record>,
    /// Every FIFO tried, with its status.
    pub sources: Vec<Source>,
    /// Lines skipped because they were not a trace record.
    pub bad_records: u64,
}

impl TraceSet {
    /// The trace `id` of process `pid`.
    pub fn find(&self, pid: u32, id: u64) -> Option<&Record> {
        self.records.iter().find(|r| r.pid == pid && r.id == id)
    }
}

/// Reads trace FIFOs on demand, remembering across reads which ones sent
/// nothing (a FIFO with no writer, which any local user can make), so they
/// cost a 50 ms grace (the reader's `SILENT_GRACE`) instead of the whole
/// deadline each time, as in a pass.
#[derive(Debug)]
pub struct TraceReader {
    options: ReadOptions,
    silent: Mutex<Vec<PathBuf>>,
}

impl TraceReader {
    /// A reader of `options.dir`'s trace FIFOs with `options`' limits.
    pub fn new(options: ReadOptions) -> TraceReader {
        TraceReader {
            options,
            silent: Mutex::new(Vec::new()),
        }
    }

    /// The trace directory, `<dir>/traces`.
    pub fn dir(&self) -> PathBuf {
        self.options.dir.join(pipe_writer::TRACES_DIR)
    }

    /// Reads every trace FIFO (only `pid`'s, if given). A missing trace
    /// directory reads as no traces (no writer has made one yet).
    ///
    /// # Errors
    /// [`Error::Dir`] if the trace directory cannot be listed;
    /// [`Error::UntrustedDir`] if it or the pipe directory is one another
    /// user could take over.
    pub fn read(&self, pid: Option<u32>) -> Result<TraceSet, Error> {
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
        let read = reader::read_traces(paths, &silent, &self.options);
        let mut now_silent: Vec<PathBuf> = read
            .iter()
            .filter(|(source, _)| source.status == Status::TimedOut && source.bytes == 0)
            .map(|(source, _)| source.path.clone())
            .collect();
        now_silent.sort_unstable();
        if pid.is_none() {
            *self.silent.lock().unwrap_or_else(PoisonError::into_inner) = now_silent;
        }
        let mut set = TraceSet::default();
        for (source, body) in read {
            if let (Status::Ok, Some(pid)) = (&source.status, source.pid) {
                parse_answer(pid, &body, &mut set);
            }
            set.sources.push(source);
        }
        set.records.sort_by(|a, b| {
            b.start
                .total_cmp(&a.start)
                .then(a.pid.cmp(&b.pid))
                .then(b.id.cmp(&a.id))
        });
        Ok(set)
    }
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

/// Parses the trace lines of one complete answer of process `pid`. A
/// record naming another PID than its FIFO is not trusted and skipped.
fn parse_answer(pid: u32, body: &[u8], set: &mut TraceSet) {
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match std::str::from_utf8(line).ok().and_then(parse_record) {
            Some(record) if record.pid == pid => set.records.push(record),
            _ => set.bad_records += 1,
        }
    }
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
        let mut set = TraceSet::default();
        parse_answer(42, text.as_bytes(), &mut set);
        parse_answer(42, b"{\"pid\":42}\nnot json\n", &mut set);
        parse_answer(43, text.as_bytes(), &mut set);
        assert_eq!(set.bad_records, 3);
        assert_eq!(set.records.len(), 1);
        let record = &set.records[0];
        assert_eq!((record.root.as_str(), record.spans.len()), ("request", 2));
        assert_eq!(record.spans[1].parent, Some(0));
        assert_eq!(record.spans[1].outcome, Some(Outcome::Error));
        assert_eq!(record.line, text.trim_end());
    }
}
