//! `#span` lines on the `pipe-writer` binary's stdin, as a shell pipeline
//! reports its steps: the stats and call edges in `<pid>.stats`, the trace
//! in `traces/<pid>.traces`, sampling by `--sample-every`, and garbage span
//! lines skipped, counted and survived.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pipe_writer::{TracesRead, verify_traces};
use stats_core::Value;
use util::binary::{READ_DEADLINE, Writer, spawn};
use util::{TempDir, eventually, output_within};

/// The trace lines `cat` reads from the traces FIFO of `w`.
fn traces(w: &Writer, dir: &Path) -> Vec<serde_json::Value> {
    let path = dir.join("traces").join(format!("{}.traces", w.child.pid()));
    let cat = output_within(Command::new("cat").arg(&path), Duration::from_secs(5));
    assert!(cat.status.success());
    let TracesRead::Complete { body, .. } = verify_traces(&cat.stdout) else {
        panic!("{}", String::from_utf8_lossy(&cat.stdout));
    };
    std::str::from_utf8(&cat.stdout[body])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn span_lines_count_runs_and_edges_and_a_root_becomes_a_trace() {
    let dir = TempDir::new("bin-spans");
    let mut w = spawn(dir.path(), &["--sample-every", "1"]);
    // A pipeline's steps, each reported as it ends, the outer one last.
    w.send(
        b"#span cache 2ms parent=db.query\n\
          #span db.query 5ms parent=\"nightly request\" outcome=error\n\
          #span cache 1ms parent=\"nightly request\"\n\
          #span \"nightly request\" 20ms outcome=error\n\
          done: 1\n",
    );
    assert!(eventually(READ_DEADLINE, || w.snapshot().get("done")
        == Some(Value::Int(1))));
    let snap = w.snapshot();
    for (name, want) in [
        ("nightly request.errors", 1),
        ("nightly request.highwater", 1),
        ("nightly request.current", 0),
        ("db.query.errors", 1),
        ("cache.success", 2),
        ("db.query.calls[caller=nightly request,outcome=error]", 1),
        ("cache.calls[caller=db.query,outcome=success]", 1),
        ("cache.calls[caller=nightly request,outcome=success]", 1),
    ] {
        assert_eq!(snap.get(name), Some(Value::Int(want)), "{name}");
    }
    assert!(
        snap.get("nightly request.duration.p50[outcome=error]")
            .is_some(),
        "durations recorded"
    );

    let traces = traces(&w, dir.path());
    assert_eq!(traces.len(), 1, "{traces:?}");
    let trace = &traces[0];
    assert_eq!(trace["root"], "nightly request");
    assert_eq!(trace["outcome"], "error");
    assert_eq!(trace["duration_ns"], 20_000_000);
    let shape: Vec<(String, Value2)> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                (s["parent"].as_u64(), s["duration_ns"].as_u64()),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("nightly request".to_owned(), (None, Some(20_000_000))),
            ("db.query".to_owned(), (Some(0), Some(5_000_000))),
            ("cache".to_owned(), (Some(1), Some(2_000_000))),
            ("cache".to_owned(), (Some(0), Some(1_000_000))),
        ]
    );
    // Children lie within their parents.
    let spans = trace["spans"].as_array().unwrap();
    for span in &spans[1..] {
        let parent = &spans[span["parent"].as_u64().unwrap() as usize];
        let end = |s: &serde_json::Value| {
            s["offset_ns"].as_u64().unwrap() + s["duration_ns"].as_u64().unwrap()
        };
        assert!(span["offset_ns"].as_u64() >= parent["offset_ns"].as_u64());
        assert!(end(span) <= end(parent) + 5_000_000, "{trace}");
    }
    let stderr = w.finish();
    assert_eq!(stderr, "", "nothing skipped, nothing left waiting");
}

type Value2 = (Option<u64>, Option<u64>);

#[test]
fn garbage_span_lines_are_skipped_and_counted_and_never_end_the_writer() {
    let dir = TempDir::new("bin-spans-bad");
    let mut w = spawn(dir.path(), &["--sample-every", "1"]);
    let garbage: &[&[u8]] = &[
        b"#span\n",
        b"#span x\n",
        b"#span x 12\n",
        b"#span x -3ms\n",
        b"#span x 1e400s\n",
        b"#span x 9999999999h\n",
        b"#span x 1s outcome=maybe\n",
        b"#span x 1s colour=red\n",
        b"#span x 1s parent=a parent=b\n",
        b"#span \"unterminated 1s\n",
        b"#span \"bad \\n escape\" 1s\n",
        b"#span x 1s a b c d e f\n",
        b"#span \xff\xfe 1s\n",
        b"#span #pid 1s\n",
        b"#span x 1s parent=\n",
        b"#span \"\" 1s\n",
    ];
    for line in garbage {
        w.send(line);
    }
    // A huge span line, and one with a NUL in the name.
    let mut huge = b"#span ".to_vec();
    huge.extend(std::iter::repeat_n(b'n', pipe_writer::input::MAX_LINE + 10));
    huge.extend_from_slice(b" 1s\n#span a\x00b 1s\n");
    w.send(&huge);
    // Still alive and reading: a good span and a stat after the garbage.
    w.send(b"#span after 1ms\nalive: 1\n");
    assert!(eventually(READ_DEADLINE, || w.snapshot().get("alive")
        == Some(Value::Int(1))));
    let snap = w.snapshot();
    assert_eq!(snap.get("after.success"), Some(Value::Int(1)));
    // No garbage line made a task.
    let tasks: Vec<String> = snap
        .iter()
        .filter(|(n, _)| n.ends_with(".highwater"))
        .map(|(n, _)| n.to_owned())
        .collect();
    assert_eq!(tasks, ["after.highwater"]);
    let traces = traces(&w, dir.path());
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0]["root"], "after");

    let bad = garbage.len() + 2;
    let total = bad + 2;
    let stderr = w.finish();
    assert_eq!(
        stderr.matches("skipped (").count(),
        bad,
        "one report per bad line: {stderr}"
    );
    for expected in [
        "stdin line 1: bad #span line: expected `#span NAME DURATION",
        "stdin line 3: bad #span line: duration \"12\" has no unit",
        "stdin line 7: bad #span line: outcome \"maybe\" is not success, error or panic",
        "stdin line 10: bad #span line: a quoted word has no closing",
        "stdin line 13: line is not valid UTF-8",
        "stdin line 14: stat names starting with '#' are reserved",
        "stdin line 17: line is longer than",
        "stdin line 18: stat name contains a control character",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
    assert!(
        stderr.ends_with(&format!(
            "pipe-writer: end of stdin: {bad} of {total} lines skipped\n"
        )),
        "{stderr}"
    );
}

#[test]
fn roots_are_sampled_and_children_without_a_parent_line_are_told_at_the_end() {
    let dir = TempDir::new("bin-spans-sampled");
    let mut w = spawn(dir.path(), &["--sample-every", "0"]);
    w.send(b"#span job 1ms\n#span job 1ms\n#span step 1ms parent=never\ndone: 1\n");
    assert!(eventually(READ_DEADLINE, || w.snapshot().get("done")
        == Some(Value::Int(1))));
    assert_eq!(w.snapshot().get("job.success"), Some(Value::Int(2)));
    assert!(traces(&w, dir.path()).is_empty(), "--sample-every 0: none");
    let stderr = w.finish();
    assert_eq!(
        stderr,
        "pipe-writer: end of stdin: 1 #span lines never saw their parent's line (0 let go \
         while waiting); their stats are counted, they are in no trace\n"
    );
}
