//! The `pipe-writer` binary as scripts use it: lines on stdin, stats in the
//! FIFO, clean exits, and a host with `SIGPIPE` at its default action that
//! survives `head -1`.

mod util;

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use stats_core::Snapshot;
use util::binary::{READ_DEADLINE, spawn};
use util::{TempDir, complete_body, eventually, output_within, read_once};

#[test]
fn lines_on_stdin_become_stats_and_eof_removes_the_fifo() {
    let dir = TempDir::new("bin");
    let mut w = spawn(dir.path(), &[]);
    w.send("jobs += 2\nload avg: 0.5\nnot a stat\nhost:port: 3\njobs += 3\n#pid: 1\n\n");
    w.send("a: b += 1\ntemp: warm\n");
    assert!(eventually(READ_DEADLINE, || {
        w.snapshot().get("a: b") == Some(stats_core::Value::Int(1))
    }));
    let snap = w.snapshot();
    // The process's own figures are checked in stats-pipe-tests
    // (process_stats.rs); here only that they are there.
    let (own, got): (Vec<_>, Vec<_>) = snap
        .iter()
        .map(|(name, value)| (name.to_owned(), format!("{value:?}")))
        .partition(|(name, _)| name.starts_with("process."));
    assert_eq!(own.len(), 5, "{own:?}");
    assert_eq!(
        got,
        [
            ("a: b".to_owned(), "Int(1)".to_owned()),
            ("host:port".to_owned(), "Int(3)".to_owned()),
            ("jobs".to_owned(), "Int(5)".to_owned()),
            ("load avg".to_owned(), "Float(0.5)".to_owned()),
        ]
    );
    let stderr = w.finish();
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
    for expected in [
        "stdin line 3: expected `name: value` or `name += value`",
        "\"not a stat\"",
        "stdin line 6: stat names starting with '#' are reserved",
        "stdin line 9: value \"warm\" is not a number",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
    // One line per skipped line, and the count at the end of input.
    assert!(stderr.contains("(3 so far)"), "{stderr}");
    assert!(
        stderr.ends_with("pipe-writer: end of stdin: 3 of 9 lines skipped\n"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
}

#[test]
fn linger_serves_after_eof_until_sigterm_or_sigint() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let dir = TempDir::new("linger");
        let mut w = spawn(dir.path(), &["--linger"]);
        w.send("kept: 7\n");
        drop(w.stdin.take());
        std::thread::sleep(Duration::from_millis(100));
        assert!(w.child.0.try_wait().unwrap().is_none(), "still running");
        assert_eq!(w.snapshot().get("kept"), Some(stats_core::Value::Int(7)));
        w.child.signal(signal);
        let status = w.child.wait_within(Duration::from_secs(5)).unwrap();
        assert!(status.success(), "{signal}: {status:?}");
        assert!(
            dir.list().is_empty(),
            "{signal}: left behind {:?}",
            dir.list()
        );
    }
}

#[test]
fn a_signal_before_eof_also_removes_the_fifo() {
    let dir = TempDir::new("sigterm");
    let mut w = spawn(dir.path(), &[]);
    w.send("x: 1\n");
    w.child.signal(Signal::SIGTERM);
    let status = w.child.wait_within(Duration::from_secs(5)).unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    assert!(dir.list().is_empty(), "left behind {:?}", dir.list());
}

#[test]
fn head_dash_one_does_not_kill_a_host_with_default_sigpipe() {
    let dir = TempDir::new("head");
    let mut w = spawn(dir.path(), &["--sigpipe-default", "--no-process-stats"]);
    // The host really has SIGPIPE at its default action: not ignored.
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.child.pid())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        ignored & (1 << (Signal::SIGPIPE as u32 - 1)),
        0,
        "SIGPIPE ignored"
    );

    // 10,000 stats, with names long enough that the snapshot outgrows the
    // largest pipe, so `head` hangs up in the middle of the write.
    let padding = "p".repeat(110);
    let mut lines = String::new();
    for i in 0..10_000 {
        lines.push_str(&format!("stat {i:05} {padding} += {i}\n"));
    }
    w.send(&lines);
    assert!(eventually(Duration::from_secs(10), || w.snapshot().len() == 10_000));
    let full = read_once(&w.path, READ_DEADLINE).unwrap();
    assert!(full.len() > 1 << 20, "{} bytes", full.len());

    for _ in 0..3 {
        let out = output_within(
            Command::new("head").arg("-1").arg(&w.path),
            Duration::from_secs(5),
        );
        assert_eq!(out.stdout, b"#stats-pipe: 1\n");
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            w.child.0.try_wait().unwrap().is_none(),
            "the host died: {:?}",
            w.child.0.try_wait()
        );
        let next = output_within(Command::new("cat").arg(&w.path), Duration::from_secs(5));
        let body = complete_body(&next.stdout);
        assert_eq!(Snapshot::parse(body, 1 << 16).0.len(), 10_000);
    }
    drop(w.stdin.take());
    let status = w.child.wait_within(Duration::from_secs(5)).unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_flags_are_reported() {
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_pipe-writer")).args(["--mode", "999"]),
        Duration::from_secs(5),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an octal mode"));
    let dir = TempDir::new("badflag");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_pipe-writer"))
            .arg("--dir")
            .arg(&link),
        Duration::from_secs(5),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
}
