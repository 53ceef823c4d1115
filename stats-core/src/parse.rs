//! Streaming reader of `name: value` lines: feed it bytes in any chunks and
//! it calls back once per good line. Bad lines are skipped and counted, with
//! their line numbers, never fatal.

use crate::format::{LineError, parse_line};
use crate::value::Value;

/// Default longest accepted line, in bytes (without the `\n`).
pub const DEFAULT_MAX_LINE: usize = 4096;

/// How many errors are kept with their details; the rest are only counted.
pub const KEPT_ERRORS: usize = 16;

/// What was wrong with a skipped line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The line could not be split into a name and a number.
    Line(LineError),
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is longer than the parser's maximum.
    TooLong,
}

/// One skipped line: its 1-based number and what was wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number within the stream.
    pub line: u64,
    /// What was wrong.
    pub kind: ParseErrorKind,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match self.kind {
            ParseErrorKind::Line(e) => write!(f, "{e}"),
            ParseErrorKind::InvalidUtf8 => f.write_str("not valid UTF-8"),
            ParseErrorKind::TooLong => f.write_str("line too long"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Every skipped line counted; the first [`KEPT_ERRORS`] kept in detail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorLog {
    count: u64,
    first: Vec<ParseError>,
}

impl ErrorLog {
    /// How many lines were skipped.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The first skipped lines, in order (at most [`KEPT_ERRORS`]).
    pub fn first(&self) -> &[ParseError] {
        &self.first
    }

    /// Whether no line was skipped.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn push(&mut self, error: ParseError) {
        self.count += 1;
        if self.first.len() < KEPT_ERRORS {
            self.first.push(error);
        }
    }
}

/// Where a [`Parser`] hands its lines (a closure taking each good line's
/// name and value is one).
pub(crate) trait LineSink {
    /// A line about to be parsed, at the start of `rest` (valid UTF-8; the
    /// line ends at the first `\n` or with `rest`): takes it as a good stat
    /// line itself and returns its length (without the `\n`) only where it
    /// read it exactly as [`parse_line`] would and it is at most `max_line`
    /// bytes long (a reader that knows the name coming next, see
    /// [`crate::Snapshot::parse_with_kinds_cached`]). It finds the line's
    /// end itself: a line read this way is looked at once, not first
    /// searched for its `\n`.
    fn quick(&mut self, _rest: &str, _max_line: usize) -> Option<usize> {
        None
    }

    /// Whether [`LineSink::quick`] may take lines at all: a sink that never
    /// does has its lines split by one search over the text.
    fn reads_quickly(&self) -> bool {
        false
    }

    /// A good line (metadata lines included), parsed.
    fn entry(&mut self, name: &str, value: Value);
}

impl<F: FnMut(&str, Value)> LineSink for F {
    fn entry(&mut self, name: &str, value: Value) {
        self(name, value);
    }
}

/// A streaming line parser. Lines end at `\n`; a trailing `\r` is dropped;
/// blank lines are skipped silently.
#[derive(Debug)]
pub struct Parser {
    max_line: usize,
    partial: Vec<u8>,
    discarding: bool,
    line_no: u64,
    good_lines: u64,
    errors: ErrorLog,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new(DEFAULT_MAX_LINE)
    }
}

impl Parser {
    /// A parser that skips (and counts) lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Parser {
        Parser {
            max_line,
            partial: Vec::new(),
            discarding: false,
            line_no: 0,
            good_lines: 0,
            errors: ErrorLog::default(),
        }
    }

    /// Parses what `chunk` completes, calling `on_entry(name, value)` for each
    /// good line (metadata lines included: see [`crate::name::is_metadata`]).
    /// An unfinished last line is kept (up to the maximum) for the next call.
    pub fn feed(&mut self, chunk: &[u8], mut on_entry: impl FnMut(&str, Value)) {
        self.feed_to(chunk, &mut on_entry);
    }

    /// [`Parser::feed`] into a [`LineSink`].
    pub(crate) fn feed_to(&mut self, mut chunk: &[u8], on_entry: &mut impl LineSink) {
        // Fast path for the usual whole snapshot: with no line pending, the
        // complete lines are checked as UTF-8 in one go and split as text,
        // rather than checked line by line.
        if self.partial.is_empty() && !self.discarding {
            if let Some(last) = memchr::memrchr(b'\n', chunk) {
                if let Ok(text) = std::str::from_utf8(&chunk[..last]) {
                    self.text_lines(text, on_entry);
                    chunk = &chunk[last + 1..];
                }
            }
        }
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            let (line, rest) = (&chunk[..end], &chunk[end + 1..]);
            chunk = rest;
            if self.discarding {
                self.discarding = false;
                self.line_no += 1;
                continue;
            }
            if self.partial.is_empty() {
                self.line(line, on_entry);
            } else if self.partial.len() + line.len() > self.max_line {
                self.partial.clear();
                self.skip_too_long();
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                self.line(&joined, on_entry);
                joined.clear();
                self.partial = joined;
            }
        }
        if self.discarding {
            return;
        }
        if self.partial.len() + chunk.len() > self.max_line {
            self.partial.clear();
            self.discarding = true;
            self.errors.push(ParseError {
                line: self.line_no + 1,
                kind: ParseErrorKind::TooLong,
            });
        } else {
            self.partial.extend_from_slice(chunk);
        }
    }

    /// Ends the stream: parses a last line that had no `\n`.
    pub fn finish(&mut self, mut on_entry: impl FnMut(&str, Value)) {
        self.finish_to(&mut on_entry);
    }

    /// [`Parser::finish`] into a [`LineSink`].
    pub(crate) fn finish_to(&mut self, on_entry: &mut impl LineSink) {
        if self.discarding {
            self.discarding = false;
            self.line_no += 1;
        } else if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last, on_entry);
        }
    }

    /// Counts `n` lines as seen without parsing them (a reader that
    /// recognised them, see [`crate::Snapshot::parse_with_kinds_cached`]),
    /// so later line numbers stay right. Call it between whole lines only.
    pub fn skip_lines(&mut self, n: u64) {
        debug_assert!(self.partial.is_empty() && !self.discarding);
        self.line_no += n;
        self.good_lines += n;
    }

    /// Lines seen so far, good, blank and bad.
    pub fn lines(&self) -> u64 {
        self.line_no
    }

    /// Good lines so far.
    pub fn good_lines(&self) -> u64 {
        self.good_lines
    }

    /// The skipped lines so far.
    pub fn errors(&self) -> &ErrorLog {
        &self.errors
    }

    /// Takes the error log, leaving an empty one.
    pub fn take_errors(&mut self) -> ErrorLog {
        std::mem::take(&mut self.errors)
    }

    fn skip_too_long(&mut self) {
        self.line_no += 1;
        self.errors.push(ParseError {
            line: self.line_no,
            kind: ParseErrorKind::TooLong,
        });
    }

    fn line(&mut self, line: &[u8], on_entry: &mut impl LineSink) {
        match std::str::from_utf8(line) {
            Ok(text) => self.text_line(text, on_entry),
            Err(_) => {
                self.line_no += 1;
                // An over-long line is reported as such, whatever its bytes.
                let kind = if line.len() > self.max_line {
                    ParseErrorKind::TooLong
                } else {
                    ParseErrorKind::InvalidUtf8
                };
                self.errors.push(ParseError {
                    line: self.line_no,
                    kind,
                });
            }
        }
    }

    /// Every line of `text` (valid UTF-8; the last line has no `\n`): each
    /// offered to [`LineSink::quick`] where it starts, and split off by a
    /// search for its end only where that declines it.
    fn text_lines(&mut self, text: &str, on_entry: &mut impl LineSink) {
        let mut start = 0;
        if !on_entry.reads_quickly() {
            // One search over the whole text: a call a line costs more.
            for end in memchr::memchr_iter(b'\n', text.as_bytes()) {
                self.parse_text_line(&text[start..end], on_entry);
                start = end + 1;
            }
            self.parse_text_line(&text[start..], on_entry);
            return;
        }
        loop {
            let rest = &text[start..];
            let end = match on_entry.quick(rest, self.max_line) {
                Some(len) => {
                    self.line_no += 1;
                    self.good_lines += 1;
                    start + len
                }
                None => {
                    let end =
                        memchr::memchr(b'\n', rest.as_bytes()).map_or(text.len(), |i| start + i);
                    self.parse_text_line(&text[start..end], on_entry);
                    end
                }
            };
            if end >= text.len() {
                return;
            }
            start = end + 1;
        }
    }

    fn text_line(&mut self, text: &str, on_entry: &mut impl LineSink) {
        if on_entry.quick(text, self.max_line).is_some() {
            self.line_no += 1;
            self.good_lines += 1;
            return;
        }
        self.parse_text_line(text, on_entry);
    }

    /// A line [`LineSink::quick`] declined.
    fn parse_text_line(&mut self, text: &str, on_entry: &mut impl LineSink) {
        self.line_no += 1;
        if text.len() > self.max_line {
            self.errors.push(ParseError {
                line: self.line_no,
                kind: ParseErrorKind::TooLong,
            });
            return;
        }
        // A line that starts with a visible ASCII character is not blank:
        // only the rest need the Unicode-aware trim.
        let visible_first = text.as_bytes().first().is_some_and(u8::is_ascii_graphic);
        if !visible_first && text.trim().is_empty() {
            return;
        }
        match parse_line(text) {
            Ok((name, value)) => {
                self.good_lines += 1;
                on_entry.entry(name, value);
            }
            Err(e) => self.errors.push(ParseError {
                line: self.line_no,
                kind: ParseErrorKind::Line(e),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]], max: usize) -> (Vec<(String, Value)>, ErrorLog) {
        let mut parser = Parser::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |n, v| out.push((n.to_owned(), v)));
        }
        parser.finish(|n, v| out.push((n.to_owned(), v)));
        (out, parser.take_errors())
    }

    #[test]
    fn garbage_is_skipped_counted_and_numbered() {
        let input: &[u8] = b"a: 1\ngarbage\n\nb: 2.0\r\n\xff\xfe: 3\nc: x\n: 4\nd: -5";
        let (entries, errors) = parse_chunks(&[input], 64);
        assert_eq!(
            entries,
            vec![
                ("a".into(), Value::Int(1)),
                ("b".into(), Value::Float(2.0)),
                ("d".into(), Value::Int(-5)),
            ]
        );
        let lines: Vec<_> = errors.first().iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(
            lines,
            vec![
                (2, ParseErrorKind::Line(LineError::NoSeparator)),
                (5, ParseErrorKind::InvalidUtf8),
                (6, ParseErrorKind::Line(LineError::BadValue)),
                (7, ParseErrorKind::Line(LineError::EmptyName)),
            ]
        );
        assert_eq!(errors.count(), 4);
    }

    #[test]
    fn any_chunking_gives_the_same_result() {
        let input = b"alpha: 1\nbeta gamma: 2.5\nlong long long name: 3\nz: nan\n";
        let whole = parse_chunks(&[input], 64);
        for size in 1..input.len() {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(parse_chunks(&chunks, 64), whole, "chunk size {size}");
        }
    }

    /// A whole chunk takes the fast path (checked as UTF-8 once, split as
    /// text); one byte at a time takes the line-by-line path: same result.
    #[test]
    fn fast_and_line_by_line_paths_agree() {
        let long = "x".repeat(40);
        let input = format!("a: 1\n\u{3000}\n \t\n#pid: 3\nbad\n{long}: 1\nlast: 2.5\ntail: 7");
        let whole = parse_chunks(&[input.as_bytes()], 32);
        let bytes: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
        assert_eq!(parse_chunks(&bytes, 32), whole);
        let names: Vec<&str> = whole.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "#pid", "last", "tail"]);
        let lines: Vec<_> = whole.1.first().iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(
            lines,
            [
                (5, ParseErrorKind::Line(LineError::NoSeparator)),
                (6, ParseErrorKind::TooLong)
            ]
        );
    }

    #[test]
    fn over_long_lines_are_skipped_in_any_chunking() {
        let mut input = b"ok: 1\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b": 7\nafter: 2\n");
        for size in [1, 7, 50, 200] {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            let (entries, errors) = parse_chunks(&chunks, 32);
            assert_eq!(entries.len(), 2, "chunk size {size}");
            assert_eq!(
                errors.first()[0],
                ParseError {
                    line: 2,
                    kind: ParseErrorKind::TooLong
                }
            );
            assert_eq!(errors.count(), 1);
        }
    }

    proptest::proptest! {
        /// Whatever bytes a pipe holds, no name handed on holds a control
        /// character, and every line is either good, blank or counted.
        #[test]
        fn no_name_with_a_control_character_gets_through(
            lines in proptest::collection::vec("[a \\t\\x00-\\x1f\\x7f\\u{80}-\\u{a0}:1]{0,12}", 0..12)
        ) {
            let input = lines.join("\n");
            let (entries, errors) = parse_chunks(&[input.as_bytes()], 64);
            for (name, _) in &entries {
                proptest::prop_assert!(!crate::name::has_control(name), "{name:?}");
            }
            let blank = lines.iter().filter(|l| l.trim().is_empty()).count() as u64;
            proptest::prop_assert!(entries.len() as u64 + errors.count() + blank >= lines.len() as u64);
        }
    }

    #[test]
    fn keeps_only_the_first_errors_but_counts_all() {
        let input = "bad\n".repeat(100);
        let (_, errors) = parse_chunks(&[input.as_bytes()], 64);
        assert_eq!(errors.count(), 100);
        assert_eq!(errors.first().len(), KEPT_ERRORS);
        assert_eq!(errors.first()[15].line, 16);
    }
}
