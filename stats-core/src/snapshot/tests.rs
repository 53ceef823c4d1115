//! The snapshot's tests: parsing through the cache, sharing names, kind blocks.
use super::*;

fn entry(name: &str, value: Value) -> Entry {
    Entry {
        name: name.into(),
        value,
    }
}

#[test]
fn sorted_and_later_wins() {
    let s = Snapshot::from_entries([
        entry("b", Value::Int(1)),
        entry("a", Value::Int(2)),
        entry("b", Value::Float(3.0)),
    ]);
    assert_eq!(
        s.clone().into_entries(),
        [entry("a", Value::Int(2)), entry("b", Value::Float(3.0))]
    );
    assert_eq!(s.get("b"), Some(Value::Float(3.0)));
    assert_eq!(s.get("c"), None);
}

#[test]
fn render_then_parse() {
    let s = Snapshot::from_entries([
        entry("My Nice Stat", Value::Int(5)),
        entry("a:b", Value::Float(3.0)),
        entry("t[k=v]", Value::Float(f64::NEG_INFINITY)),
    ]);
    let mut buf = Vec::new();
    s.render_into(&mut buf);
    assert_eq!(
        String::from_utf8(buf.clone()).unwrap(),
        "My Nice Stat: 5\na:b: 3.0\nt[k=v]: -inf\n"
    );
    let (parsed, errors) = Snapshot::parse(&buf, 4096);
    assert!(errors.is_empty());
    assert_eq!(parsed, s);
}

#[test]
fn parse_drops_metadata() {
    let (s, _) = Snapshot::parse(b"#pid: 5\nx: 1\n#end: 13\n", 4096);
    assert_eq!(s.into_entries(), [entry("x", Value::Int(1))]);
}

#[test]
fn parse_with_kinds_keeps_declarations() {
    let (s, kinds, errors) =
        Snapshot::parse_with_kinds(b"#pid: 5\n#counter x: 1\n#histogram h a: 1\nx: 1\n", 4096);
    assert!(errors.is_empty());
    assert_eq!(s.into_entries(), [entry("x", Value::Int(1))]);
    assert_eq!(kinds.get("x"), Some(crate::kinds::WireKind::Counter));
    assert_eq!(kinds.get("h a"), Some(crate::kinds::WireKind::Histogram));
}

#[test]
fn a_known_declaration_block_is_skipped_with_the_same_result() {
    use crate::kinds::WireKind;
    let text = |seq: u32, bad: &str| {
        format!(
            "#stats-pipe: 1\n#pid: 7\n#seq: {seq}\n#counter a: 1\n#max b x: 1\n\
             a: {seq}\n{bad}b x: 2\n#end: 99\n"
        )
    };
    let mut cache = KindsCache::new();
    let first = text(1, "");
    let (s1, k1, e1) = Snapshot::parse_with_kinds_cached(first.as_bytes(), 4096, &mut cache);
    assert!(e1.is_empty());
    let block = kind_block(first.as_bytes()).unwrap();
    assert_eq!(block.lines, 2);
    assert_eq!(&first[block.bytes.clone()], "#counter a: 1\n#max b x: 1\n");
    // The same block in the next snapshot: not parsed, same kinds (the
    // very same shared set), stats and line numbers as a full parse.
    let second = text(2, "oops\n");
    let (s2, k2, e2) = Snapshot::parse_with_kinds_cached(second.as_bytes(), 4096, &mut cache);
    assert!(k2.shares_with(&k1));
    assert_eq!(k2.get("b x"), Some(WireKind::Max));
    let (full, full_kinds, full_errors) = Snapshot::parse_with_kinds(second.as_bytes(), 4096);
    assert_eq!((&s2, &k2, &e2), (&full, &full_kinds, &full_errors));
    assert_eq!(e2.first()[0].line, 7, "the bad line keeps its number");
    assert_eq!(s1.get("a"), Some(Value::Int(1)));
    assert_eq!(s2.get("a"), Some(Value::Int(2)));
}

#[test]
fn a_block_with_a_bad_line_or_kinds_elsewhere_is_parsed_in_full() {
    use crate::kinds::WireKind;
    let mut cache = KindsCache::new();
    // A bad line inside the block: never remembered, reported each time.
    let bad = b"#stats-pipe: 1\n#counter a: 1\n#counter : x\na: 1\n";
    for _ in 0..2 {
        let (_, _, errors) = Snapshot::parse_with_kinds_cached(bad, 4096, &mut cache);
        assert_eq!(errors.count(), 1);
        assert_eq!(errors.first()[0].line, 3);
    }
    // A known block, and a kind line after the stats: both count.
    let good = b"#stats-pipe: 1\n#counter a: 1\na: 1\n";
    Snapshot::parse_with_kinds_cached(good, 4096, &mut cache);
    let more = b"#stats-pipe: 1\n#counter a: 1\na: 1\n#max m: 1\nm: 3\n";
    let (s, kinds, errors) = Snapshot::parse_with_kinds_cached(more, 4096, &mut cache);
    assert!(errors.is_empty());
    assert_eq!(kinds.get("a"), Some(crate::kinds::WireKind::Counter));
    assert_eq!(kinds.get("m"), Some(WireKind::Max));
    assert_eq!(s.get("m"), Some(Value::Int(3)));
}

#[test]
fn the_block_is_only_among_the_leading_metadata_lines() {
    assert_eq!(kind_block(b"a: 1\n#counter a: 1\n"), None);
    assert_eq!(kind_block(b"#pid: 1\n#end: 3\n"), None);
    // The first run only, ending at the first other metadata line.
    let b = kind_block(b"#pid: 1\n#max x: 1\n#seq: 2\n#counter y: 1\nx: 1\n").unwrap();
    assert_eq!((b.bytes, b.lines), (8..18, 1));
    // A last line with no newline is not part of a block.
    assert_eq!(kind_block(b"#counter a: 1"), None);
}

#[test]
fn names_are_interned_across_sources_until_no_snapshot_holds_them() {
    let mut cache = KindsCache::new();
    let (a, _, _) = Snapshot::parse_with_kinds_cached(b"x y: 1\nz: 2\n", 4096, &mut cache);
    let (b, _, _) = Snapshot::parse_with_kinds_cached(b"x y: 3\n", 4096, &mut cache);
    assert!(Arc::ptr_eq(&a.names()[0], &b.names()[0]));
    assert!(!a.shares_names_with(&b));
    assert_eq!(b.get("x y"), Some(Value::Int(3)));
    drop((a, b));
    cache.sweep();
    // Nothing holds them: a new parse makes fresh ones, held by the
    // snapshot's list (which the cache keeps as the last names) and the
    // interned set.
    let (c, _, _) = Snapshot::parse_with_kinds_cached(b"x y: 4\n", 4096, &mut cache);
    assert_eq!(Arc::strong_count(&c.names()[0]), 2);
    drop(c);
    cache.sweep();
    let (d, _, _) = Snapshot::parse_with_kinds_cached(b"z: 4\n", 4096, &mut cache);
    assert_eq!(Arc::strong_count(&d.names()[0]), 2);
}

/// The last names stay for the next pass while a snapshot of this one
/// holds them: the next pass's snapshot of the same program shares the
/// very list. Held by the cache alone, they go at the sweep, with
/// their interned strings.
#[test]
fn the_last_names_outlive_a_sweep_only_while_a_snapshot_holds_them() {
    let mut cache = KindsCache::new();
    let mut parse = |bytes: &[u8]| Snapshot::parse_with_kinds_cached(bytes, 4096, &mut cache).0;
    let first = parse(b"a: 1\nb: 2\n");
    let next_pass = |cache: &mut KindsCache, bytes: &[u8]| {
        cache.sweep();
        Snapshot::parse_with_kinds_cached(bytes, 4096, cache).0
    };
    let next = next_pass(&mut cache, b"a: 3\nb: 4\n");
    assert!(next.shares_names_with(&first));
    drop((first, next));
    let fresh = next_pass(&mut cache, b"a: 5\nb: 6\n");
    // Its own list and strings: the list, the interned set.
    assert_eq!(Arc::strong_count(&fresh.names()[0]), 2);
    assert_eq!(
        Arc::strong_count(fresh.names_list()),
        2,
        "the snapshot, the cache"
    );
}

/// A kind block that every source of a pass matched as the recent block
/// (compared in place, never looked up) was still asked for in that pass:
/// it outlives the sweep, so the next pass's first source does not parse
/// it again.
#[test]
fn a_block_matched_in_place_is_kept_across_sweeps() {
    let mut cache = KindsCache::new();
    let text = b"#stats-pipe: 1\n#counter a: 1\na: 1\n";
    for pass in 0..4 {
        for _ in 0..3 {
            let (_, kinds, errors) = Snapshot::parse_with_kinds_cached(text, 4096, &mut cache);
            assert!(errors.is_empty());
            assert_eq!(kinds.get("a"), Some(crate::kinds::WireKind::Counter));
        }
        cache.sweep();
        assert!(
            cache.recent_block().is_some(),
            "the block was dropped at the sweep after pass {pass}"
        );
    }
}

/// A parse through one cache, as a reader makes pass after pass.
fn through_one_cache() -> impl FnMut(&[u8]) -> Snapshot {
    let mut cache = KindsCache::new();
    move |bytes| Snapshot::parse_with_kinds_cached(bytes, 4096, &mut cache).0
}

/// Snapshots with the same names in the same order share one list of
/// them: no reference per stat; one that differs anywhere has its own.
#[test]
fn the_same_names_in_order_share_the_last_snapshots_list() {
    let mut parse = through_one_cache();
    let a = parse(b"#pid: 1\na: 1\nb: 2\nc: 3\n");
    let b = parse(b"#pid: 2\na: 4\nb: 5\nbad line\nc: 6\n");
    assert!(a.shares_names_with(&b));
    assert_eq!(b.values(), [Value::Int(4), Value::Int(5), Value::Int(6)]);
    assert_eq!(
        Arc::strong_count(&a.names()[0]),
        2,
        "the list and the interned set"
    );
    // One stat fewer, one more, or a value that is not a number: a list
    // of its own, and its names still the shared strings.
    for bytes in [
        &b"a: 1\nb: 2\n"[..],
        b"a: 1\nb: 2\nc: 3\nd: 4\n",
        b"a: 1\nb: x\nc: 3\n",
    ] {
        let base = parse(b"a: 1\nb: 2\nc: 3\n");
        assert!(parse(b"a: 7\nb: 8\nc: 9\n").shares_names_with(&base));
        let own = parse(bytes);
        assert!(
            !own.shares_names_with(&base),
            "{}",
            String::from_utf8_lossy(bytes)
        );
        assert!(Arc::ptr_eq(&own.names()[0], &a.names()[0]));
    }
    // Out of order: sorted as ever, and not remembered as the last
    // names (the next snapshot in order still shares the list before).
    let base = parse(b"a: 1\nb: 2\nc: 3\n");
    let unsorted = parse(b"b: 1\na: 2\n");
    assert_eq!(unsorted.get("a"), Some(Value::Int(2)));
    assert!(parse(b"a: 5\nb: 6\nc: 7\n").shares_names_with(&base));
}

/// The name at a position is reused from the last snapshot only when
/// its bytes are the same: a renamed, inserted or shifted stat gets its
/// own name, and still the one shared string per name.
#[test]
fn names_by_position_are_reused_only_when_their_bytes_match() {
    let mut parse = through_one_cache();
    let a = parse(b"a: 1\nb: 2\nc: 3\n");
    let b = parse(b"a: 5\nbb: 6\nc: 7\nd: 8\n");
    let names = |s: &Snapshot| s.iter().map(|(n, _)| n.to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&b), ["a", "bb", "c", "d"]);
    assert_eq!(b.get("bb"), Some(Value::Int(6)));
    assert!(Arc::ptr_eq(&a.names()[0], &b.names()[0]));
    assert!(Arc::ptr_eq(&a.names()[2], &b.names()[2]));
    // "b" now at a position where the last snapshot had "a": interned.
    let c = parse(b"b: 9\na: 1\n");
    assert_eq!(names(&c), ["a", "b"]);
    assert!(Arc::ptr_eq(&a.names()[1], &c.names()[1]));
    assert!(Arc::ptr_eq(&a.names()[0], &c.names()[0]));
    // A longer name that starts like the remembered one is not it.
    let d = parse(b"bx: 1\n");
    assert_eq!(names(&d), ["bx"]);
}

proptest::proptest! {
    /// Whatever the last snapshot was, a snapshot parsed through the
    /// cache (names by position, lines read without parsing the name)
    /// gives what a plain parse of the same bytes gives: the stats, the
    /// bad lines and their numbers.
    ///
    /// The same for the kinds, the last kind block remembered
    /// ([`KindsCache::recent_block`]) included: each snapshot is a
    /// header, a block of kind lines and lines, any of them made of
    /// lines that look alike, and a pass may end (a sweep) after any.
    #[test]
    fn reading_by_the_last_names_equals_a_plain_parse(
        snapshots in proptest::collection::vec(
            (
                proptest::collection::vec(proptest::sample::select(HEADER_LINES), 0..3),
                proptest::collection::vec(proptest::sample::select(KIND_LINES), 0..4),
                proptest::collection::vec(proptest::sample::select(LINES), 0..10),
                proptest::bool::ANY,
            ),
            1..6,
        ),
    ) {
        let mut cache = KindsCache::new();
        for (header, block, lines, pass_ends) in snapshots {
            let bytes = [header.concat(), block.concat(), lines.concat()].concat();
            let (got, got_kinds, got_errors) =
                Snapshot::parse_with_kinds_cached(bytes.as_bytes(), 64, &mut cache);
            let (want, want_kinds, want_errors) =
                Snapshot::parse_with_kinds(bytes.as_bytes(), 64);
            proptest::prop_assert_eq!(got_errors, want_errors);
            proptest::prop_assert_eq!(got_kinds, want_kinds);
            let bits = |s: &Snapshot| {
                s.iter()
                    .map(|(n, v)| (n.to_owned(), v.is_float(), v.as_f64().to_bits()))
                    .collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(bits(&got), bits(&want));
            if pass_ends {
                cache.sweep();
            }
        }
    }
}

/// Envelope-like metadata lines before a kind block.
const HEADER_LINES: &[&str] = &["#stats-pipe: 1\n", "#pid: 7\n", "#x\n"];

/// Kind lines, good and bad, and lines that start like one.
const KIND_LINES: &[&str] = &[
    "#counter a: 1\n",
    "#counter ab: 1\n",
    "#max b: 1\n",
    "#histogram h: 1\n",
    "#counter a: x\n",
    "#counter : 1\n",
    "#max\n",
];

/// Lines that look alike: a name and its prefixes, other separators, a
/// second `:`, `\r`, spaces, bad values, metadata, a long line.
const LINES: &[&str] = &[
    "a: 1\n",
    "ab: 2\n",
    "a:3\n",
    "a : 4\n",
    " a: 5\n",
    "a: 6\r\n",
    "a: x\n",
    "a:\n",
    "a: 1: 2\n",
    "a:b: 7\n",
    "ab: 2.5\n",
    "b: nan\n",
    "b: 99999999999999999999\n",
    "b:\t-8 \n",
    "#a: 1\n",
    "#counter a: 1\n",
    "\n",
    "a\n",
    "a: 1\r\r\n",
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb: 1\n",
];

/// A line that starts with the name the last snapshot had there but runs
/// past the length limit (a hostile writer's endless value) is refused as
/// too long, as a plain parse refuses it, however it is split; the lines
/// after it still read by the last names.
#[test]
fn a_known_name_with_an_endless_value_is_too_long_all_the_same() {
    let mut cache = KindsCache::new();
    Snapshot::parse_with_kinds_cached(b"a: 1\nb: 2\n", 64, &mut cache);
    for digits in [60, 63, 64, 10_000] {
        let text = format!("a: {}\nb: 3\n", "7".repeat(digits));
        let (got, _, got_errors) =
            Snapshot::parse_with_kinds_cached(text.as_bytes(), 64, &mut cache);
        let (want, want_errors) = Snapshot::parse(text.as_bytes(), 64);
        assert_eq!(got_errors, want_errors, "{digits} digits");
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            want.iter().collect::<Vec<_>>()
        );
        assert_eq!(got.get("b"), Some(Value::Int(3)));
        let too_long = text.find('\n').unwrap() > 64;
        assert_eq!(got.get("a").is_none(), too_long, "{digits} digits");
    }
}

/// A block whose only line starts like a kind line but declares nothing
/// (`#counter : 1`), in a snapshot that declares a kind after its stats:
/// the block is not remembered as declaring that kind, so the next
/// snapshot with the same block and no such line declares nothing (found
/// by the proptest above).
#[test]
fn a_bad_block_is_not_remembered_for_a_kind_declared_elsewhere() {
    let mut cache = KindsCache::new();
    let first = b"#counter : 1\na: 1\n#counter a: 1\n";
    let (_, kinds, _) = Snapshot::parse_with_kinds_cached(first, 64, &mut cache);
    assert_eq!(kinds.get("a"), Some(crate::kinds::WireKind::Counter));
    let (_, kinds, _) = Snapshot::parse_with_kinds_cached(b"#counter : 1\na: 2\n", 64, &mut cache);
    assert_eq!(
        kinds,
        Snapshot::parse_with_kinds(b"#counter : 1\na: 2\n", 64).1
    );
    assert_eq!(kinds.get("a"), None);
}
