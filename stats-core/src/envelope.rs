//! The snapshot envelope: header and trailer lines that let a reader tell a
//! complete snapshot from a torn, empty or doubled one.
//!
//! A snapshot served by our writer is
//!
//! ```text
//! #stats-pipe: 1
//! #pid: 4242
//! #seq: 17
//! #time: 1763780000.25
//! ...stat lines...
//! #end: 1234
//! ```
//!
//! where the value of `#end` is the number of bytes before the `#end` line.
//! Every line is a plain `name: <number>` line, so `cat` and pipestatic's
//! reader still parse it. A snapshot with no `#stats-pipe` line anywhere is
//! *foreign* (pipestatic's writer, a script) and cannot be checked.

use crate::format::{parse_line, write_line};
use crate::value::Value;

/// Name of the first line; its value is the format version.
pub const VERSION_LINE: &str = "#stats-pipe";
/// The format version this crate writes and reads.
pub const VERSION: i64 = 1;
/// Name of the writer's PID line.
pub const PID_LINE: &str = "#pid";
/// Name of the snapshot sequence number line (counts snapshots served).
pub const SEQ_LINE: &str = "#seq";
/// Name of the line with the snapshot time, Unix seconds as a float.
pub const TIME_LINE: &str = "#time";
/// Name of the last line; its value is the byte count before it.
pub const END_LINE: &str = "#end";

/// What the writer says about itself in the header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    /// The writer's process ID.
    pub pid: u32,
    /// Snapshots this writer has served before this one.
    pub seq: u64,
    /// When the snapshot was taken, Unix seconds.
    pub time: f64,
}

/// Appends the header lines. Call on an empty buffer, then append the stat
/// lines (and any `#` metadata lines), then call [`write_trailer`].
pub fn write_header(buf: &mut Vec<u8>, header: &Header) {
    write_line(buf, VERSION_LINE, Value::Int(VERSION));
    write_line(buf, PID_LINE, Value::Int(i64::from(header.pid)));
    write_line(buf, SEQ_LINE, Value::from(header.seq));
    write_line(buf, TIME_LINE, Value::Float(header.time));
}

/// Appends the `#end: <bytes before it>` line that closes a snapshot.
pub fn write_trailer(buf: &mut Vec<u8>) {
    let before = buf.len();
    write_line(buf, END_LINE, Value::from(before));
}

/// What a reader can tell about the bytes it read from one pipe.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// One whole snapshot from our writer; the body is `bytes[body]`.
    Complete {
        /// The header.
        header: Header,
        /// Byte range of the lines between header and trailer.
        body: std::ops::Range<usize>,
    },
    /// No envelope at all: a foreign writer, whose lines are used as they
    /// are; or the middle piece of a snapshot split between three or more
    /// readers, which holds no envelope line either. The bytes cannot tell
    /// the two apart: a reader that has seen this writer (PID and process
    /// start time) serve an envelope before must take it as incomplete and
    /// retry (the aggregator does; FORMAT.md).
    Foreign,
    /// Nothing was read.
    Empty,
    /// Part of an envelope is there but not all of it, or more than one:
    /// torn between readers, cut short, or doubled. Retry.
    Incomplete(&'static str),
}

/// Checks the envelope of everything read from one pipe open.
pub fn verify(bytes: &[u8]) -> Verdict {
    if bytes.is_empty() {
        return Verdict::Empty;
    }
    // A head shorter than the version line's name is a cut-short snapshot too.
    let ours = bytes.starts_with(b"#stats-pipe:") || b"#stats-pipe:".starts_with(bytes);
    if !ours {
        return if contains_line_start(bytes, b"\n#end:")
            || contains_line_start(bytes, b"\n#stats-pipe:")
            || is_fragment_of_end_line(bytes)
        {
            Verdict::Incomplete("snapshot starts mid-way (torn between readers)")
        } else {
            Verdict::Foreign
        };
    }
    if !bytes.ends_with(b"\n") {
        return Verdict::Incomplete("snapshot cut short (no final newline)");
    }
    let last_start = memchr::memrchr(b'\n', &bytes[..bytes.len() - 1]).map_or(0, |i| i + 1);
    let Ok(last) = std::str::from_utf8(&bytes[last_start..bytes.len() - 1]) else {
        return Verdict::Incomplete("snapshot cut short (no #end line)");
    };
    match parse_line(last) {
        Ok((END_LINE, Value::Int(n))) if usize::try_from(n).ok() == Some(last_start) => {}
        Ok((END_LINE, _)) => return Verdict::Incomplete("#end byte count does not match"),
        _ => return Verdict::Incomplete("snapshot cut short (no #end line)"),
    }
    if contains_line_start(&bytes[1..last_start], b"\n#stats-pipe:") {
        return Verdict::Incomplete("more than one snapshot in one read");
    }
    let mut header = Header {
        pid: 0,
        seq: 0,
        time: 0.0,
    };
    let mut body_start = 0;
    for line in bytes[..last_start].split_inclusive(|&b| b == b'\n').take(4) {
        let text = std::str::from_utf8(line).unwrap_or("").trim_end();
        match parse_line(text) {
            Ok((PID_LINE, Value::Int(pid))) => header.pid = u32::try_from(pid).unwrap_or(0),
            Ok((SEQ_LINE, Value::Int(seq))) => header.seq = u64::try_from(seq).unwrap_or(0),
            Ok((TIME_LINE, v)) => header.time = v.as_f64(),
            Ok((VERSION_LINE, _)) => {}
            _ => break,
        }
        body_start += line.len();
    }
    Verdict::Complete {
        header,
        body: body_start..last_start,
    }
}

/// A read that holds only the tail of our `#end: N` line (the cut fell inside
/// the last line) must not pass for a one-stat foreign snapshot.
fn is_fragment_of_end_line(bytes: &[u8]) -> bool {
    let Some(line) = bytes.strip_suffix(b"\n") else {
        return false;
    };
    if line.contains(&b'\n') {
        return false;
    }
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let prefix = &line[..line.len() - digits];
    b"#end: ".ends_with(prefix)
}

/// Whether a line of `bytes` starts with `line_start`, given with the
/// newline that precedes it (`b"\n#end:"`). A SIMD substring search: this
/// runs over every byte of every snapshot a pass reads.
fn contains_line_start(bytes: &[u8], line_start: &[u8]) -> bool {
    bytes.starts_with(&line_start[1..]) || memchr::memmem::find(bytes, line_start).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut buf = Vec::new();
        write_header(
            &mut buf,
            &Header {
                pid: 42,
                seq: 7,
                time: 1.5,
            },
        );
        write_line(&mut buf, "a", Value::Int(1));
        write_line(&mut buf, "b: c", Value::Float(2.0));
        write_trailer(&mut buf);
        buf
    }

    #[test]
    fn complete_snapshot_is_recognised() {
        let buf = sample();
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "#stats-pipe: 1\n#pid: 42\n#seq: 7\n#time: 1.5\na: 1\nb: c: 2.0\n#end: 58\n"
        );
        match verify(&buf) {
            Verdict::Complete { header, body } => {
                assert_eq!(
                    header,
                    Header {
                        pid: 42,
                        seq: 7,
                        time: 1.5
                    }
                );
                assert_eq!(&buf[body], b"a: 1\nb: c: 2.0\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_cut_is_recognised_as_incomplete() {
        let buf = sample();
        for cut in 1..buf.len() {
            assert!(
                matches!(verify(&buf[..cut]), Verdict::Incomplete(_)),
                "head {cut}"
            );
            assert!(
                matches!(verify(&buf[cut..]), Verdict::Incomplete(_)),
                "tail {cut}"
            );
        }
    }

    #[test]
    fn doubled_snapshot_is_incomplete() {
        let mut buf = sample();
        buf.extend_from_slice(&sample());
        assert!(matches!(verify(&buf), Verdict::Incomplete(_)));
    }

    #[test]
    fn foreign_and_empty() {
        assert_eq!(verify(b"x: 1\ny: 2.000000\n"), Verdict::Foreign);
        assert_eq!(verify(b""), Verdict::Empty);
    }
}
