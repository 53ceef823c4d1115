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

/// Two decimal digits for every number below 100: `"00"` … `"99"`.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// How many decimal digits `n` has (1 for 0), with no division or loop:
/// the bit length gives the digit count or one more, a table settles it.
#[inline]
fn decimal_digits(n: u64) -> usize {
    const POWERS: [u64; 20] = {
        let mut powers = [1_u64; 20];
        let mut i = 1;
        while i < 20 {
            powers[i] = powers[i - 1] * 10;
            i += 1;
        }
        powers
    };
    // Setting the low bit never changes the digit count (powers of ten are
    // even) and makes 0 count as one digit.
    let n = n | 1;
    // floor(bits * log10(2)) with log10(2) ~ 1233 / 4096.
    let bits = 64 - n.leading_zeros() as usize;
    let guess = (bits * 1233) >> 12;
    guess + 1 - usize::from(n < POWERS[guess])
}

/// Appends `value` and the line's newline: what [`write_value`] and a
/// `push(b'\n')` write, faster for integers, the common case when a
/// registry renders thousands of lines.
///
/// An integer is formatted into a small buffer that is appended whole and
/// then cut back to length: a fixed-size copy the compiler inlines, instead
/// of a call to `memcpy` for a few bytes (which, with the name's copy, was
/// a fifth of rendering 10,000 stats).
#[inline]
pub fn write_value_line_end(buf: &mut Vec<u8>, value: Value) {
    let Value::Int(int) = value else {
        write_value(buf, value);
        buf.push(b'\n');
        return;
    };
    // Room for i64::MIN (20 characters) and the newline.
    let mut text = [0u8; 24];
    let mut rest = int.unsigned_abs();
    let digits = decimal_digits(rest);
    let len = digits + usize::from(int < 0);
    text[len] = b'\n';
    let mut at = len;
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        text[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        text[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        text[at] = b'0' + rest as u8;
    }
    if int < 0 {
        text[0] = b'-';
    }
    let start = buf.len();
    buf.extend_from_slice(&text);
    buf.truncate(start + len + 1);
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

    fn line_end_matches_write_value(value: Value) {
        let mut fast = b"prefix".to_vec();
        write_value_line_end(&mut fast, value);
        let mut plain = b"prefix".to_vec();
        write_value(&mut plain, value);
        plain.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&plain)
        );
    }

    #[test]
    fn line_end_writes_what_write_value_writes() {
        let mut edges = vec![
            0,
            1,
            -1,
            9,
            10,
            99,
            100,
            101,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ];
        for power in 1..19 {
            let p = 10_i64.pow(power);
            edges.extend([p - 1, p, p + 1, -(p - 1), -p, -(p + 1)]);
        }
        for int in edges {
            line_end_matches_write_value(Value::Int(int));
        }
        for float in [0.5, -0.0, 3.0, f64::NAN, f64::INFINITY, 1e300] {
            line_end_matches_write_value(Value::Float(float));
        }
    }

    proptest::proptest! {
        #[test]
        fn line_end_agrees_on_any_integer(int: i64) {
            line_end_matches_write_value(Value::Int(int));
        }

        #[test]
        fn digit_count_is_the_length_of_the_decimal(n: u64) {
            proptest::prop_assert_eq!(decimal_digits(n), n.to_string().len());
        }
    }

    #[test]
    fn digit_count_at_every_power_of_ten() {
        for power in 0..20 {
            let p = 10_u64.pow(power);
            assert_eq!(decimal_digits(p), p.to_string().len());
            assert_eq!(decimal_digits(p - 1), (p - 1).to_string().len().max(1));
        }
        assert_eq!(decimal_digits(u64::MAX), 20);
    }

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
