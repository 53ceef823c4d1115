//! The `traced_app` test program (issue 16) as a child process: nested
//! tasks traced at every root, driven line by line over stdin.

use std::path::Path;

use crate::kinds::KindsWriter;

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
    app: KindsWriter,
}

impl TracedApp {
    /// Starts it serving in `dir` and waits until its FIFOs are up.
    ///
    /// # Panics
    /// If it does not start.
    pub fn start(dir: &Path) -> TracedApp {
        TracedApp {
            app: KindsWriter::start_binary("traced_app", dir),
        }
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.app.pid()
    }

    /// Sends `run count` without waiting for the answer.
    ///
    /// # Panics
    /// If the program's stdin is closed.
    pub fn send_run(&mut self, count: u64) {
        self.app.write_lines(&[format!("run {count}")]);
    }

    /// Reads the measurements of the requests sent, up to `done`.
    ///
    /// # Panics
    /// If the program ends first or prints something else.
    pub fn read_measured(&mut self) -> Vec<Measured> {
        let mut measured = Vec::new();
        loop {
            let line = self.app.line();
            assert!(!line.is_empty(), "traced_app ended before done");
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
