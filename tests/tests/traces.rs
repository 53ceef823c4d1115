//! End-to-end tests of the call graph and traces across processes (issue
//! 16): three real `traced_app` processes (request -> db.query -> cache,
//! with errors and panics), a real `host-aggregator serve`, checked over
//! real HTTP, with Graphviz `dot` and `xmllint` as independent consumers,
//! and hostile trace FIFOs next to them.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use stats_pipe_tests::hostile::{Processes, TempDir, fixture, make_fifo, wait_for_path};
use stats_pipe_tests::serve::{Aggregator, workspace_binary};
use stats_pipe_tests::traced::{Measured, TracedApp};

/// Offsets and durations must agree with the program's own within this.
const TOLERANCE_NS: u64 = 1_000_000;

/// Runs `program args` with `input` on stdin; returns its exit status
/// success, stdout and stderr.
fn run_with_input(program: &str, args: &[&str], input: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is not installed ({e}): scripts/test.sh installs it")
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `xmllint --noout` on `text`: whether it is well-formed XML.
fn assert_well_formed_xml(text: &str, what: &str) {
    let (ok, _, err) = run_with_input("xmllint", &["--noout", "-"], text.as_bytes());
    assert!(ok, "{what} is not well-formed XML: {err}\n{text}");
}

/// The edge `caller -> callee` of a `/funcs.json` body.
fn edge<'j>(funcs: &'j Json, caller: &str, callee: &str) -> &'j Json {
    funcs["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["caller"] == caller && e["callee"] == callee)
        .unwrap_or_else(|| panic!("no edge {caller} -> {callee} in {funcs}"))
}

fn near(got: u64, want: u64, what: &str) {
    assert!(
        got.abs_diff(want) <= TOLERANCE_NS,
        "{what}: traced {got} ns, measured {want} ns"
    );
}

/// Checks a full trace record against what the program measured.
fn check_against(record: &Json, measured: &Measured) {
    let spans = record["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 3, "{record}");
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["request", "db.query", "cache"]);
    // Nesting: cache under db.query under request.
    assert_eq!(spans[0]["parent"], Json::Null);
    assert_eq!(spans[1]["parent"], 0);
    assert_eq!(spans[2]["parent"], 1);
    for (span, (name, offset, duration)) in spans.iter().zip(&measured.spans) {
        let what = format!("request {} {name}", measured.n);
        near(
            span["offset_ns"].as_u64().unwrap(),
            *offset,
            &format!("{what} offset"),
        );
        near(
            span["duration_ns"].as_u64().unwrap(),
            *duration,
            &format!("{what} duration"),
        );
        // A child lies inside its parent.
        if let Some(parent) = span["parent"].as_u64() {
            let parent = &spans[parent as usize];
            let start = span["offset_ns"].as_u64().unwrap();
            let end = start + span["duration_ns"].as_u64().unwrap();
            let parent_start = parent["offset_ns"].as_u64().unwrap();
            assert!(start >= parent_start, "{what} starts before its parent");
            assert!(
                end <= parent_start + parent["duration_ns"].as_u64().unwrap(),
                "{what} ends after its parent"
            );
        }
    }
    let outcome = |i: usize| spans[i]["outcome"].as_str().unwrap().to_owned();
    let n = measured.n;
    assert_eq!(outcome(0), if n % 3 == 0 { "error" } else { "success" });
    assert_eq!(outcome(1), if n % 3 == 0 { "error" } else { "success" });
    assert_eq!(outcome(2), if n % 4 == 0 { "panic" } else { "success" });
    assert_eq!(record["outcome"], spans[0]["outcome"]);
    assert_eq!(record["duration_ns"], spans[0]["duration_ns"]);
}

#[test]
fn three_processes_give_the_summed_call_graph_and_timelines_that_match_the_program() {
    let dir = TempDir::new("traces-e2e");
    let mut apps: Vec<TracedApp> = (0..3).map(|_| TracedApp::start(dir.path())).collect();
    const RUNS: u64 = 6;
    let measured: Vec<Vec<Measured>> = apps.iter_mut().map(|app| app.run(RUNS)).collect();
    let aggregator = Aggregator::serve(dir.path(), &[]);

    // The call graph is the sum of the calls made in the three processes.
    let funcs = aggregator.get("/funcs.json");
    assert_eq!(funcs.status, 200, "{}", funcs.text());
    let funcs = funcs.json();
    let count = |pred: fn(u64) -> bool| 3 * (1..=RUNS).filter(|&n| pred(n)).count() as u64;
    let db = edge(&funcs, "request", "db.query");
    assert_eq!(db["success"], count(|n| n % 3 != 0));
    assert_eq!(db["errors"], count(|n| n % 3 == 0));
    assert_eq!(db["panics"], 0);
    let cache = edge(&funcs, "db.query", "cache");
    assert_eq!(cache["success"], count(|n| n % 4 != 0));
    assert_eq!(cache["panics"], count(|n| n % 4 == 0));
    assert_eq!(cache["errors"], 0);

    // Graphviz accepts the dot graph.
    let dot = aggregator.get("/funcs.dot");
    assert_eq!(dot.status, 200);
    let (ok, svg, err) = run_with_input("dot", &["-Tsvg"], &dot.body);
    assert!(ok, "dot -Tsvg refused /funcs.dot: {err}\n{}", dot.text());
    assert!(svg.contains("<svg"), "{svg}");

    // Every root was traced: 3 x RUNS traces, newest first.
    let index = aggregator.get("/traces?task=%5Erequest%24&limit=1000");
    assert_eq!(index.status, 200, "{}", index.text());
    let index = index.json();
    let traces = index["traces"].as_array().expect("traces");
    assert_eq!(traces.len() as u64, 3 * RUNS, "{index}");
    assert_eq!(index["sources"]["total"], 3);
    assert_eq!(index["sources"]["ok"], 3);
    let starts: Vec<f64> = traces
        .iter()
        .map(|t| t["start"].as_f64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {starts:?}"
    );
    for short in traces {
        for key in [
            "pid",
            "id",
            "root",
            "tags",
            "start",
            "duration_ns",
            "outcome",
            "dropped_spans",
        ] {
            assert!(short.get(key).is_some(), "{key} missing in {short}");
        }
        assert_eq!(
            short["spans"], 3,
            "a short record counts its spans: {short}"
        );
    }
    // Limit and minimum duration select.
    let two = aggregator.get("/traces?limit=2").json();
    assert_eq!(two["traces"].as_array().unwrap().len(), 2);
    let slow = aggregator.get("/traces?min=10s").json();
    assert!(slow["traces"].as_array().unwrap().is_empty(), "{slow}");

    // Each process's traces, oldest first, are its requests in order: the
    // full records nest and agree with the program's own timings.
    for (app, measured) in apps.iter().zip(&measured) {
        let mut mine: Vec<&Json> = traces.iter().filter(|t| t["pid"] == app.pid()).collect();
        mine.reverse();
        assert_eq!(mine.len(), measured.len());
        for (short, measured) in mine.iter().zip(measured) {
            let path = format!("/traces/{}/{}", short["pid"], short["id"]);
            let full = aggregator.get(&path);
            assert_eq!(full.status, 200, "{path}: {}", full.text());
            let full = full.json();
            assert_eq!(full["id"], short["id"]);
            check_against(&full, measured);
        }
    }

    // The timeline is well-formed SVG with a bar per span.
    let first = &traces[0];
    let svg = aggregator.get(&format!("/traces/{}/{}.svg", first["pid"], first["id"]));
    assert_eq!(svg.status, 200);
    assert!(
        svg.header("content-type")
            .unwrap()
            .starts_with("image/svg+xml")
    );
    let svg = svg.text();
    assert_well_formed_xml(&svg, "the trace timeline");
    assert_eq!(svg.matches("<rect").count(), 3, "{svg}");

    // Unknown traces and bad queries.
    assert_eq!(
        aggregator
            .get(&format!("/traces/{}/999999", first["pid"]))
            .status,
        404
    );
    assert_eq!(aggregator.get("/traces/1/1").status, 404);
    for bad in ["/traces?task=(", "/traces?min=5", "/traces?limit=x"] {
        let reply = aggregator.get(bad);
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.json()["error"].is_string());
    }

    // The command line prints what the routes serve.
    let bin = workspace_binary("host-aggregator", "host-aggregator");
    let dir_arg = dir.path().to_str().unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .args(["--pipe-dir", dir_arg])
            .output()
            .expect("run host-aggregator");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    };
    let printed: Json = serde_json::from_str(&cli(&["funcs", "--format", "json"])).unwrap();
    assert_eq!(printed, funcs);
    assert_eq!(cli(&["funcs", "--format", "dot"]), dot.text());
    let printed: Json = serde_json::from_str(&cli(&[
        "traces",
        "--json",
        "--task",
        "^request$",
        "--limit",
        "1000",
    ]))
    .unwrap();
    assert_eq!(printed["traces"], index["traces"]);
    let table = cli(&["traces", "--limit", "3"]);
    assert_eq!(table.lines().count(), 1 + 3 + 1, "{table}");
    assert!(table.contains("request"), "{table}");
    let tree = cli(&["funcs"]);
    assert!(
        tree.contains("db.query") && tree.contains("cache"),
        "{tree}"
    );
    drop(apps);
}

#[test]
fn next_trace_is_one_started_after_the_request_and_504_when_none_comes() {
    let dir = TempDir::new("traces-next");
    let mut app = TracedApp::start(dir.path());
    app.run(2);
    let aggregator = Aggregator::serve(dir.path(), &[]);
    let before: Vec<Json> = aggregator.get("/traces").json()["traces"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(before.len(), 2);

    for format in ["json", "svg"] {
        let asked = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let addr = aggregator.addr();
        let path = format!("/trace/next.{format}?task=%5Erequest%24&timeout=30s");
        let waiting =
            std::thread::spawn(move || stats_pipe_tests::serve::request(addr, "GET", &path, &[]));
        // Long enough for the request to be in before the trace starts.
        std::thread::sleep(Duration::from_millis(500));
        let measured = app.run(1);
        let reply = waiting.join().expect("the waiting request");
        assert_eq!(reply.status, 200, "{}", reply.text());
        if format == "json" {
            let record = reply.json();
            assert_eq!(record["pid"], app.pid());
            assert!(record["start"].as_f64().unwrap() >= asked, "{record}");
            assert!(
                before.iter().all(|t| t["id"] != record["id"]),
                "an old trace: {record}"
            );
            check_against(&record, &measured[0]);
        } else {
            assert!(
                reply
                    .header("content-type")
                    .unwrap()
                    .starts_with("image/svg+xml")
            );
            assert_well_formed_xml(&reply.text(), "/trace/next.svg");
        }
    }

    // Nothing comes: 504 at the timeout.
    let started = Instant::now();
    let reply = aggregator.get("/trace/next.svg?task=request&timeout=1s");
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(reply.json()["error"].as_str().unwrap().contains("request"));

    // Bad requests: 400 without waiting.
    for bad in [
        "/trace/next.svg?task=(",
        "/trace/next.json?task=%5Enope%24",
        "/trace/next.json",
        "/trace/next.json?task=request&timeout=10",
        "/trace/next.json?task=request&timeout=1h",
        &format!("/trace/next.json?task={}", "a".repeat(2000)),
    ] {
        let reply = aggregator.get(bad);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{bad}");
    }
    // At most 8 wait at once: the ninth is told to come back, at once.
    let addr = aggregator.addr();
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                stats_pipe_tests::serve::request(
                    addr,
                    "GET",
                    "/trace/next.json?task=request&timeout=3s",
                    &[],
                )
                .status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    let ninth = aggregator.get("/trace/next.json?task=request&timeout=3s");
    assert_eq!(ninth.status, 503, "{}", ninth.text());
    assert_eq!(
        aggregator.get("/healthz").status,
        200,
        "the server answers while 8 wait"
    );
    let statuses: Vec<u16> = waiting.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(statuses, [504; 8]);
    let unknown = aggregator.get("/trace/next.json?task=%5Enope%24").json();
    assert!(
        unknown["error"].as_str().unwrap().contains("no known task"),
        "{unknown}"
    );
    assert_eq!(aggregator.get("/healthz").status, 200);
}

#[test]
fn hostile_trace_pipes_are_skipped_and_counted_and_the_aggregator_answers() {
    let dir = TempDir::new("traces-hostile");
    let mut app = TracedApp::start(dir.path());
    app.run(1);
    let traces_dir = dir.join("traces");
    let mut processes = Processes::new();
    let hostile = |processes: &mut Processes, mode: &str| {
        let pid = processes.spawn(
            Command::new("python3")
                .arg(fixture("hostile_writer.py"))
                .arg("--dir")
                .arg(&traces_dir)
                .args(["--suffix", "traces", mode])
                .stdin(Stdio::null()),
        );
        wait_for_path(&traces_dir.join(format!("{pid}.traces")));
        pid
    };
    // Endless answers, garbage answers, a writer that never closes.
    hostile(&mut processes, "flood");
    hostile(&mut processes, "garbage");
    hostile(&mut processes, "never-close");
    // A FIFO nobody writes to, and a link to a file.
    let sleeper = processes.sleeper();
    make_fifo(&traces_dir.join(format!("{sleeper}.traces")));
    let other = processes.sleeper();
    std::os::unix::fs::symlink("/etc/passwd", traces_dir.join(format!("{other}.traces")))
        .expect("symlink");

    let aggregator = Aggregator::serve(dir.path(), &[]);
    for _ in 0..2 {
        let asked = Instant::now();
        let reply = aggregator.get("/traces");
        assert_eq!(reply.status, 200, "{}", reply.text());
        // Within the read deadline (1 s) and its retries, with room for a
        // loaded machine: never a hang.
        assert!(asked.elapsed() < Duration::from_secs(20));
        let index = reply.json();
        let sources = &index["sources"];
        assert_eq!(sources["total"], 6, "{index}");
        assert_eq!(sources["ok"], 1, "{index}");
        assert_eq!(sources["refused"], 1, "the symlink: {index}");
        assert_eq!(sources["incomplete"], 1, "the garbage: {index}");
        let cut = sources["too_large"].as_u64().unwrap() + sources["timed_out"].as_u64().unwrap();
        assert_eq!(
            cut, 3,
            "the flood, the unclosed and the silent FIFO: {index}"
        );
        // The good process's trace is still listed.
        let traces = index["traces"].as_array().unwrap();
        assert_eq!(traces.len(), 1, "{index}");
        assert_eq!(traces[0]["pid"], app.pid());
    }
    // The timeline of a process whose pipe is hostile: an error, not a hang.
    assert_eq!(
        aggregator.get(&format!("/traces/{other}/1.svg")).status,
        404
    );
    assert_eq!(aggregator.get("/healthz").status, 200);
    assert_eq!(aggregator.get("/funcs.json").status, 200);
}
