//! The metric-kind tests' writer: a `kinds_writer` process (this package's
//! test binary, linking pipe-writer and stats-core) driven over its stdin,
//! killed and reaped on drop; also the driver of this package's other
//! writer programs, which share its protocol (`writer_program`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::serve::workspace_binary;

/// One running `kinds_writer --dir DIR`.
#[derive(Debug)]
pub struct KindsWriter {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    path: PathBuf,
}

impl KindsWriter {
    /// Starts a writer serving in `dir` and waits until its FIFO is up.
    ///
    /// # Panics
    /// If it cannot be built, started, or does not say it is serving.
    pub fn start(dir: &Path) -> KindsWriter {
        KindsWriter::start_binary("kinds_writer", dir)
    }

    /// Starts another of this package's writers that speaks the same
    /// protocol (`serving <path>`, then `ok` per command), such as
    /// `calls_writer`.
    ///
    /// # Panics
    /// As [`KindsWriter::start`].
    pub fn start_binary(binary: &str, dir: &Path) -> KindsWriter {
        let mut child = Command::new(workspace_binary("stats-pipe-tests", binary))
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut writer = KindsWriter {
            child,
            stdin,
            stdout,
            path: PathBuf::new(),
        };
        let first = writer.line();
        writer.path = first
            .strip_prefix("serving ")
            .unwrap_or_else(|| panic!("{binary} said {first:?}"))
            .into();
        writer
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The FIFO it serves.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends commands (see the binary's docs) and waits for each `ok`.
    ///
    /// # Panics
    /// If one is refused or the writer is gone.
    pub fn send(&mut self, commands: &[String]) {
        self.write_lines(commands);
        for command in commands {
            let answer = self.line();
            assert_eq!(answer, "ok", "{command}");
        }
    }

    /// Sends commands without reading their answers (for a program that
    /// answers with more than `ok`; read them with [`KindsWriter::line`]).
    ///
    /// # Panics
    /// If the writer's stdin is closed.
    pub fn write_lines(&mut self, commands: &[String]) {
        let stdin = self.stdin.as_mut().expect("writer still has stdin");
        let mut text = String::new();
        for command in commands {
            text.push_str(command);
            text.push('\n');
        }
        stdin
            .write_all(text.as_bytes())
            .expect("write to the writer's stdin");
        stdin.flush().expect("flush the writer's stdin");
    }

    /// Asks it to exit (it stops serving and removes its FIFO) and reaps it.
    ///
    /// # Panics
    /// If it does not exit with status 0.
    pub fn exit(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            stdin.write_all(b"exit\n").expect("write exit");
        }
        let status = self.child.wait().expect("wait for kinds_writer");
        assert!(status.success(), "kinds_writer exited with {status}");
    }

    /// Kills it with SIGKILL (its FIFO stays behind, stale) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its next line of output, without the line end; empty once it
    /// ended.
    ///
    /// # Panics
    /// If its output cannot be read.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read the writer's output");
        line.trim_end().to_owned()
    }
}

impl Drop for KindsWriter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
