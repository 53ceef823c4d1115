//! Issue 13, "Commands behave as documented": each row of the table
//! about flags and messages, re-run as written against the real binaries:
//! usage errors exit 2, `--db PATH`, one duration syntax, the `--listen`
//! forms, `show` and `dump --pid` on a missing PID, PostgreSQL errors
//! with their cause and never the password, and the pipe-writer README
//! example that used to race its own FIFO.

use std::path::Path;
use std::process::{Command, Stdio};

use stats_pipe_tests::archive::{PgCluster, urlencode};
use stats_pipe_tests::hostile::{Processes, TempDir, spawn_pipestatic_writer};
use stats_pipe_tests::serve::{first_stdout_line, request, workspace_binary};

/// Runs `host-aggregator <args>` with `HOME` and `XDG_DATA_HOME` in `home`
/// (so a default database would land there); returns (exit code, stdout,
/// stderr).
fn cli_in(home: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("run host-aggregator");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A pipe directory with one writer serving `reqs=5`.
fn pipes_with_a_writer(processes: &mut Processes) -> TempDir {
    let pipes = TempDir::new("cli-pipes");
    spawn_pipestatic_writer(processes, pipes.path(), &["reqs=5"]);
    pipes
}

#[test]
fn archive_db_takes_a_plain_path_and_sqlite_path_and_refuses_the_rest_with_exit_2() {
    let mut processes = Processes::new();
    let pipes = pipes_with_a_writer(&mut processes);
    let home = TempDir::new("cli-home");
    let dir = pipes.path().to_str().expect("utf-8");
    // `--db /tmp/x.db`: a plain path works.
    let plain = home.path().join("x.db");
    let (code, out, err) = cli_in(
        home.path(),
        &[
            "--pipe-dir",
            dir,
            "archive",
            "--db",
            plain.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("into sqlite:{}", plain.display())),
        "{out}"
    );
    assert!(plain.exists());
    // `--db sqlite:PATH` too.
    let prefixed = home.path().join("y.db");
    let (code, out, err) = cli_in(
        home.path(),
        &[
            "--pipe-dir",
            dir,
            "archive",
            "--db",
            &format!("sqlite:{}", prefixed.display()),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(prefixed.exists());
    // An empty path is refused, not read as the default file.
    for empty in ["sqlite:", ""] {
        let (code, out, err) = cli_in(home.path(), &["--pipe-dir", dir, "archive", "--db", empty]);
        assert_eq!(code, 2, "--db {empty:?}: {out}{err}");
        assert!(err.contains("non-empty path"), "{err}");
        assert!(out.is_empty(), "{out}");
    }
    assert!(
        !home.path().join("data/stats-pipe/archive.db").exists(),
        "an empty --db wrote the default database"
    );
    // Another scheme: exit 2, the accepted ones named, the password hidden.
    let (code, _, err) = cli_in(
        home.path(),
        &[
            "--pipe-dir",
            dir,
            "archive",
            "--db",
            "mysql://root:hunter2@db/stats",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("PATH, sqlite:PATH or postgres://USER@HOST/DB"),
        "{err}"
    );
    assert!(err.contains("mysql://root:***@db/stats"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn archive_from_without_http_is_a_usage_error() {
    let home = TempDir::new("cli-from");
    let (code, out, err) = cli_in(home.path(), &["archive", "--from", "127.0.0.1:7828"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("bad --from URL \"127.0.0.1:7828\": expected http://HOST[:PORT]"),
        "{err}"
    );
    // A password in the URL is not echoed either.
    let (code, _, err) = cli_in(
        home.path(),
        &["archive", "--from", "https://me:hunter2@agg:7828"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn every_duration_flag_takes_the_same_syntax_and_refuses_a_bare_number() {
    let mut processes = Processes::new();
    let pipes = pipes_with_a_writer(&mut processes);
    let home = TempDir::new("cli-durations");
    let dir = pipes.path().to_str().expect("utf-8");
    let db = home.path().join("d.db");
    let db = db.to_str().unwrap();
    // Each flag with a bare number: exit 2 and the one message.
    let flags: [&[&str]; 5] = [
        &["--pipe-dir", dir, "--deadline", "1", "dump"],
        &["--pipe-dir", dir, "serve", "--max-age", "1"],
        &["--pipe-dir", dir, "serve", "--interval", "1"],
        &["--pipe-dir", dir, "top", "--interval", "1"],
        &[
            "--pipe-dir",
            dir,
            "archive",
            "--db",
            db,
            "--lock-timeout",
            "1",
        ],
    ];
    for args in flags {
        let (code, out, err) = cli_in(home.path(), args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains("bad duration \"1\": expected a number with a unit: 100ms, 1.5s, 2m")
                && err.contains("5 seconds is 5s"),
            "{args:?}: {err}"
        );
    }
    // The row: `archive --lock-timeout 1s` works.
    let (code, out, err) = cli_in(
        home.path(),
        &[
            "--pipe-dir",
            dir,
            "archive",
            "--db",
            db,
            "--lock-timeout",
            "1s",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("archived 1 samples"), "{out}");
    // 100ms, 1s and 2m everywhere a duration goes.
    for value in ["100ms", "1s", "2m"] {
        let (code, out, err) = cli_in(
            home.path(),
            &[
                "--pipe-dir",
                dir,
                "--deadline",
                value,
                "dump",
                "--format",
                "text",
            ],
        );
        assert_eq!(code, 0, "--deadline {value}: {out}{err}");
        assert!(out.contains("reqs: 5"), "{out}");
        let (code, out, err) = cli_in(
            home.path(),
            &[
                "--pipe-dir",
                dir,
                "top",
                "--count",
                "1",
                "--interval",
                value,
            ],
        );
        assert_eq!(code, 0, "top --interval {value}: {out}{err}");
        let (code, out, err) = cli_in(
            home.path(),
            &[
                "--pipe-dir",
                dir,
                "archive",
                "--db",
                db,
                "--lock-timeout",
                value,
                "--time",
                "1000",
            ],
        );
        assert_eq!(code, 0, "--lock-timeout {value}: {out}{err}");
        let mut serve = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
            .args(["--pipe-dir", dir, "serve", "--listen", "127.0.0.1:0"])
            .args(["--max-age", value, "--interval", value])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let line = first_stdout_line(&mut serve, "serve");
        assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
        serve.kill().expect("kill serve");
        serve.wait().expect("reap serve");
    }
}

/// Starts `serve --listen <listen> <extra>`; returns the bound address
/// line's address, the answer of `/healthz` there, after killing it.
fn serve_on(dir: &Path, listen: &str, extra: &[&str]) -> (std::net::SocketAddr, u16) {
    let mut child = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
        .arg("--pipe-dir")
        .arg(dir)
        .args(["serve", "--listen", listen])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let line = first_stdout_line(&mut child, "serve");
    let addr: std::net::SocketAddr = line
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    // Reached over loopback whatever the bound address.
    let probe = std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let status = request(probe, "GET", "/healthz", &[]).status;
    child.kill().expect("kill serve");
    child.wait().expect("reap serve");
    (addr, status)
}

#[test]
fn listen_takes_host_port_colon_port_and_localhost() {
    let mut processes = Processes::new();
    let pipes = pipes_with_a_writer(&mut processes);
    let home = TempDir::new("cli-listen");
    // `:PORT`: every interface, with --allow-remote.
    let (addr, status) = serve_on(pipes.path(), ":0", &["--allow-remote", "--token", "t"]);
    assert!(addr.ip().is_unspecified(), "{addr}");
    assert_eq!(status, 200);
    // ...and refused without it, as a usage error.
    let dir = pipes.path().to_str().unwrap();
    let (code, out, err) = cli_in(home.path(), &["--pipe-dir", dir, "serve", "--listen", ":0"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--allow-remote"), "{err}");
    // `localhost:PORT` is 127.0.0.1.
    let (addr, status) = serve_on(pipes.path(), "localhost:0", &[]);
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_eq!(status, 200);
    // `HOST:PORT` as before.
    let (addr, status) = serve_on(pipes.path(), "127.0.0.1:0", &[]);
    assert!(addr.ip().is_loopback());
    assert_eq!(status, 200);
    // A bare port is refused with the forms that work.
    let (code, out, err) = cli_in(
        home.path(),
        &["--pipe-dir", dir, "serve", "--listen", "7828"],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("bad listen address \"7828\"") && err.contains("127.0.0.1:PORT or :PORT"),
        "{err}"
    );
}

#[test]
fn show_and_dump_pid_say_the_same_for_a_missing_pid() {
    let mut processes = Processes::new();
    let pipes = pipes_with_a_writer(&mut processes);
    let home = TempDir::new("cli-missing-pid");
    let dir = pipes.path().to_str().unwrap();
    let (show_code, show_out, show) = cli_in(home.path(), &["--pipe-dir", dir, "show", "4242"]);
    let (dump_code, _, dump) = cli_in(home.path(), &["--pipe-dir", dir, "dump", "--pid", "4242"]);
    let want = format!("host-aggregator: no stats pipe for PID 4242 in {dir}\n");
    assert_eq!(show, want);
    assert_eq!(dump, want);
    assert_eq!((show_code, dump_code), (1, 1));
    assert!(show_out.is_empty());
}

#[test]
fn postgres_errors_carry_their_cause_and_never_the_password() {
    let cluster = PgCluster::start_tcp(None);
    let mut processes = Processes::new();
    let pipes = pipes_with_a_writer(&mut processes);
    let home = TempDir::new("cli-pg");
    let dir = pipes.path().to_str().unwrap();
    let secret = "hunter2 wrong";
    let encoded = urlencode(secret);
    let port = cluster.port();
    let urls = [
        // In the user info, and as a query parameter.
        format!("postgres://postgres:{encoded}@127.0.0.1:{port}/postgres?sslmode=disable"),
        format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable&password={encoded}"),
    ];
    for url in &urls {
        let (code, out, err) = cli_in(
            home.path(),
            &[
                "--pipe-dir",
                dir,
                "archive",
                "--db",
                url,
                "--lock-timeout",
                "5s",
            ],
        );
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains("password authentication failed for user \"postgres\""),
            "{err}"
        );
        assert!(
            err.contains("password=***") || err.contains("postgres:***@"),
            "{err}"
        );
        assert!(!err.contains(&encoded) && !err.contains("hunter2"), "{err}");
    }
    // The server gone: the cause (refused) and still no password.
    cluster.pg_stop();
    let (code, _, err) = cli_in(
        home.path(),
        &[
            "--pipe-dir",
            dir,
            "archive",
            "--db",
            &urls[0],
            "--lock-timeout",
            "5s",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // A password that does not even decode is not echoed.
    let (code, _, err) = cli_in(
        home.path(),
        &[
            "--pipe-dir",
            dir,
            "archive",
            "--db",
            "postgres://u@127.0.0.1/db?password=hunter2%zz",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_pipe_writer_readme_example_never_races_its_fifo() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipe-writer/README.md"),
    )
    .expect("read pipe-writer/README.md");
    let example: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("path=$("))
        .take(2)
        .collect();
    assert_eq!(example.len(), 2, "no `path=$(...)` example in the README");
    assert_eq!(example[1], "cat \"$path\"");
    let writer = workspace_binary("pipe-writer", "pipe-writer");
    let bin_dir = writer.parent().expect("target dir");
    let demo = TempDir::new("cli-readme");
    // As written, with the demo dir ours and a shorter sleep.
    let script = example
        .join("\n")
        .replace("/tmp/demo", demo.path().to_str().unwrap())
        .replace("sleep 60", "sleep 2")
        .replace("cat \"$path\"", "timeout 5 cat \"$path\"");
    for run in 0..8 {
        let output = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .stdin(Stdio::null())
            .output()
            .expect("run sh");
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "run {run}: {out}{err}");
        assert!(
            !err.contains("No such file or directory"),
            "run {run}: {err}"
        );
        assert!(out.contains("process.uptime_seconds: "), "run {run}: {out}");
    }
}
