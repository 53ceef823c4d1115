//! The `pipe-writer` binary as a child process fed on stdin, for the tests
//! of what scripts see (binary.rs, binary_spans.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use stats_core::Snapshot;

use super::{ChildGuard, complete_body, read_once};

/// How long a read of its FIFO may take.
pub const READ_DEADLINE: Duration = Duration::from_secs(2);

/// A running `pipe-writer --dir DIR --print-path`.
pub struct Writer {
    /// The process, killed if the test fails.
    pub child: ChildGuard,
    /// Its stdin; dropping it is the end of input.
    pub stdin: Option<ChildStdin>,
    /// The FIFO it serves, as it printed it.
    pub path: PathBuf,
}

/// Starts the binary in `dir` with `extra` flags and waits until it serves.
pub fn spawn(dir: &Path, extra: &[&str]) -> Writer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipe-writer"))
        .arg("--dir")
        .arg(dir)
        .arg("--print-path")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let child = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let path = PathBuf::from(line.trim_end());
    assert_eq!(path, dir.join(format!("{}.stats", child.pid())));
    Writer { child, stdin, path }
}

impl Writer {
    /// Writes `bytes` to its stdin.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes.as_ref()).unwrap();
        stdin.flush().unwrap();
    }

    /// One complete answer of its FIFO, parsed.
    pub fn snapshot(&self) -> Snapshot {
        let bytes = read_once(&self.path, READ_DEADLINE).unwrap();
        Snapshot::parse(complete_body(&bytes), 1 << 16).0
    }

    /// Everything it wrote to stderr (read to its end: call after it exited).
    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        self.child
            .0
            .stderr
            .as_mut()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// Closes stdin, waits for a clean exit, returns stderr.
    pub fn finish(mut self) -> String {
        drop(self.stdin.take());
        let status = self.child.wait_within(Duration::from_secs(5)).unwrap();
        assert!(status.success(), "{status:?}");
        self.stderr()
    }
}
