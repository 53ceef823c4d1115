//! Fuzzes the line parser (`stats_core::Parser`), `Snapshot::parse` and the
//! snapshot envelope (`envelope::verify`) with the bytes a pipe could hold.
//!
//! Input: byte 0 picks the maximum line length, byte 1 seeds the chunk
//! sizes, the rest is what a reader read. Invariants checked:
//! - feeding the bytes in random chunks gives exactly what one feed gives
//!   (entries, error log, line counts);
//! - counts are consistent: lines = newlines (+1 for an unterminated last
//!   line), good + bad ≤ lines, the error log keeps the first
//!   `KEPT_ERRORS` in line order;
//! - every name is non-empty, trimmed and free of control characters
//!   (issue 12); a snapshot is sorted with unique names and renders to
//!   lines that parse back to the same rendering;
//! - `verify` never panics, and a `Complete` verdict's body lies inside the
//!   bytes; the snapshot wrapped in an envelope verifies `Complete`, and cut
//!   or doubled it never does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stats_core::envelope::{self, Header, Verdict};
use stats_core::{ErrorLog, KEPT_ERRORS, Parser, Snapshot, Value};

const MAX_LINES: [usize; 6] = [1, 4, 16, 64, 300, stats_core::DEFAULT_MAX_LINE];

type Parsed = (Vec<(String, Value)>, ErrorLog, u64, u64);

fn parse(chunks: &mut dyn Iterator<Item = &[u8]>, max_line: usize) -> Parsed {
    let mut parser = Parser::new(max_line);
    let mut entries = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |name, value| entries.push((name.to_owned(), value)));
    }
    parser.finish(|name, value| entries.push((name.to_owned(), value)));
    (
        entries,
        parser.take_errors(),
        parser.lines(),
        parser.good_lines(),
    )
}

/// Chunks of 0 to 63 bytes from a tiny LCG, so the cuts fall everywhere.
fn chunks(bytes: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 1;
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = ((state >> 16) as usize % 64).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        out.push(chunk);
        rest = tail;
    }
    out
}

fn render(snapshot: &Snapshot) -> Vec<u8> {
    let mut buf = Vec::new();
    snapshot.render_into(&mut buf);
    buf
}

fn check_counts(data: &[u8], (entries, errors, lines, good): &Parsed) {
    let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    let unterminated = u64::from(data.last().is_some_and(|&b| b != b'\n'));
    assert_eq!(*lines, newlines + unterminated, "line count");
    assert_eq!(*good, entries.len() as u64, "good lines = entries");
    assert!(good + errors.count() <= *lines, "good + bad <= lines");
    let kept = errors.first();
    assert_eq!(kept.len() as u64, errors.count().min(KEPT_ERRORS as u64));
    assert!(
        kept.windows(2).all(|w| w[0].line < w[1].line),
        "errors in order"
    );
    assert!(
        kept.iter().all(|e| e.line >= 1 && e.line <= *lines),
        "error line in range"
    );
    for (name, _) in entries {
        assert!(
            !name.is_empty() && name.trim() == name,
            "name {name:?} not trimmed"
        );
        assert!(
            !name.chars().any(char::is_control),
            "name {name:?} holds a control character"
        );
    }
}

fn check_envelope(snapshot: &Snapshot, cuts: &[u8]) {
    let body = render(snapshot);
    let mut wrapped = Vec::new();
    envelope::write_header(
        &mut wrapped,
        &Header {
            pid: 4242,
            seq: 7,
            time: 1.5,
        },
    );
    let body_start = wrapped.len();
    wrapped.extend_from_slice(&body);
    envelope::write_trailer(&mut wrapped);
    match envelope::verify(&wrapped) {
        Verdict::Complete {
            header,
            body: range,
        } => {
            assert_eq!((header.pid, header.seq), (4242, 7));
            assert_eq!(range, body_start..body_start + body.len());
        }
        other => panic!("our own envelope is {other:?}"),
    }
    for &cut in cuts.iter().take(8) {
        let cut = 1 + usize::from(cut) * (wrapped.len() - 1) / 256;
        for part in [&wrapped[..cut], &wrapped[cut..]] {
            let verdict = envelope::verify(part);
            assert!(
                matches!(verdict, Verdict::Incomplete(_)),
                "cut at {cut}: {verdict:?}"
            );
        }
    }
    let doubled = [wrapped.as_slice(), wrapped.as_slice()].concat();
    assert!(
        matches!(envelope::verify(&doubled), Verdict::Incomplete(_)),
        "doubled"
    );
}

fuzz_target!(|input: &[u8]| {
    let [selector, seed, data @ ..] = input else {
        return;
    };
    let max_line = MAX_LINES[usize::from(*selector) % MAX_LINES.len()];

    let whole = parse(&mut std::iter::once(data), max_line);
    check_counts(data, &whole);
    let pieces = chunks(data, *seed);
    let chunked = parse(&mut pieces.iter().copied(), max_line);
    assert_eq!(
        format!("{chunked:?}"),
        format!("{whole:?}"),
        "chunking changed the result"
    );

    let (snapshot, kinds, errors) = Snapshot::parse_with_kinds(data, max_line);
    assert_eq!(errors, whole.1, "Snapshot::parse counts the same bad lines");
    assert!(snapshot.len() <= whole.0.len());
    assert!(
        snapshot.names().windows(2).all(|w| w[0] < w[1]),
        "snapshot sorted, names unique"
    );
    let _ = kinds;
    // Rendering can be longer than the input (`a:.5` → `a: 0.5`), so read it
    // back with room to spare.
    let rendered = render(&snapshot);
    let (again, errors) = Snapshot::parse(&rendered, 2 * max_line + 64);
    assert!(
        errors.is_empty(),
        "rendered snapshot has bad lines: {errors:?}"
    );
    assert_eq!(render(&again), rendered, "render → parse → render");

    if let Verdict::Complete { body, .. } = envelope::verify(data) {
        assert!(body.start <= body.end && body.end <= data.len());
        assert!(data.starts_with(b"#stats-pipe:") && data.ends_with(b"\n"));
    }
    check_envelope(&snapshot, data);
});
