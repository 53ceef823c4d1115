//! Fuzzes the `pipe-writer` binary's stdin grammar (`pipe_writer::input`):
//! `read_line` over a buffered reader, `parse_line`, `Command::apply`.
//!
//! Input: byte 0 picks the reader's buffer size, byte 1 how many times the
//! rest is repeated (so lines can pass `MAX_LINE`), the rest is stdin.
//! Invariants checked:
//! - `read_line` returns one item per line (newlines, +1 for an
//!   unterminated end), never holds more than `MAX_LINE` (+ its `\n`) and
//!   keeps its buffer bounded however long a line is;
//! - a parsed command's name is valid (`name::validate`), a set stat reads
//!   back as the value set (a float stays a float), and whatever was
//!   applied renders to lines the aggregator's parser reads back without a
//!   bad line (lines within its maximum length), each stat exactly once.
#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use pipe_writer::input::{Command, InputError, MAX_LINE, parse_line, read_line};
use pipe_writer::span_reports::SpanReports;
use stats_core::{ParseErrorKind, Parser, Registry, Value};

fn same(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => {
            a.as_f64().to_bits() == b.as_f64().to_bits()
                || (a.as_f64().is_nan() && b.as_f64().is_nan())
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let [capacity, repeat, data @ ..] = input else {
        return;
    };
    let stdin: Vec<u8> = data.repeat(usize::from(*repeat % 32) + 1);
    let mut reader = BufReader::with_capacity(usize::from(*capacity) + 1, stdin.as_slice());
    let registry = Registry::new();
    let mut spans = SpanReports::new();
    let mut buf = Vec::new();
    let mut items = 0usize;
    while let Some(line) = read_line(&mut reader, &mut buf).expect("reading a slice cannot fail") {
        items += 1;
        let line = line.map(str::to_owned);
        assert!(
            buf.capacity() <= 2 * MAX_LINE + 4096 + usize::from(*capacity),
            "buffer bounded"
        );
        let line = match line {
            Ok(line) => line,
            Err(InputError::TooLong | InputError::NotUtf8) => continue,
            Err(other) => panic!("read_line returned {other:?}"),
        };
        assert!(line.len() <= MAX_LINE + 1, "line of {} bytes", line.len());
        assert!(
            !line.strip_suffix('\n').unwrap_or(&line).contains('\n'),
            "one line at a time"
        );
        let Ok(Some(command)) = parse_line(&line) else {
            continue;
        };
        let name = match command {
            Command::Set { name, .. } | Command::Incr { name, .. } => name,
            // A task run: recorded (it must not panic either), with no
            // stat of its own name to check here.
            Command::Span(_) => {
                command.apply(&registry, &mut spans);
                continue;
            }
        };
        assert_eq!(
            stats_core::name::validate(name),
            Ok(()),
            "accepted name {name:?}"
        );
        let was_float = registry.get(name).is_some_and(Value::is_float);
        command.apply(&registry, &mut spans);
        let now = registry.get(name).expect("the stat exists once applied");
        if was_float {
            assert!(now.is_float(), "once a float, always a float");
        }
        if let Command::Set { value, .. } = command {
            let expected = if was_float {
                Value::Float(value.as_f64())
            } else {
                value
            };
            assert!(
                same(now, expected),
                "{name:?} set to {value:?} reads {now:?}"
            );
        }
    }
    let newlines = stdin.iter().filter(|&&b| b == b'\n').count();
    let unterminated = usize::from(stdin.last().is_some_and(|&b| b != b'\n'));
    assert_eq!(items, newlines + unterminated, "one item per line");

    let mut rendered = Vec::new();
    registry.render_into(&mut rendered);
    let mut parser = Parser::default();
    let mut read_back = 0usize;
    parser.feed(&rendered, |name, value| {
        read_back += 1;
        let kept = registry.get(name).expect("read back a stat that was set");
        assert!(
            same(kept, value),
            "{name:?}: served {kept:?}, read {value:?}"
        );
    });
    parser.finish(|_, _| panic!("rendering ends every line"));
    let too_long = parser
        .errors()
        .first()
        .iter()
        .all(|e| e.kind == ParseErrorKind::TooLong);
    assert!(
        too_long,
        "served lines the reader rejects: {:?}",
        parser.errors()
    );
    assert_eq!(
        read_back as u64 + parser.errors().count(),
        registry.len() as u64
    );
});
