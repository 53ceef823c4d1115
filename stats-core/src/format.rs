//! The line format, version 1: `<name>: <value>\n` (see `FORMAT.md`).
//!
//! Rendering is allocation-free (`itoa`/`ryu` buffers straight into a `Vec<u8>`);
//! reading splits a line at its last `:` like pipestatic's reader does.

use crate::value::Value;

/// Spelling of a float NaN on the wire; Python's `float()` reads it.
pub const NAN: &str = "nan";
/// Spelling of positive infinity on the wire; Python's `float()` reads it.
pub const INFINITY: &str = "inf";
/// Spelling of negative infinity on the wire; Python's `float()` reads it.
pub const NEG_INFINITY: &str = "-inf";

/// Appends the wire spelling of `value` to `buf`.
///
/// Integers are plain decimals. Finite floats use the shortest representation
/// that reads back to the same bits, always with a `.` or an exponent so they
/// read back as floats (`3.0`, `1e-7`, `-0.0`); NaN and infinities are `nan`,
/// `inf`, `-inf`.
#[inline]
pub fn write_value(buf: &mut Vec<u8>, value: Value) {
    match value {
        Value::Int(i) => buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Float(f) if f.is_finite() => {
            buf.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
        }
        Value::Float(f) if f.is_nan() => buf.extend_from_slice(NAN.as_bytes()),
        Value::Float(f) if f > 0.0 => buf.extend_from_slice(INFINITY.as_bytes()),
        Value::Float(_) => buf.extend_from_slice(NEG_INFINITY.as_bytes()),
    }
}

/// Appends one `name: value\n` line. The name must already be valid (see
/// [`crate::name`]); registries guarantee that at creation.
#[inline]
pub fn write_line(buf: &mut Vec<u8>, name: &str, value: Value) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    write_value(buf, value);
    buf.push(b'\n');
}

/// Reads a value: an optionally signed decimal that fits `i64` is an integer;
/// anything else that parses as a float (including `nan`, `inf`, `-inf`,
/// `infinity`, any case, and integers too large for `i64`) is a float.
/// Surrounding whitespace is ignored. Returns `None` for anything else.
pub fn parse_value(text: &str) -> Option<Value> {
    let text = text.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            // Only overflow is possible here: an integer too big for i64.
            Err(_) => Value::Float(text.parse::<f64>().ok()?),
        });
    }
    // Rust's float grammar also accepts "inf"/"infinity"/"nan" in any case,
    // which is what Python's float() accepts too.
    text.parse::<f64>().ok().map(Value::Float)
}

/// Why a line could not be read as a stat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The line has no `:`.
    NoSeparator,
    /// Nothing but spaces before the last `:`.
    EmptyName,
    /// The text after the last `:` is not a number.
    BadValue,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LineError::NoSeparator => "no ':' separating name and value",
            LineError::EmptyName => "empty stat name",
            LineError::BadValue => "value is not an integer or a float",
        })
    }
}

/// Splits one line (without its `\n`; a trailing `\r` is dropped) at its LAST
/// `:` into a trimmed name and a value.
pub fn parse_line(line: &str) -> Result<(&str, Value), LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (name, value) = line.rsplit_once(':').ok_or(LineError::NoSeparator)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    let value = parse_value(value).ok_or(LineError::BadValue)?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(v: Value) -> String {
        let mut buf = Vec::new();
        write_value(&mut buf, v);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn value_spellings() {
        let cases: &[(Value, &str)] = &[
            (Value::Int(0), "0"),
            (Value::Int(-42), "-42"),
            (Value::Int(i64::MIN), "-9223372036854775808"),
            (Value::Float(3.0), "3.0"),
            (Value::Float(-0.0), "-0.0"),
            (Value::Float(1e-7), "1e-7"),
            (Value::Float(0.1), "0.1"),
            (Value::Float(1e300), "1e300"),
            (Value::Float(f64::NAN), "nan"),
            (Value::Float(f64::INFINITY), "inf"),
            (Value::Float(f64::NEG_INFINITY), "-inf"),
        ];
        for &(value, text) in cases {
            assert_eq!(render(value), text, "{value:?}");
            assert_eq!(parse_value(text), Some(value), "{text}");
        }
    }

    #[test]
    fn reads_foreign_spellings() {
        let cases: &[(&str, Option<Value>)] = &[
            (" 12 ", Some(Value::Int(12))),
            ("+5", Some(Value::Int(5))),
            ("3.000000", Some(Value::Float(3.0))), // pipestatic's %f
            ("NaN", Some(Value::Float(f64::NAN))),
            ("Infinity", Some(Value::Float(f64::INFINITY))),
            ("-INF", Some(Value::Float(f64::NEG_INFINITY))),
            ("1E5", Some(Value::Float(1e5))),
            ("99999999999999999999", Some(Value::Float(1e20))),
            ("-99999999999999999999", Some(Value::Float(-1e20))),
            ("", None),
            ("-", None),
            ("12abc", None),
            ("0x10", None),
            ("1 2", None),
            ("counter", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_value(text), *want, "{text:?}");
        }
    }

    #[test]
    fn lines_split_at_last_colon() {
        type Case<'a> = (&'a str, Result<(&'a str, Value), LineError>);
        let cases: &[Case] = &[
            ("My Nice Stat: 5", Ok(("My Nice Stat", Value::Int(5)))),
            ("a.b.c: 1.5", Ok(("a.b.c", Value::Float(1.5)))),
            ("another[one]: 2", Ok(("another[one]", Value::Int(2)))),
            ("host:port:path: 7", Ok(("host:port:path", Value::Int(7)))),
            ("  spaced  :   9  ", Ok(("spaced", Value::Int(9)))),
            ("crlf: 3\r", Ok(("crlf", Value::Int(3)))),
            ("x:: 4", Ok(("x:", Value::Int(4)))),
            ("no separator", Err(LineError::NoSeparator)),
            (": 5", Err(LineError::EmptyName)),
            ("   : 5", Err(LineError::EmptyName)),
            ("name: ", Err(LineError::BadValue)),
            ("name: 1:", Err(LineError::BadValue)),
            ("name: five", Err(LineError::BadValue)),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), *want, "{line:?}");
        }
    }
}
