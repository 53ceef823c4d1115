//! End-to-end tests of the aggregator's serving half: the real
//! `host-aggregator` binary serving real writer processes over real HTTP,
//! checked with a separate HTTP client, serde_json and `promtool`.

use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use stats_pipe_tests::hostile::{Processes, TempDir, dead_pid, make_fifo, spawn_pipestatic_writer};
use stats_pipe_tests::serve::{
    Aggregator, exchange, promtool_check_metrics, request, workspace_binary,
};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `host-aggregator <args>`; returns (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
        .args(args)
        .output()
        .expect("run host-aggregator");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn stats_are_exact_sums_in_pipestatic_shape() {
    let dir = TempDir::new("http-sums");
    let mut processes = Processes::new();
    let a = spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["requests=4", "load avg=0.25", "big=9223372036854775807"],
    );
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["requests=5", "load avg=0.5", "mixed=2"],
    );
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["requests=-2", "mixed=0.5", "big=1"],
    );
    let server = Aggregator::serve(dir.path(), &[]);

    let before = now();
    let response = server.get("/stats");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let body = response.json();
    assert_eq!(
        body["stats"],
        json!({
            "requests": 7,
            "load avg": 0.75,
            "mixed": 2.5,
            // i64::MAX + 1 overflows: pipestatic's rule makes it a float.
            "big": 9_223_372_036_854_775_808.0,
        })
    );
    assert!(body["stats"]["requests"].is_i64(), "ints stay ints");
    assert!(body["stats"]["mixed"].is_f64(), "any float makes a float");
    let timestamp = body["timestamp"].as_f64().expect("timestamp is a number");
    assert!((timestamp - before).abs() < 5.0, "{timestamp} vs {before}");
    assert_eq!(body["sources"], json!({"total": 3, "ok": 3}));

    let one = server.get(&format!("/stats/{a}"));
    assert_eq!(one.status, 200);
    let one = one.json();
    assert_eq!(one["pid"], a);
    assert_eq!(one["status"], "ok");
    assert_eq!(one["foreign"], true);
    assert_eq!(
        one["stats"],
        json!({"requests": 4, "load avg": 0.25, "big": i64::MAX})
    );

    let listed = server.get("/processes").json();
    let list = listed["processes"].as_array().expect("a list");
    assert_eq!(list.len(), 3);
    for entry in list {
        assert_eq!(entry["status"], "ok", "{entry}");
        assert_eq!(entry["lines"].as_u64().unwrap(), 3, "{entry}");
        assert_eq!(entry["bad_lines"], 0);
        assert!(entry["last_seen"].as_f64().unwrap() > before - 5.0);
    }
}

#[test]
fn bad_paths_methods_and_tokens_get_json_errors() {
    let dir = TempDir::new("http-errors");
    let mut processes = Processes::new();
    spawn_pipestatic_writer(&mut processes, dir.path(), &["x=1"]);
    let token_file = dir.join("token");
    std::fs::write(&token_file, "t0ken-with-some-length\n").unwrap();
    let mut server = Aggregator::serve(dir.path(), &["--token-file", token_file.to_str().unwrap()]);
    let addr = server.addr();
    let auth = [("Authorization", "Bearer t0ken-with-some-length")];

    let missing = request(addr, "GET", "/stats", &[]);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("WWW-Authenticate"), Some("Bearer"));
    missing.json();
    let wrong = request(addr, "GET", "/stats", &[("Authorization", "Bearer t0ken")]);
    assert_eq!(wrong.status, 401);
    assert_eq!(request(addr, "GET", "/stats", &auth).status, 200);
    assert_eq!(request(addr, "GET", "/healthz", &[]).status, 200);

    let cases = [
        ("GET", "/nope", 404),
        ("GET", "/stats/999999999", 404),
        ("GET", "/stats/abc", 404),
        ("GET", "/stats/1/2", 404),
        ("POST", "/stats", 405),
        ("DELETE", "/metrics", 405),
        ("PUT", "/healthz", 405),
    ];
    for (method, path, want) in cases {
        let response = request(addr, method, path, &auth);
        assert_eq!(response.status, want, "{method} {path}");
        let body = response.json();
        assert!(body["error"].is_string(), "{method} {path}: {body}");
        if want == 405 {
            assert_eq!(response.header("Allow"), Some("GET, HEAD"));
        }
    }

    // Garbage, a huge header, a request cut short: the server stays up.
    let started = Instant::now();
    exchange(addr, b"\x00\xff\xfe garbage\r\n\r\n");
    exchange(addr, b"GET /stats HTTP/1.1\r\nHost: x\r\n");
    let huge = format!(
        "GET /stats HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    exchange(addr, huge.as_bytes());
    exchange(
        addr,
        b"GET /stats/\xff\xfe HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(server.is_running());
    assert!(
        started.elapsed().as_secs() < 20,
        "bad requests were answered or dropped"
    );
    assert_eq!(request(addr, "GET", "/healthz", &[]).json()["status"], "ok");
    assert_eq!(
        request(addr, "GET", "/stats", &auth).json()["stats"]["x"],
        1
    );
}

#[test]
fn metrics_pass_promtool_with_tags_odd_names_and_collisions() {
    let dir = TempDir::new("http-metrics");
    let mut processes = Processes::new();
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &[
            "http.requests[code=200,method=GET]=4000",
            "http.requests[code=500,method=GET]=3",
            "My Nice Stat=1",
            "host:port=2",
            "queue.depth=3",
            "queue_depth=4",
            "load avg=0.5",
            "weird[path=C:\\\\dir \"q\"]=5",
            "not a number=nan",
            "up=inf",
        ],
    );
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["http.requests[code=200,method=GET]=1", "queue.depth=10"],
    );
    let server = Aggregator::serve(dir.path(), &[]);
    let response = server.get("/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.text();
    for line in [
        "http_requests{code=\"200\",method=\"GET\"} 4001\n",
        "http_requests{code=\"500\",method=\"GET\"} 3\n",
        "my_nice_stat 1\n",
        "host_port 2\n",
        "queue_depth{stats_pipe_name=\"queue.depth\"} 13\n",
        "queue_depth{stats_pipe_name=\"queue_depth\"} 4\n",
        "load_avg 0.5\n",
        "weird{path=\"C:\\\\dir \\\"q\\\"\"} 5\n",
        "not_a_number NaN\n",
        "up +Inf\n",
        "stats_pipe_sources{status=\"ok\"} 2\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let (code, said) = promtool_check_metrics(&response.body);
    assert_eq!(
        code, 0,
        "promtool check metrics rejected /metrics: {said}\n{text}"
    );
}

#[test]
fn concurrent_requests_share_passes_and_young_passes_are_reused() {
    let dir = TempDir::new("http-share");
    let mut processes = Processes::new();
    spawn_pipestatic_writer(&mut processes, dir.path(), &["n=1"]);
    // A live process's FIFO with no writer: every pass waits for it until
    // the deadline, so concurrent requests surely overlap a pass.
    let sleeper = processes.sleeper();
    make_fifo(&dir.join(format!("{sleeper}.stats")));
    let server = Aggregator::serve(dir.path(), &["--max-age", "0s", "--deadline", "300ms"]);
    let addr = server.addr();

    const CLIENTS: usize = 12;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let passes: Vec<u64> = (0..CLIENTS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let response = request(addr, "GET", "/stats", &[]);
                assert_eq!(response.status, 200);
                assert_eq!(response.json()["stats"]["n"], 1);
                response
                    .header("X-Stats-Pipe-Pass")
                    .and_then(|p| p.parse().ok())
                    .expect("pass number header")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let ran = server.get("/healthz").json()["passes"].as_u64().unwrap();
    let mut distinct = passes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        (ran as usize) < CLIENTS && distinct.len() < CLIENTS,
        "{CLIENTS} concurrent requests ran {ran} passes: {passes:?}"
    );
    let processes_view = server.get("/processes").json();
    let timed_out = processes_view["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == sleeper)
        .expect("the writerless FIFO is listed")["status"]
        .clone();
    assert_eq!(timed_out, "timed_out");

    // A pass younger than --max-age is served again: no new pass at all.
    let cached = Aggregator::serve(dir.path(), &["--max-age", "60s", "--deadline", "100ms"]);
    for _ in 0..20 {
        assert_eq!(cached.get("/stats").header("X-Stats-Pipe-Pass"), Some("1"));
    }
    assert_eq!(cached.get("/healthz").json()["passes"], 1);
}

#[test]
fn hostile_entries_leak_nothing_and_get_their_status() {
    let dir = TempDir::new("http-hostile");
    let secrets = TempDir::new("http-secret");
    let secret = secrets.join("secret.txt");
    std::fs::write(&secret, "password: 8675309\n").unwrap();
    let mut processes = Processes::new();
    spawn_pipestatic_writer(&mut processes, dir.path(), &["good=1"]);
    let live = processes.sleeper();
    symlink(&secret, dir.join(format!("{live}.stats"))).unwrap();
    std::fs::write(
        dir.join(format!("{}.stats", std::process::id())),
        "planted: 1\n",
    )
    .unwrap();
    make_fifo(&dir.join(format!("{}.stats", dead_pid())));
    // Kept for the test's length, to be listed `stale` (no sweeps).
    let server = Aggregator::serve(dir.path(), &["--deadline", "500ms", "--gc-interval", "0s"]);

    for path in ["/stats", "/processes", "/metrics"] {
        let body = server.get(path).text();
        assert!(
            !body.contains("8675309"),
            "{path} leaked the secret: {body}"
        );
        assert!(
            !body.contains("password"),
            "{path} leaked the secret: {body}"
        );
        assert!(
            !body.contains("planted"),
            "{path} read a regular file: {body}"
        );
    }
    assert_eq!(server.get("/stats").json()["stats"], json!({"good": 1}));
    let listed = server.get("/processes").json();
    let mut statuses: Vec<(String, String)> = listed["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["status"].as_str().unwrap().to_owned(),
                p["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("ok".into(), "".into()),
            ("refused".into(), "not_fifo".into()),
            ("refused".into(), "symlink".into()),
            ("stale".into(), "".into()),
        ]
    );
    let symlinked = server.get(&format!("/stats/{live}")).json();
    assert_eq!(symlinked["reason"], "symlink");
    assert_eq!(symlinked["stats"], json!({}));
}

#[test]
fn dump_show_gc_and_help_on_the_command_line() {
    let dir = TempDir::new("cli");
    let mut processes = Processes::new();
    let a = spawn_pipestatic_writer(&mut processes, dir.path(), &["requests=4", "load=0.5"]);
    spawn_pipestatic_writer(&mut processes, dir.path(), &["requests=6", "other.stat=2"]);
    let stale = dir.join(format!("{}.stats", dead_pid()));
    make_fifo(&stale);
    let d = dir.path().to_str().unwrap();

    let (code, out, err) = cli(&["dump", "--pipe-dir", d]);
    assert_eq!(code, 0, "{err}");
    let dumped: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        dumped["stats"],
        json!({"requests": 10, "load": 0.5, "other.stat": 2})
    );

    let (code, out, _) = cli(&["dump", "--pipe-dir", d, "--format", "text"]);
    assert_eq!(code, 0);
    assert_eq!(out, "load: 0.5\nother.stat: 2\nrequests: 10\n");

    let (code, out, _) = cli(&["dump", "--pipe-dir", d, "--format", "prometheus"]);
    assert_eq!(code, 0);
    assert!(out.contains("\nrequests 10\n"), "{out}");
    let (promtool, said) = promtool_check_metrics(out.as_bytes());
    assert_eq!(promtool, 0, "{said}");

    let (code, out, _) = cli(&["dump", "--pipe-dir", d, "--pid", &a.to_string()]);
    assert_eq!(code, 0);
    let one: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(one["stats"], json!({"requests": 4, "load": 0.5}));

    let (code, out, _) = cli(&["show", &a.to_string(), "--pipe-dir", d]);
    assert_eq!(code, 0);
    assert_eq!(out, "load: 0.5\nrequests: 4\n");
    let (code, out, err) = cli(&["show", "999999999", "--pipe-dir", d]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("no stats pipe for PID 999999999"), "{err}");

    let (code, out, _) = cli(&["gc", "--dry-run", "--pipe-dir", d]);
    assert_eq!(code, 0);
    assert!(out.starts_with("would remove "), "{out}");
    assert!(stale.exists(), "a dry run removes nothing");
    let (code, out, _) = cli(&["gc", "--pipe-dir", d]);
    assert_eq!(code, 0);
    assert!(out.starts_with("removed "), "{out}");
    assert!(!stale.exists());
    // The live writers' pipes were left alone: both still serve.
    let (_, out, _) = cli(&["dump", "--pipe-dir", d, "--format", "text"]);
    assert_eq!(out, "load: 0.5\nother.stat: 2\nrequests: 10\n");

    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["dump", "--help"],
        &["gc", "--help"],
    ] {
        let (code, out, _) = cli(args);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Exit codes:"), "{args:?}: {out}");
    }
    assert_eq!(cli(&["frobnicate"]).0, 2);
    assert_eq!(cli(&["dump", "--format", "xml"]).0, 2);
    assert_eq!(cli(&["serve", "--max-age", "5"]).0, 2);
    // A usage error (issue 13): a non-loopback address needs --allow-remote.
    let (code, _, err) = cli(&["serve", "--listen", "0.0.0.0:0", "--pipe-dir", d]);
    assert_eq!(code, 2);
    assert!(err.contains("--allow-remote"), "{err}");
}

#[test]
fn our_writer_fed_from_a_shell_and_pipestatic_writers_sum_exactly() {
    let dir = TempDir::new("http-mixed");
    let mut processes = Processes::new();
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["jobs done=10", "load avg=0.25", "http.requests[code=200]=7"],
    );
    // pipe-writer fed by a real shell loop; --linger keeps it serving after
    // the loop ends.
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(
            "for i in 1 2 3 4 5; do echo 'jobs done += 2'; done; \
             echo 'load avg: 0.5'; echo 'http.requests[code=200] += 1'; \
             echo 'only ours: 1.0'",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let feed = shell.stdout.take().unwrap();
    let writer = processes.spawn(
        Command::new(workspace_binary("pipe-writer", "pipe-writer"))
            .arg("--dir")
            .arg(dir.path())
            .arg("--linger")
            // Exact sums with pipestatic's writers: without our process.* lines.
            .arg("--no-process-stats")
            .stdin(Stdio::from(feed))
            .stdout(Stdio::null()),
    );
    shell.wait().unwrap();
    let server = Aggregator::serve(dir.path(), &["--max-age", "0s"]);

    let want = json!({
        "jobs done": 20,
        "load avg": 0.75,
        "http.requests[code=200]": 8,
        "only ours": 1.0,
    });
    // The writer applies its stdin asynchronously: wait until it has all.
    let until = Instant::now() + Duration::from_secs(20);
    let mut stats = server.get("/stats").json()["stats"].clone();
    while stats != want && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        stats = server.get("/stats").json()["stats"].clone();
    }
    assert_eq!(stats, want);
    assert!(stats["jobs done"].is_i64() && stats["only ours"].is_f64());

    let ours = server.get(&format!("/stats/{writer}")).json();
    assert_eq!(ours["foreign"], false, "our writer sends the envelope");
    assert!(ours["seq"].is_u64(), "{ours}");
    assert_eq!(
        ours["stats"],
        json!({"jobs done": 10, "load avg": 0.5, "http.requests[code=200]": 1, "only ours": 1.0})
    );
    let metrics = server.get("/metrics");
    // Our writer declared it a counter (`#counter`): typed, with `_total`.
    assert!(
        metrics
            .text()
            .contains("# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 8\n"),
        "{}",
        metrics.text()
    );
    let (code, said) = promtool_check_metrics(&metrics.body);
    assert_eq!(code, 0, "{said}");
}
