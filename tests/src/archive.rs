//! Real database and monitoring servers for the archive tests, each started
//! on loopback in a temp dir and stopped on drop: a throwaway PostgreSQL
//! cluster (initdb/pg_ctl, private socket dir), InfluxDB 1.x (`influxd`) and
//! Prometheus; plus the `sqlite3`/`psql` shells used to check what landed.
//!
//! A missing server binary is a test failure with the install command in
//! the message, never a silent skip.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::hostile::TempDir;
use crate::http_client::{self, HttpResponse};
use crate::ports::free_port;
use crate::serve::request;

/// Finds `name` on `PATH` or in `extra_dirs`.
///
/// # Panics
/// If it is nowhere: the test command installs it
/// (`scripts/install-test-deps.sh`), so its absence is a failure.
pub fn require_binary(name: &str, extra_dirs: &[&str]) -> PathBuf {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_dirs)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run scripts/install-test-deps.sh (the test command does)")
        })
}

/// Runs `command` to completion, returning its output.
///
/// # Panics
/// If it cannot be started.
pub fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs `command` and returns its stdout.
///
/// # Panics
/// If it fails.
pub fn run_ok(command: &mut Command) -> String {
    let out = run(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
///
/// # Panics
/// With `what` if time runs out.
pub fn wait_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sqlite3 -json DB SQL`, parsed (an empty result is `[]`).
///
/// # Panics
/// If `sqlite3` is missing or the query fails.
pub fn sqlite_json(db: &Path, sql: &str) -> serde_json::Value {
    let out = run_ok(
        Command::new(require_binary("sqlite3", &[]))
            .arg("-json")
            .arg(db)
            .arg(sql),
    );
    if out.trim().is_empty() {
        return serde_json::Value::Array(Vec::new());
    }
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("sqlite3 -json gave non-JSON ({e}): {out}"))
}

/// Percent-encodes a query-string value.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST path` with `body`, read whole.
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> HttpResponse {
    send(addr, "POST", path, content_type, body)
}

/// `method path` with `body`, read whole, a chunked answer decoded.
///
/// # Panics
/// If there is no HTTP answer.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> HttpResponse {
    http_client::send(addr, method, path, &[("Content-Type", content_type)], body)
}

/// A GET that returns `None` instead of panicking when nothing listens yet,
/// or when the listener hangs up without an answer (a server still starting,
/// or one dying because it could not open everything it needs).
pub fn try_get(addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    http_client::try_send(addr, "GET", path, &[], b"").ok()
}

/// A child process killed and reaped on drop.
#[derive(Debug)]
pub struct Guarded(pub Child);

impl Guarded {
    /// Polls `ready` until it holds, for at most `limit`; panics with the
    /// server's log if the server exits first or time runs out, so a server
    /// that could not start says why instead of leaving a bare timeout.
    pub fn wait_ready(
        &mut self,
        what: &str,
        log: &Path,
        limit: Duration,
        ready: impl Fn() -> bool,
    ) {
        let start = Instant::now();
        loop {
            if ready() {
                return;
            }
            let show_log = || std::fs::read_to_string(log).unwrap_or_default();
            if let Ok(Some(status)) = self.0.try_wait() {
                panic!(
                    "{what} exited ({status}) before it was ready; its log:\n{}",
                    show_log()
                );
            }
            assert!(
                start.elapsed() < limit,
                "{what} not ready after {limit:?}; its log:\n{}",
                show_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Debian layout of PostgreSQL's server tools.
const PG_BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
];

/// A test certificate authority and a server certificate it signed, made
/// with the `openssl` command in a temp dir: P-256 keys, valid for two days.
/// The server certificate names `localhost` only (no IP address), so a
/// connection to `127.0.0.1` that checks host names refuses it.
#[derive(Debug)]
pub struct TestCa {
    dir: TempDir,
}

impl TestCa {
    /// The password of the `postgres` user over TCP (see
    /// [`PgCluster::start_tcp`]).
    pub const PASSWORD: &str = "archive pw";

    /// Creates the CA (common name `name`) and its server certificate.
    ///
    /// # Panics
    /// If `openssl` is missing or fails.
    pub fn new(name: &str) -> TestCa {
        let openssl = require_binary("openssl", &[]);
        let dir = TempDir::new("ca");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run_ok(
            Command::new(&openssl)
                .current_dir(dir.path())
                .args(["req", "-x509"])
                .args(ec)
                .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj"])
                .arg(format!("/CN={name}"))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        );
        run_ok(
            Command::new(&openssl)
                .current_dir(dir.path())
                .arg("req")
                .args(ec)
                .args(["-keyout", "server.key", "-out", "server.csr"])
                .args(["-subj", "/CN=localhost"]),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        run_ok(
            Command::new(&openssl)
                .current_dir(dir.path())
                .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt"])
                .args(["-CAkey", "ca.key", "-set_serial", "1", "-days", "2"])
                .args(["-extfile", "server.ext", "-out", "server.crt"]),
        );
        TestCa { dir }
    }

    /// The CA's certificate (PEM): the root a client trusts.
    pub fn root(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

/// A throwaway PostgreSQL cluster owned by the `postgres` user (initdb
/// refuses root), listening on a unix socket in its own temp dir with
/// `trust` authentication, and with [`PgCluster::start_tcp`] also on
/// 127.0.0.1. Stopped (immediate mode) on drop.
#[derive(Debug)]
pub struct PgCluster {
    dir: TempDir,
    port: u16,
    pg_ctl: PathBuf,
    tcp: bool,
}

impl PgCluster {
    /// Creates and starts the cluster, on its unix socket only.
    ///
    /// # Panics
    /// If the tools or the `postgres` user are missing, or it does not start.
    pub fn start() -> PgCluster {
        let cluster = PgCluster::init(false);
        cluster.pg_start();
        cluster
    }

    /// Creates and starts a cluster that also listens on 127.0.0.1, where
    /// the `postgres` user logs in with [`TestCa::PASSWORD`] (SCRAM), with
    /// TLS on (`ca`'s server certificate) if `ca` is given, and every
    /// connection logged (`log_connections`, see
    /// [`PgCluster::connection_logged`]).
    ///
    /// # Panics
    /// As [`PgCluster::start`].
    pub fn start_tcp(ca: Option<&TestCa>) -> PgCluster {
        let cluster = PgCluster::init(true);
        let data = cluster.data();
        let mut conf = String::from("log_connections = on\n");
        if let Some(ca) = ca {
            // The server refuses a key others can read: 0600, owned by postgres.
            for file in ["server.crt", "server.key"] {
                let target = data.join(file);
                std::fs::copy(ca.dir.join(file), &target).expect("copy the server certificate");
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod 0600");
                let user = postgres_user();
                nix::unistd::chown(&target, Some(user.uid), Some(user.gid))
                    .expect("chown to postgres");
            }
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        append(&data.join("postgresql.conf"), &conf);
        // Replaces initdb's trust-everything file.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        cluster.pg_start();
        cluster.psql(&format!(
            "ALTER USER postgres PASSWORD '{}'",
            TestCa::PASSWORD
        ));
        cluster
    }

    fn init(tcp: bool) -> PgCluster {
        let initdb = require_binary("initdb", PG_BIN_DIRS);
        let pg_ctl = require_binary("pg_ctl", PG_BIN_DIRS);
        let runuser = require_binary("runuser", &["/usr/sbin", "/sbin"]);
        let user = postgres_user();
        let dir = TempDir::new("pg");
        let data = dir.join("data");
        std::fs::create_dir(&data).expect("create data dir");
        nix::unistd::chown(&data, Some(user.uid), Some(user.gid)).expect("chown data dir");
        run_ok(
            Command::new(&runuser)
                .args(["-u", "postgres", "--"])
                .arg(&initdb)
                .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
                .arg(&data),
        );
        PgCluster {
            dir,
            port: free_port(),
            pg_ctl,
            tcp,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let runuser = require_binary("runuser", &["/usr/sbin", "/sbin"]);
        run(Command::new(runuser)
            .args(["-u", "postgres", "--"])
            .arg(&self.pg_ctl)
            .arg("-D")
            .arg(self.data())
            .args(args))
    }

    /// Starts (or restarts) the server and waits until it accepts
    /// connections.
    pub fn pg_start(&self) {
        let options = format!(
            "-c listen_addresses='{}' -k {} -p {} -c fsync=off",
            if self.tcp { "127.0.0.1" } else { "" },
            self.data().display(),
            self.port
        );
        // The data dir is the one place the postgres user may write.
        let log = self.data().join("server.log");
        let out = self.pg_ctl(&[
            "-w",
            "-t",
            "30",
            "-o",
            &options,
            "-l",
            log.to_str().expect("utf-8"),
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server (fast mode: open sessions are cut off).
    pub fn pg_stop(&self) {
        let out = self.pg_ctl(&["-w", "-m", "fast", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The connection URL host-aggregator takes (socket dir as `host`).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}&port={}",
            self.data().display(),
            self.port
        )
    }

    /// The URL of the TCP listener ([`PgCluster::start_tcp`]) as host
    /// `localhost` (the name in [`TestCa`]'s certificate) at address
    /// 127.0.0.1, with the password, then `params` (`key=value&...`).
    pub fn tcp_url(&self, params: &str) -> String {
        format!(
            "postgres://postgres:{}@localhost:{}/postgres?hostaddr=127.0.0.1&{params}",
            urlencode(TestCa::PASSWORD),
            self.port
        )
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("server.log")).unwrap_or_default()
    }

    /// The `connection authorized` line logged for the session whose
    /// `application_name` is `name`, if there is one: PostgreSQL 15 ends it
    /// with `SSL enabled (protocol=..., cipher=..., bits=...)` when the
    /// session is encrypted.
    pub fn connection_logged(&self, name: &str) -> Option<String> {
        let needle = format!("application_name={name}");
        self.log()
            .lines()
            .find(|line| {
                line.contains("connection authorized:")
                    && line.split_whitespace().any(|word| word == needle)
            })
            .map(str::to_owned)
    }

    /// Runs `sql` through `psql` and returns its unaligned, tuples-only
    /// output (`|`-separated).
    pub fn psql(&self, sql: &str) -> String {
        let psql = require_binary("psql", PG_BIN_DIRS);
        run_ok(Command::new(psql).arg("-h").arg(self.data()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]))
        .trim()
        .to_owned()
    }
}

/// The `postgres` system user.
///
/// # Panics
/// If there is none (the postgresql package creates it).
fn postgres_user() -> nix::unistd::User {
    nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("the `postgres` user (created by the postgresql package)")
}

/// Appends `text` to the file at `path`.
fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot append to {}: {e}", path.display()));
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

/// InfluxDB 1.x on loopback with its data, meta and WAL in a temp dir and
/// usage reporting off.
#[derive(Debug)]
pub struct Influxd {
    _dir: TempDir,
    process: Guarded,
    /// Its HTTP API address.
    pub addr: SocketAddr,
}

impl Influxd {
    /// Starts `influxd` and waits for `/ping`.
    ///
    /// # Panics
    /// If it is missing or does not answer within 30 s.
    pub fn start() -> Influxd {
        let influxd = require_binary("influxd", &[]);
        let dir = TempDir::new("influx");
        let http = free_port();
        let rpc = free_port();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{dir}/meta\"\n\
             [data]\n  dir = \"{dir}/data\"\n  wal-dir = \"{dir}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n",
            dir = dir.path().display()
        );
        let config_path = dir.join("influxdb.conf");
        std::fs::write(&config_path, config).expect("write influxdb.conf");
        let log_path = dir.join("influxd.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(influxd)
            .arg("-config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn influxd");
        let mut server = Influxd {
            _dir: dir,
            process: Guarded(child),
            addr: SocketAddr::from(([127, 0, 0, 1], http)),
        };
        let addr = server.addr;
        server
            .process
            .wait_ready("influxd", &log_path, Duration::from_secs(30), || {
                try_get(addr, "/ping").is_some_and(|r| r.status == 204)
            });
        server
    }

    /// Runs an InfluxQL statement, returning the JSON answer: `POST /query`
    /// for statements that change something, `GET /query` for reads.
    pub fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let params = format!("db={}&q={}", urlencode(db), urlencode(q));
        let read = q.starts_with("SELECT") || q.starts_with("SHOW");
        let answer = if read {
            send(
                self.addr,
                "GET",
                &format!("/query?{params}"),
                "text/plain",
                b"",
            )
        } else {
            post(
                self.addr,
                "/query",
                "application/x-www-form-urlencoded",
                params.as_bytes(),
            )
        };
        assert_eq!(
            answer.status,
            200,
            "query {q:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        serde_json::from_slice(&answer.body).expect("InfluxDB answers JSON")
    }
}

/// Prometheus on loopback scraping `targets` every second, with its TSDB
/// in a temp dir.
#[derive(Debug)]
pub struct Prometheus {
    _dir: TempDir,
    process: Guarded,
    log: PathBuf,
    /// Its HTTP API address.
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts `prometheus` and waits until it is ready.
    ///
    /// # Panics
    /// If it is missing or not ready within 30 s.
    pub fn start(targets: &[SocketAddr]) -> Prometheus {
        let binary = require_binary("prometheus", &[]);
        let dir = TempDir::new("prometheus");
        let port = free_port();
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: stats-pipe\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut server = Prometheus {
            _dir: dir,
            process: Guarded(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log: log_path.clone(),
        };
        let addr = server.addr;
        server
            .process
            .wait_ready("prometheus", &log_path, Duration::from_secs(30), || {
                try_get(addr, "/-/ready").is_some_and(|r| r.status == 200)
            });
        server
    }

    /// An instant PromQL query; the JSON answer's `data.result`, or `None`
    /// if Prometheus could not answer yet (it cancels queries while its
    /// storage is still starting).
    pub fn query(&self, promql: &str) -> Option<serde_json::Value> {
        let answer = request(
            self.addr,
            "GET",
            &format!("/api/v1/query?query={}", urlencode(promql)),
            &[],
        );
        (answer.status == 200).then(|| answer.json()["data"]["result"].clone())
    }

    /// Waits up to `limit` for the instant query `promql` to give the single
    /// value `expected`.
    ///
    /// # Panics
    /// On timeout, with the last answer, the scrape targets' state and the
    /// server's log, so a failure in CI says which side was wrong.
    pub fn wait_for_scalar(&self, promql: &str, expected: &str, limit: Duration) {
        let start = Instant::now();
        let mut last = None;
        loop {
            let result = self.query(promql);
            if result
                .as_ref()
                .and_then(|r| r[0]["value"][1].as_str())
                .is_some_and(|value| value == expected)
            {
                return;
            }
            last = result.or(last);
            if start.elapsed() >= limit {
                let targets = try_get(self.addr, "/api/v1/targets")
                    .map(|r| r.text())
                    .unwrap_or_default();
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "{promql} != {expected} after {limit:?}; last answer: {last:?}\n\
                     targets: {targets}\nlog:\n{log}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
