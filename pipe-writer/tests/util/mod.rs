//! Helpers for the pipe-writer tests: unique temp dirs, a safe FIFO reader
//! (non-blocking open, poll with a deadline, per docs/FIFO.md), child
//! processes that are killed if a test fails, and registries to serve.
#![allow(dead_code)]

pub mod binary;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::{Pid, read};
use stats_core::Registry;
use stats_core::envelope::{Verdict, verify};

/// A directory of its own for one test, removed at the end.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("pipe-writer-test-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Names in the directory, sorted; a writers' spare directory
    /// (`.spares-<uid>`) is not listed itself, its entries are, as
    /// `.spares-<uid>/<name>` (so an empty one is left out).
    /// The traces subdirectory (`traces/`) is listed the same way, its
    /// entries as `traces/<name>`.
    pub fn list(&self) -> Vec<String> {
        let mut names = list_in(&self.0, "");
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why [`read_once`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadFail {
    Open(Errno),
    TimedOut { got: usize },
    Io(Errno),
}

/// One read of a pipe the way a careful reader does it: non-blocking open
/// (never follows a symlink), then poll and read until end-of-file, which is
/// trusted only after poll reported an event. Everything read, or why not.
pub fn read_once(path: &Path, deadline: Duration) -> Result<Vec<u8>, ReadFail> {
    let fd = open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(ReadFail::Open)?;
    read_to_end(&fd, deadline)
}

/// Reads an open FIFO to end-of-file within `deadline`.
pub fn read_to_end(fd: &OwnedFd, deadline: Duration) -> Result<Vec<u8>, ReadFail> {
    thread_local! {
        // Reused: zeroing a fresh megabyte per read would dominate the
        // concurrent-reader rounds in a debug build.
        static CHUNK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    CHUNK.with_borrow_mut(|chunk| read_with(fd, deadline, chunk))
}

fn read_with(fd: &OwnedFd, deadline: Duration, chunk: &mut [u8]) -> Result<Vec<u8>, ReadFail> {
    let end = Instant::now() + deadline;
    let mut out = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadFail::TimedOut { got: out.len() });
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(left.max(Duration::from_millis(1))).unwrap();
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(ReadFail::Io(e)),
        }
        loop {
            match read(fd, chunk) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(ReadFail::Io(e)),
            }
        }
    }
}

/// A registry of `n` integer stats named `stat.<i>` padded with `pad` extra
/// characters.
pub fn registry_with(n: usize, pad: usize) -> Arc<Registry> {
    let registry = Arc::new(Registry::new());
    let padding = "x".repeat(pad);
    for i in 0..n {
        registry.set(&format!("stat {i:05} {padding}"), i as i64);
    }
    registry
}

/// A builder serving `registry` in `dir` with its stats only (no
/// `process.*` figures), so a snapshot's lines compare byte for byte with
/// [`body_of`].
pub fn bare_builder(dir: &TempDir, registry: &Arc<Registry>) -> pipe_writer::Builder {
    pipe_writer::Builder::new()
        .dir(dir.path())
        .registry(Arc::clone(registry))
        .process_stats(false)
}

/// A server of a registry whose snapshot is larger than any pipe, so a
/// reader that does not read stalls it; stall timeout 200 ms.
pub fn stalling_server(dir: &TempDir) -> (Arc<Registry>, pipe_writer::Server) {
    let registry = registry_with(10_000, 110);
    assert!(body_of(&registry).len() > 1 << 20);
    let server = bare_builder(dir, &registry)
        .stall_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    (registry, server)
}

/// The stat lines a complete snapshot of `registry` must hold.
pub fn body_of(registry: &Registry) -> Vec<u8> {
    let mut body = Vec::new();
    registry.render_into(&mut body);
    body
}

/// The body of a complete snapshot; panics with the text otherwise.
pub fn complete_body(bytes: &[u8]) -> &[u8] {
    match verify(bytes) {
        Verdict::Complete { body, .. } => &bytes[body],
        other => panic!(
            "not one complete snapshot ({other:?}): {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ),
    }
}

fn list_in(path: &Path, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().unwrap().is_dir();
        if is_dir && name.starts_with(pipe_writer::SPARE_DIR_PREFIX) {
            for spare in std::fs::read_dir(entry.path()).unwrap() {
                let spare = spare.unwrap().file_name();
                names.push(format!("{prefix}{name}/{}", spare.to_string_lossy()));
            }
        } else if is_dir && prefix.is_empty() && name == pipe_writer::TRACES_DIR {
            names.extend(list_in(&entry.path(), &format!("{name}/")));
        } else {
            names.push(format!("{prefix}{name}"));
        }
    }
    names
}

/// Runs `cmd` to completion, killing it and failing if it takes longer than
/// `timeout` (a hung `cat` must fail the test, not hang it).
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // Not reaped yet (the waiting thread still waits), so the PID is
            // still this child's.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            panic!("{cmd:?} still running after {timeout:?}");
        }
    }
}

/// A child process killed and reaped when the test ends, however it ends.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.0.id() as i32), signal).unwrap();
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the kernel counts for this process's threads named `name` (their
/// `comm`, at most 15 bytes): how many there are, their sleeps that ended
/// (voluntary context switches: wake-ups) and their CPU time in ns
/// (`schedstat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadFigures {
    pub threads: usize,
    pub wake_ups: u64,
    pub cpu_ns: u64,
}

/// [`ThreadFigures`] of the threads named `name`, from `/proc/self/task`.
pub fn threads_named(name: &str) -> ThreadFigures {
    let mut figures = ThreadFigures::default();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).unwrap_or_default();
        if read("comm").trim() != name {
            continue;
        }
        figures.threads += 1;
        figures.wake_ups += read("status")
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        figures.cpu_ns += read("schedstat")
            .split(' ')
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    figures
}

/// What a racing reader's path lookup holds: the FIFO found at a path, by
/// an `O_PATH` descriptor, to be opened later through
/// [`LookedUp::proc_path`] whatever is at the path by then (the way a `cat`
/// that looked the path up just before a swap reaches a retired FIFO).
pub struct LookedUp(OwnedFd);

impl LookedUp {
    pub fn new(path: &Path) -> LookedUp {
        LookedUp(
            open(
                path,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .unwrap(),
        )
    }

    /// `/proc/<pid>/fd/<n>`: opening it (from any process) opens the FIFO
    /// that was looked up.
    pub fn proc_path(&self) -> String {
        use std::os::fd::AsRawFd;
        format!("/proc/{}/fd/{}", std::process::id(), self.0.as_raw_fd())
    }
}
