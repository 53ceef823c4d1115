//! JSON views of a pass: `/stats` in pipestatic's shape, one process, and
//! every source with its status.
//!
//! Hand-rolled rather than through serde: the output is a few fixed shapes,
//! and writing straight into one buffer keeps `/stats` cheap under load.
//!
//! Integers are JSON integers and floats always keep a `.` or an exponent
//! (`3.0`, `1e-7`), so a reader keeps the int/float distinction. JSON has no
//! NaN or infinity, so those are the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"` (the words Python's `json` module writes bare, quoted here
//! to stay valid JSON); `float("NaN")` and `float("-Infinity")` in Python
//! and `Number("Infinity")` in JavaScript read them back.

use std::path::Path;
use std::time::SystemTime;

use stats_core::{Snapshot, Value};

use super::unix_seconds;
use crate::{Pass, RefuseReason, Source, Status};

/// The JSON format: [`stats`] for a pass, [`process`] for one source;
/// served at `/stats` (and `/stats/<pid>`).
pub struct Json;

impl super::Format for Json {
    fn info(&self) -> &'static super::FormatInfo {
        &super::FormatInfo {
            name: "json",
            about: "`{\"stats\": {...}, \"timestamp\": ...}` (pipestatic's shape)",
            path: Some(PATH),
            content_type: CONTENT_TYPE,
        }
    }
    fn render(&self, pass: &Pass) -> Vec<u8> {
        stats(pass)
    }
    fn render_source(&self, pass: &Pass, source: &Source) -> Vec<u8> {
        process(pass, source)
    }
}

/// Where `serve` answers the host-wide view; one process's is at
/// `PATH/<pid>`. The archive's remote fetch reads the same paths.
pub const PATH: &str = "/stats";

/// The HTTP content type of every JSON answer.
pub const CONTENT_TYPE: &str = "application/json";

/// How a NaN value is written.
pub const NAN: &str = "\"NaN\"";
/// How positive infinity is written.
pub const INFINITY: &str = "\"Infinity\"";
/// How negative infinity is written.
pub const NEG_INFINITY: &str = "\"-Infinity\"";

/// `{"stats": {...}, "timestamp": <unix seconds>, "sources": {...}}`: the
/// host-wide sum, in pipestatic's shape (`stats` and `timestamp` exactly as
/// pipestatic serves them; `sources` counts what the pass read).
pub fn stats(pass: &Pass) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + pass.merged.len() * 32);
    buf.extend_from_slice(b"{\"stats\":");
    write_stats(&mut buf, &pass.merged);
    buf.extend_from_slice(b",\"timestamp\":");
    write_time(&mut buf, Some(pass.started));
    buf.extend_from_slice(b",\"sources\":{\"total\":");
    write_value(&mut buf, Value::from(pass.sources.len()));
    buf.extend_from_slice(b",\"ok\":");
    write_value(&mut buf, Value::from(pass.ok_count()));
    buf.extend_from_slice(b"}}");
    buf
}

/// One source with its stats: every field of [`processes`] plus `stats`
/// (empty unless the status is `ok`) and the pass `timestamp`.
pub fn process(pass: &Pass, source: &Source) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256 + source.snapshot.len() * 32);
    buf.push(b'{');
    write_source_fields(&mut buf, source);
    buf.extend_from_slice(b",\"stats\":");
    write_stats(&mut buf, &source.snapshot);
    buf.extend_from_slice(b",\"timestamp\":");
    write_time(&mut buf, Some(pass.started));
    buf.push(b'}');
    buf
}

/// `{"timestamp": .., "duration": <seconds>, "processes": [...]}`: every
/// source the pass found, with its status and counts, without its stats.
pub fn processes(pass: &Pass) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + pass.sources.len() * 256);
    buf.extend_from_slice(b"{\"timestamp\":");
    write_time(&mut buf, Some(pass.started));
    buf.extend_from_slice(b",\"duration\":");
    write_value(&mut buf, Value::Float(pass.duration.as_secs_f64()));
    buf.extend_from_slice(b",\"processes\":");
    write_sources(&mut buf, pass);
    buf.push(b'}');
    buf
}

/// `{"error": "<message>"}`.
pub fn error(message: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(message.len() + 16);
    buf.extend_from_slice(b"{\"error\":");
    write_string(&mut buf, message);
    buf.push(b'}');
    buf
}

/// Appends a stats object, `{"name": value, ...}`, in name order.
pub fn write_stats(buf: &mut Vec<u8>, snapshot: &Snapshot) {
    buf.push(b'{');
    for (i, (name, value)) in snapshot.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_string(buf, name);
        buf.push(b':');
        write_value(buf, value);
    }
    buf.push(b'}');
}

/// Appends one value: an integer as a JSON integer, a finite float with a
/// `.` or an exponent, NaN and infinities as the strings [`NAN`],
/// [`INFINITY`] and [`NEG_INFINITY`].
pub fn write_value(buf: &mut Vec<u8>, value: Value) {
    super::write_number(buf, value, [NAN, INFINITY, NEG_INFINITY]);
}

/// Appends `text` as a JSON string: `"` and `\` escaped, control characters
/// as `\n`, `\t`... or `\u00XX`; everything else (any Unicode) as it is.
pub fn write_string(buf: &mut Vec<u8>, text: &str) {
    buf.push(b'"');
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..0x20 | 0x7f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[clean_from..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(byte >> 4)]);
            buf.push(HEX[usize::from(byte & 0xf)]);
        } else {
            buf.extend_from_slice(escape);
        }
        clean_from = i + 1;
    }
    buf.extend_from_slice(&bytes[clean_from..]);
    buf.push(b'"');
}

fn write_time(buf: &mut Vec<u8>, time: Option<SystemTime>) {
    match time {
        Some(time) => write_value(buf, Value::Float(unix_seconds(time))),
        None => buf.extend_from_slice(b"null"),
    }
}

fn write_path(buf: &mut Vec<u8>, path: &Path) {
    write_string(buf, &path.to_string_lossy());
}

fn write_field_name(buf: &mut Vec<u8>, name: &str) {
    buf.push(b',');
    write_string(buf, name);
    buf.push(b':');
}

fn write_u64_field(buf: &mut Vec<u8>, name: &str, value: u64) {
    write_field_name(buf, name);
    write_value(buf, Value::from(value));
}

/// Appends `{"rss_bytes", "cpu_seconds", "threads", "open_fds",
/// "uptime_seconds"}`, the source's process figures read from `/proc` now,
/// or `null`: only a source read `Ok` this pass belongs to a live process of
/// its owner (a stale or refused one names a PID that may be someone
/// else's), and the process may have exited since.
pub fn write_process_figures(buf: &mut Vec<u8>, source: &Source) {
    let figures = source
        .pid
        .filter(|_| source.status.is_ok())
        .and_then(|pid| crate::ProcessStats::read(pid).ok());
    let Some(figures) = figures else {
        buf.extend_from_slice(b"null");
        return;
    };
    buf.extend_from_slice(b"{\"rss_bytes\":");
    write_value(buf, Value::from(figures.rss_bytes));
    write_field_name(buf, "cpu_seconds");
    write_value(buf, Value::Float(figures.cpu.as_secs_f64()));
    write_u64_field(buf, "threads", figures.threads);
    write_field_name(buf, "open_fds");
    match figures.open_fds {
        Some(fds) => write_value(buf, Value::from(fds)),
        None => buf.extend_from_slice(b"null"),
    }
    write_field_name(buf, "uptime_seconds");
    write_value(buf, Value::Float(figures.uptime.as_secs_f64()));
    buf.push(b'}');
}

/// Appends `[{...}, ...]`: every source of `pass` as `/processes` lists it
/// (the one JSON rendering of a source; `/history?sources=1` uses it too).
pub fn write_sources(buf: &mut Vec<u8>, pass: &Pass) {
    buf.push(b'[');
    for (i, source) in pass.sources.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'{');
        write_source_fields(buf, source);
        buf.push(b'}');
    }
    buf.push(b']');
}

/// Writes the fields shared by `/processes` entries and `/stats/<pid>`
/// (including the process figures of [`write_process_figures`]), without
/// the surrounding braces.
fn write_source_fields(buf: &mut Vec<u8>, source: &Source) {
    buf.extend_from_slice(b"\"path\":");
    write_path(buf, &source.path);
    write_field_name(buf, "pid");
    match source.pid {
        Some(pid) => write_value(buf, Value::from(pid)),
        None => buf.extend_from_slice(b"null"),
    }
    write_field_name(buf, "status");
    write_string(buf, source.status.as_str());
    write_field_name(buf, "reason");
    match &source.status {
        Status::Refused(reason) => {
            write_string(buf, reason.as_str());
            if let RefuseReason::WrongOwner {
                fifo_uid,
                process_uid,
            } = reason
            {
                write_u64_field(buf, "fifo_uid", u64::from(*fifo_uid));
                write_u64_field(buf, "process_uid", u64::from(*process_uid));
            }
        }
        Status::Failed(detail) => {
            buf.extend_from_slice(b"null");
            write_field_name(buf, "detail");
            write_string(buf, detail);
        }
        _ => buf.extend_from_slice(b"null"),
    }
    write_field_name(buf, "summary");
    write_string(buf, &source.status.to_string());
    write_field_name(buf, "foreign");
    buf.extend_from_slice(if source.foreign { b"true" } else { b"false" });
    write_u64_field(buf, "stats_count", source.snapshot.len() as u64);
    write_u64_field(buf, "lines", source.lines);
    write_u64_field(buf, "bad_lines", source.bad_lines);
    write_field_name(buf, "first_errors");
    buf.push(b'[');
    for (i, error) in source.first_errors.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"line\":");
        write_value(buf, Value::from(error.line));
        buf.extend_from_slice(b",\"error\":");
        // Only the kind of error, never the line's text: a hostile source
        // must not get its bytes echoed into our output.
        let text = error.to_string();
        let kind = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, kind)| kind);
        write_string(buf, kind);
        buf.push(b'}');
    }
    buf.push(b']');
    write_u64_field(buf, "attempts", u64::from(source.attempts));
    write_u64_field(buf, "bytes", source.bytes as u64);
    write_field_name(buf, "last_seen");
    write_time(buf, source.last_seen);
    write_field_name(buf, "seq");
    match source.header {
        Some(header) => write_value(buf, Value::from(header.seq)),
        None => buf.extend_from_slice(b"null"),
    }
    write_field_name(buf, "snapshot_time");
    match source.header {
        Some(header) => write_value(buf, Value::Float(header.time)),
        None => buf.extend_from_slice(b"null"),
    }
    write_field_name(buf, "process");
    write_process_figures(buf, source);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;
    use stats_core::envelope::Header;
    use stats_core::{ParseError, ParseErrorKind};

    use super::super::snapshot;
    use super::*;

    fn source(pid: u32, status: Status, stats: &[(&str, Value)]) -> Source {
        Source {
            path: PathBuf::from(format!("/run/stats/{pid}.stats")),
            pid: Some(pid),
            status,
            snapshot: snapshot(stats),
            kinds: Default::default(),
            header: None,
            foreign: false,
            lines: stats.len() as u64,
            bad_lines: 0,
            first_errors: Vec::new(),
            attempts: 1,
            bytes: 10,
            last_seen: None,
        }
    }

    fn pass(sources: Vec<Source>) -> Pass {
        let merged = stats_core::merge::sum(
            sources
                .iter()
                .filter(|s| s.status == Status::Ok)
                .map(|s| &s.snapshot),
        );
        Pass {
            started: UNIX_EPOCH + Duration::from_millis(1_763_780_000_250),
            duration: Duration::from_millis(3),
            sources,
            merged,
            kinds: Default::default(),
        }
    }

    fn parse(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("invalid JSON {e}: {}", String::from_utf8_lossy(bytes)))
    }

    fn render_value(value: Value) -> String {
        let mut buf = Vec::new();
        write_value(&mut buf, value);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn value_spellings() {
        let cases: &[(Value, &str)] = &[
            (Value::Int(0), "0"),
            (Value::Int(-42), "-42"),
            (Value::Int(i64::MAX), "9223372036854775807"),
            (Value::Float(3.0), "3.0"),
            (Value::Float(-0.0), "-0.0"),
            (Value::Float(0.1), "0.1"),
            (Value::Float(1e-7), "1e-7"),
            (Value::Float(1e300), "1e300"),
            (Value::Float(f64::NAN), "\"NaN\""),
            (Value::Float(f64::INFINITY), "\"Infinity\""),
            (Value::Float(f64::NEG_INFINITY), "\"-Infinity\""),
        ];
        for (value, want) in cases {
            let got = render_value(*value);
            assert_eq!(&got, want, "{value:?}");
            // An independent parser keeps ints integers and floats floats.
            let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
            match value {
                Value::Int(i) => assert_eq!(parsed.as_i64(), Some(*i)),
                Value::Float(f) if f.is_finite() => {
                    assert!(parsed.is_f64(), "{got} must stay a float");
                    assert_eq!(parsed.as_f64().unwrap().to_bits(), f.to_bits());
                }
                Value::Float(_) => assert!(parsed.is_string()),
            }
        }
    }

    #[test]
    fn strings_are_escaped() {
        let cases = [
            ("plain", "\"plain\""),
            ("q\"b\\", "\"q\\\"b\\\\\""),
            ("tab\tnl\ncr\r", "\"tab\\tnl\\ncr\\r\""),
            ("bell\u{7}del\u{7f}", "\"bell\\u0007del\\u007f\""),
            ("ünï ☃", "\"ünï ☃\""),
        ];
        for (text, want) in cases {
            let mut buf = Vec::new();
            write_string(&mut buf, text);
            assert_eq!(String::from_utf8(buf.clone()).unwrap(), want);
            assert_eq!(parse(&buf), json!(text));
        }
    }

    #[test]
    fn stats_has_pipestatic_shape_and_exact_sums() {
        let p = pass(vec![
            source(
                10,
                Status::Ok,
                &[("requests", Value::Int(3)), ("load avg", Value::Float(0.5))],
            ),
            source(
                11,
                Status::Ok,
                &[("requests", Value::Int(4)), ("load avg", Value::Float(1.0))],
            ),
            source(12, Status::TimedOut, &[]),
        ]);
        let got = parse(&stats(&p));
        assert_eq!(
            got,
            json!({
                "stats": {"load avg": 1.5, "requests": 7},
                "timestamp": 1_763_780_000.25,
                "sources": {"total": 3, "ok": 2},
            })
        );
        assert!(got["stats"]["requests"].is_i64());
        assert!(got["stats"]["load avg"].is_f64());
    }

    #[test]
    fn processes_lists_every_status_without_line_text() {
        let mut bad = source(20, Status::Ok, &[("a", Value::Int(1))]);
        bad.bad_lines = 2;
        bad.first_errors = vec![ParseError {
            line: 3,
            kind: ParseErrorKind::InvalidUtf8,
        }];
        bad.header = Some(Header {
            pid: 20,
            seq: 7,
            time: 1.5,
        });
        bad.last_seen = Some(UNIX_EPOCH + Duration::from_secs(2));
        let squatted = source(
            21,
            Status::Refused(RefuseReason::WrongOwner {
                fifo_uid: 1000,
                process_uid: 0,
            }),
            &[],
        );
        let mut link = source(0, Status::Refused(RefuseReason::Symlink), &[]);
        link.pid = None;
        link.path = PathBuf::from("/run/stats/\"odd\".stats");
        let p = pass(vec![bad, squatted, link]);
        let got = parse(&processes(&p));
        assert_eq!(got["duration"], json!(0.003));
        let mut list = got["processes"].as_array().unwrap().clone();
        assert_eq!(list.len(), 3);
        // PID 20 may or may not be alive here: its figures are checked in
        // `process_figures_come_from_proc`.
        assert!(list[0].as_object_mut().unwrap().remove("process").is_some());
        assert_eq!(list[1]["process"], json!(null), "not read: no figures");
        assert_eq!(
            list[0],
            json!({
                "path": "/run/stats/20.stats", "pid": 20, "status": "ok", "reason": null,
                "summary": "ok", "foreign": false, "stats_count": 1, "lines": 1, "bad_lines": 2,
                "first_errors": [{"line": 3, "error": "not valid UTF-8"}],
                "attempts": 1, "bytes": 10, "last_seen": 2.0, "seq": 7, "snapshot_time": 1.5,
            })
        );
        assert_eq!(list[1]["status"], "refused");
        assert_eq!(list[1]["reason"], "wrong_owner");
        assert_eq!(list[1]["fifo_uid"], 1000);
        assert_eq!(list[1]["process_uid"], 0);
        assert_eq!(
            list[1]["summary"],
            "refused (wrong owner: FIFO uid 1000, process uid 0)"
        );
        assert_eq!(list[2]["reason"], "symlink");
        assert_eq!(list[2]["pid"], json!(null));
        assert_eq!(list[2]["path"], "/run/stats/\"odd\".stats");
    }

    #[test]
    fn process_figures_come_from_proc() {
        let me = std::process::id();
        let p = pass(vec![source(me, Status::Ok, &[])]);
        let got = parse(&processes(&p));
        let figures = &got["processes"][0]["process"];
        assert!(figures["rss_bytes"].as_u64().unwrap() > 0, "{figures}");
        assert!(figures["threads"].as_u64().unwrap() >= 1, "{figures}");
        assert!(figures["open_fds"].as_u64().unwrap() >= 3, "{figures}");
        assert!(figures["cpu_seconds"].as_f64().unwrap() >= 0.0, "{figures}");
        assert!(
            figures["uptime_seconds"].as_f64().unwrap() > 0.0,
            "{figures}"
        );
    }

    #[test]
    fn process_view_and_error_are_valid_json() {
        let p = pass(vec![source(
            30,
            Status::Ok,
            &[
                ("nan", Value::Float(f64::NAN)),
                ("big", Value::Int(i64::MIN)),
            ],
        )]);
        let got = parse(&process(&p, &p.sources[0]));
        assert_eq!(got["pid"], 30);
        assert_eq!(got["stats"], json!({"big": i64::MIN, "nan": "NaN"}));
        assert_eq!(got["timestamp"], json!(1_763_780_000.25));
        assert_eq!(
            parse(&error("no \"route\"")),
            json!({"error": "no \"route\""})
        );
    }
}
