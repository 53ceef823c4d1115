//! What a trace request asks for, from a query string or the command line,
//! and the index it gets: `/traces?task=REGEX&min=DURATION&limit=N&pid=P`
//! and `/trace/next.*?task=REGEX&timeout=DURATION`.
//!
//! Task patterns are compiled by the `regex` crate: it matches in time
//! linear in the input whatever the pattern (no backtracking), and its
//! size limits below bound what a pattern may cost to compile, so a
//! request cannot buy unbounded CPU with a crafted pattern.

use std::time::Duration;

use regex::{Regex, RegexBuilder};

use super::read::{SHARED_KEEP, TraceSet};
use super::record::Short;
use crate::Status;
use crate::export::json;

/// Longest task pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Compiled-program and lazy-DFA cache bound per pattern: far above any
/// pattern naming tasks, small enough that no request can make the
/// aggregator allocate much for one.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Nesting depth of groups and repetitions accepted in a pattern.
const REGEX_NEST_LIMIT: u32 = 32;
/// Traces listed by default.
pub const DEFAULT_LIMIT: usize = 100;
/// Traces listed at most (a larger `limit` is lowered to it).
pub const MAX_LIMIT: usize = SHARED_KEEP;
/// How long `/trace/next.*` waits by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `/trace/next.*` may be asked to wait at most.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Compiles a task pattern with the limits above.
///
/// # Errors
/// A message naming the pattern and why it was refused.
pub fn task_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!(
            "task pattern of {} bytes is too long (at most {MAX_PATTERN_BYTES})",
            pattern.len()
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| format!("bad task pattern {pattern:?}: {e}"))
}

/// A duration as the command line spells it (`250ms`, `2s`).
fn duration(key: &str, value: &str) -> Result<Duration, String> {
    crate::args::duration(value).map_err(|e| format!("bad {key}: {e}"))
}

/// `/traces`: which traces to list.
#[derive(Clone, Debug)]
pub struct IndexQuery {
    /// Only traces whose root task name matches (anywhere in the name).
    pub task: Option<Regex>,
    /// Only traces that took at least this long.
    pub min: Duration,
    /// At most this many, newest first.
    pub limit: usize,
    /// Only this process's traces.
    pub pid: Option<u32>,
}

impl Default for IndexQuery {
    fn default() -> IndexQuery {
        IndexQuery {
            task: None,
            min: Duration::ZERO,
            limit: DEFAULT_LIMIT,
            pid: None,
        }
    }
}

impl IndexQuery {
    /// Parses `task=`, `min=`, `limit=` and `pid=`; other keys are ignored.
    ///
    /// # Errors
    /// A message naming the bad value (a pattern that does not compile, a
    /// duration without a unit, a limit or PID that is not a number).
    pub fn parse(query: &str) -> Result<IndexQuery, String> {
        let mut parsed = IndexQuery::default();
        for (key, value) in pairs(query) {
            match key {
                "task" if !value.is_empty() => parsed.task = Some(task_regex(&value)?),
                "min" => parsed.min = duration("min", &value)?,
                "limit" => {
                    let limit: u64 = value
                        .parse()
                        .map_err(|_| format!("bad limit {value:?}: expected a number"))?;
                    parsed.limit = usize::try_from(limit).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
                }
                "pid" => {
                    parsed.pid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("bad pid {value:?}: expected a process ID"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// Whether `record` is one this query lists (the limit aside).
    pub fn selects(&self, record: &Short) -> bool {
        self.task
            .as_ref()
            .is_none_or(|re| re.is_match(&record.root))
            && u128::from(record.duration_ns) >= self.min.as_nanos()
            && self.pid.is_none_or(|pid| record.pid == pid)
    }

    /// The selected records of `set`, newest first, at most `limit`.
    pub fn select<'s>(&self, set: &'s TraceSet) -> Vec<&'s Short> {
        set.records
            .iter()
            .filter(|r| self.selects(r))
            .take(self.limit)
            .collect()
    }

    /// The index as JSON: `{"traces":[{"pid","id","root","tags","start",
    /// "duration_ns","outcome","spans","dropped_spans"}...],
    /// "sources":{"total","ok",<status word>...,"bad_records",
    /// "skipped_budget"}}`, where `spans` is the number of spans kept.
    pub fn to_json(&self, set: &TraceSet) -> Vec<u8> {
        let mut buf = b"{\"traces\":[".to_vec();
        for (i, record) in self.select(set).into_iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_short(&mut buf, record);
        }
        buf.extend_from_slice(b"],\"sources\":");
        write_sources(&mut buf, set);
        buf.push(b'}');
        buf
    }

    /// The index as a table for a terminal: start time, PID, id, duration,
    /// outcome, spans and the root with its tags, newest first, then a line
    /// on the sources read.
    pub fn to_text(&self, set: &TraceSet) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "{:<17} {:>7} {:>6} {:>12} {:<7} {:>5}  ROOT\n",
            "START", "PID", "ID", "DURATION", "OUTCOME", "SPANS"
        );
        for r in self.select(set) {
            let tags: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let root = if tags.is_empty() {
                r.root.clone()
            } else {
                format!("{}[{}]", r.root, tags.join(","))
            };
            let _ = writeln!(
                out,
                "{:<17.6} {:>7} {:>6} {:>12} {:<7} {:>5}  {}",
                r.start,
                r.pid,
                r.id,
                human_ns(r.duration_ns),
                r.outcome,
                r.spans,
                root.escape_debug()
            );
        }
        let ok = set.sources.iter().filter(|s| s.status.is_ok()).count();
        let _ = writeln!(
            out,
            "({} trace pipes, {ok} read; {} bad records; {} cut by the byte budget)",
            set.sources.len(),
            set.bad_records,
            set.skipped_budget
        );
        out
    }
}

/// `/trace/next.*`: which trace to wait for, and how long.
#[derive(Clone, Debug)]
pub struct NextQuery {
    /// The root task pattern (required).
    pub task: Regex,
    /// How long to wait before answering 504.
    pub timeout: Duration,
}

impl NextQuery {
    /// Parses `task=` (required) and `timeout=` (at most [`MAX_TIMEOUT`]).
    ///
    /// # Errors
    /// A message naming what is missing or bad.
    pub fn parse(query: &str) -> Result<NextQuery, String> {
        let mut task = None;
        let mut timeout = DEFAULT_TIMEOUT;
        for (key, value) in pairs(query) {
            match key {
                "task" | "regex" => task = Some(task_regex(&value)?),
                "timeout" => {
                    timeout = duration("timeout", &value)?;
                    if timeout > MAX_TIMEOUT {
                        return Err(format!(
                            "timeout {value} is too long (at most {}s)",
                            MAX_TIMEOUT.as_secs()
                        ));
                    }
                }
                _ => {}
            }
        }
        let task = task.ok_or("task=REGEX is required (the root task to wait for)")?;
        Ok(NextQuery { task, timeout })
    }
}

/// The `key=value` pairs of a query string, values percent-decoded.
fn pairs(query: &str) -> impl Iterator<Item = (&str, String)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key, crate::history::percent_decode(value))
    })
}

/// One short record (appstats' index row).
fn write_short(buf: &mut Vec<u8>, r: &Short) {
    let mut int = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"pid\":");
    buf.extend_from_slice(int.format(r.pid).as_bytes());
    buf.extend_from_slice(b",\"id\":");
    buf.extend_from_slice(int.format(r.id).as_bytes());
    buf.extend_from_slice(b",\"root\":");
    json::write_string(buf, &r.root);
    buf.extend_from_slice(b",\"tags\":{");
    for (i, (k, v)) in r.tags.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json::write_string(buf, k);
        buf.push(b':');
        json::write_string(buf, v);
    }
    buf.extend_from_slice(b"},\"start\":");
    json::write_value(buf, stats_core::Value::Float(r.start));
    buf.extend_from_slice(b",\"duration_ns\":");
    buf.extend_from_slice(int.format(r.duration_ns).as_bytes());
    buf.extend_from_slice(b",\"outcome\":");
    json::write_string(buf, &r.outcome);
    buf.extend_from_slice(b",\"spans\":");
    buf.extend_from_slice(int.format(r.spans).as_bytes());
    buf.extend_from_slice(b",\"dropped_spans\":");
    buf.extend_from_slice(int.format(r.dropped_spans).as_bytes());
    buf.push(b'}');
}

/// `{"total":N,"ok":N,"timed_out":N,...,"bad_records":N,"skipped_budget":N}`:
/// every status word ([`Status::WORDS`]) with how many trace FIFOs ended
/// so, then the lines that were not traces and the FIFOs the read's byte
/// budget cut (counted in `too_large` too).
pub(crate) fn write_sources(buf: &mut Vec<u8>, set: &TraceSet) {
    let mut int = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"total\":");
    buf.extend_from_slice(int.format(set.sources.len()).as_bytes());
    for word in Status::WORDS {
        let count = set
            .sources
            .iter()
            .filter(|s| s.status.as_str() == *word)
            .count();
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(word.as_bytes());
        buf.extend_from_slice(b"\":");
        buf.extend_from_slice(int.format(count).as_bytes());
    }
    buf.extend_from_slice(b",\"bad_records\":");
    buf.extend_from_slice(int.format(set.bad_records).as_bytes());
    buf.extend_from_slice(b",\"skipped_budget\":");
    buf.extend_from_slice(int.format(set.skipped_budget).as_bytes());
    buf.push(b'}');
}

/// `1.234 ms`, `12 µs`, `2.5 s`.
pub(crate) fn human_ns(ns: u64) -> String {
    let ns = ns as f64;
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_bad_values_are_named() {
        let q = IndexQuery::parse("task=req%7Cdb&min=2ms&limit=99999999999999999&pid=7").unwrap();
        assert!(q.task.as_ref().unwrap().is_match("db.query"));
        assert_eq!(q.min, Duration::from_millis(2));
        assert_eq!((q.limit, q.pid), (MAX_LIMIT, Some(7)));
        assert_eq!(IndexQuery::parse("").unwrap().limit, DEFAULT_LIMIT);
        for (bad, says) in [
            ("task=(", "bad task pattern"),
            ("min=5", "bad min"),
            ("limit=-1", "bad limit"),
            ("pid=x", "bad pid"),
        ] {
            let message = IndexQuery::parse(bad).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
        }
        let next = NextQuery::parse("task=^request$&timeout=2s").unwrap();
        assert_eq!(next.timeout, Duration::from_secs(2));
        assert!(
            NextQuery::parse("timeout=2s")
                .unwrap_err()
                .contains("required")
        );
        assert!(
            NextQuery::parse("task=a&timeout=6m")
                .unwrap_err()
                .contains("at most")
        );
        assert!(
            NextQuery::parse("task=a&timeout=x")
                .unwrap_err()
                .contains("bad timeout")
        );
    }

    #[test]
    fn costly_patterns_are_refused_not_run() {
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert!(task_regex(&long).unwrap_err().contains("too long"));
        // A counted repetition that compiles to a huge program.
        assert!(task_regex("(((a{100}){100}){100})").is_err());
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(task_regex(&deep).is_err());
        // Backtracking's worst case is linear here.
        let re = task_regex("(a+)+$").unwrap();
        assert!(!re.is_match(&format!("{}!", "a".repeat(10_000))));
    }
}
