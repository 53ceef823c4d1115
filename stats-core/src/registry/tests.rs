//! The registry: recording by name and by handle, rendering, kinds.

use super::*;

#[test]
fn kept_declaration_lines_follow_new_stats_and_kind_changes() {
    let r = Registry::new();
    let kinds = |r: &Registry| {
        let mut buf = Vec::new();
        r.render_kinds_into(&mut buf);
        String::from_utf8(buf).unwrap()
    };
    r.incr("a", 1);
    assert_eq!(kinds(&r), "#counter a: 1\n");
    // Kept: the same bytes again.
    assert_eq!(kinds(&r), "#counter a: 1\n");
    r.incr("b", 1);
    assert_eq!(kinds(&r), "#counter a: 1\n#counter b: 1\n");
    // A counter made a gauge (a negative step) is declared no more.
    r.incr("a", -5);
    assert_eq!(kinds(&r), "#counter b: 1\n");
    assert_eq!(kinds(&r), "#counter b: 1\n");
}

/// A call edge's counters are made on its first call, with no stat
/// added to the registry: kept lines must still declare them, or a
/// reader would take `<callee>.calls[...]` for gauges.
#[test]
fn kept_declaration_lines_follow_new_call_edges() {
    let r = Registry::new();
    let kinds = |r: &Registry| {
        let mut buf = Vec::new();
        r.render_kinds_into(&mut buf);
        String::from_utf8(buf).unwrap()
    };
    let (request, query, cache) = (r.task("request"), r.task("query"), r.task("cache"));
    let before = kinds(&r);
    assert!(!before.contains(".calls["), "{before}");
    let _ = request.run(|| query.run(|| Ok::<_, ()>(())));
    let after = kinds(&r);
    for outcome in ["success", "error", "panic"] {
        let line = format!("#counter query.calls[caller=request,outcome={outcome}]: 1\n");
        assert!(after.contains(&line), "{line:?} missing in {after}");
    }
    assert!(!after.contains("cache.calls["), "{after}");
    // Kept, same bytes; a second edge into a callee that has one
    // already is declared too.
    assert_eq!(kinds(&r), after);
    let _ = cache.run(|| query.run(|| Err::<(), _>("miss")));
    let last = kinds(&r);
    assert!(
        last.contains("#counter query.calls[caller=cache,outcome=error]: 1\n"),
        "{last}"
    );
    // Every edge line the values carry is declared.
    let mut values = Vec::new();
    r.render_into(&mut values);
    let values = String::from_utf8(values).unwrap();
    for line in values.lines().filter(|l| l.contains(".calls[")) {
        let name = line.rsplit_once(": ").unwrap().0;
        assert!(
            last.contains(&format!("#counter {name}: 1\n")),
            "{name} undeclared"
        );
    }
}

#[test]
fn pipestatic_semantics() {
    let r = Registry::new();
    r.incr("hits", 2);
    r.incr("hits", 3);
    assert_eq!(r.get("hits"), Some(Value::Int(5)));
    r.incr("hits", 0.5);
    assert_eq!(r.get("hits"), Some(Value::Float(5.5)));
    r.set("hits", 1);
    assert_eq!(r.get("hits"), Some(Value::Float(1.0)));
    r.set("temp", 21);
    assert_eq!(r.get("temp"), Some(Value::Int(21)));
    assert_eq!(r.get("missing"), None);
}

#[test]
fn names_are_sanitised_once_and_shared() {
    let r = Registry::new();
    r.incr("two\nlines", 1);
    r.incr("two_lines", 1);
    r.incr("  two_lines ", 1);
    assert_eq!(r.get("two_lines"), Some(Value::Int(3)));
    assert_eq!(r.len(), 1);
    r.counter("two\nlines").incr();
    assert_eq!(r.get("two_lines"), Some(Value::Int(4)));
}

#[test]
fn registries_are_independent_on_one_thread() {
    let a = Registry::new();
    let b = Registry::new();
    a.incr("x", 1);
    b.incr("x", 10);
    a.incr("x", 1);
    assert_eq!(a.get("x"), Some(Value::Int(2)));
    assert_eq!(b.get("x"), Some(Value::Int(10)));
}

#[test]
fn kinds_follow_use() {
    let r = Registry::new();
    r.incr("requests", 1);
    r.incr("balance", -1);
    r.set("temp", 3);
    r.counter("handled").incr();
    r.incr("queue", 1);
    r.gauge("queue");
    let kinds: Vec<_> = ["requests", "balance", "temp", "handled", "queue"]
        .iter()
        .map(|n| r.kind(n).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::Counter,
            Kind::Gauge,
            Kind::Gauge,
            Kind::Counter,
            Kind::Gauge
        ]
    );
}

#[test]
fn renders_sorted_and_sees_new_names() {
    let r = Registry::new();
    r.set("b", 2);
    r.set("a", 1.0);
    let mut buf = Vec::new();
    r.render_into(&mut buf);
    assert_eq!(buf, b"a: 1.0\nb: 2\n");
    r.incr("c d", 1);
    buf.clear();
    r.render_into(&mut buf);
    assert_eq!(buf, b"a: 1.0\nb: 2\nc d: 1\n");
    assert_eq!(r.snapshot().len(), 3);
}

#[test]
fn histograms_and_tasks_render_with_their_kinds() {
    let r = Registry::new();
    r.incr("requests", 2);
    r.set("temp", 1);
    r.record("size", 3);
    r.histogram("size").record(5);
    let job = r.task("job");
    assert_eq!(job.run(|| Ok::<_, ()>(())), Ok(()));

    let mut kinds = Vec::new();
    r.render_kinds_into(&mut kinds);
    assert_eq!(
        String::from_utf8(kinds).unwrap(),
        "#counter job.success: 1\n#counter job.errors: 1\n#counter job.panics: 1\n\
               #max job.highwater: 1\n#histogram job.duration[outcome=success]: 1\n\
               #histogram job.duration[outcome=error]: 1\n#histogram job.duration[outcome=panic]: 1\n\
               #counter requests: 1\n#histogram size: 1\n"
    );

    let snapshot = r.snapshot();
    assert_eq!(snapshot.get("size.count"), Some(Value::Int(2)));
    assert_eq!(snapshot.get("size.sum"), Some(Value::Int(8)));
    assert_eq!(snapshot.get("size.max"), Some(Value::Int(5)));
    assert_eq!(snapshot.get("job.success"), Some(Value::Int(1)));
    assert_eq!(snapshot.get("job.current"), Some(Value::Int(0)));
    assert_eq!(snapshot.get("job.highwater"), Some(Value::Int(1)));
    assert_eq!(
        snapshot.get("job.duration.count[outcome=success]"),
        Some(Value::Int(1))
    );
    assert_eq!(
        snapshot.get("job.duration.count[outcome=panic]"),
        Some(Value::Int(0))
    );
    // Scalars sit between a task and a histogram in name order: each
    // value read ahead of the lines is still written by its own name.
    assert_eq!(snapshot.get("requests"), Some(Value::Int(2)));
    assert_eq!(snapshot.get("temp"), Some(Value::Int(1)));
    assert_eq!(r.len(), 4);
}

#[test]
fn values_read_a_chunk_ahead_stay_with_their_names_across_chunks() {
    // More stats than one chunk of values read ahead, with histograms
    // and tasks (which take no value slot's reading) at every few
    // places, so chunk edges fall on every kind.
    let r = Registry::new();
    let count = VALUES_AHEAD * 3 + 5;
    for i in 0..count {
        let name = format!("s{i:04}");
        match i % 7 {
            3 => r.histogram(&name).record(i as i64),
            5 => drop(r.task(&name)),
            0 => r.set(&name, i as f64 + 0.5),
            _ => r.incr(&name, i as i64),
        }
    }
    let snapshot = r.snapshot();
    for i in 0..count {
        let name = format!("s{i:04}");
        let expected = match i % 7 {
            3 => (format!("{name}.sum"), Value::Int(i as i64)),
            5 => (format!("{name}.current"), Value::Int(0)),
            0 => (name, Value::Float(i as f64 + 0.5)),
            _ => (name, Value::Int(i as i64)),
        };
        assert_eq!(
            snapshot.get(&expected.0),
            Some(expected.1),
            "{}",
            expected.0
        );
    }
}

#[test]
fn a_registry_reads_back_through_the_typed_merge() {
    let a = Registry::new();
    let b = Registry::new();
    for (registry, values) in [(&a, [1, 2, 3]), (&b, [10, 20, 30])] {
        for v in values {
            registry.record("lat", v);
        }
    }
    let mut merger = crate::merge::TypedMerger::new();
    for registry in [&a, &b] {
        let mut buf = Vec::new();
        registry.render_kinds_into(&mut buf);
        registry.render_into(&mut buf);
        let mut kinds = crate::kinds::Kinds::new();
        let mut parser = crate::Parser::default();
        let mut entries = Vec::new();
        parser.feed(&buf, |name, value| {
            if !kinds.note(name) {
                entries.push(Entry {
                    name: name.into(),
                    value,
                });
            }
        });
        merger.add_source(&Snapshot::from_entries(entries), &kinds, |_| None);
    }
    let (host, _) = merger.finish();
    assert_eq!(host.get("lat.count"), Some(Value::Int(6)));
    assert_eq!(host.get("lat.min"), Some(Value::Int(1)));
    assert_eq!(host.get("lat.max"), Some(Value::Int(30)));
    assert_eq!(host.get("lat.sum"), Some(Value::Int(66)));
}
