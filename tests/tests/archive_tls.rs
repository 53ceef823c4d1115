//! End-to-end tests of `host-aggregator archive --db postgres://...` over
//! TLS: the real binary against a real PostgreSQL with a certificate from a
//! test CA made here. Whether the archive's own session was encrypted is
//! read from the server's `connection authorized` log line for that
//! session (found by the `application_name` each run sets), which
//! PostgreSQL ends with `SSL enabled (protocol=...)` for a TLS session.

use std::path::Path;
use std::process::{Command, Stdio};

use stats_pipe_tests::archive::{PgCluster, TestCa, urlencode};
use stats_pipe_tests::hostile::{Processes, TempDir, spawn_pipestatic_writer};
use stats_pipe_tests::ports::free_port;
use stats_pipe_tests::serve::workspace_binary;

/// One archive run: its exit code, stdout and stderr.
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

/// `host-aggregator --pipe-dir DIR archive --db URL --time TIME` with
/// `HOME` set to `home` (where libpq's default root file is looked for)
/// and `env` added.
fn archive(dir: &Path, url: &str, time: u32, home: &Path, env: &[(&str, &Path)]) -> Run {
    let out = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
        .arg("--pipe-dir")
        .arg(dir)
        .args(["archive", "--db", url, "--host", "tls-test", "--time"])
        .arg(time.to_string())
        .args(["--lock-timeout", "5s"])
        .env("HOME", home)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run host-aggregator archive");
    Run {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    /// Asserts the run archived the writer's one sample.
    fn archived(&self) {
        assert_eq!(self.code, Some(0), "{}{}", self.out, self.err);
        assert!(
            self.out.starts_with("archived 1 samples from 1 sources"),
            "{}",
            self.out
        );
    }

    /// Asserts the run failed and returns its message.
    fn failed(&self) -> &str {
        assert_eq!(self.code, Some(1), "{}{}", self.out, self.err);
        assert!(!self.err.contains("panicked"), "{}", self.err);
        &self.err
    }
}

/// Asserts the session named `app` was logged as encrypted (or not).
fn assert_logged(cluster: &PgCluster, app: &str, encrypted: bool) {
    let line = cluster
        .connection_logged(app)
        .unwrap_or_else(|| panic!("no connection of {app} logged:\n{}", cluster.log()));
    assert_eq!(
        line.contains("SSL enabled (protocol=TLS"),
        encrypted,
        "{app}: {line}"
    );
}

/// The samples stored at `time`.
fn stored_at(cluster: &PgCluster, time: u32) -> String {
    cluster.psql(&format!(
        "SELECT COALESCE(SUM(int_value), 0) FROM samples WHERE time = {time}"
    ))
}

#[test]
fn postgres_sslmodes_against_a_server_with_a_test_ca() {
    let ca = TestCa::new("stats-pipe test CA");
    let other = TestCa::new("some other CA");
    let cluster = PgCluster::start_tcp(Some(&ca));
    let pipes = TempDir::new("archive-tls-pipes");
    let mut writers = Processes::new();
    spawn_pipestatic_writer(&mut writers, pipes.path(), &["reqs=5"]);
    let no_roots = TempDir::new("archive-tls-home");
    let root = urlencode(&ca.root().display().to_string());
    let wrong_root = urlencode(&other.root().display().to_string());
    let run = |params: &str, time| {
        archive(
            pipes.path(),
            &cluster.tcp_url(params),
            time,
            no_roots.path(),
            &[],
        )
    };

    // require with no root: encrypted, certificate not checked (libpq's
    // "encrypt only"), and the samples are there.
    run("sslmode=require&application_name=t_require", 1001).archived();
    assert_logged(&cluster, "t_require", true);
    assert_eq!(stored_at(&cluster, 1001), "5");

    // No sslmode: prefer, which encrypts when the server offers TLS.
    run("application_name=t_prefer", 1002).archived();
    assert_logged(&cluster, "t_prefer", true);

    // disable: plain, even though the server offers TLS.
    run("sslmode=disable&application_name=t_disable", 1003).archived();
    assert_logged(&cluster, "t_disable", false);

    // verify-full with the CA that signed the server's certificate.
    run(
        &format!("sslmode=verify-full&sslrootcert={root}&application_name=t_full"),
        1004,
    )
    .archived();
    assert_logged(&cluster, "t_full", true);

    // verify-full with another CA: refused before any login, and the
    // message says the certificate's issuer is unknown and which roots
    // were used.
    let refused = run(
        &format!("sslmode=verify-full&sslrootcert={wrong_root}&application_name=t_wrong"),
        1005,
    );
    let err = refused.failed();
    assert!(
        err.contains("cannot connect in database postgres://postgres:***@localhost:")
            && err.contains(
                "error performing TLS handshake: invalid peer certificate: UnknownIssuer"
            )
            && err.contains(&format!(
                "(sslmode=verify-full, certificate and host name checked against the roots in {})",
                other.root().display()
            )),
        "{err}"
    );
    assert!(!err.contains(TestCa::PASSWORD), "{err}");
    assert_eq!(cluster.connection_logged("t_wrong"), None);
    assert_eq!(stored_at(&cluster, 1005), "0");

    // The certificate names localhost only. Reached as 127.0.0.1,
    // verify-full refuses it for its name; verify-ca checks only the chain.
    let by_ip = |params: &str| {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres?{params}",
            urlencode(TestCa::PASSWORD),
            cluster.port()
        )
    };
    let by_ip_run =
        |params: &str, time| archive(pipes.path(), &by_ip(params), time, no_roots.path(), &[]);
    let err = by_ip_run(&format!("sslmode=verify-full&sslrootcert={root}"), 1006)
        .failed()
        .to_owned();
    assert!(
        err.contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );
    by_ip_run(
        &format!("sslmode=verify-ca&sslrootcert={root}&application_name=t_ca"),
        1007,
    )
    .archived();
    assert_logged(&cluster, "t_ca", true);
    let err = by_ip_run(&format!("sslmode=verify-ca&sslrootcert={wrong_root}"), 1008)
        .failed()
        .to_owned();
    assert!(
        err.contains("UnknownIssuer")
            && err.contains(&format!(
                "(sslmode=verify-ca, certificate checked against the roots in {}, host name not)",
                other.root().display()
            )),
        "{err}"
    );

    // A verifying mode with no root anywhere: says which file it looked for.
    let err = run("sslmode=verify-full", 1009).failed().to_owned();
    assert!(
        err.contains(&format!(
            "cannot set up TLS in database postgres://postgres:***@localhost:{}/postgres?",
            cluster.port()
        )) && err.contains(&format!(
            "sslmode=verify-full checks the server's certificate, but the root certificate file {}/.postgresql/root.crt does not exist",
            no_roots.path().display()
        )),
        "{err}"
    );

    // libpq's default root, ~/.postgresql/root.crt: used by verify-full,
    // and it makes require check the chain too (libpq's rule).
    let home = TempDir::new("archive-tls-home-ca");
    std::fs::create_dir(home.join(".postgresql")).expect("mkdir ~/.postgresql");
    std::fs::copy(ca.root(), home.join(".postgresql/root.crt")).expect("copy root.crt");
    archive(
        pipes.path(),
        &cluster.tcp_url("sslmode=verify-full&application_name=t_home"),
        1010,
        home.path(),
        &[],
    )
    .archived();
    assert_logged(&cluster, "t_home", true);
    let wrong_home = TempDir::new("archive-tls-home-other");
    std::fs::create_dir(wrong_home.join(".postgresql")).expect("mkdir ~/.postgresql");
    std::fs::copy(other.root(), wrong_home.join(".postgresql/root.crt")).expect("copy root.crt");
    let run_wrong_home = archive(
        pipes.path(),
        &cluster.tcp_url("sslmode=require"),
        1011,
        wrong_home.path(),
        &[],
    );
    let err = run_wrong_home.failed();
    assert!(
        err.contains("UnknownIssuer")
            && err.contains(&format!(
                "(sslmode=require, certificate checked against the roots in {}/.postgresql/root.crt, host name not)",
                wrong_home.path().display()
            )),
        "{err}"
    );

    // sslrootcert=system: the system's trust store (here SSL_CERT_FILE
    // holding our CA), verify-full by default, weaker modes refused.
    let system = [("SSL_CERT_FILE", ca.root())];
    let system: Vec<(&str, &Path)> = system.iter().map(|(k, v)| (*k, v.as_path())).collect();
    archive(
        pipes.path(),
        &cluster.tcp_url("sslrootcert=system&application_name=t_system"),
        1012,
        no_roots.path(),
        &system,
    )
    .archived();
    assert_logged(&cluster, "t_system", true);
    let weak = archive(
        pipes.path(),
        &cluster.tcp_url("sslrootcert=system&sslmode=require"),
        1013,
        no_roots.path(),
        &system,
    );
    assert!(
        weak.failed()
            .contains("sslmode=require may not be used with sslrootcert=system (use verify-full"),
        "{}",
        weak.err
    );

    // A wrong password over TLS: the server's reason, not just "db error".
    let url = cluster
        .tcp_url("sslmode=require")
        .replace(&urlencode(TestCa::PASSWORD), "wrong");
    let bad_login = archive(pipes.path(), &url, 1014, no_roots.path(), &[]);
    let err = bad_login.failed();
    assert!(
        err.contains("password authentication failed for user \"postgres\""),
        "{err}"
    );
    assert_eq!(
        cluster
            .psql("SELECT time FROM runs ORDER BY time")
            .lines()
            .collect::<Vec<_>>(),
        ["1001", "1002", "1003", "1004", "1007", "1010", "1012"]
    );
}

#[test]
fn postgres_prefer_connects_plain_to_a_server_without_tls() {
    let cluster = PgCluster::start_tcp(None);
    let pipes = TempDir::new("archive-notls-pipes");
    let mut writers = Processes::new();
    spawn_pipestatic_writer(&mut writers, pipes.path(), &["reqs=5"]);
    let home = TempDir::new("archive-notls-home");
    archive(
        pipes.path(),
        &cluster.tcp_url("sslmode=prefer&application_name=t_plain"),
        2001,
        home.path(),
        &[],
    )
    .archived();
    assert_logged(&cluster, "t_plain", false);
    assert_eq!(stored_at(&cluster, 2001), "5");
    // require will not fall back to plain.
    let run = archive(
        pipes.path(),
        &cluster.tcp_url("sslmode=require"),
        2002,
        home.path(),
        &[],
    );
    assert!(
        run.failed().contains("cannot connect in database")
            && run.err.contains("server does not support TLS"),
        "{}",
        run.err
    );
    assert_eq!(stored_at(&cluster, 2002), "0");
}

#[test]
fn postgres_connection_errors_name_their_cause() {
    let pipes = TempDir::new("archive-cause-pipes");
    let mut writers = Processes::new();
    spawn_pipestatic_writer(&mut writers, pipes.path(), &["reqs=5"]);
    let home = TempDir::new("archive-cause-home");
    // Nothing listens on the port.
    let refused = archive(
        pipes.path(),
        &format!("postgres://u:secret@127.0.0.1:{}/db", free_port()),
        3001,
        home.path(),
        &[],
    );
    let err = refused.failed();
    assert!(
        err.contains("cannot connect in database postgres://u:***@127.0.0.1:")
            && err.contains("error connecting to server: Connection refused"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    // A host name that cannot resolve (.invalid is reserved for that).
    let unknown = archive(
        pipes.path(),
        "postgres://u@no-such-host.invalid/db",
        3002,
        home.path(),
        &[],
    );
    let err = unknown.failed();
    assert!(
        err.contains("error connecting to server: failed to lookup address information"),
        "{err}"
    );
    // A bad sslmode is a usage error (exit 2) naming the accepted values.
    let bad = archive(
        pipes.path(),
        "postgres://u@127.0.0.1/db?sslmode=allow",
        3003,
        home.path(),
        &[],
    );
    assert_eq!(bad.code, Some(2), "{}", bad.err);
    assert_eq!(
        bad.err.trim(),
        "host-aggregator: bad sslmode \"allow\": expected disable, prefer, require, verify-ca or verify-full"
    );
}
