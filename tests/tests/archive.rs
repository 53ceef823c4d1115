//! End-to-end tests of the archive and the fleet exports against real
//! servers started here: SQLite (checked with the `sqlite3` shell),
//! a throwaway PostgreSQL cluster, InfluxDB 1.x and Prometheus, fed by real
//! writer processes through real `host-aggregator` processes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use stats_pipe_tests::archive::{
    Guarded, Influxd, PgCluster, Prometheus, post, require_binary, sqlite_json, wait_until,
};
use stats_pipe_tests::hostile::{Processes, TempDir, spawn_pipestatic_writer};
use stats_pipe_tests::serve::{Aggregator, workspace_binary};

/// The archive's test-only pause (see `host_aggregator::archive::PAUSE_ENV`).
const PAUSE_ENV: &str = "STATS_PIPE_ARCHIVE_TEST_PAUSE_MS";

fn aggregator() -> Command {
    Command::new(workspace_binary("host-aggregator", "host-aggregator"))
}

/// `host-aggregator --pipe-dir DIR archive ARGS`, waited for.
fn archive(dir: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let out = aggregator()
        .arg("--pipe-dir")
        .arg(dir)
        .arg("archive")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run host-aggregator archive");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn archive_ok(dir: &Path, args: &[&str]) -> String {
    let (status, out, err) = archive(dir, args);
    assert!(
        status.success(),
        "archive {args:?} failed ({status}): {out}{err}"
    );
    out
}

/// Starts an archive run that pauses inside its transaction, and returns
/// once it says so (the kill or stop that follows lands mid-transaction).
fn archive_paused(dir: &Path, args: &[&str]) -> (Guarded, BufReader<std::process::ChildStderr>) {
    let mut child: Child = aggregator()
        .arg("--pipe-dir")
        .arg(dir)
        .arg("archive")
        .args(args)
        .env(PAUSE_ENV, "20000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn archive");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read archive stderr");
    assert!(
        line.contains("test pause") && line.contains("transaction open"),
        "no pause: {line:?}"
    );
    (Guarded(child), stderr)
}

fn rest(mut stderr: BufReader<std::process::ChildStderr>) -> String {
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
    text
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every run's sample count must equal its `samples` column, and no
/// (time, host, name, pid) may appear twice.
fn assert_whole_runs_sqlite(db: &Path) {
    let partial = sqlite_json(
        db,
        "SELECT r.time, r.samples, (SELECT COUNT(*) FROM samples s WHERE s.time = r.time AND s.host = r.host) AS n
         FROM runs r WHERE n <> r.samples",
    );
    assert_eq!(partial, json!([]), "runs with a partial sample set");
    let orphans = sqlite_json(
        db,
        "SELECT DISTINCT time FROM samples WHERE (time, host) NOT IN (SELECT time, host FROM runs)",
    );
    assert_eq!(orphans, json!([]), "samples without their run");
    let dups = sqlite_json(
        db,
        "SELECT time, host, name, pid, COUNT(*) AS c FROM samples GROUP BY 1, 2, 3, 4 HAVING c > 1",
    );
    assert_eq!(dups, json!([]), "duplicate samples");
}

#[test]
fn sqlite_cron_loop_concurrent_runs_kill_and_lock() {
    let pipes = TempDir::new("archive-sqlite-pipes");
    let store = TempDir::new("archive-sqlite-db");
    let mut writers = Processes::new();
    let a = spawn_pipestatic_writer(
        &mut writers,
        pipes.path(),
        &["reqs=5", "load=0.5", "errors[code=500]=2"],
    );
    let b = spawn_pipestatic_writer(
        &mut writers,
        pipes.path(),
        &["reqs=5", "load=0.5", "errors[code=500]=2"],
    );
    let c = spawn_pipestatic_writer(&mut writers, pipes.path(), &["reqs=1", "temp=3.5"]);
    // The database's directory does not exist yet: the archive creates it.
    let db = store.join("var/archive.db");
    let url = format!("sqlite:{}", db.display());
    let base = ["--db", url.as_str(), "--per-process", "--host", "box1"];
    // 4 host-wide sums + 3 + 3 + 2 per-process stats.
    let per_run = 12;

    // A cron-like loop through the cron wrapper: one run per second,
    // default sample time.
    let cron = |extra_env: &[(&str, &str)]| {
        let mut command = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stats-archive-cron.sh"),
        );
        command
            .env(
                "HOST_AGGREGATOR",
                workspace_binary("host-aggregator", "host-aggregator"),
            )
            .env("STATS_ARCHIVE_DB", &url)
            .env(
                "STATS_ARCHIVE_ARGS",
                format!(
                    "--per-process --host box1 --pipe-dir {}",
                    pipes.path().display()
                ),
            )
            .env("STATS_ARCHIVE_LOCK", store.join("cron.lock"))
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let mut times = Vec::new();
    for _ in 0..3 {
        let out = cron(&[]).output().expect("run the cron wrapper");
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{log}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            log.contains(&format!(
                "archived {per_run} samples from 3 sources (host box1"
            )),
            "{log}"
        );
        times.push(unix_now());
        let next = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        std::thread::sleep(
            Duration::from_nanos(1_000_000_000 - u64::from(next.subsec_nanos()))
                + Duration::from_millis(20),
        );
    }
    // Overlap: while one wrapper run is held inside its transaction, the
    // next one skips (exit 75) instead of queueing behind it.
    let slow_args = format!(
        "--per-process --host box1 --time 500 --pipe-dir {}",
        pipes.path().display()
    );
    let mut slow = Guarded(
        cron(&[(PAUSE_ENV, "1500"), ("STATS_ARCHIVE_ARGS", &slow_args)])
            .spawn()
            .expect("spawn the cron wrapper"),
    );
    let flock = require_binary("flock", &[]);
    wait_until(
        Duration::from_secs(10),
        "the first wrapper run to hold the lock",
        || {
            let free = Command::new(&flock)
                .arg("-n")
                .arg(store.join("cron.lock"))
                .arg("true")
                .status()
                .expect("run flock");
            (!free.success()).then_some(())
        },
    );
    let skipped = cron(&[]).output().expect("run the cron wrapper");
    assert_eq!(
        skipped.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&skipped.stdout)
    );
    assert!(
        String::from_utf8_lossy(&skipped.stdout).contains("skipped: a previous run still holds")
    );
    assert!(slow.0.wait().expect("wait").success());
    let runs = sqlite_json(
        &db,
        "SELECT time, host, per_process, sources, samples FROM runs WHERE time > 100000 ORDER BY time",
    );
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs}");
    assert_eq!(
        sqlite_json(&db, "SELECT samples FROM runs WHERE time = 500"),
        json!([{"samples": per_run}])
    );
    for (run, time) in runs.as_array().unwrap().iter().zip(&times) {
        assert!(
            run["time"].as_u64().unwrap().abs_diff(*time) <= 1,
            "{run} vs {time}"
        );
        assert_eq!(run["samples"], per_run);
        assert_eq!(run["sources"], 3);
    }
    let first = runs[0]["time"].as_i64().unwrap();

    // Rows and types: host sums at pid 0, each writer's own values under its
    // pid; ints in int_value, floats in float_value (SQLite type "real").
    let host_rows = sqlite_json(
        &db,
        &format!(
            "SELECT name, int_value, float_value, typeof(int_value) AS ti, typeof(float_value) AS tf
             FROM samples WHERE time = {first} AND pid = 0 ORDER BY name"
        ),
    );
    assert_eq!(
        host_rows,
        json!([
            {"name": "errors[code=500]", "int_value": 4, "float_value": null, "ti": "integer", "tf": "null"},
            {"name": "load", "int_value": null, "float_value": 1.0, "ti": "null", "tf": "real"},
            {"name": "reqs", "int_value": 11, "float_value": null, "ti": "integer", "tf": "null"},
            {"name": "temp", "int_value": null, "float_value": 3.5, "ti": "null", "tf": "real"},
        ])
    );
    let per_pid = sqlite_json(
        &db,
        &format!(
            "SELECT pid, SUM(int_value) AS reqs FROM samples WHERE time = {first} AND name = 'reqs' AND pid <> 0 GROUP BY pid ORDER BY pid"
        ),
    );
    let mut expected: Vec<Value> = [(a, 5), (b, 5), (c, 1)]
        .iter()
        .map(|(pid, n)| json!({"pid": pid, "reqs": n}))
        .collect();
    expected.sort_by_key(|row| row["pid"].as_u64());
    assert_eq!(per_pid, Value::Array(expected));
    assert_eq!(
        sqlite_json(&db, "SELECT name, kind FROM stats ORDER BY name"),
        json!([
            {"name": "errors[code=500]", "kind": "int"},
            {"name": "load", "kind": "float"},
            {"name": "reqs", "kind": "int"},
            {"name": "temp", "kind": "float"},
        ])
    );
    assert_eq!(
        sqlite_json(&db, "SELECT version FROM schema_version"),
        json!([{"version": 2}])
    );

    // Six runs at once: three retries of one --time, three on the clock.
    let children: Vec<(bool, Child)> = (0..6)
        .map(|i| {
            let retry = i % 2 == 0;
            let mut command = aggregator();
            command
                .arg("--pipe-dir")
                .arg(pipes.path())
                .arg("archive")
                .args(base);
            if retry {
                command.args(["--time", "1000"]);
            }
            (
                retry,
                command
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn"),
            )
        })
        .collect();
    let mut fresh_writes = 0;
    for (retry, child) in children {
        let out = child.wait_with_output().expect("wait");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if retry && text.starts_with("archived") {
            fresh_writes += 1;
        }
        if retry && !text.starts_with("archived") {
            assert!(
                text.starts_with("already archived: host box1, time 1000"),
                "{text}"
            );
        }
    }
    assert_eq!(fresh_writes, 1, "exactly one of the same-time runs writes");
    assert_eq!(
        sqlite_json(&db, "SELECT COUNT(*) AS n FROM samples WHERE time = 1000"),
        json!([{"n": per_run}])
    );
    assert_whole_runs_sqlite(&db);

    // A run SIGKILLed inside its transaction leaves nothing of itself.
    let (mut run, stderr) =
        archive_paused(pipes.path(), &[&base[..], &["--time", "2000"]].concat());
    run.0.kill().expect("SIGKILL the run");
    run.0.wait().expect("reap");
    drop(stderr);
    assert_eq!(
        sqlite_json(&db, "SELECT COUNT(*) AS n FROM samples WHERE time = 2000"),
        json!([{"n": 0}])
    );
    assert_eq!(
        sqlite_json(&db, "SELECT COUNT(*) AS n FROM runs WHERE time = 2000"),
        json!([{"n": 0}])
    );
    assert_eq!(
        sqlite_json(&db, "PRAGMA integrity_check"),
        json!([{"integrity_check": "ok"}])
    );
    assert_whole_runs_sqlite(&db);
    // Retrying the killed run with its time writes it whole, once.
    let out = archive_ok(pipes.path(), &[&base[..], &["--time", "2000"]].concat());
    assert!(
        out.starts_with(&format!("archived {per_run} samples")),
        "{out}"
    );
    assert_whole_runs_sqlite(&db);

    // A database locked by another writer: a clear error, exit 1, nothing written.
    let mut holder = Guarded(
        Command::new(require_binary("sqlite3", &[]))
            .arg(&db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sqlite3"),
    );
    let mut to_holder = holder.0.stdin.take().expect("stdin");
    writeln!(
        to_holder,
        "BEGIN IMMEDIATE; INSERT INTO stats VALUES ('held', 'int', 0);"
    )
    .unwrap();
    to_holder.flush().unwrap();
    wait_until(
        Duration::from_secs(10),
        "the sqlite3 shell to hold the write lock",
        // Probed with a second sqlite3 shell that writes nothing: a probe
        // by `archive --time 3000` could itself archive that second before
        // the shell took the lock (under load), and then never fail.
        || {
            let probe = Command::new(require_binary("sqlite3", &[]))
                .arg(&db)
                .arg("BEGIN IMMEDIATE; ROLLBACK;")
                .output()
                .expect("run sqlite3");
            (!probe.status.success()).then_some(())
        },
    );
    let (status, out, err) = archive(
        pipes.path(),
        &[&base[..], &["--time", "3000", "--lock-timeout", "300ms"]].concat(),
    );
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("database is locked") && err.contains(&url),
        "{err}"
    );
    drop(to_holder);
    drop(holder);
    assert_eq!(
        sqlite_json(&db, "SELECT COUNT(*) AS n FROM runs WHERE time = 3000"),
        json!([{"n": 0}])
    );
    assert_whole_runs_sqlite(&db);
}

#[test]
fn postgres_two_hosts_into_one_database_and_a_server_stopped_mid_run() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let dir_a = TempDir::new("archive-pg-a");
    let dir_b = TempDir::new("archive-pg-b");
    let mut writers = Processes::new();
    spawn_pipestatic_writer(&mut writers, dir_a.path(), &["reqs=5", "load=0.5"]);
    spawn_pipestatic_writer(&mut writers, dir_a.path(), &["reqs=5", "load=0.5"]);
    spawn_pipestatic_writer(
        &mut writers,
        dir_b.path(),
        &["reqs=7", "load=1.25", "only_b=3"],
    );
    let host_a = Aggregator::serve(dir_a.path(), &[]);
    let host_b = Aggregator::serve(dir_b.path(), &[]);

    // Both hosts' cron runs fire at the same moment into one database
    // (the first of them also creates the schema).
    let runs: Vec<Child> = [("alpha", &host_a), ("beta", &host_b)]
        .iter()
        .map(|(name, server)| {
            aggregator()
                .arg("archive")
                .args(["--db", &url, "--per-process", "--host", name])
                .arg("--from")
                .arg(format!("http://{}", server.addr()))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn archive")
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        cluster.psql("SELECT host, SUM(int_value) FROM samples WHERE name = 'reqs' AND pid = 0 GROUP BY host ORDER BY host"),
        "alpha|10\nbeta|7"
    );
    assert_eq!(
        cluster.psql("SELECT SUM(int_value) FROM samples WHERE name = 'reqs' AND pid = 0"),
        "17"
    );
    assert_eq!(
        cluster.psql("SELECT SUM(float_value) FROM samples WHERE name = 'load' AND pid = 0"),
        "2.25"
    );
    assert_eq!(
        cluster.psql("SELECT COUNT(*) FROM samples WHERE name = 'load' AND (int_value IS NOT NULL OR float_value IS NULL)"),
        "0",
        "every load sample is a float"
    );
    // Per-process rows add up to the host-wide rows, stat by stat.
    assert_eq!(
        cluster.psql(
            "SELECT COUNT(*) FROM (
               SELECT host, name, SUM(COALESCE(float_value, int_value)) FILTER (WHERE pid = 0) AS total,
                      SUM(COALESCE(float_value, int_value)) FILTER (WHERE pid <> 0) AS parts
               FROM samples GROUP BY host, name) t WHERE total IS DISTINCT FROM parts"
        ),
        "0"
    );
    assert_eq!(
        cluster.psql("SELECT host, sources, samples FROM runs ORDER BY host"),
        "alpha|2|6\nbeta|1|6"
    );
    assert_eq!(
        cluster.psql("SELECT name || '=' || kind FROM stats ORDER BY name"),
        "load=float\nonly_b=int\nreqs=int"
    );

    // The server stops while a run's transaction is open: a clear error,
    // a non-zero exit, and none of that run's samples.
    let (mut run, stderr) = archive_paused(
        dir_a.path(),
        &["--db", &url, "--host", "alpha", "--time", "3000"],
    );
    cluster.pg_stop();
    let status = run.0.wait().expect("wait");
    let err = rest(stderr);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("in database postgres://postgres@localhost/postgres")
            && !err.contains("panicked"),
        "{err}"
    );
    // While it is down, a run says it cannot connect.
    let (status, _, err) = archive(
        dir_a.path(),
        &[
            "--db",
            &url,
            "--host",
            "alpha",
            "--time",
            "3000",
            "--lock-timeout",
            "2s",
        ],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot connect in database postgres://"),
        "{err}"
    );
    cluster.pg_start();
    assert_eq!(
        cluster.psql("SELECT COUNT(*) FROM samples WHERE time = 3000"),
        "0"
    );
    assert_eq!(
        cluster.psql("SELECT COUNT(*) FROM runs WHERE time = 3000"),
        "0"
    );
    let out = archive_ok(
        dir_a.path(),
        &["--db", &url, "--host", "alpha", "--time", "3000"],
    );
    assert!(
        out.starts_with("archived 2 samples from 2 sources (host alpha, time 3000)"),
        "{out}"
    );
    assert_eq!(
        cluster.psql("SELECT SUM(int_value) FROM samples WHERE time = 3000"),
        "10"
    );
}

#[test]
fn influxdb_accepts_our_line_protocol_with_types() {
    let influx = Influxd::start();
    influx.query("", "CREATE DATABASE archive_test");
    let pipes = TempDir::new("archive-influx");
    let mut writers = Processes::new();
    for _ in 0..2 {
        spawn_pipestatic_writer(
            &mut writers,
            pipes.path(),
            &[
                "reqs=5",
                "load avg=0.25",
                "http.requests[code=200,method=GET]=3",
                "big=9223372036854775807",
            ],
        );
    }
    let server = Aggregator::serve(pipes.path(), &[]);
    let served = server.get("/influx");
    assert_eq!(served.status, 200);
    assert!(served.text().contains("reqs,host="), "{}", served.text());
    let written = post(
        influx.addr,
        "/write?db=archive_test",
        "text/plain",
        &served.body,
    );
    assert_eq!(written.status, 204, "{}", written.text());
    // The one-shot command's output is accepted too.
    let dump = aggregator()
        .arg("--pipe-dir")
        .arg(pipes.path())
        .args(["dump", "--format", "influx"])
        .output()
        .expect("dump");
    assert!(dump.status.success());
    let written = post(
        influx.addr,
        "/write?db=archive_test",
        "text/plain",
        &dump.stdout,
    );
    assert_eq!(written.status, 204, "{}", written.text());

    let last = |measurement: &str| {
        let answer = influx.query(
            "archive_test",
            &format!("SELECT last(value) FROM {measurement}"),
        );
        (
            answer["results"][0]["series"][0]["values"][0][1].clone(),
            answer,
        )
    };
    let served_text = served.text();
    for (measurement, expected) in [
        ("reqs", json!(10)),
        ("\"load avg\"", json!(0.5)),
        // i64::MAX + i64::MAX overflowed into a float sum.
        ("big", json!(18446744073709551614.0_f64)),
    ] {
        let (value, answer) = last(measurement);
        assert_eq!(
            value, expected,
            "{measurement}: {answer}\nserved:\n{served_text}"
        );
    }
    let tagged = influx.query(
        "archive_test",
        "SELECT value FROM \"http.requests\" WHERE code = '200' AND method = 'GET'",
    );
    let values = tagged["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no tagged points: {tagged}\nserved:\n{served_text}"))
        .clone();
    assert_eq!(values.len(), 2, "{tagged}");
    assert!(values.iter().all(|point| point[1] == json!(6)), "{tagged}");
    // Field types as InfluxDB stored them.
    let keys = influx.query("archive_test", "SHOW FIELD KEYS");
    let mut types: Vec<(String, String)> = keys["results"][0]["series"]
        .as_array()
        .expect("field keys")
        .iter()
        .map(|series| {
            (
                series["name"].as_str().unwrap().to_owned(),
                series["values"][0][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    types.sort();
    let expected: Vec<(String, String)> = [
        ("big", "float"),
        ("http.requests", "integer"),
        ("load avg", "float"),
        ("reqs", "integer"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(types, expected);
}

#[test]
fn prometheus_sum_over_two_aggregators_equals_both_hosts() {
    let dir_a = TempDir::new("archive-prom-a");
    let dir_b = TempDir::new("archive-prom-b");
    let mut writers = Processes::new();
    spawn_pipestatic_writer(
        &mut writers,
        dir_a.path(),
        &["reqs=5", "http.requests[code=200]=2", "load=0.5"],
    );
    spawn_pipestatic_writer(
        &mut writers,
        dir_a.path(),
        &["reqs=5", "http.requests[code=500]=1"],
    );
    spawn_pipestatic_writer(
        &mut writers,
        dir_b.path(),
        &["reqs=7", "http.requests[code=200]=4", "load=1.25"],
    );
    let host_a = Aggregator::serve(dir_a.path(), &[]);
    let host_b = Aggregator::serve(dir_b.path(), &[]);
    let prometheus = Prometheus::start(&[host_a.addr(), host_b.addr()]);

    prometheus.wait_for_scalar("count(up == 1)", "2", Duration::from_secs(30));
    prometheus.wait_for_scalar("sum(reqs)", "17", Duration::from_secs(20));
    prometheus.wait_for_scalar("sum(load)", "1.75", Duration::from_secs(20));
    let by_code = wait_until(Duration::from_secs(10), "sum by (code)", || {
        prometheus.query("sum by (code) (http_requests)")
    });
    let mut codes: Vec<(String, String)> = by_code
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            (
                s["metric"]["code"].as_str().unwrap().to_owned(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![
            ("200".to_owned(), "6".to_owned()),
            ("500".to_owned(), "1".to_owned())
        ]
    );
}
