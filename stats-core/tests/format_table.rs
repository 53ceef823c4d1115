//! Table of whole inputs read through the public parser: the edge cases of
//! the list that the unit tests do not already pin down (limits,
//! boundaries, line endings, overflow through a merge).

use stats_core::format::LineError;
use stats_core::{Entry, ParseErrorKind, Snapshot, Value, merge};

const MAX: usize = 32;

struct Case {
    input: &'static [u8],
    entries: &'static [(&'static str, Value)],
    /// `(line number, what was wrong)` for every skipped line.
    errors: &'static [(u64, ParseErrorKind)],
}

const TOO_LONG: ParseErrorKind = ParseErrorKind::TooLong;
const BAD_VALUE: ParseErrorKind = ParseErrorKind::Line(LineError::BadValue);
const NO_SEPARATOR: ParseErrorKind = ParseErrorKind::Line(LineError::NoSeparator);
const CONTROL: ParseErrorKind = ParseErrorKind::Line(LineError::ControlInName);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Lines of exactly MAX bytes are read; MAX + 1 is skipped, and the `\r`
    // of a CRLF counts toward the length.
    Case { input: b"exactly.32.bytes.long.name..: 42\n", entries: &[("exactly.32.bytes.long.name..", Value::Int(42))], errors: &[] },
    Case { input: b"exactly.33.bytes.long.name...: 42\n", entries: &[], errors: &[(1, TOO_LONG)] },
    Case { input: b"exactly.32.bytes.long.name..: 4\r\n", entries: &[("exactly.32.bytes.long.name..", Value::Int(4))], errors: &[] },
    Case { input: b"exactly.32.bytes.long.name..: 42\r\n", entries: &[], errors: &[(1, TOO_LONG)] },
    // An over-long last line without a newline is still counted.
    Case { input: b"a: 1\nthis line never ends and never ends", entries: &[("a", Value::Int(1))], errors: &[(2, TOO_LONG)] },
    // i64 boundaries: MIN is an int, one past MAX is a float.
    Case { input: b"min: -9223372036854775808\n", entries: &[("min", Value::Int(i64::MIN))], errors: &[] },
    Case { input: b"x: 9223372036854775808\n", entries: &[("x", Value::Float(9.223_372_036_854_776e18))], errors: &[] },
    // Floats keep their type and sign.
    Case { input: b"z: -0.0\ne: 1e-7\n", entries: &[("e", Value::Float(1e-7)), ("z", Value::Float(-0.0))], errors: &[] },
    Case { input: b"z: -0\n", entries: &[("z", Value::Int(0))], errors: &[] },
    // CRLF everywhere, blank lines of spaces and lone `\r`, no final newline.
    Case { input: b"a: 1\r\n\r\n   \r\n\nb: inf", entries: &[("a", Value::Int(1)), ("b", Value::Float(f64::INFINITY))], errors: &[] },
    // Invalid UTF-8 in the value or the name; a NUL byte in a name (not a
    // valid name: skipped, issue 12); a bare CR inside a line.
    Case { input: b"a: \xc3\x28\n\xed\xa0\x80: 1\nb\0: 2\nc: 1\r2\n", entries: &[],
           errors: &[(1, ParseErrorKind::InvalidUtf8), (2, ParseErrorKind::InvalidUtf8), (3, CONTROL), (4, BAD_VALUE)] },
    // Every kind of control character inside a name, among good lines; the
    // controls that are whitespace at either end (TAB, VT, U+0085) are
    // trimmed as before.
    Case { input: b"ok: 1\nt\tab: 1\nv\x0bt: 1\nd\x7fel: 1\nc\rr: 1\nn\0ul: 1\nc\xc2\x851: 1\n\tedge\x0b: 2\n",
           entries: &[("edge", Value::Int(2)), ("ok", Value::Int(1))],
           errors: &[(2, CONTROL), (3, CONTROL), (4, CONTROL), (5, CONTROL), (6, CONTROL), (7, CONTROL)] },
    // Garbage that looks almost right.
    Case { input: b"a 1\na: 1 2\na: 0x1f\na: 1_000\n", entries: &[],
           errors: &[(1, NO_SEPARATOR), (2, BAD_VALUE), (3, BAD_VALUE), (4, BAD_VALUE)] },
];

#[test]
fn parse_table() {
    for case in CASES {
        let (snapshot, errors) = Snapshot::parse(case.input, MAX);
        let want = Snapshot::from_entries(case.entries.iter().map(|&(name, value)| Entry {
            name: name.into(),
            value,
        }));
        let input = String::from_utf8_lossy(case.input);
        assert_eq!(snapshot, want, "entries of {input:?}");
        let got: Vec<_> = errors.first().iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(got, case.errors, "errors of {input:?}");
        assert_eq!(
            errors.count(),
            case.errors.len() as u64,
            "count of {input:?}"
        );
    }
}

#[test]
fn integer_overflow_in_a_merge_becomes_a_float() {
    let (a, _) = Snapshot::parse(b"total: 9223372036854775807\nsmall: 1\n", MAX);
    let (b, _) = Snapshot::parse(b"total: 1\nsmall: 2\n", MAX);
    let sum = merge::sum([&a, &b]);
    assert_eq!(
        sum.get("total"),
        Some(Value::Float(9.223_372_036_854_776e18))
    );
    assert_eq!(sum.get("small"), Some(Value::Int(3)));
    let mut text = Vec::new();
    sum.render_into(&mut text);
    assert_eq!(text, b"small: 3\ntotal: 9.223372036854776e18\n");
}
