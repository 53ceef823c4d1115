//! The line format, version 1: `<name>: <value>\n` (see `FORMAT.md`).
//!
//! Rendering is allocation-free (`itoa`/`ryu` buffers straight into a `Vec<u8>`);
//! reading splits a line at its last `:` like pipestatic's reader does.

use crate::value::Value;

// The spellings and `write_value` live with `Value` (its `Display` writes
// them), so this module depends on `value` and not the other way round.
pub use crate::value::{INFINITY, NAN, NEG_INFINITY, write_number, write_value};

/// Two decimal digits for every number below 100: `"00"` … `"99"`.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Appends `value` and the line's newline: what [`write_value`] and a
/// `push(b'\n')` write, faster for integers, the common case when a
/// registry renders thousands of lines.
///
/// An integer is formatted into a small buffer from which a fixed-size
/// window is appended and then cut back to length: a copy the compiler
/// inlines, instead of a call to `memcpy` for a few bytes (which, with the
/// name's copy, was a fifth of rendering 10,000 stats).
#[inline]
pub fn write_value_line_end(buf: &mut Vec<u8>, value: Value) {
    let Value::Int(int) = value else {
        write_value(buf, value);
        buf.push(b'\n');
        return;
    };
    // Written backwards to end at `END` (where the newline is), with a
    // window of WINDOW bytes after the first character, so that the number
    // (at most 20 characters, i64::MIN) and newline are appended as one
    // fixed-size block.
    const END: usize = 20;
    const WINDOW: usize = 24;
    let mut text = [0u8; END + WINDOW];
    text[END] = b'\n';
    let mut at = END;
    let mut rest = int.unsigned_abs();
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
        at -= 1;
        text[at] = b'-';
    }
    let start = buf.len();
    buf.extend_from_slice(&text[at..at + WINDOW]);
    buf.truncate(start + END + 1 - at);
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
///
/// Inlined: a reader calls it for every line, and returning the value
/// through memory cost more than reading it (issue 15, `benches/parse.rs`).
#[inline(always)]
pub fn parse_value(text: &str) -> Option<Value> {
    let text = trim(text);
    match parse_int(text.as_bytes()) {
        Int::Fits(int) => Some(Value::Int(int)),
        // An integer too big for i64 is a float too.
        Int::TooLarge | Int::Other => parse_float(text).map(Value::Float),
    }
}

/// The float reading, kept out of line so that [`parse_value`]'s integer
/// path is small enough to inline. Rust's float grammar also accepts
/// "inf"/"infinity"/"nan" in any case, which is what Python's float()
/// accepts too.
#[inline(never)]
fn parse_float(text: &str) -> Option<f64> {
    plain_decimal(text.as_bytes()).or_else(|| text.parse::<f64>().ok())
}

/// Powers of ten that are exact as `f64` (up to 10^22).
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A float written as plain decimal digits with one `.` (`-12.375`, what
/// writers send for most floats), read without the general float parser
/// (a third of the bench's lines are such floats): where its digits make
/// an integer of at most 2^53 and its fraction has at most 22 places,
/// both that integer and the power of ten are exact doubles, and one
/// correctly rounded division gives what `str::parse::<f64>` gives
/// (Clinger's fast path). `None` for anything else, which goes to the
/// general parser.
#[inline]
fn plain_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, rest) = split_sign(bytes);
    // One pass: the digits, and where the one `.` is.
    let mut dot = None;
    let mut digits: u64 = 0;
    for (at, &byte) in rest.iter().enumerate() {
        let digit = byte.wrapping_sub(b'0');
        if digit <= 9 {
            digits = digits.checked_mul(10)?.checked_add(u64::from(digit))?;
        } else if byte == b'.' && dot.is_none() {
            dot = Some(at);
        } else {
            return None;
        }
    }
    let places = rest.len() - dot? - 1;
    if rest.len() < 2 || places >= EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    if digits > 1 << 53 {
        return None;
    }
    // Exact: at most 2^53.
    let magnitude = digits as f64 / EXACT_POWERS_OF_TEN[places];
    Some(if negative { -magnitude } else { magnitude })
}

/// `str::trim`, without decoding characters where both ends are ASCII (a
/// number always is): ASCII white space is what `char::is_whitespace`
/// says of ASCII (TAB to CR, and space), and only a non-ASCII byte at an
/// end needs the full trim.
#[inline]
fn trim(text: &str) -> &str {
    let is_space = |b: &u8| matches!(b, b'\t'..=b'\r' | b' ');
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |last| last + 1);
    match text.get(start..end) {
        Some(ascii)
            if ascii.as_bytes().first().is_none_or(u8::is_ascii)
                && ascii.as_bytes().last().is_none_or(u8::is_ascii) =>
        {
            ascii
        }
        _ => text.trim(),
    }
}

/// An optional leading sign split off: whether it is `-`, and the rest.
#[inline(always)]
fn split_sign(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, bytes),
    }
}

/// What [`parse_int`] made of a value.
enum Int {
    /// An integer within `i64`'s range.
    Fits(i64),
    /// Digits, with an optional sign, of a number out of `i64`'s range.
    TooLarge,
    /// Not an optionally signed run of digits.
    Other,
}

/// An optionally signed run of decimal digits, in one pass (what
/// `str::parse::<i64>` accepts, with overflow told apart).
#[inline(always)]
fn parse_int(bytes: &[u8]) -> Int {
    let (negative, digits) = split_sign(bytes);
    if digits.is_empty() {
        return Int::Other;
    }
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return Int::Other;
        }
        match magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(digit)))
        {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
    }
    let fits = if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    match fits {
        Some(int) if !overflow => Int::Fits(int),
        _ => Int::TooLarge,
    }
}

/// Why a line could not be read as a stat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// The line has no `:`.
    NoSeparator,
    /// Nothing but spaces before the last `:`.
    EmptyName,
    /// The name holds a control character (NUL, TAB, VT, CR, DEL, a C1
    /// control, ...: see [`crate::name::has_control`]); FORMAT.md says such
    /// a name is not valid, so it never reaches an exporter.
    ControlInName,
    /// The text after the last `:` is not a number.
    BadValue,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LineError::NoSeparator => "no ':' separating name and value",
            LineError::EmptyName => "empty stat name",
            LineError::ControlInName => "stat name contains a control character",
            LineError::BadValue => "value is not an integer or a float",
        })
    }
}

/// Splits one line (without its `\n`; a trailing `\r` is dropped) at its LAST
/// `:` into a trimmed name and a value.
///
/// A name that still holds a control character once trimmed (`a\tb`,
/// `x\0`, `a\rb`) is refused: any program can write into a pipe, and such a
/// name is not valid (FORMAT.md, "Names").
pub fn parse_line(line: &str) -> Result<(&str, Value), LineError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (name, value) = line.rsplit_once(':').ok_or(LineError::NoSeparator)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    if crate::name::has_control(name) {
        return Err(LineError::ControlInName);
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

    /// The reading `parse_value` must give, in the plainest terms: trim,
    /// an optionally signed run of digits within `i64` is an integer,
    /// anything `str::parse::<f64>` takes is a float.
    fn plain_reading(text: &str) -> Option<Value> {
        let text = text.trim();
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(int) = text.parse::<i64>() {
                return Some(Value::Int(int));
            }
        }
        text.parse::<f64>().ok().map(Value::Float)
    }

    #[test]
    fn fast_readings_agree_with_the_plain_one_at_the_edges() {
        let cases = [
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "+9223372036854775807",
            "00000000000000000000000000001",
            "-0",
            "+0",
            "0.0",
            "-0.0",
            "+.5",
            "5.",
            ".5",
            "-.5",
            ".",
            "-.",
            "+",
            "1.2.3",
            "1..2",
            "9007199254740993.0",
            "9007199254740992.5",
            "0.9007199254740993",
            "0.1234567890123456789012",
            "0.12345678901234567890123",
            "123456789012345.6",
            "1.5e3",
            "1_000",
            " \u{a0}5\u{a0} ",
            "\u{2003}7",
            "7\u{85}",
            "\x0b12\x0c",
            "\r-3.25\r",
            "\u{1c}5",
            "١٢",
        ];
        for text in cases {
            let (fast, plain) = (parse_value(text), plain_reading(text));
            assert_eq!(fast, plain, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_readings_agree_with_the_plain_one(text in "[-+ .0-9eE\t\r\u{a0}]{0,30}") {
            proptest::prop_assert_eq!(parse_value(&text), plain_reading(&text));
        }

        #[test]
        fn plain_decimals_read_as_the_float_parser_reads_them(
            negative: bool,
            int_digits in "[0-9]{0,17}",
            frac_digits in "[0-9]{0,24}",
        ) {
            let text = format!("{}{int_digits}.{frac_digits}", if negative { "-" } else { "" });
            proptest::prop_assert_eq!(parse_value(&text), plain_reading(&text));
        }

        #[test]
        fn any_rendered_float_reads_back(bits: u64) {
            let value = Value::Float(f64::from_bits(bits));
            proptest::prop_assert_eq!(parse_value(&render(value)), Some(value));
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
            // Control characters inside a name (issue 12): any C0, DEL, C1.
            ("tab\tname: 1", Err(LineError::ControlInName)),
            ("vt\x0bname: 1", Err(LineError::ControlInName)),
            ("del\x7fname: 1", Err(LineError::ControlInName)),
            ("cr\rname: 1", Err(LineError::ControlInName)),
            ("nul\0: 1", Err(LineError::ControlInName)),
            ("csi\u{9b}name: 1", Err(LineError::ControlInName)),
            ("x[k=a\tb]: 1", Err(LineError::ControlInName)),
            ("bad\x01: five", Err(LineError::ControlInName)),
            // Surrounding whitespace controls are trimmed away, as before.
            ("\tpadded\x0b: 2\r", Ok(("padded", Value::Int(2)))),
            ("nbsp\u{a0}name: 3", Ok(("nbsp\u{a0}name", Value::Int(3)))),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), *want, "{line:?}");
        }
    }
}
