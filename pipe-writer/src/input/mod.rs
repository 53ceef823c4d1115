//! The line grammar the `pipe-writer` binary reads on stdin.
//!
//! ```text
//! line      = set | increment | span | blank
//! set       = name ":" value        sets the stat to value
//! increment = name "+=" value       adds value to the stat (created at value)
//! span      = "#span" SP name SP duration [options]
//!                                   a task run that just ended (span_line)
//! blank     = only whitespace       ignored
//! ```
//!
//! The operator is whichever of `:` and `+=` occurs **last** on the line, so
//! names may hold spaces, colons and even `+=`: `host:port: 3` sets
//! `host:port`, `a: b += 1` increments `a: b`, `x+=y: 2` sets `x+=y`. Name
//! and value are trimmed. A value is an integer or a float spelled as in
//! FORMAT.md (`3`, `-2`, `0.5`, `1e3`, `nan`, `inf`); a float value makes the
//! stat a float for good. A name must be valid as in FORMAT.md: not empty,
//! no control characters (a tab included), not starting with `#` (reserved
//! for metadata), which is why a line starting with `#span` can only be a
//! span ([`span_line`]). A trailing `\r` is dropped. Anything else is a
//! [`InputError`]: the binary reports it with its line number and skips it.

pub mod span_line;
pub mod span_reports;

use std::io::BufRead;

use std::time::Instant;

use stats_core::name::{NameError, validate};
use stats_core::{Registry, Value, format::parse_value};

use span_line::SpanLine;
use span_reports::SpanReports;

/// Longest line the binary accepts, in bytes; longer lines are skipped.
pub const MAX_LINE: usize = 64 * 1024;

/// One parsed line.
#[derive(Clone, Debug, PartialEq)]
pub enum Command<'a> {
    /// `name: value`
    Set {
        /// The stat's name.
        name: &'a str,
        /// Its new value.
        value: Value,
    },
    /// `name += value`
    Incr {
        /// The stat's name.
        name: &'a str,
        /// The amount added.
        by: Value,
    },
    /// `#span name duration [outcome=..] [parent=..]`
    Span(SpanLine<'a>),
}

impl Command<'_> {
    /// Applies the command to `registry`; a span joins the ones waiting in
    /// `spans` for their parent (see [`SpanReports`]).
    pub fn apply(&self, registry: &Registry, spans: &mut SpanReports) {
        match self {
            Command::Set { name, value } => registry.set(name, *value),
            Command::Incr { name, by } => registry.incr(name, *by),
            Command::Span(span) => spans.report(registry, span, Instant::now()),
        }
    }
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// Neither `:` nor `+=` on the line.
    NoOperator,
    /// The name is not valid.
    BadName(NameError),
    /// The value is not a number.
    BadValue(String),
    /// The line is not UTF-8.
    NotUtf8,
    /// The line is longer than [`MAX_LINE`] bytes.
    TooLong,
    /// A `#span` line that does not follow its grammar: what is wrong.
    BadSpan(String),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::NoOperator => {
                f.write_str("expected `name: value` or `name += value` (no `:` or `+=` found)")
            }
            InputError::BadName(e) => write!(f, "{e}"),
            InputError::BadValue(text) => write!(
                f,
                "value {text:?} is not a number (want an integer, a float, nan or inf)"
            ),
            InputError::NotUtf8 => f.write_str("line is not valid UTF-8"),
            InputError::TooLong => write!(f, "line is longer than {MAX_LINE} bytes"),
            InputError::BadSpan(what) => write!(f, "bad #span line: {what}"),
        }
    }
}

impl std::error::Error for InputError {}

/// Parses one line (with or without its `\n`). `Ok(None)` for a blank line.
///
/// # Errors
///
/// A line that is not a command; see the module docs for the grammar.
pub fn parse_line(line: &str) -> Result<Option<Command<'_>>, InputError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(rest) = span_line::strip_keyword(line) {
        return span_line::parse(rest).map(|span| Some(Command::Span(span)));
    }
    let colon = line.rfind(':');
    let plus = line.rfind("+=");
    let (name, value, incr) = match (colon, plus) {
        (None, None) => return Err(InputError::NoOperator),
        (Some(c), Some(p)) if p > c => (&line[..p], &line[p + 2..], true),
        (None, Some(p)) => (&line[..p], &line[p + 2..], true),
        (Some(c), _) => (&line[..c], &line[c + 1..], false),
    };
    let name = name.trim();
    validate(name).map_err(InputError::BadName)?;
    let value = parse_value(value).ok_or_else(|| InputError::BadValue(value.trim().to_owned()))?;
    Ok(Some(if incr {
        Command::Incr { name, by: value }
    } else {
        Command::Set { name, value }
    }))
}

/// Reads one line of at most [`MAX_LINE`] bytes into `buf` (cleared first),
/// without holding more than that in memory however long the line is.
/// Returns `Ok(None)` at end of input, `Ok(Some(Err(TooLong)))` for a line
/// that was too long (it is consumed and dropped), and the line otherwise.
///
/// # Errors
///
/// A read error of `input`.
pub fn read_line<'b>(
    input: &mut impl BufRead,
    buf: &'b mut Vec<u8>,
) -> std::io::Result<Option<Result<&'b str, InputError>>> {
    buf.clear();
    let mut too_long = false;
    let mut seen_any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        seen_any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..=i], true),
            None => (chunk, false),
        };
        if buf.len() + part.len() > MAX_LINE + 1 {
            too_long = true;
        } else if !too_long {
            buf.extend_from_slice(part);
        }
        let used = part.len();
        input.consume(used);
        if done {
            break;
        }
    }
    if !seen_any {
        return Ok(None);
    }
    if too_long {
        return Ok(Some(Err(InputError::TooLong)));
    }
    Ok(Some(
        std::str::from_utf8(buf).map_err(|_| InputError::NotUtf8),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: Value) -> Result<Option<Command<'_>>, InputError> {
        Ok(Some(Command::Set { name, value }))
    }

    fn incr(name: &str, by: Value) -> Result<Option<Command<'_>>, InputError> {
        Ok(Some(Command::Incr { name, by }))
    }

    #[test]
    fn grammar_table() {
        let cases: &[(&str, Result<Option<Command<'_>>, InputError>)] = &[
            ("requests: 3", set("requests", Value::Int(3))),
            ("requests += 3\n", incr("requests", Value::Int(3))),
            ("requests+=-2", incr("requests", Value::Int(-2))),
            ("load avg: 0.5\r\n", set("load avg", Value::Float(0.5))),
            ("temp: 3.0", set("temp", Value::Float(3.0))),
            ("host:port: 3", set("host:port", Value::Int(3))),
            ("a: b += 1", incr("a: b", Value::Int(1))),
            ("x+=y: 2", set("x+=y", Value::Int(2))),
            ("x:: 1", set("x:", Value::Int(1))),
            (
                "another[one]: nan",
                set("another[one]", Value::Float(f64::NAN)),
            ),
            ("big: 1e300", set("big", Value::Float(1e300))),
            (
                "  padded name  :  -inf ",
                set("padded name", Value::Float(f64::NEG_INFINITY)),
            ),
            ("", Ok(None)),
            ("   \r\n", Ok(None)),
            ("no operator", Err(InputError::NoOperator)),
            (": 3", Err(InputError::BadName(NameError::Empty))),
            ("  += 3", Err(InputError::BadName(NameError::Empty))),
            ("#pid: 3", Err(InputError::BadName(NameError::Reserved))),
            (
                "tab\there: 3",
                Err(InputError::BadName(NameError::ControlCharacter)),
            ),
            ("x: three", Err(InputError::BadValue("three".into()))),
            ("x += ", Err(InputError::BadValue(String::new()))),
            ("x:=1", Err(InputError::BadValue("=1".into()))),
            (
                "#span db: 3ms parent=a:b\r\n",
                Ok(Some(Command::Span(SpanLine {
                    name: "db:".into(),
                    duration: std::time::Duration::from_millis(3),
                    outcome: stats_core::Outcome::Success,
                    parent: Some("a:b".into()),
                }))),
            ),
            (
                "#span x: 1",
                Err(InputError::BadSpan(
                    "duration \"1\" has no unit of ns, us, µs, ms, s, m or h".into(),
                )),
            ),
            ("#spanner: 1", Err(InputError::BadName(NameError::Reserved))),
        ];
        for (line, expected) in cases {
            let got = parse_line(line);
            // NaN != NaN: compare the rendering instead.
            assert_eq!(format!("{got:?}"), format!("{expected:?}"), "line {line:?}");
        }
    }

    #[test]
    fn names_longer_than_the_reader_reads_are_refused() {
        let name = "n".repeat(stats_core::name::MAX_NAME_LEN);
        assert!(parse_line(&format!("{name}: 1")).is_ok_and(|c| c.is_some()));
        let line = format!("{name}x += 1");
        assert_eq!(
            parse_line(&line),
            Err(InputError::BadName(NameError::TooLong))
        );
        assert_eq!(
            InputError::BadName(NameError::TooLong).to_string(),
            "stat name is longer than 3968 bytes"
        );
    }

    #[test]
    fn commands_apply_with_pipestatic_semantics() {
        let registry = Registry::new();
        for line in [
            "hits += 2",
            "hits += 3",
            "load: 1",
            "load: 0.5",
            "hits += 0.5",
        ] {
            parse_line(line)
                .unwrap()
                .unwrap()
                .apply(&registry, &mut SpanReports::new());
        }
        assert_eq!(registry.get("hits"), Some(Value::Float(5.5)));
        assert_eq!(registry.get("load"), Some(Value::Float(0.5)));
    }

    #[test]
    fn reads_bounded_lines() {
        let mut bytes = b"a: 1\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        bytes.extend_from_slice(b": 2\nb\xff: 1\nlast: 3");
        let mut input = std::io::BufReader::with_capacity(1000, bytes.as_slice());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(line) = read_line(&mut input, &mut buf).unwrap() {
            got.push(line.map(str::to_owned));
        }
        assert_eq!(
            got,
            [
                Ok("a: 1\n".to_owned()),
                Err(InputError::TooLong),
                Err(InputError::NotUtf8),
                Ok("last: 3".to_owned()),
            ]
        );
        assert!(
            buf.capacity() <= 2 * MAX_LINE + 2000,
            "memory stays bounded"
        );
    }
}
