//! The longest names the library accepts, in every kind, render to lines a
//! reader with the default line limit reads whole: nothing the library
//! records is dropped by the aggregator for its length.

use stats_core::name::MAX_NAME_LEN;
use stats_core::{DEFAULT_MAX_LINE, Registry, Snapshot};

#[test]
fn every_line_of_the_longest_names_fits_the_default_line_limit() {
    let registry = Registry::new();
    let long = |base: &str| {
        let tags = "[route=/a/b,method=GET]";
        format!(
            "{}{tags}",
            base.repeat(MAX_NAME_LEN)[..MAX_NAME_LEN - tags.len()].to_owned()
        )
    };
    registry.incr(&"c".repeat(MAX_NAME_LEN + 500), 1);
    registry.set(&"g".repeat(MAX_NAME_LEN), 1.5e-300);
    let histogram = registry.histogram(&long("h"));
    histogram.record(-i64::MAX);
    histogram.record_float(1.234_567_890_123e-7);
    let task = registry.task(&long("t"));
    let _ = task.run(|| Err::<(), ()>(()));
    let _ = task.run(|| Ok::<(), ()>(()));

    let mut body = Vec::new();
    registry.render_kinds_into(&mut body);
    registry.render_into(&mut body);
    let longest = body.split(|&b| b == b'\n').map(<[u8]>::len).max();
    assert!(
        longest.is_some_and(|n| n > MAX_NAME_LEN && n <= DEFAULT_MAX_LINE),
        "{longest:?}"
    );

    let (snapshot, kinds, errors) = Snapshot::parse_with_kinds(&body, DEFAULT_MAX_LINE);
    assert!(errors.is_empty(), "{:?}", errors.first());
    let count_lines = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(snapshot.len() + kinds.len(), count_lines);
    // The over-long counter was cut to the limit, not dropped.
    assert_eq!(
        snapshot.get(&"c".repeat(MAX_NAME_LEN)),
        Some(stats_core::Value::Int(1))
    );
}
