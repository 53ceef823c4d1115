//! The replies of the trace routes that answer at once: `/traces` (the
//! index) and `/traces/<pid>/<id>` (`.svg`), each reading the trace FIFOs
//! on demand. `/trace/next.*`, which waits, is in [`super::next`].

use crate::reply::Reply;

use super::query::IndexQuery;
use super::read::{OneTrace, SHARED_MAX_AGE, TraceReader};
use super::svg;

/// `Content-Type` of the timeline.
pub const SVG_CONTENT_TYPE: &str = "image/svg+xml; charset=utf-8";

/// How a single trace is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    /// The record as the writer served it.
    Json,
    /// The timeline.
    Svg,
}

impl TraceFormat {
    /// The reply carrying `record` in this format.
    pub(crate) fn reply(self, record: &super::Record) -> Reply {
        match self {
            TraceFormat::Json => Reply::json(200, record.line.as_bytes()),
            TraceFormat::Svg => Reply {
                content_type: SVG_CONTENT_TYPE,
                ..Reply::json(200, svg::render(record).into_bytes())
            },
        }
    }
}

/// The reply when the trace FIFOs could not be read at all.
fn unreadable(error: &crate::Error) -> Reply {
    Reply::error(503, &error.to_string())
}

/// `/traces?task=&min=&limit=&pid=`.
pub(crate) fn index(query: &str, reader: &TraceReader) -> Reply {
    let query = match IndexQuery::parse(query) {
        Ok(query) => query,
        Err(message) => return Reply::error(400, &message),
    };
    // One process's traces: its pipe alone, only what this query lists.
    // Every process's: the read shared with every request at the time.
    if let Some(pid) = query.pid {
        return match reader.read_index(Some(pid), query.limit, |r| query.selects(r)) {
            Ok(set) => Reply::json(200, query.to_json(&set)),
            Err(error) => unreadable(&error),
        };
    }
    match &reader.shared_index(SHARED_MAX_AGE).value {
        Ok(set) => Reply::json(200, query.to_json(set)),
        Err(error) => unreadable(error),
    }
}

/// `/traces/<pid>/<id>` and `/traces/<pid>/<id>.svg`.
pub(crate) fn one(pid: u32, id: u64, format: TraceFormat, reader: &TraceReader) -> Reply {
    match reader.read_one(pid, id) {
        Ok(OneTrace {
            record: Some(record),
            ..
        }) => format.reply(&record),
        Ok(one) => Reply::error(404, &not_found(pid, id, &one)),
        Err(error) => unreadable(&error),
    }
}

fn not_found(pid: u32, id: u64, set: &OneTrace) -> String {
    match set.sources.first() {
        None => format!("no trace pipe for PID {pid}"),
        Some(source) if !source.status.is_ok() => {
            format!("trace pipe of PID {pid} not read: {}", source.status)
        }
        Some(_) => format!("PID {pid} keeps no trace {id} (any more)"),
    }
}

/// Parses the path after `/traces/`: `<pid>/<id>` or `<pid>/<id>.svg`.
pub(crate) fn parse_path(rest: &str) -> Option<(u32, u64, TraceFormat)> {
    let (pid, id) = rest.split_once('/')?;
    let (id, format) = match id.strip_suffix(".svg") {
        Some(id) => (id, TraceFormat::Svg),
        None => (id.strip_suffix(".json").unwrap_or(id), TraceFormat::Json),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(id) {
        return None;
    }
    Some((pid.parse().ok()?, id.parse().ok()?, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_paths() {
        assert_eq!(parse_path("12/3"), Some((12, 3, TraceFormat::Json)));
        assert_eq!(parse_path("12/3.json"), Some((12, 3, TraceFormat::Json)));
        assert_eq!(parse_path("12/3.svg"), Some((12, 3, TraceFormat::Svg)));
        for bad in [
            "12",
            "12/",
            "/3",
            "x/3",
            "12/3.png",
            "12/3/4",
            "99999999999/1",
            "1/-1",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }
}
