//! `scripts/install.sh` (issue 13): installs both binaries, the cron wrapper
//! and the systemd units into a temp prefix, from the binaries this test run
//! already built (`--from`, no second build); then the installed wrapper and
//! the installed archive unit's command run with cron's bare environment
//! (`env -i PATH=/usr/bin:/bin`) against a real writer (the installed
//! `pipe-writer`), a temp pipe directory and a temp SQLite database, and
//! their samples land.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use serde_json::json;
use stats_pipe_tests::archive::{Guarded, sqlite_json};
use stats_pipe_tests::hostile::TempDir;
use stats_pipe_tests::serve::workspace_binary;

/// cron's PATH (and what `env -i` leaves a shell script with, near enough).
const CRON_PATH: &str = "/usr/bin:/bin";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory holding this run's built `host-aggregator` and
/// `pipe-writer` (built here if they are not yet).
fn built_dir() -> PathBuf {
    let aggregator = workspace_binary("host-aggregator", "host-aggregator");
    let writer = workspace_binary("pipe-writer", "pipe-writer");
    let dir = aggregator.parent().expect("binary in a directory");
    assert_eq!(writer.parent(), Some(dir));
    dir.to_path_buf()
}

fn install(args: &[&str]) -> Output {
    let out = Command::new(repo().join("scripts/install.sh"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/install.sh");
    assert!(
        out.status.success(),
        "install.sh {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A writer: the installed `pipe-writer`, fed on stdin, serving in `dir`.
struct Writer {
    child: Guarded,
    stdin: ChildStdin,
}

impl Writer {
    fn start(binary: &Path, dir: &Path, lines: &str) -> Writer {
        let mut child: Child = Command::new(binary)
            .env_clear()
            .env("PATH", CRON_PATH)
            .arg("--dir")
            .arg(dir)
            .arg("--print-path")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the installed pipe-writer");
        let mut stdin = child.stdin.take().expect("its stdin");
        let stdout = child.stdout.take().expect("its stdout");
        let mut path = String::new();
        BufReader::new(stdout)
            .read_line(&mut path)
            .expect("read --print-path");
        assert!(
            Path::new(path.trim_end()).starts_with(dir),
            "pipe-writer printed {path:?}"
        );
        stdin.write_all(lines.as_bytes()).expect("feed pipe-writer");
        stdin.flush().expect("flush");
        Writer {
            child: Guarded(child),
            stdin,
        }
    }
}

/// Waits until the writer's stats are served (its last line applied).
fn wait_served(aggregator: &Path, dir: &Path, pid: u32, want: &str) {
    stats_pipe_tests::archive::wait_until(
        std::time::Duration::from_secs(10),
        "the writer to serve its stats",
        || {
            let out = Command::new(aggregator)
                .arg("--pipe-dir")
                .arg(dir)
                .args(["show", &pid.to_string()])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .contains(want)
                .then_some(())
        },
    );
}

#[test]
fn installed_wrapper_and_unit_archive_under_cron_path() {
    let tmp = TempDir::new("install");
    let prefix = tmp.join("prefix");
    let units = tmp.join("units");
    let out = install(&[
        "--prefix",
        prefix.to_str().expect("UTF-8 temp path"),
        "--systemd-dir",
        units.to_str().expect("UTF-8 temp path"),
        "--from",
        built_dir().to_str().expect("UTF-8 target path"),
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("building"), "--from must not build: {said}");

    let bin = prefix.join("bin");
    for name in ["host-aggregator", "pipe-writer", "stats-archive-cron.sh"] {
        assert!(
            is_executable(&bin.join(name)),
            "{name} not installed in {bin:?}"
        );
    }
    for doc in ["README.md", "ARCHIVE.md"] {
        assert!(
            prefix.join("share/doc/stats-pipe").join(doc).is_file(),
            "{doc}"
        );
    }

    // Every unit that runs host-aggregator names the installed one, and
    // nothing of /usr/local is left in them.
    let aggregator = bin.join("host-aggregator");
    let mut archive_exec = None;
    for unit in [
        "host-aggregator.service",
        "stats-archive.service",
        "stats-archive.timer",
    ] {
        let text = std::fs::read_to_string(units.join(unit)).expect("installed unit");
        assert!(
            !text.contains("/usr/local"),
            "{unit} still names /usr/local:\n{text}"
        );
        for exec in text.lines().filter_map(|l| l.strip_prefix("ExecStart=")) {
            let program = exec.split_whitespace().next().unwrap_or_default();
            assert_eq!(Path::new(program), aggregator, "{unit}: {exec}");
            if unit == "stats-archive.service" {
                archive_exec = Some(exec.to_owned());
            }
        }
        if unit.ends_with(".service") {
            assert!(
                text.contains(&format!("ExecStart={}", aggregator.display())),
                "{unit}"
            );
        }
    }

    // A real writer, started from the installed binary.
    let pipes = tmp.join("pipes");
    std::fs::create_dir(&pipes).expect("mkdir the pipe directory");
    let mut writer = Writer::start(
        &bin.join("pipe-writer"),
        &pipes,
        "jobs += 3\nload: 0.5\njobs += 4\n",
    );
    let pid = writer.child.0.id();
    wait_served(&aggregator, &pipes, pid, "jobs: 7");

    // The wrapper as cron runs it: a bare environment, PATH=/usr/bin:/bin,
    // its settings in the environment (scripts/stats-archive-cron.sh).
    let db = tmp.join("db/archive.db");
    let wrapper = Command::new("/usr/bin/env")
        .arg("-i")
        .arg(format!("PATH={CRON_PATH}"))
        .arg(format!("STATS_PIPE_DIR={}", pipes.display()))
        .arg(format!("STATS_ARCHIVE_DB=sqlite:{}", db.display()))
        .arg(format!(
            "STATS_ARCHIVE_LOCK={}",
            tmp.join("cron.lock").display()
        ))
        .arg("STATS_ARCHIVE_ARGS=--host box1 --per-process")
        .arg(bin.join("stats-archive-cron.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("run the installed wrapper");
    let log = String::from_utf8_lossy(&wrapper.stdout);
    assert!(
        wrapper.status.success(),
        "wrapper failed ({}): {log}{}",
        wrapper.status,
        String::from_utf8_lossy(&wrapper.stderr)
    );
    assert!(log.contains("from 1 sources (host box1"), "{log}");
    let host_wide = sqlite_json(
        &db,
        "SELECT name, int_value, float_value FROM samples \
         WHERE host = 'box1' AND pid = 0 AND name IN ('jobs', 'load') ORDER BY name",
    );
    assert_eq!(
        host_wide,
        json!([
            {"name": "jobs", "int_value": 7, "float_value": null},
            {"name": "load", "int_value": null, "float_value": 0.5},
        ])
    );
    let own = sqlite_json(
        &db,
        &format!("SELECT int_value FROM samples WHERE pid = {pid} AND name = 'jobs'"),
    );
    assert_eq!(own, json!([{"int_value": 7}]));

    // The archive unit's command line, as systemd would run it: its
    // ${STATS_ARCHIVE_DB} filled in, the same bare PATH.
    let exec = archive_exec.expect("stats-archive.service has an ExecStart");
    let unit_db = tmp.join("unit.db");
    let args: Vec<String> = exec
        .split_whitespace()
        .map(|word| {
            word.replace(
                "${STATS_ARCHIVE_DB}",
                &format!("sqlite:{}", unit_db.display()),
            )
        })
        .collect();
    let unit_run = Command::new("/usr/bin/env")
        .arg("-i")
        .arg(format!("PATH={CRON_PATH}"))
        .arg(format!("STATS_PIPE_DIR={}", pipes.display()))
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run the unit's ExecStart");
    assert!(
        unit_run.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&unit_run.stdout),
        String::from_utf8_lossy(&unit_run.stderr)
    );
    assert_eq!(
        sqlite_json(
            &unit_db,
            "SELECT int_value FROM samples WHERE pid = 0 AND name = 'jobs'"
        ),
        json!([{"int_value": 7}])
    );

    drop(writer.stdin);
    let status = writer.child.0.wait().expect("wait for pipe-writer");
    assert!(status.success(), "pipe-writer exited {status}");
}

/// `--destdir` stages under a directory and `--no-systemd` leaves the units
/// out; the wrapper alone, with no host-aggregator beside it or on cron's
/// PATH, says every place it looked.
#[test]
fn destdir_no_systemd_and_a_wrapper_that_finds_nothing_says_where_it_looked() {
    let tmp = TempDir::new("install-destdir");
    let stage = tmp.join("stage");
    install(&[
        "--destdir",
        stage.to_str().expect("UTF-8 temp path"),
        "--prefix",
        "/opt/stats-pipe",
        "--systemd-dir",
        "/etc/systemd/system",
        "--no-systemd",
        "--from",
        built_dir().to_str().expect("UTF-8 target path"),
    ]);
    let bin = stage.join("opt/stats-pipe/bin");
    for name in ["host-aggregator", "pipe-writer", "stats-archive-cron.sh"] {
        assert!(
            is_executable(&bin.join(name)),
            "{name} not staged in {bin:?}"
        );
    }
    assert!(!stage.join("etc").exists(), "--no-systemd installed units");

    // Usage errors exit 2 and install nothing.
    let bad = Command::new(repo().join("scripts/install.sh"))
        .args(["--prefix", "relative/dir", "--from", "/nonexistent"])
        .output()
        .expect("run install.sh");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("absolute path"));

    let lonely = tmp.join("lonely");
    std::fs::create_dir(&lonely).expect("mkdir");
    // The wrapper names its own directory with symlinks resolved.
    let lonely = lonely.canonicalize().expect("canonical temp path");
    let wrapper = lonely.join("stats-archive-cron.sh");
    std::fs::copy(bin.join("stats-archive-cron.sh"), &wrapper).expect("copy the wrapper");
    let out = Command::new("/usr/bin/env")
        .arg("-i")
        .arg(format!("PATH={CRON_PATH}"))
        .arg(format!("STATS_ARCHIVE_LOCK={}", tmp.join("lock").display()))
        .arg(format!(
            "STATS_ARCHIVE_DB=sqlite:{}",
            tmp.join("x.db").display()
        ))
        .arg(&wrapper)
        .stdin(Stdio::null())
        .output()
        .expect("run the wrapper");
    let log = String::from_utf8_lossy(&out.stdout);
    if Path::new("/usr/local/bin/host-aggregator").exists() {
        // Installed on this machine: the last place looked finds it.
        assert!(!log.contains("not found"), "{log}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{log}");
        for tried in [
            format!("{}/host-aggregator", lonely.display()),
            format!("host-aggregator on PATH ({CRON_PATH})"),
            "/usr/local/bin/host-aggregator".to_owned(),
            "HOST_AGGREGATOR=".to_owned(),
        ] {
            assert!(log.contains(&tried), "{tried:?} missing from: {log}");
        }
    }
}
