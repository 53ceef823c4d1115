//! Faults, end to end with real processes, FIFOs, an aggregator and a disk
//! that fills up: a writer SIGKILLed mid-snapshot, a writer whose input
//! stops, a full disk under the archive, and the pipe directory removed
//! (and made again) while everything runs. Outcomes: README "Reliability".

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use host_aggregator::ReadOptions;
use serde_json::Value;
use stats_core::envelope::{Verdict, verify};
use stats_pipe_tests::archive::{run, run_ok, sqlite_json};
use stats_pipe_tests::faults::{
    SmallDisk, entries_of, fifos_of, many_stats, open_and_read_part, read_rest, sigkill,
};
use stats_pipe_tests::live::{Feeder, TempDir, wait_for};
use stats_pipe_tests::serve::{Aggregator, workspace_binary};

const PATIENCE: Duration = Duration::from_secs(20);

/// `/stats` of `aggregator` once `check` accepts it.
fn wait_for_stats(aggregator: &Aggregator, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, PATIENCE, || {
        let response = aggregator.get("/stats");
        let body = if response.status == 200 {
            response.json()
        } else {
            Value::String(response.text())
        };
        if check(&body) {
            Ok(body)
        } else {
            Err(body.to_string())
        }
    })
}

/// Reads `<dir>/<pid>.stats` through the safe reader until it holds
/// `count` stats besides its `process.*` lines (the writer may still be
/// taking its input).
fn wait_for_stat_count(dir: &Path, pid: u32, count: usize) {
    let path = dir.join(format!("{pid}.stats"));
    wait_for("the writer to take all its input", PATIENCE, || {
        let source = host_aggregator::read_one(&path, &ReadOptions::new(dir));
        // The writer's own process.* lines are not its input.
        let seen = source
            .snapshot
            .iter()
            .filter(|(name, _)| !name.starts_with("process."))
            .count();
        if seen == count {
            Ok(())
        } else {
            Err(format!("{seen} stats, {:?}", source.status))
        }
    });
}

fn aggregator_command(dir: &Path) -> Command {
    let mut command = Command::new(workspace_binary("host-aggregator", "host-aggregator"));
    command.arg("--pipe-dir").arg(dir);
    command
}

#[test]
fn a_writer_killed_mid_snapshot_is_told_apart_and_its_pipe_collected() {
    let dir = TempDir::new("killed");
    let mut a = Feeder::start(dir.path());
    a.send("requests += 5");
    let mut b = Feeder::start(dir.path());
    b.send("requests += 7");
    // 40,000 stats: a 2.5 MB snapshot, more than a pipe can hold at once
    // (pipe-max-size is 1 MiB), so the writer is caught inside its write.
    let mut big = Feeder::start(dir.path());
    big.send(many_stats("big", 40_000).trim_end());
    let big_pid = big.pid();
    wait_for_stat_count(dir.path(), big_pid, 40_000);

    let (fifo, head) = open_and_read_part(&dir.path().join(format!("{big_pid}.stats")), 4096);
    std::thread::sleep(Duration::from_millis(200));
    sigkill(big_pid);
    drop(big); // reaps it: a zombie would still look alive
    let read = read_rest(fifo, head);
    assert!(
        read.len() < 40_000 * 50,
        "a whole snapshot arrived: {} bytes",
        read.len()
    );
    assert!(read.starts_with(b"#stats-pipe: 1\n"), "the head is there");
    assert!(
        matches!(verify(&read), Verdict::Incomplete(_)),
        "a cut snapshot must not pass: {:?}",
        verify(&read)
    );

    // No background sweeps: this test is about the `gc` command
    // (tests/tests/dead_pipes.rs has serve's own sweeps).
    let aggregator = Aggregator::serve(dir.path(), &["--max-age", "0s", "--gc-interval", "0s"]);
    let stats = wait_for_stats(&aggregator, "the sum of the two live writers", |s| {
        s["stats"]["requests"] == 12
    });
    assert_eq!(stats["sources"]["ok"], 2, "{stats}");
    let names = stats["stats"].as_object().expect("stats object");
    assert!(
        !names.keys().any(|k| k.starts_with("big.")),
        "a dead writer's gauges are gone"
    );
    let processes = aggregator.get("/processes").json();
    let dead = processes["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == big_pid)
        .unwrap_or_else(|| panic!("no entry for the killed writer: {processes}"));
    assert_eq!(dead["status"], "stale", "{dead}");

    assert!(
        !entries_of(dir.path(), big_pid).is_empty(),
        "a dead writer leaves its FIFOs"
    );
    let gc = run_ok(aggregator_command(dir.path()).arg("gc"));
    assert!(
        gc.contains(&format!("{big_pid}.stats")),
        "gc says what it removed: {gc}"
    );
    assert_eq!(
        entries_of(dir.path(), big_pid),
        Vec::<String>::new(),
        "gc left FIFOs behind"
    );
    for live in [a.pid(), b.pid()] {
        assert_eq!(
            fifos_of(dir.path(), live),
            4,
            "a live writer's pipe and spares stay"
        );
    }
    let stats = aggregator.get("/stats").json();
    assert_eq!(
        (&stats["stats"]["requests"], &stats["sources"]["ok"]),
        (&12.into(), &2.into())
    );
}

#[test]
fn a_writer_whose_input_stops_keeps_serving_its_last_values() {
    let dir = TempDir::new("quiet");
    let mut writer = Feeder::start(dir.path());
    for line in ["jobs += 2", "load: 0.5", "jobs += 3"] {
        writer.send(line);
    }
    let path = dir.path().join(format!("{}.stats", writer.pid()));
    let options = ReadOptions::new(dir.path());
    wait_for("the last input line", PATIENCE, || {
        let source = host_aggregator::read_one(&path, &options);
        let jobs = source.snapshot.get("jobs");
        if jobs == Some(stats_core::Value::Int(5)) {
            Ok(())
        } else {
            Err(format!("{jobs:?}"))
        }
    });
    // Nothing more comes on stdin, which stays open: every read for the
    // next two seconds is a whole, fresh snapshot of the same values.
    let mut last_seq = None;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        let source = host_aggregator::read_one(&path, &options);
        assert_eq!(source.status.to_string(), "ok", "{source:?}");
        assert_eq!(source.snapshot.get("jobs"), Some(stats_core::Value::Int(5)));
        assert_eq!(
            source.snapshot.get("load"),
            Some(stats_core::Value::Float(0.5))
        );
        let seq = source.header.expect("our envelope").seq;
        assert!(last_seq < Some(seq), "seq {seq} after {last_seq:?}");
        last_seq = Some(seq);
    }
}

#[test]
fn a_full_disk_fails_an_archive_run_cleanly_and_the_next_run_recovers() {
    let dir = TempDir::new("full-disk");
    let pipes = dir.path().join("pipes");
    std::fs::create_dir(&pipes).expect("make the pipe directory");
    let mut writer = Feeder::start(&pipes);
    writer.send("requests += 3");
    wait_for_stat_count(&pipes, writer.pid(), 1);
    let disk = SmallDisk::mount(&dir.path().join("disk"), 4 << 20).unwrap_or_else(|why| {
        panic!("this test needs a small tmpfs (run the tests as root): mount failed: {why}")
    });
    let db = disk.path().join("archive.db");
    let archive = |time: &str| {
        run(aggregator_command(&pipes)
            .arg("archive")
            .arg("--db")
            .arg(format!("sqlite:{}", db.display()))
            .args(["--time", time]))
    };

    let first = archive("1000");
    assert!(first.status.success(), "{first:?}");
    writer.send(many_stats("wide", 3000).trim_end());
    wait_for_stat_count(&pipes, writer.pid(), 3001);
    let filled = disk.fill("filler");
    assert!(filled < 4 << 20, "filled {filled} bytes");

    let failed = archive("1001");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "a full disk is exit 1: {failed:?}"
    );
    assert!(
        stderr.to_lowercase().contains("full"),
        "the message says the disk is full: {stderr}"
    );
    assert!(
        stderr.contains(&db.display().to_string()),
        "and names the database: {stderr}"
    );

    std::fs::remove_file(disk.path().join("filler")).expect("free the disk");
    let check = sqlite_json(&db, "PRAGMA integrity_check");
    assert_eq!(check[0]["integrity_check"], "ok", "{check}");
    let runs = sqlite_json(&db, "SELECT time FROM runs ORDER BY time");
    assert_eq!(
        runs,
        serde_json::json!([{"time": 1000}]),
        "the failed run left no row"
    );
    let partial = sqlite_json(&db, "SELECT COUNT(*) AS n FROM samples WHERE time = 1001");
    assert_eq!(partial[0]["n"], 0, "the failed run left no sample");

    let again = archive("1001");
    assert!(
        again.status.success(),
        "the run after freeing space: {again:?}"
    );
    let samples = sqlite_json(
        &db,
        "SELECT COUNT(*) AS n FROM samples WHERE time = 1001 AND pid = 0 \
         AND name NOT LIKE 'process.%'",
    );
    assert_eq!(
        samples[0]["n"], 3001,
        "its input, besides its process.* lines"
    );
}

#[test]
fn the_pipe_directory_removed_and_made_again_recovers_without_restarts() {
    let root = TempDir::new("dir-gone");
    let pipes = root.path().join("pipes");
    std::fs::create_dir(&pipes).expect("make the pipe directory");
    let mut a = Feeder::start(&pipes);
    a.send("requests += 4");
    let mut b = Feeder::start(&pipes);
    b.send("requests += 6");
    let mut aggregator = Aggregator::serve(&pipes, &["--max-age", "0s", "--interval", "200ms"]);
    let both = |s: &Value| s["stats"]["requests"] == 10 && s["sources"]["ok"] == 2;
    wait_for_stats(&aggregator, "both writers", both);

    // Someone removes the directory and makes it again at once.
    std::fs::remove_dir_all(&pipes).expect("remove the pipe directory");
    // (create_dir_all: a writer may have made it in between.)
    std::fs::create_dir_all(&pipes).expect("make it again");
    wait_for_stats(&aggregator, "both writers back in the new directory", both);

    // Removed and left missing: the writers make it again themselves.
    std::fs::remove_dir_all(&pipes).expect("remove the pipe directory");
    wait_for_stats(
        &aggregator,
        "both writers back in a directory they made",
        both,
    );
    let mode = std::fs::metadata(&pipes)
        .expect("the directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o1777, "made like /tmp: sticky and shared");

    for pid in [a.pid(), b.pid()] {
        assert_eq!(fifos_of(&pipes, pid), 4, "pipe and spares of {pid}");
    }
    a.send("requests += 1");
    wait_for_stats(&aggregator, "the same writer still taking input", |s| {
        s["stats"]["requests"] == 11
    });
    assert!(aggregator.is_running());
}
