//! Retention's tests: passes over made-up sources with a table for `/proc`.
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use stats_core::merge::TypedMerger;

use super::*;

/// Which PIDs live, and since when (seconds): the test's `/proc`.
type Table = Arc<Mutex<HashMap<u32, u64>>>;

fn retention(table: &Table) -> Retention {
    let table = Arc::clone(table);
    Retention::with_start_time(Box::new(move |pid| {
        let started = *table.lock().unwrap().get(&pid)?;
        Some(UNIX_EPOCH + Duration::from_secs(started))
    }))
}

/// What one of our writers serves: counter `requests`, gauge `depth`,
/// histogram `lat` holding `values`.
fn source(requests: i64, values: &[i64]) -> (Snapshot, Kinds) {
    let mut buf = format!("requests: {requests}\ndepth: 5\n").into_bytes();
    let mut d = Distribution::default();
    for &v in values {
        d.buckets[stats_core::buckets::index(v as f64)] += 1;
        d.count += 1;
        d.sum = d.sum.sum(Value::Int(v));
        d.min = d.min.min(v as f64);
        d.max = d.max.max(v as f64);
    }
    render("lat", &d, &mut buf);
    let mut kinds = Kinds::new();
    kinds.declare("requests", WireKind::Counter);
    kinds.declare("lat", WireKind::Histogram);
    (Snapshot::parse(&buf, 4096).0, kinds)
}

/// One pass over `read` (PID, source), merged as the collector does.
fn pass(
    retention: &mut Retention,
    read: &[(u32, &(Snapshot, Kinds))],
    overrides: &MergeOverrides,
) -> Snapshot {
    let mut merger = TypedMerger::new();
    for (_, (snapshot, kinds)) in read {
        merger.add_source(snapshot, kinds, |n| overrides.rule_for(n));
    }
    let kept = retention.update(
        read.iter().map(|(pid, (s, k))| (*pid, None, s, k)),
        overrides,
    );
    for (snapshot, kinds) in &kept {
        merger.add_source(snapshot, kinds, |n| overrides.rule_for(n));
    }
    if let Some((snapshot, kinds)) = retention.retained() {
        merger.add_source(snapshot, kinds, |n| overrides.rule_for(n));
    }
    merger.finish().0
}

#[test]
fn an_exited_process_is_folded_and_its_gauges_vanish() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1), (11, 1)])));
    let mut r = retention(&table);
    let none = MergeOverrides::new();
    let (a, b) = (source(7, &[1, 2, 100]), source(5, &[3]));
    let merged = pass(&mut r, &[(10, &a), (11, &b)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(12)));
    assert_eq!(merged.get("depth"), Some(Value::Int(10)));
    assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));

    // 10 timed out but lives: its counter and histogram still count.
    let merged = pass(&mut r, &[(11, &b)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(12)));
    assert_eq!(merged.get("depth"), Some(Value::Int(5)));
    assert_eq!(merged.get("lat.max"), Some(Value::Int(100)));
    assert_eq!(r.folds(), 0);

    // 10 exits: folded, and stays folded pass after pass.
    table.lock().unwrap().remove(&10);
    for _ in 0..2 {
        let merged = pass(&mut r, &[(11, &b)], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(12)));
        assert_eq!(merged.get("depth"), Some(Value::Int(5)));
        assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));
        assert_eq!(merged.get("lat.max"), Some(Value::Int(100)));
        assert_eq!(merged.get("lat.sum"), Some(Value::Int(106)));
    }
    assert_eq!(r.folds(), 2, "one counter and one histogram");
    assert!(r.held.len() == 1 && r.counters.len() == 1 && r.histograms.len() == 1);

    // Every process gone: the totals remain, the gauges are gone.
    table.lock().unwrap().clear();
    let merged = pass(&mut r, &[], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(12)));
    assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));
    assert_eq!(merged.get("depth"), None);
    assert!(r.held.is_empty());
    assert_eq!(r.counters.len(), 1, "one total per name, not per process");
}

#[test]
fn a_reset_within_a_process_folds_the_value_before_it() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1)])));
    let mut r = retention(&table);
    let none = MergeOverrides::new();
    let before = source(40, &[1, 2, 3]);
    assert_eq!(
        pass(&mut r, &[(10, &before)], &none).get("requests"),
        Some(Value::Int(40))
    );
    let after = source(3, &[9]);
    let merged = pass(&mut r, &[(10, &after)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(43)));
    assert_eq!(merged.get("lat.count"), Some(Value::Int(4)));
    assert_eq!(merged.get("lat.max"), Some(Value::Int(9)));
    let grown = source(10, &[9, 9]);
    let merged = pass(&mut r, &[(10, &grown)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(50)));
    assert_eq!(merged.get("lat.count"), Some(Value::Int(5)));
    assert_eq!(r.folds(), 2);
}

#[test]
fn counter_lines_table() {
    let (_, kinds) = source(1, &[1]);
    let cases = [
        ("requests", Some(true)),
        ("lat.count", Some(true)),
        ("lat.sum", Some(true)),
        ("lat.nan", Some(true)),
        ("lat.bucket[le=1.0]", Some(true)),
        ("lat.min", Some(false)),
        ("lat.max", Some(false)),
        ("lat.p99", Some(false)),
        ("depth", None),
        ("other.count", None),
    ];
    for (line, want) in cases {
        assert_eq!(is_counter_line(&kinds, line), want, "{line}");
    }
    let mut max = Kinds::new();
    max.declare("jobs.highwater", WireKind::Max);
    assert_eq!(is_counter_line(&max, "jobs.highwater"), Some(false));
}

#[test]
fn a_start_time_that_wobbles_is_still_one_process() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1000)])));
    let wobble = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (t, w) = (Arc::clone(&table), Arc::clone(&wobble));
    let mut r = Retention::with_start_time(Box::new(move |pid| {
        let started = *t.lock().unwrap().get(&pid)?;
        // Each read off by a few hundred ns, as boot time recomputed is.
        let nanos = w.fetch_add(337, std::sync::atomic::Ordering::Relaxed);
        Some(UNIX_EPOCH + Duration::from_secs(started) + Duration::from_nanos(nanos))
    }));
    let none = MergeOverrides::new();
    let a = source(7, &[1]);
    for _ in 0..5 {
        let merged = pass(&mut r, &[(10, &a)], &none);
        assert_eq!(merged.get("requests"), Some(Value::Int(7)));
    }
    assert_eq!(r.folds(), 0);
}

#[test]
fn a_reused_pid_is_a_new_process() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1)])));
    let mut r = retention(&table);
    let none = MergeOverrides::new();
    pass(&mut r, &[(10, &source(40, &[]))], &none);
    // Another process got PID 10 and counted past the old value already.
    table.lock().unwrap().insert(10, 100);
    let merged = pass(&mut r, &[(10, &source(50, &[]))], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(90)));
}

/// The start time the reader's checks found is the one used: `/proc`
/// (here the table, which still says the old process) is not asked.
#[test]
fn a_start_time_from_the_checks_tells_a_reused_pid() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1)])));
    let mut r = retention(&table);
    let none = MergeOverrides::new();
    let at = |secs| Some(UNIX_EPOCH + Duration::from_secs(secs));
    let (old, new) = (source(40, &[]), source(50, &[]));
    r.update([(10, at(1), &old.0, &old.1)], &none);
    let kept = r.update([(10, at(100), &new.0, &new.1)], &none);
    assert!(kept.is_empty());
    let (retained, _) = r.retained().expect("the old process was folded");
    assert_eq!(retained.get("requests"), Some(Value::Int(40)));
    assert_eq!(r.folds(), 2, "its counter and its histogram");
}

#[test]
fn foreign_and_overridden_stats_are_not_retained() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1), (11, 1)])));
    let mut r = retention(&table);
    let overrides = MergeOverrides::from_rules(vec!["requests=max".parse().unwrap()]);
    let ours = source(40, &[1]);
    let foreign = (Snapshot::parse(b"requests: 7\n", 4096).0, Kinds::new());
    let merged = pass(&mut r, &[(10, &ours), (11, &foreign)], &overrides);
    assert_eq!(merged.get("requests"), Some(Value::Int(40)));
    table.lock().unwrap().clear();
    let merged = pass(&mut r, &[], &overrides);
    assert_eq!(merged.get("requests"), None);
    assert_eq!(merged.get("lat.count"), Some(Value::Int(1)));
}

#[test]
fn a_retention_restored_between_passes_merges_as_a_long_lived_one() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1), (11, 1), (12, 1)])));
    let none = MergeOverrides::new();
    let mut long_lived = retention(&table);
    let mut saved = RetainedState::default();
    let (a, b, c) = (source(7, &[1, 2, 100]), source(5, &[3]), source(1, &[]));
    let (a_reset, b_more) = (source(2, &[4]), source(9, &[3, 5]));
    // Each step: which PIDs live (and since when) and what was read.
    type Step<'a> = (Vec<(u32, u64)>, Vec<(u32, &'a (Snapshot, Kinds))>);
    let steps: Vec<Step> = vec![
        (
            vec![(10, 1), (11, 1), (12, 1)],
            vec![(10, &a), (11, &b), (12, &c)],
        ),
        // 12 exits; 10 is not read but lives.
        (vec![(10, 1), (11, 1)], vec![(11, &b)]),
        // 10 resets, 11 grows, PID 12 comes back as another process.
        (
            vec![(10, 1), (11, 1), (12, 50)],
            vec![(10, &a_reset), (11, &b_more), (12, &c)],
        ),
        // Every process gone.
        (vec![], vec![]),
    ];
    for (live, read) in steps {
        *table.lock().unwrap() = live.into_iter().collect();
        let want = pass(&mut long_lived, &read, &none);
        let mut restored = Retention::restore(std::mem::take(&mut saved), {
            let table = Arc::clone(&table);
            Box::new(move |pid| {
                let started = *table.lock().unwrap().get(&pid)?;
                Some(UNIX_EPOCH + Duration::from_secs(started))
            })
        });
        let got = pass(&mut restored, &read, &none);
        assert_eq!(got, want);
        saved = restored.state();
        assert_eq!(saved, long_lived.state());
    }
    let last = pass(&mut long_lived, &[], &none);
    assert_eq!(last.get("requests"), Some(Value::Int(7 + 9 + 1 + 2 + 1)));
    assert_eq!(last.get("lat.count"), Some(Value::Int(3 + 1 + 2)));
    assert_eq!(last.get("lat.max"), Some(Value::Int(100)));
}

#[test]
fn fold_process_retains_a_process_of_an_earlier_boot() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1)])));
    let none = MergeOverrides::new();
    let mut r = retention(&table);
    pass(&mut r, &[(10, &source(40, &[]))], &none);
    let mut restored = Retention::restore(r.state(), Box::new(|_| None));
    restored.fold_process(10);
    restored.fold_process(99);
    let merged = pass(&mut restored, &[], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(40)));
    assert!(restored.state().processes.is_empty());
}

/// Processes of programs with the same shared names (one reader's
/// interned strings) but other kinds or overrides: each is retained by its
/// own declarations, whatever the process noted before it declared (the
/// counters by position are reused only for the same names, kinds and
/// overrides).
#[test]
fn counters_by_position_follow_each_process_kinds_and_the_overrides() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1), (11, 1), (12, 1)])));
    let mut cache = stats_core::kinds::KindsCache::new();
    let mut read = |text: &[u8]| {
        let (snapshot, kinds, _) = Snapshot::parse_with_kinds_cached(text, 4096, &mut cache);
        (snapshot, kinds)
    };
    let counting = read(b"#counter requests: 1\nrequests: 40\nz: 1\n");
    let counting_too = read(b"#counter requests: 1\nrequests: 5\nz: 2\n");
    let gauge = read(b"#max z: 1\nrequests: 7\nz: 3\n");
    assert!(Arc::ptr_eq(&counting.0.names()[0], &gauge.0.names()[0]));
    let none = MergeOverrides::new();
    let mut r = retention(&table);
    pass(
        &mut r,
        &[(10, &counting), (12, &counting_too), (11, &gauge)],
        &none,
    );
    table.lock().unwrap().clear();
    let merged = pass(&mut r, &[], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(45)));
    assert_eq!(merged.get("z"), None);
    // The same sources under an override of `requests`: none retained.
    let overrides = MergeOverrides::from_rules(vec!["requests=max".parse().unwrap()]);
    table.lock().unwrap().extend([(10, 1), (12, 1)]);
    let mut r = retention(&table);
    pass(&mut r, &[(10, &counting)], &none);
    pass(&mut r, &[(10, &counting), (12, &counting_too)], &overrides);
    table.lock().unwrap().clear();
    let merged = pass(&mut r, &[], &overrides);
    // Process 10 held `requests` before the override came: dropped with it.
    assert_eq!(merged.get("requests"), None);
}

/// A process read pass after pass with the same names (one shared list,
/// as the reader's parse gives them) is followed value by value: a reset
/// still folds the value before it, and a change of kinds over the same
/// names is followed too.
#[test]
fn a_process_read_with_the_same_names_is_followed_value_by_value() {
    let table: Table = Arc::new(Mutex::new(HashMap::from([(10, 1)])));
    let mut cache = stats_core::kinds::KindsCache::new();
    let mut read = |text: &[u8]| {
        let (snapshot, kinds, _) = Snapshot::parse_with_kinds_cached(text, 4096, &mut cache);
        (snapshot, kinds)
    };
    let none = MergeOverrides::new();
    let mut r = retention(&table);
    let counters = b"#counter requests: 1\n#counter sent: 1\n";
    let first = read(&[&counters[..], b"requests: 40\nsent: 7\nz: 1\n"].concat());
    pass(&mut r, &[(10, &first)], &none);
    let reset = read(&[&counters[..], b"requests: 3\nsent: 9\nz: 2\n"].concat());
    assert!(reset.0.shares_names_with(&first.0));
    let merged = pass(&mut r, &[(10, &reset)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(43)));
    assert_eq!(merged.get("sent"), Some(Value::Int(9)));
    assert_eq!(r.folds(), 1);
    let merged = pass(&mut r, &[(10, &reset)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(43)));
    assert_eq!(r.folds(), 1, "the same values again fold nothing");
    // Other kinds over the same names: `sent` is a gauge now.
    let regauged = read(b"#counter requests: 1\nrequests: 5\nsent: 1\nz: 3\n");
    assert!(regauged.0.shares_names_with(&first.0));
    let merged = pass(&mut r, &[(10, &regauged)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(45)));
    assert_eq!(merged.get("sent"), Some(Value::Int(1)));
    let lower = read(b"#counter requests: 1\nrequests: 2\nsent: 0\nz: 3\n");
    let merged = pass(&mut r, &[(10, &lower)], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(47)));
    assert_eq!(merged.get("sent"), Some(Value::Int(0)));
    assert_eq!(r.folds(), 2, "a gauge that falls is not a reset");
    table.lock().unwrap().clear();
    let merged = pass(&mut r, &[], &none);
    assert_eq!(merged.get("requests"), Some(Value::Int(47)));
    assert_eq!(merged.get("sent"), None);
}
