//! Helpers for the live-view tests: `pipe-writer` processes fed from the
//! test, headless Chromium driven through chromedriver's WebDriver HTTP API,
//! and `tmux` sessions as a terminal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{first_stdout_line, workspace_binary};

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/stats-pipe-live-<what>-<pid>-<n>`, created empty.
    ///
    /// # Panics
    /// If it cannot be created.
    pub fn new(what: &str) -> TempDir {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("stats-pipe-live-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `pipe-writer` process serving `<dir>/<pid>.stats`, fed lines by the
/// test; killed and reaped on drop.
#[derive(Debug)]
pub struct Feeder {
    child: Child,
    stdin: ChildStdin,
}

impl Feeder {
    /// Starts `pipe-writer --dir DIR --print-path` and waits until it serves.
    ///
    /// # Panics
    /// If it does not start serving within 30 s.
    pub fn start(dir: &Path) -> Feeder {
        let mut child = Command::new(workspace_binary("pipe-writer", "pipe-writer"))
            .arg("--dir")
            .arg(dir)
            .arg("--print-path")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pipe-writer");
        let stdin = child.stdin.take().expect("piped stdin");
        let path = first_stdout_line(&mut child, "pipe-writer --print-path");
        let feeder = Feeder { child, stdin };
        assert!(path.ends_with(".stats"), "unexpected path line {path:?}");
        feeder
    }

    /// The writer's PID (its pipe is `<dir>/<pid>.stats`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one input line (`name: value` or `name += value`).
    ///
    /// # Panics
    /// If the writer's stdin is closed.
    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to pipe-writer");
        self.stdin.flush().expect("flush pipe-writer stdin");
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 100 ms until it gives `Some`, for at most `limit`.
///
/// # Panics
/// With `what` and the last state seen when time runs out.
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {limit:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The directory for test artifacts: `<target>/test-artifacts/`, created.
///
/// # Panics
/// If it cannot be created.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test binary");
    // target/<profile>/deps/<test binary> → target/
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binary inside target/<profile>/deps");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create test-artifacts dir");
    dir
}

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium session through a chromedriver process, both ended
/// on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// with a fresh profile, its browser log kept.
    ///
    /// # Panics
    /// If chromium or chromedriver is missing (with how to install them),
    /// or the session cannot be made.
    pub fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser test needs Debian's `chromium` package \
             (scripts/install-test-deps.sh installs it)"
        );
        let has_driver = Command::new("chromedriver")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            has_driver,
            "chromedriver is missing: the browser test needs Debian's `chromium-driver` \
             package (scripts/install-test-deps.sh installs it)"
        );
        // chromedriver takes a port number, not port 0: borrow a free one.
        let port = crate::ports::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let profile = TempDir::new("chromium-profile");
        let mut browser = Browser {
            driver,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            _profile: profile,
        };
        wait_for("chromedriver to be ready", Duration::from_secs(30), || {
            if std::net::TcpStream::connect(browser.addr).is_err() {
                return Err("not listening".into());
            }
            let status = browser.call("GET", "/status", None);
            match status["value"]["ready"].as_bool() {
                Some(true) => Ok(()),
                _ => Err(status.to_string()),
            }
        });
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1400,1150".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created = browser.call("POST", "/session", Some(&capabilities));
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {created}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; returns the answer's JSON.
    ///
    /// # Panics
    /// If the answer is not HTTP with a JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.answer(method, path, body).1
    }

    /// One WebDriver command's HTTP status and JSON body.
    fn answer(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let answer = crate::http_client::try_send(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("no HTTP answer to {method} {path}: {e}"));
        let payload = answer.body;
        let json = serde_json::from_slice(&payload).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&payload)
            )
        });
        (answer.status, json)
    }

    /// A session command's `value`. WebDriver says a command failed by
    /// the HTTP status (its body then holds `error` and `message`); a
    /// script's result may hold an `error` key of its own, so the body
    /// alone cannot tell.
    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, answer) = self.answer(method, &path, body);
        if !(200..300).contains(&status) {
            panic!(
                "WebDriver {method} {path} failed (HTTP {status}): {}: {}",
                answer["value"]["error"], answer["value"]["message"]
            );
        }
        answer["value"].clone()
    }

    /// Opens `url`.
    pub fn navigate(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub fn execute(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// A PNG screenshot of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.session_call("GET", "/screenshot", None);
        base64_decode(encoded.as_str().expect("base64 screenshot"))
    }

    /// Asserts that the dashboard's own error hook (`__dashboardErrors`,
    /// set by `dashboard-errors.js`) and the browser console saw no error,
    /// but console entries holding one of `expected` (a request the test
    /// made fail on purpose logs one).
    ///
    /// # Panics
    /// On any other error.
    pub fn assert_no_errors(&self, expected: &[&str]) {
        let errors = self.execute("return window.__dashboardErrors;");
        assert_eq!(
            errors,
            Value::Array(Vec::new()),
            "JavaScript errors on the page"
        );
        let severe: Vec<Value> = self
            .console_log()
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter(|entry| {
                let message = entry["message"].as_str().unwrap_or_default();
                !expected.iter().any(|e| message.contains(e))
            })
            .collect();
        assert!(severe.is_empty(), "console errors: {severe:?}");
    }

    /// The browser's console log so far (each entry has `level` and
    /// `message`); chromedriver's legacy log endpoint, still served in W3C
    /// mode.
    pub fn console_log(&self) -> Vec<Value> {
        let entries = self.session_call("POST", "/se/log", Some(&json!({ "type": "browser" })));
        entries.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &format!("/session/{}", self.session), None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Decodes standard base64 (with or without padding).
///
/// # Panics
/// On a character outside the base64 alphabet.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {:?}", other as char),
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// A tmux server of its own (its own socket) with one detached session:
/// a terminal for a program under test. Killed on drop.
#[derive(Debug)]
pub struct Tmux {
    socket: PathBuf,
    _dir: TempDir,
}

impl Tmux {
    /// Starts `command` (run by the shell) in a `width` × `height` terminal.
    ///
    /// # Panics
    /// If tmux is missing or cannot start.
    pub fn start(command: &str, width: u16, height: u16) -> Tmux {
        let dir = TempDir::new("tmux");
        let tmux = Tmux {
            socket: dir.path().join("socket"),
            _dir: dir,
        };
        let status = tmux
            .command()
            .args(["new-session", "-d", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(command)
            .status()
            .expect("run tmux (Debian package `tmux`)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket);
        command
    }

    /// The visible screen as text.
    pub fn capture(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `keys` (tmux key names, e.g. `q`, `Enter`).
    pub fn send_keys(&self, keys: &str) {
        let status = self
            .command()
            .args(["send-keys", keys])
            .status()
            .expect("tmux send-keys");
        assert!(status.success(), "tmux send-keys {keys} failed");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command()
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}
