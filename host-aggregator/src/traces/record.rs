//! What a trace is as the aggregator holds it: the full [`Record`] (one
//! trace's route, `/trace/next`) and the [`Short`] record the index lists,
//! and the parsing of a writer's JSON line (FORMAT.md, "Traces").

use std::time::Duration;

use serde_json::Value as Json;
use stats_core::Outcome;
use stats_core::trace::Span;

/// What the index and the full record both say of a trace: its process,
/// id, root run and how that run went.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
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
}

/// One trace: its head, its spans and the line it came in.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Process, id, root run.
    pub head: Head,
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
    /// Process, id, root run.
    pub head: Head,
    /// How many spans the writer kept.
    pub spans: usize,
}

// A record and a short one read as their head (`record.pid`, ...): the
// routes, the index order and the CLI only look at the head's fields.
impl std::ops::Deref for Record {
    type Target = Head;
    fn deref(&self) -> &Head {
        &self.head
    }
}

impl std::ops::Deref for Short {
    type Target = Head;
    fn deref(&self) -> &Head {
        &self.head
    }
}

impl From<Record> for Short {
    fn from(r: Record) -> Short {
        Short {
            spans: r.spans.len(),
            head: r.head,
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
        head: Head {
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
        },
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
        let parsed: Vec<Option<Record>> = text
            .lines()
            .chain(["{\"pid\":42}", "not json"])
            .map(parse_record)
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
