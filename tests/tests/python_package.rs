//! The Python package `stats_pipe` (issue 17), built by maturin into a test
//! venv, in real processes read by a real `host-aggregator serve`: gunicorn
//! sync workers replaced every 50 requests, a `multiprocessing.Pool` of 8
//! forked workers, and pipestatic's example program with only its import
//! changed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use stats_pipe_tests::archive::wait_until;
use stats_pipe_tests::bindings::{python, read_pipe, workspace};
use stats_pipe_tests::hostile::{Processes, TempDir, fixture};
use stats_pipe_tests::ports::free_port;
use stats_pipe_tests::serve::{Aggregator, request};

/// The host-wide value of `name` in the aggregator's `/stats`.
fn host_stat(aggregator: &Aggregator, name: &str) -> Option<serde_json::Value> {
    let answer = aggregator.get("/stats");
    assert_eq!(answer.status, 200, "/stats: {}", answer.text());
    answer.json()["stats"].get(name).cloned()
}

/// The test venv's Python running `script` with its pipe in `pipe_dir`,
/// lingering `linger` seconds at exit (`STATS_PIPE_LINGER`).
fn python_script(script: PathBuf, pipe_dir: &Path, linger: &str) -> Command {
    let mut command = Command::new(python());
    command
        .arg(script)
        .env("STATS_PIPE_DIR", pipe_dir)
        .env("STATS_PIPE_LINGER", linger);
    command
}

fn value_of<'a>(stats: &'a [(String, String)], name: &str) -> Option<&'a str> {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn gunicorn_workers_replaced_every_50_requests_count_all_1000() {
    let python = python();
    let pipes = TempDir::new("py-gunicorn");
    let aggregator = Aggregator::serve(pipes.path(), &["--interval", "200ms", "--max-age", "0s"]);
    let port = free_port();
    let log_path = pipes.path().with_extension("gunicorn.log");
    let log = File::create(&log_path).expect("create the gunicorn log");
    let mut processes = Processes::new();
    let master = processes.spawn(
        Command::new(&python)
            .args(["-m", "gunicorn", "--workers", "4", "--max-requests", "50"])
            // The app's handles are made in the master and inherited.
            .arg("--preload")
            .args(["--bind", &format!("127.0.0.1:{port}"), "--chdir"])
            .arg(workspace().join("tests/python"))
            .arg("wsgi_app:app")
            .env("STATS_PIPE_DIR", pipes.path())
            // An exiting worker waits for the aggregator's next passes.
            .env("STATS_PIPE_LINGER", "10")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // A bare connect is no request: the app is not called.
    wait_until(Duration::from_secs(30), "gunicorn to listen", || {
        TcpStream::connect(addr).ok()
    });

    for i in 0..1000 {
        let answer = request(addr, "GET", &format!("/?i={i}"), &[]);
        assert_eq!(answer.status, 200, "request {i}: {}", answer.text());
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let expected = (Some(1000.into()), Some(1000.into()));
    loop {
        let seen = (
            host_stat(&aggregator, "requests"),
            host_stat(&aggregator, "latency.count[app=wsgi]"),
        );
        if seen == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s /stats shows (requests, latency.count) {seen:?}, not 1000 each"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Workers came and went: at most 50 requests each.
    let log = std::fs::read_to_string(&log_path).expect("read the gunicorn log");
    let booted = log.matches("Booting worker with pid").count();
    assert!(
        booted >= 20,
        "1,000 requests at most 50 per worker need at least 20 workers; gunicorn booted {booted}:\n{log}"
    );
    // The histogram merged across processes, quantiles recomputed.
    assert!(host_stat(&aggregator, "latency.p99[app=wsgi]").is_some_and(|v| v.is_f64()));

    // Stop gunicorn: the exiting workers remove their FIFOs (the master
    // never recorded, so it never served); the count stays.
    kill(Pid::from_raw(master as i32), Signal::SIGTERM).expect("SIGTERM gunicorn");
    wait_until(
        Duration::from_secs(30),
        "every worker's FIFO removed",
        || {
            let left: Vec<_> = std::fs::read_dir(pipes.path())
                .expect("list the pipe dir")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // The pipes only: spares live in `.spares-<uid>/` (kept).
                .filter(|name| name.ends_with(".stats"))
                .collect();
            left.is_empty().then_some(())
        },
    );
    assert_eq!(host_stat(&aggregator, "requests"), Some(1000.into()));
    let _ = std::fs::remove_file(&log_path);
}

#[test]
fn multiprocessing_pool_of_8_forked_workers_sums_exactly() {
    let pipes = TempDir::new("py-pool");
    let aggregator = Aggregator::serve(pipes.path(), &["--interval", "200ms", "--max-age", "0s"]);
    let mut child = python_script(
        workspace().join("tests/python/pool_sum.py"),
        pipes.path(),
        "10",
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("start pool_sum.py");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let report: serde_json::Value = lines
        .next()
        .and_then(Result::ok)
        .and_then(|line| serde_json::from_str(&line).ok())
        .expect("pool_sum.py prints a JSON report");
    // Each worker's own pipe: exactly its tasks' sum, none of the parent's
    // stats (checked in the script, which knows who ran what).
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["sum"], 19_900, "{report}");
    assert!(
        report["workers"].as_u64().is_some_and(|n| n >= 2),
        "{report}"
    );

    // Host-wide: the parent's 1,000 plus every task's amount, exactly.
    wait_until(Duration::from_secs(30), "/stats jobs 20900", || {
        (host_stat(&aggregator, "jobs")? == 20_900).then_some(())
    });
    // The parent's gauge is the parent's only: summed over processes, 42.
    assert_eq!(host_stat(&aggregator, "parent.only"), Some(42.into()));

    writeln!(stdin, "done").expect("tell pool_sum.py to finish");
    drop(stdin);
    let status = child.wait().expect("wait for pool_sum.py");
    assert!(status.success(), "pool_sum.py: {status}");
    // The workers (through multiprocessing's exit finalizers) and the
    // parent (atexit) stopped and removed their FIFOs; their counters are
    // retained.
    let left: Vec<_> = std::fs::read_dir(pipes.path())
        .expect("list the pipe dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The pipes only: spares live in `.spares-<uid>/` (kept).
        .filter(|name| name.ends_with(".stats"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // And no spare either: each writer removed its own.
    let spares: Vec<_> = std::fs::read_dir(pipes.path())
        .expect("list the pipe dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".spares-"))
        .flat_map(|dir| {
            std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name())
        .collect();
    assert!(spares.is_empty(), "spares left behind: {spares:?}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(host_stat(&aggregator, "jobs"), Some(20_900.into()));
}

#[test]
fn pipestatic_example_runs_unchanged_with_the_import_changed() {
    let pipes = TempDir::new("py-pipestatic");
    let mut child = python_script(fixture("pipestatic_example.py"), pipes.path(), "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pipestatic_example.py");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(
        first,
        format!("stats being recorded to /tmp/stats-pipe/{pid}.stats")
    );
    let path = pipes.join(format!("{pid}.stats"));
    wait_until(Duration::from_secs(10), "the example's FIFO", || {
        path.exists().then_some(())
    });
    let int = |stats: &[(String, String)], name: &str| -> i64 {
        value_of(stats, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} as an integer in {stats:?}"))
    };
    let first = read_pipe(&path);
    std::thread::sleep(Duration::from_millis(200));
    let second = read_pipe(&path);
    assert!(
        int(&second, "foo.bar") > int(&first, "foo.bar"),
        "{first:?} {second:?}"
    );
    for stats in [&first, &second] {
        let bar = int(stats, "foo.bar");
        let baz = int(stats, "foo.baz");
        // A snapshot may fall between the two incr calls of one iteration.
        assert!(baz == 2 * bar || baz == 2 * (bar - 1), "{stats:?}");
        assert!(value_of(stats, "foo :: now").is_some_and(|v| v.contains('.')));
        assert!(int(stats, "foo.iterations") >= bar - 1);
    }
    // The kind travels: foo.bar is a counter.
    let text = std::fs::read_to_string(&path).expect("read the pipe");
    assert!(text.contains("\n#counter foo.bar: 1\n"), "{text}");

    // Ctrl-C: the program dies of KeyboardInterrupt; at exit the pipe goes.
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).expect("SIGINT the example");
    let status = child.wait().expect("wait for the example");
    assert!(!status.success());
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn forks_while_the_parent_serves_and_records_never_deadlock() {
    let pipes = TempDir::new("py-fork-storm");
    let mut child = python_script(
        workspace().join("tests/python/fork_storm.py"),
        pipes.path(),
        "0",
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("start fork_storm.py");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let path = lines
        .next()
        .and_then(Result::ok)
        .expect("fork_storm.py prints its path");
    // Two readers take snapshots back to back for as long as the storm
    // lasts; each read must end (a child holding a copy of the write end
    // would keep `cat` waiting).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, done) = (path.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = Command::new("timeout")
                        .args(["10", "cat", &path])
                        .output()
                        .expect("run timeout cat");
                    assert_ne!(out.status.code(), Some(124), "cat on {path} hung");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut stdin = child.stdin.take().expect("piped stdin");
    writeln!(stdin, "go").expect("start the storm");
    let verdict = lines.next().and_then(Result::ok).unwrap_or_default();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u32 = readers
        .into_iter()
        .map(|r| r.join().expect("a reader failed"))
        .sum();
    assert_eq!(verdict, "ok 300");
    assert!(reads > 0);
    drop(stdin);
    assert!(child.wait().expect("wait for fork_storm.py").success());
}

#[test]
fn decorators_count_outcomes_for_functions_and_interleaved_coroutines() {
    let pipes = TempDir::new("py-decorators");
    let mut child = python_script(
        workspace().join("tests/python/decorators.py"),
        pipes.path(),
        "0",
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("start decorators.py");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let report: serde_json::Value = lines
        .next()
        .and_then(Result::ok)
        .and_then(|line| serde_json::from_str(&line).ok())
        .expect("decorators.py prints a JSON report");
    // Return values and exceptions pass through the decorators untouched.
    assert_eq!(
        report["returned"],
        serde_json::json!([7, "bad input", 7, "bad input", 7])
    );
    assert_eq!(
        report["gathered"],
        serde_json::json!(["0.05", "KeyError('missing')", "0.02"])
    );
    assert_eq!(report["names"], serde_json::json!(["latency", "c", "g"]));
    // (success, errors, panics): a raise is an error, never a panic.
    assert_eq!(report["job"], serde_json::json!([3, 2, 0]));
    assert_eq!(report["coro"], serde_json::json!([2, 1, 0]));
    let stats = read_pipe(Path::new(report["pipe"].as_str().expect("pipe path")));
    assert_eq!(value_of(&stats, "latency.count"), Some("3"), "{stats:?}");
    assert_eq!(value_of(&stats, "job.current"), Some("0"), "{stats:?}");
    assert_eq!(value_of(&stats, "coro.highwater"), Some("3"), "{stats:?}");
    let stdin = child.stdin.as_mut().expect("piped stdin");
    writeln!(stdin, "done").expect("tell decorators.py to finish");
    assert!(child.wait().expect("wait for decorators.py").success());
}
