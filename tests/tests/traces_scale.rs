//! The trace routes under load and against hostile writers (issue 16,
//! review: "a server stays up and answers; a hostile network client must
//! not spoil it"): many concurrent `/traces` requests over writers with
//! full rings share one read, so the aggregator's peak memory grows by
//! about one read, not one per request; writers serving huge answers are
//! cut by the read's byte budget and the aggregator still answers. Real
//! `traced_app` processes, a real `host-aggregator serve`, real HTTP; the
//! memory is the kernel's figure (`VmHWM`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use stats_pipe_tests::hostile::{Processes, TempDir, fixture, wait_for_path};
use stats_pipe_tests::serve::{Aggregator, request};
use stats_pipe_tests::traced::TracedApp;

const MIB: u64 = 1 << 20;

/// One trace as the index lists it: start, PID, id.
type Row = (f64, u64, u64);

/// The traces `pid`'s FIFO serves, read by the test itself (a blocking
/// open and read to the end, as `cat` does), and the answer's size.
fn ring_of(dir: &Path, pid: u32) -> (Vec<Row>, u64) {
    let path = dir.join("traces").join(format!("{pid}.traces"));
    let answer = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let rows = answer
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Json>(line).ok())
        .filter(|json| json.get("spans").is_some())
        .map(|json| {
            (
                json["start"].as_f64().expect("start"),
                json["pid"].as_u64().expect("pid"),
                json["id"].as_u64().expect("id"),
            )
        })
        .collect();
    (rows, answer.len() as u64)
}

/// The index's order: newest start first, then PID ascending, then id
/// descending.
fn listed(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)));
    rows
}

fn rows_of(index: &Json) -> Vec<Row> {
    index["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .map(|t| {
            (
                t["start"].as_f64().expect("start"),
                t["pid"].as_u64().expect("pid"),
                t["id"].as_u64().expect("id"),
            )
        })
        .collect()
}

#[test]
fn fifty_concurrent_index_requests_over_full_rings_share_one_read() {
    const PROCESSES: usize = 24;
    const REQUESTS: usize = 50;
    const LIMIT: usize = 1000;
    let dir = TempDir::new("traces-scale");
    let mut apps: Vec<TracedApp> = (0..PROCESSES)
        .map(|_| TracedApp::start(dir.path()))
        .collect();
    // 1,000 requests each, all at once: full rings (3 ms a request).
    for app in &mut apps {
        app.send_run(1000);
    }
    for app in &mut apps {
        assert_eq!(app.read_measured().len(), 1000);
    }
    let mut all = Vec::new();
    let mut data = 0;
    for app in &apps {
        let (rows, bytes) = ring_of(dir.path(), app.pid());
        assert!(rows.len() >= 1000, "a full ring: {}", rows.len());
        all.extend(rows);
        data += bytes;
    }
    let expected: Vec<Row> = listed(all).into_iter().take(LIMIT).collect();

    // The memory is measured here, not the deadline: two busy cores may
    // take more than the default second to have two dozen debug-built
    // writers render their rings.
    let aggregator = Aggregator::serve(dir.path(), &["--deadline", "30s"]);
    assert_eq!(aggregator.get("/healthz").status, 200);
    let before = aggregator.peak_rss_bytes();
    let asked = Instant::now();
    let addr = aggregator.addr();
    let path = format!("/traces?limit={LIMIT}");
    let answers: Vec<Json> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..REQUESTS)
            .map(|_| scope.spawn(|| request(addr, "GET", &path, &[])))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                let reply = t.join().expect("request thread");
                assert_eq!(reply.status, 200, "{}", reply.text());
                reply.json()
            })
            .collect()
    });
    let grown = aggregator.peak_rss_bytes().saturating_sub(before);
    eprintln!(
        "{REQUESTS} concurrent /traces answered in {:?}",
        asked.elapsed()
    );
    for index in &answers {
        assert_eq!(index["sources"]["ok"], PROCESSES, "{}", index["sources"]);
        assert_eq!(index["sources"]["skipped_budget"], 0);
        assert_eq!(rows_of(index), expected, "the newest {LIMIT} of every ring");
    }
    // Shared: about one read (the answers, their short records) and 50
    // rendered answers. Fifty reads of their own would each have held
    // every answer (`data`) and its parsed records.
    let bound = 2 * data + 48 * MIB;
    let independent = REQUESTS as u64 * data;
    eprintln!(
        "{PROCESSES} full rings, {} MiB of trace JSON; {REQUESTS} concurrent /traces: peak RSS grew {} MiB (bound {} MiB; {REQUESTS} independent reads: {} MiB of answers alone)",
        data / MIB,
        grown / MIB,
        bound / MIB,
        independent / MIB
    );
    assert!(bound < independent / 4, "the bound must be meaningful");
    assert!(
        grown < bound,
        "peak RSS grew {} MiB for {REQUESTS} concurrent /traces over {} MiB of traces",
        grown / MIB,
        data / MIB
    );
    // A trace of the index, whole, and one process's index: the single-pipe
    // reads still answer in full.
    let (_, pid, id) = expected[0];
    let one = aggregator.get(&format!("/traces/{pid}/{id}")).json();
    assert_eq!(
        (one["pid"].as_u64(), one["id"].as_u64()),
        (Some(pid), Some(id))
    );
    assert_eq!(one["spans"].as_array().map(Vec::len), Some(3));
    let own = aggregator
        .get(&format!("/traces?pid={pid}&limit=10000"))
        .json();
    assert!(rows_of(&own).iter().all(|r| r.1 == pid));
    assert!(rows_of(&own).len() >= 1000);
}

#[test]
fn writers_flooding_the_trace_pipes_are_cut_by_the_budget_and_the_aggregator_answers() {
    const FLOODS: usize = 8;
    const BUDGET: u64 = 4 * MIB;
    let dir = TempDir::new("traces-budget");
    let mut app = TracedApp::start(dir.path());
    app.run(5);
    let traces_dir = dir.join("traces");
    let mut processes = Processes::new();
    let floods: Vec<u32> = (0..FLOODS)
        .map(|_| {
            let pid = processes.spawn(
                Command::new("python3")
                    .arg(fixture("hostile_writer.py"))
                    .arg("--dir")
                    .arg(&traces_dir)
                    .args(["--suffix", "traces", "flood"])
                    .stdin(Stdio::null()),
            );
            wait_for_path(&traces_dir.join(format!("{pid}.traces")));
            pid
        })
        .collect();
    let aggregator = Aggregator::serve(dir.path(), &["--trace-budget", &BUDGET.to_string()]);
    assert_eq!(aggregator.get("/healthz").status, 200);
    let before = aggregator.peak_rss_bytes();
    for _ in 0..3 {
        let asked = Instant::now();
        let reply = aggregator.get("/traces");
        assert_eq!(reply.status, 200, "{}", reply.text());
        // Within the read deadline (1 s) and its retries, with room for a
        // loaded machine: never a hang.
        assert!(asked.elapsed() < Duration::from_secs(20));
        let sources = &reply.json()["sources"];
        assert_eq!(sources["total"], FLOODS + 1, "{sources}");
        let cut = sources["skipped_budget"].as_u64().expect("skipped_budget");
        assert!(cut >= 1, "the budget cut no pipe: {sources}");
        assert!(
            sources["too_large"].as_u64() >= Some(cut),
            "cut pipes count as too_large: {sources}"
        );
        // Whatever the floods did, nothing was parsed from them.
        assert_eq!(sources["bad_records"], 0, "{sources}");
        // Past the budget: nothing but the floods' pieces, never all eight.
        std::thread::sleep(Duration::from_millis(1100));
    }
    // Eight floods of up to the 16 MiB cap each, read at once, would have
    // held 128 MiB; the budget holds a read to 4 MiB (and a chunk a pipe).
    let grown = aggregator.peak_rss_bytes().saturating_sub(before);
    eprintln!(
        "{FLOODS} flooding trace pipes, budget {} MiB: peak RSS grew {} MiB",
        BUDGET / MIB,
        grown / MIB
    );
    assert!(
        grown < 48 * MIB,
        "peak RSS grew {} MiB with a {} MiB budget",
        grown / MIB,
        BUDGET / MIB
    );
    // One flooding process's trace: an error naming why, not a hang.
    let one = aggregator.get(&format!("/traces/{}/1", floods[0]));
    assert_eq!(one.status, 404, "{}", one.text());
    assert!(one.text().contains("too_large"), "{}", one.text());
    // The good process's traces are still there, alone.
    let own = aggregator.get(&format!("/traces?pid={}", app.pid())).json();
    assert_eq!(own["traces"].as_array().map(Vec::len), Some(5), "{own}");
    assert_eq!(aggregator.get("/healthz").status, 200);
}
