//! The `traced_app` test program (issue 16) as a child process: nested
//! tasks traced at every root, driven line by line over stdin.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::serve::workspace_binary;

/// What the program measured of one request: `(name, offset_ns,
/// duration_ns)` for `request`, `db.query` and `cache`.
#[derive(Clone, Debug)]
pub struct Measured {
    /// The request's number in its process, from 1.
    pub n: u64,
    /// The three spans as the program timed them.
    pub spans: Vec<(String, u64, u64)>,
}

/// A running `traced_app`, killed and reaped on drop.
#[derive(Debug)]
pub struct TracedApp {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl TracedApp {
    /// Starts it serving in `dir` and waits until its FIFOs are up.
    ///
    /// # Panics
    /// If it does not start.
    pub fn start(dir: &Path) -> TracedApp {
        let mut child = Command::new(workspace_binary("stats-pipe-tests", "traced_app"))
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn traced_app");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = stdout.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.starts_with("serving "), "traced_app said {first:?}");
        TracedApp {
            child,
            stdin,
            stdout,
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `run count` without waiting for the answer.
    ///
    /// # Panics
    /// If the program's stdin is closed.
    pub fn send_run(&mut self, count: u64) {
        writeln!(self.stdin, "run {count}").expect("write to traced_app");
        self.stdin.flush().expect("flush traced_app's stdin");
    }

    /// Reads the measurements of the requests sent, up to `done`.
    ///
    /// # Panics
    /// If the program ends first or prints something else.
    pub fn read_measured(&mut self) -> Vec<Measured> {
        let mut measured = Vec::new();
        loop {
            let line = self
                .stdout
                .next()
                .and_then(Result::ok)
                .expect("traced_app ended before done");
            if line == "done" {
                return measured;
            }
            let json: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let spans = json["spans"]
                .as_array()
                .expect("spans")
                .iter()
                .map(|s| {
                    (
                        s[0].as_str().expect("name").to_owned(),
                        s[1].as_u64().expect("offset"),
                        s[2].as_u64().expect("duration"),
                    )
                })
                .collect();
            measured.push(Measured {
                n: json["n"].as_u64().expect("n"),
                spans,
            });
        }
    }

    /// Runs `count` requests and returns what the program measured.
    pub fn run(&mut self, count: u64) -> Vec<Measured> {
        self.send_run(count);
        self.read_measured()
    }
}

impl Drop for TracedApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
