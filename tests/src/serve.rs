//! Running the workspace's real binaries from the end-to-end tests (built on
//! demand), the `host-aggregator serve` process behind a guard, and a tiny
//! HTTP/1.1 client on a plain `TcpStream` (so the server is checked by code
//! that shares nothing with it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The path of binary `name` of workspace package `package`, built first
/// (once per test process) with the same cargo, target dir and profile as
/// the tests: a test package cannot depend on another package's binaries.
///
/// # Panics
/// If the build fails.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // target/<profile>/deps/<test binary> → target/<profile>/
    let exe = std::env::current_exe().expect("current test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary inside target/<profile>/deps");
    let path = profile_dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", package, "--bin", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        // Build into the directory this test binary lives in.
        if let Some(target) = profile_dir.parent() {
            build.env("CARGO_TARGET_DIR", target);
        }
        let status = build.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} --bin {name} failed"
        );
        built.push(name.to_owned());
    }
    path
}

/// A running `host-aggregator serve` on a free loopback port, killed and
/// reaped on drop.
#[derive(Debug)]
pub struct Aggregator {
    child: Child,
    addr: SocketAddr,
}

/// The first line `child` prints on its piped stdout, waiting up to 30 s;
/// the rest is drained in the background so the child never writes into a
/// closed pipe.
///
/// # Panics
/// If stdout is not piped or no line comes in time (naming `what`).
pub fn first_stdout_line(child: &mut Child, what: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} printed nothing on stdout within 30 s"))
}

impl Aggregator {
    /// Starts `host-aggregator serve --listen 127.0.0.1:0 --pipe-dir DIR
    /// <extra>` and waits for the address it prints.
    ///
    /// # Panics
    /// If it does not start or print its address within 30 s.
    pub fn serve(dir: &Path, extra: &[&str]) -> Aggregator {
        Aggregator::serve_with(
            Command::new(workspace_binary("host-aggregator", "host-aggregator")),
            dir,
            extra,
        )
    }

    /// [`Aggregator::serve`] with its soft and hard limits on open
    /// descriptors both set to `limit` (by `prlimit`, which then runs it
    /// under the same PID).
    pub fn serve_with_descriptor_limit(dir: &Path, extra: &[&str], limit: u32) -> Aggregator {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={limit}:{limit}"))
            .arg("--")
            .arg(workspace_binary("host-aggregator", "host-aggregator"));
        Aggregator::serve_with(command, dir, extra)
    }

    fn serve_with(mut command: Command, dir: &Path, extra: &[&str]) -> Aggregator {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--pipe-dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn host-aggregator serve");
        let first = first_stdout_line(&mut child, "host-aggregator serve");
        let mut guard = Aggregator {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        guard.addr = first
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        guard
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> HttpResponse {
        request(self.addr, "GET", path, &[])
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now, in bytes (`VmRSS`).
    ///
    /// # Panics
    /// If `/proc/<pid>/status` cannot be read.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the aggregator's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS in /proc status")
            * 1024
    }

    /// The most resident memory it has had so far, in bytes (`VmHWM`).
    ///
    /// # Panics
    /// If `/proc/<pid>/status` cannot be read.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the aggregator's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc status")
            * 1024
    }

    /// The CPU time it has used so far (user and system).
    ///
    /// # Panics
    /// If `/proc/<pid>/stat` cannot be read.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read the aggregator's /proc stat");
        // Fields after the command name (which may hold spaces): state is
        // field 3, utime and stime fields 14 and 15.
        let after = &stat[stat.rfind(')').expect("(comm) in stat") + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use crate::http_client::{HttpResponse, try_parse_response};

/// Sends one `method path` request with `headers` and `Connection: close`,
/// and reads the whole response.
///
/// # Panics
/// If the connection fails or the response is not HTTP.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    crate::http_client::send(addr, method, path, headers, b"")
}

/// Writes `bytes` to a fresh connection, closes our side for writing, and
/// reads until the server closes it (at most 30 s).
///
/// # Panics
/// If the connection cannot be made.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect to the aggregator");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set read timeout");
    // The server may hang up on garbage before reading it all.
    let _ = stream.write_all(bytes);
    // Say we are done, so a request cut short ends instead of waiting.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    raw
}

/// Runs `promtool check metrics` on `text`; returns its exit code and
/// output.
///
/// # Panics
/// If promtool is not installed (`scripts/install-test-deps.sh` installs
/// it).
pub fn promtool_check_metrics(text: &[u8]) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed: run scripts/install-test-deps.sh");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text)
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool ran");
    let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), said)
}
