//! Property tests of the line format: whatever we render reads back as the
//! same snapshot, bit for bit, and no byte sequence makes the parser panic or
//! lose track of a line.

use proptest::prelude::*;
use stats_core::format::{parse_value, write_value};
use stats_core::name::{sanitize, validate};
use stats_core::{Entry, Parser, Snapshot, Value, tags};

/// Characters that stress the name rules: separators, brackets, escapes,
/// the metadata prefix, whitespace and control characters (which sanitising
/// must deal with), and multi-byte UTF-8.
const NAME_CHARS: &str =
    "[a-zA-Z0-9 ._:\\[\\]=,\\\\#\t\r\néß→日本\u{1F600}\u{2028}\u{00A0}-]{0,24}";

/// Every f64 bit pattern is reachable, plus the special values often enough
/// that each case is actually exercised.
fn any_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        proptest::num::f64::ANY,
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MIN_POSITIVE / 2.0),
        Just(-f64::from_bits(1)),
        Just(f64::MAX),
        Just(1e-7),
        Just(3.0),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)].prop_map(Value::Int),
        any_float().prop_map(Value::Float),
    ]
}

/// Names as a registry stores them: raw text sanitised, including text that
/// looks like a tag set built with [`tags::join`].
fn any_name() -> impl Strategy<Value = String> {
    let raw = prop_oneof![
        NAME_CHARS,
        any::<String>(),
        (
            NAME_CHARS,
            proptest::collection::vec((NAME_CHARS, NAME_CHARS), 1..4)
        )
            .prop_map(|(base, pairs)| {
                let pairs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                tags::join(&base, &pairs)
            }),
    ];
    raw.prop_map(|raw| sanitize(&raw).into_owned())
}

fn any_snapshot() -> impl Strategy<Value = Snapshot> {
    proptest::collection::vec((any_name(), any_value()), 0..40).prop_map(|pairs| {
        Snapshot::from_entries(pairs.into_iter().map(|(name, value)| Entry {
            name: name.into(),
            value,
        }))
    })
}

fn render(snapshot: &Snapshot) -> Vec<u8> {
    let mut buf = Vec::new();
    snapshot.render_into(&mut buf);
    buf
}

/// Input mixing good lines, garbage bytes, blank lines and over-long lines,
/// joined by `\n` or `\r\n`, with or without a final newline.
fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    let good_line = (any_name(), any_value()).prop_map(|(name, value)| {
        let mut line = name.into_bytes();
        line.extend_from_slice(b": ");
        write_value(&mut line, value);
        line
    });
    let line = prop_oneof![
        good_line,
        proptest::collection::vec(any::<u8>(), 0..80),
        proptest::collection::vec(prop_oneof![Just(b' '), Just(b'\t'), Just(b'\r')], 0..4),
        "[ :0-9a-z.\\-]{0,12}".prop_map(String::into_bytes),
        (1usize..300).prop_map(|n| {
            let mut long = vec![b'x'; n];
            long.extend_from_slice(b": 1");
            long
        }),
    ];
    (
        proptest::collection::vec((line, any::<bool>()), 0..30),
        any::<bool>(),
    )
        .prop_map(|(lines, final_newline)| {
            let mut out = Vec::new();
            for (i, (line, crlf)) in lines.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                }
                out.extend_from_slice(line);
            }
            if final_newline && !lines.is_empty() {
                out.push(b'\n');
            }
            out
        })
}

/// Feeds `input` in chunks of `chunk` bytes; returns the good entries and the
/// finished parser.
fn parse_in_chunks(input: &[u8], chunk: usize, max_line: usize) -> (Vec<(String, Value)>, Parser) {
    let mut parser = Parser::new(max_line);
    let mut entries = Vec::new();
    for piece in input.chunks(chunk) {
        parser.feed(piece, |name, value| entries.push((name.to_owned(), value)));
    }
    parser.finish(|name, value| entries.push((name.to_owned(), value)));
    (entries, parser)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn value_round_trips(value in any_value()) {
        let mut text = Vec::new();
        write_value(&mut text, value);
        let text = String::from_utf8(text).expect("values render as ASCII");
        prop_assert_eq!(parse_value(&text), Some(value), "rendered as {:?}", text);
        // Once a float, always a float: the spelling itself says so.
        prop_assert_eq!(
            value.is_float(),
            text.contains(['.', 'e', 'n', 'i']),
            "{:?} does not show its type", text
        );
    }

    #[test]
    fn sanitised_names_are_valid(raw in any::<String>()) {
        let name = sanitize(&raw);
        prop_assert_eq!(validate(&name), Ok(()), "{:?} -> {:?}", raw, name);
    }

    #[test]
    fn snapshot_round_trips(snapshot in any_snapshot()) {
        let text = render(&snapshot);
        let (parsed, errors) = Snapshot::parse(&text, 4096);
        prop_assert!(errors.is_empty(), "{:?} in {:?}", errors, String::from_utf8_lossy(&text));
        prop_assert_eq!(parsed, snapshot);
    }

    #[test]
    fn registry_keeps_what_was_set(pairs in proptest::collection::vec((any_name(), any_value()), 0..20)) {
        let registry = stats_core::Registry::new();
        // The expected value of each stat: the last value set, except that a
        // stat once set to a float stays a float.
        let mut expected = std::collections::BTreeMap::<String, Value>::new();
        for (name, value) in &pairs {
            registry.set(name, *value);
            let was_float = expected.get(name).is_some_and(|v| v.is_float());
            let now = match *value {
                Value::Int(i) if was_float => Value::Float(i as f64),
                other => other,
            };
            expected.insert(name.clone(), now);
        }
        let expected = Snapshot::from_sorted(
            expected.into_iter().map(|(name, value)| Entry { name: name.into(), value }).collect(),
        );
        prop_assert_eq!(&registry.snapshot(), &expected);
        let mut text = Vec::new();
        registry.render_into(&mut text);
        let (parsed, errors) = Snapshot::parse(&text, 4096);
        prop_assert!(errors.is_empty(), "{:?}", errors);
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn every_line_is_an_entry_an_error_or_blank(
        input in any_stream(),
        chunk in 1usize..64,
        max_line in 1usize..200,
    ) {
        let (entries, parser) = parse_in_chunks(&input, chunk, max_line);

        let pieces: Vec<&[u8]> = if input.is_empty() {
            Vec::new()
        } else {
            input.strip_suffix(b"\n").unwrap_or(&input).split(|&b| b == b'\n').collect()
        };
        let blank = pieces
            .iter()
            .filter(|line| {
                line.len() <= max_line
                    && std::str::from_utf8(line).is_ok_and(|text| text.trim().is_empty())
            })
            .count() as u64;
        prop_assert_eq!(parser.lines(), pieces.len() as u64);
        prop_assert_eq!(parser.good_lines(), entries.len() as u64);
        prop_assert_eq!(
            parser.good_lines() + parser.errors().count() + blank,
            parser.lines(),
            "good {} + bad {} + blank {} != lines {}",
            parser.good_lines(), parser.errors().count(), blank, parser.lines()
        );
        let numbers: Vec<u64> = parser.errors().first().iter().map(|e| e.line).collect();
        prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]), "error lines out of order: {:?}", numbers);
        prop_assert!(numbers.iter().all(|&n| n >= 1 && n <= parser.lines()));
        for (name, _) in &entries {
            prop_assert!(!name.is_empty() && name.trim() == name && !name.contains('\n'));
        }

        // Chunking never changes the outcome.
        let (whole_entries, whole) = parse_in_chunks(&input, input.len().max(1), max_line);
        prop_assert_eq!(entries, whole_entries);
        prop_assert_eq!(parser.errors(), whole.errors());
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (snapshot, errors) = Snapshot::parse(&input, 64);
        let lines = input.split(|&b| b == b'\n').count() as u64;
        prop_assert!(snapshot.len() as u64 + errors.count() <= lines);
    }
}
