//! The second FIFO: a process's completed traces ([`stats_core::trace`]) at
//! `<dir>/traces/<pid>.traces`, one JSON object per line, served exactly
//! like `<pid>.stats` (the same serving thread, spares, orphan watch and
//! directory rules; only the content differs). The `traces` subdirectory
//! keeps the pipe directory's listing to `<pid>.stats` entries.
//!
//! One open reads one answer, framed so a reader can tell a complete one
//! from a torn one like the stats envelope (FORMAT.md, "Traces"):
//!
//! ```text
//! {"stats-pipe-traces":1,"pid":4242,"seq":0,"time":1763780000.25}
//! {"pid":4242,"id":7,"root":"request",...,"spans":[...]}
//! {"end":123}
//! ```
//!
//! The first line is the header; the last gives the byte offset at which it
//! starts. Traces come newest first.

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use stats_core::Registry;

/// The subdirectory of the pipe directory the trace FIFOs are in.
pub const TRACES_DIR: &str = "traces";

/// What a server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// `<pid>.stats`: the registry's stats in the envelope.
    Stats,
    /// `<pid>.traces`: the registry's traces, one JSON object per line.
    Traces,
}

impl Content {
    /// The FIFO name's suffix (`<pid>.<suffix>`).
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Content::Stats => "stats",
            Content::Traces => "traces",
        }
    }

    /// The names of its serving thread and orphan sweeper, so a profile or
    /// a test tells the two servers' threads apart (by their first 15
    /// bytes, what `/proc/<pid>/task/<tid>/comm` keeps: `stats-pipe-orph`,
    /// `traces-orphans`).
    pub(crate) fn thread_names(self) -> (&'static str, &'static str) {
        match self {
            Content::Stats => ("stats-pipe", "stats-pipe-orphans"),
            Content::Traces => ("traces-pipe", "traces-orphans"),
        }
    }
}

/// Writes the framed traces of `registry` into `buf` (cleared first).
pub(crate) fn build(buf: &mut Vec<u8>, registry: &Registry, pid: u32, seq: u64) {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut text =
        format!("{{\"stats-pipe-traces\":1,\"pid\":{pid},\"seq\":{seq},\"time\":{time:.6}}}\n");
    registry.tracer().write_json_lines(pid, &mut text);
    let end = text.len();
    text.push_str(&format!("{{\"end\":{end}}}\n"));
    buf.clear();
    buf.extend_from_slice(text.as_bytes());
}

/// What one read of a `.traces` FIFO holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TracesRead {
    /// A whole answer: the trace lines are `body` of the bytes read.
    Complete {
        /// The writer's PID from the header.
        pid: u32,
        /// Where the trace lines are.
        body: Range<usize>,
    },
    /// Nothing (another reader took the answer): retry.
    Empty,
    /// Part of an answer (cut short, torn, two run together): retry.
    Incomplete,
}

/// Classifies the bytes one open of a `.traces` FIFO returned.
pub fn verify_traces(bytes: &[u8]) -> TracesRead {
    if bytes.is_empty() {
        return TracesRead::Empty;
    }
    const HEAD: &[u8] = b"{\"stats-pipe-traces\":1,\"pid\":";
    let Some(rest) = bytes.strip_prefix(HEAD) else {
        return TracesRead::Incomplete;
    };
    let Some(header_end) = bytes.iter().position(|&b| b == b'\n') else {
        return TracesRead::Incomplete;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(pid) = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|d| d.parse().ok())
    else {
        return TracesRead::Incomplete;
    };
    let Some(body_and_trailer) = bytes.strip_suffix(b"}\n") else {
        return TracesRead::Incomplete;
    };
    let Some(trailer_at) = body_and_trailer
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|at| at + 1)
    else {
        return TracesRead::Incomplete;
    };
    let trailer = &body_and_trailer[trailer_at..];
    let Some(count) = trailer.strip_prefix(b"{\"end\":") else {
        return TracesRead::Incomplete;
    };
    let count: Option<usize> = std::str::from_utf8(count).ok().and_then(|c| c.parse().ok());
    if count != Some(trailer_at) || trailer_at <= header_end {
        return TracesRead::Incomplete;
    }
    // Two answers run together hold two headers.
    let body = header_end + 1..trailer_at;
    if memchr_find(&bytes[body.clone()], b"{\"stats-pipe-traces\":") {
        return TracesRead::Incomplete;
    }
    TracesRead::Complete { pid, body }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_framed_and_verified() {
        let registry = Registry::new();
        registry.tracer().set_sample_every(1);
        let task = registry.task("request");
        let _ = task.run(|| Ok::<_, ()>(()));
        let mut buf = Vec::new();
        build(&mut buf, &registry, 42, 3);
        let TracesRead::Complete { pid, body } = verify_traces(&buf) else {
            panic!("{}", String::from_utf8_lossy(&buf));
        };
        assert_eq!(pid, 42);
        let text = std::str::from_utf8(&buf[body]).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("{\"pid\":42,\"id\":"), "{text}");
        assert_eq!(verify_traces(b""), TracesRead::Empty);
        assert_eq!(verify_traces(&buf[..buf.len() - 3]), TracesRead::Incomplete);
        assert_eq!(verify_traces(&buf[10..]), TracesRead::Incomplete);
        let twice = [buf.clone(), buf.clone()].concat();
        assert_eq!(verify_traces(&twice), TracesRead::Incomplete);
    }
}
