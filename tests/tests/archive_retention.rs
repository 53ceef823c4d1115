//! Issue 13, "the archive never goes backwards": one-shot `archive` runs
//! keep exited processes' counters, as a long-lived `serve` does. Three real
//! `pipe-writer` processes count (`jobs += N` on stdin, a declared
//! counter); between runs one is SIGKILLed and then started again with its
//! counter at zero. After every run the archived host-wide `jobs` must equal
//! the sum of every increment made so far (so it never decreases), in
//! SQLite and in PostgreSQL, reading the pipes and `--from` a running
//! `serve`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use stats_pipe_tests::archive::{PgCluster, sqlite_json, wait_until};
use stats_pipe_tests::hostile::{Processes, TempDir};
use stats_pipe_tests::serve::{Aggregator, first_stdout_line, workspace_binary};

fn aggregator() -> Command {
    Command::new(workspace_binary("host-aggregator", "host-aggregator"))
}

/// A running `pipe-writer` whose stdin we hold (closing it would end it).
struct Writer {
    pid: u32,
    stdin: ChildStdin,
    /// What it counted so far.
    jobs: i64,
}

/// Starts a writer in `dir` and waits until it serves its FIFO.
fn start_writer(processes: &mut Processes, dir: &Path) -> Writer {
    let mut child = Command::new(workspace_binary("pipe-writer", "pipe-writer"))
        .arg("--dir")
        .arg(dir)
        .args(["--no-process-stats", "--print-path"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn pipe-writer");
    let stdin = child.stdin.take().expect("piped stdin");
    first_stdout_line(&mut child, "pipe-writer --print-path");
    Writer {
        pid: processes.adopt(child),
        stdin,
        jobs: 0,
    }
}

/// Adds `n` to the writer's `jobs` counter and waits until its pipe says so.
fn count(dir: &Path, writer: &mut Writer, n: i64) {
    writeln!(writer.stdin, "jobs += {n}").expect("write to pipe-writer");
    writer.stdin.flush().expect("flush pipe-writer's stdin");
    writer.jobs += n;
    let want = format!("jobs: {}", writer.jobs);
    wait_until(Duration::from_secs(10), &want, || {
        let out = aggregator()
            .arg("--pipe-dir")
            .arg(dir)
            .args(["dump", "--format", "text", "--pid"])
            .arg(writer.pid.to_string())
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|line| line == want)
            .then_some(())
    });
}

/// How the runs read: the pipes, or a `serve` over them.
enum Mode {
    Pipes,
    From(Aggregator),
}

impl Mode {
    /// Before a run: a server must have seen every increment (its passes
    /// are what it retains from).
    fn settle(&self, total: i64) {
        if let Mode::From(server) = self {
            wait_until(
                Duration::from_secs(10),
                &format!("serve's jobs to reach {total}"),
                || (server.get("/stats").json()["stats"]["jobs"] == json!(total)).then_some(()),
            );
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Mode::Pipes => Vec::new(),
            Mode::From(server) => vec!["--from".into(), format!("http://{}", server.addr())],
        }
    }
}

/// The scenario of issue 13 against `db` under host name `host`; `archived`
/// gives the host-wide `jobs` stored at each run time. Returns the sum of
/// every increment made.
fn exit_and_restart_between_runs(
    db: &str,
    host: &str,
    from_serve: bool,
    archived: &dyn Fn(&str) -> Vec<(i64, i64)>,
) -> i64 {
    let pipes = TempDir::new(&format!("archive-retention-{host}"));
    let dir = pipes.path();
    let mut processes = Processes::new();
    let mut writers: Vec<Writer> = (0..3).map(|_| start_writer(&mut processes, dir)).collect();
    let mode = if from_serve {
        Mode::From(Aggregator::serve(dir, &[]))
    } else {
        Mode::Pipes
    };
    let mut total = 0;
    let mut expected = Vec::new();
    let run = |time: i64, total: i64, expected: &mut Vec<(i64, i64)>| {
        mode.settle(total);
        let out = aggregator()
            .arg("--pipe-dir")
            .arg(dir)
            .arg("archive")
            .args(["--db", db, "--host", host, "--time", &time.to_string()])
            .args(mode.args())
            .stdin(Stdio::null())
            .output()
            .expect("run host-aggregator archive");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && text.starts_with("archived "),
            "archive at {time} ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        expected.push((time, total));
        assert_eq!(archived(host), *expected, "after the run at {time}");
    };

    for (writer, n) in writers.iter_mut().zip([5, 7, 11]) {
        count(dir, writer, n);
        total += n;
    }
    run(1, total, &mut expected);

    // One writer dies without a word; the others go on counting.
    let gone = writers.remove(0);
    processes.kill(gone.pid);
    for writer in &mut writers {
        count(dir, writer, 2);
        total += 2;
    }
    run(2, total, &mut expected);

    // It comes back as a new process, counting from zero.
    let mut back = start_writer(&mut processes, dir);
    assert_ne!(back.pid, gone.pid, "a new process (PIDs wrap too slowly)");
    count(dir, &mut back, 3);
    total += 3;
    run(3, total, &mut expected);

    // A run with nothing new changes nothing; then every writer dies.
    run(4, total, &mut expected);
    processes.kill(back.pid);
    for writer in writers.drain(..) {
        processes.kill(writer.pid);
    }
    run(5, total, &mut expected);
    let values: Vec<i64> = expected.iter().map(|(_, v)| *v).collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    total
}

/// The host-wide `jobs` of `host` in the SQLite file `db`, by time.
fn sqlite_jobs(db: &Path, host: &str) -> Vec<(i64, i64)> {
    let rows = sqlite_json(
        db,
        &format!(
            "SELECT time, int_value FROM samples
             WHERE host = '{host}' AND pid = 0 AND name = 'jobs' ORDER BY time"
        ),
    );
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["time"].as_i64().unwrap(),
                row["int_value"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn sqlite_counters_survive_exits_and_restarts_between_runs() {
    let store = TempDir::new("archive-retention-sqlite");
    let db: PathBuf = store.join("archive.db");
    let url = format!("sqlite:{}", db.display());
    let jobs = |host: &str| sqlite_jobs(&db, host);
    assert_eq!(
        exit_and_restart_between_runs(&url, "pipes", false, &jobs),
        30
    );
    // What the pipe runs keep: no process is held any more (all exited), one
    // retained total for `jobs`.
    assert_eq!(
        sqlite_json(
            &db,
            "SELECT pid, name, kind, int_value FROM retention WHERE host = 'pipes'"
        ),
        json!([{"pid": 0, "name": "jobs", "kind": "counter", "int_value": 30}])
    );
    assert_eq!(
        exit_and_restart_between_runs(&url, "served", true, &jobs),
        30
    );
    // The server retains; the runs from it leave no state of their own.
    assert_eq!(
        sqlite_json(
            &db,
            "SELECT COUNT(*) AS n FROM retention WHERE host = 'served'"
        ),
        json!([{"n": 0}])
    );
}

#[test]
fn postgres_counters_survive_exits_and_restarts_between_runs() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let jobs = |host: &str| -> Vec<(i64, i64)> {
        cluster
            .psql(&format!(
                "SELECT time, int_value FROM samples
                 WHERE host = '{host}' AND pid = 0 AND name = 'jobs' ORDER BY time"
            ))
            .lines()
            .map(|line| {
                let (time, value) = line.split_once('|').expect("time|value");
                (time.parse().unwrap(), value.parse().unwrap())
            })
            .collect()
    };
    assert_eq!(
        exit_and_restart_between_runs(&url, "pipes", false, &jobs),
        30
    );
    assert_eq!(
        cluster.psql("SELECT pid, name, kind, int_value FROM retention WHERE host = 'pipes'"),
        "0|jobs|counter|30"
    );
    assert_eq!(
        exit_and_restart_between_runs(&url, "served", true, &jobs),
        30
    );
    assert_eq!(
        cluster.psql("SELECT COUNT(*) FROM retention WHERE host = 'served'"),
        "0"
    );
}
