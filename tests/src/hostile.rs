//! Building pipe directories for the reader's tests: unique temp dirs, writer
//! processes that are always killed, the Python writers in `tests/fixtures/`,
//! and hostile entries (FIFOs with no writer, wrong owners, stale PIDs).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/stats-pipe-test-<label>-<pid>-<n>`.
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "stats-pipe-test-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Child processes killed and reaped on drop, whatever happened in the test.
#[derive(Debug, Default)]
pub struct Processes {
    children: Vec<Child>,
}

impl Processes {
    /// No processes yet.
    pub fn new() -> Processes {
        Processes::default()
    }

    /// Spawns `command` and keeps it; returns its PID.
    pub fn spawn(&mut self, command: &mut Command) -> u32 {
        let child = command.spawn().expect("spawn test process");
        self.adopt(child)
    }

    /// Keeps an already spawned child; returns its PID.
    pub fn adopt(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// A process that just sleeps: a live PID with nothing serving its pipe.
    pub fn sleeper(&mut self) -> u32 {
        self.spawn(Command::new("sleep").arg("600"))
    }

    /// Stops one child now (SIGKILL) and reaps it.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.swap_remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Starts `pipestatic_writer.py` serving `stats` (`NAME=VALUE`) in `dir`
/// and waits until its FIFO exists; returns its PID.
pub fn spawn_pipestatic_writer(processes: &mut Processes, dir: &Path, stats: &[&str]) -> u32 {
    let pid = processes.spawn(
        Command::new("python3")
            .arg(fixture("pipestatic_writer.py"))
            .arg("--dir")
            .arg(dir)
            .args(stats)
            .stdin(Stdio::null()),
    );
    wait_for_path(&dir.join(format!("{pid}.stats")));
    pid
}

/// Starts `hostile_writer.py MODE` in `dir` and waits until its FIFO exists;
/// returns its PID.
pub fn spawn_hostile_writer(processes: &mut Processes, dir: &Path, mode: &str) -> u32 {
    let pid = processes.spawn(
        Command::new("python3")
            .arg(fixture("hostile_writer.py"))
            .arg("--dir")
            .arg(dir)
            .arg(mode)
            .stdin(Stdio::null()),
    );
    wait_for_path(&dir.join(format!("{pid}.stats")));
    pid
}

/// Waits (up to 10 s) for `path` to exist.
///
/// # Panics
/// If it does not.
pub fn wait_for_path(path: &Path) {
    let until = Instant::now() + Duration::from_secs(10);
    while std::fs::symlink_metadata(path).is_err() {
        assert!(Instant::now() < until, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes a FIFO (mode 0600) at `path`.
pub fn make_fifo(path: &Path) {
    mkfifo(path, Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// A PID no process has now: a child that was spawned and reaped.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("reap true");
    pid
}

/// Starts a `sleep` whose PID is the one in an existing FIFO `<pid>.stats`
/// made earlier in `dir`, so the FIFO is older than the process holding its
/// PID: the situation after a PID is reused. Returns the PID, or `None`
/// when the kernel does not let us choose the next PID (`ns_last_pid` needs
/// root in the initial PID namespace).
///
/// How: pick a free PID P, `mkfifo P.stats`, wait longer than the stale
/// margin, write P-1 to `/proc/sys/kernel/ns_last_pid` and spawn at once.
/// Other processes forking in between can take P; then try another.
pub fn spawn_with_reused_pid(
    processes: &mut Processes,
    dir: &Path,
    older_by: Duration,
) -> Option<u32> {
    const LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    for attempt in 0..20u32 {
        let last: u32 = std::fs::read_to_string(LAST_PID)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let mut target = last + 500 + attempt * 37;
        if target >= pid_max - 10 {
            target = 1000 + attempt * 37;
        }
        if Path::new(&format!("/proc/{target}")).exists() {
            continue;
        }
        let fifo = dir.join(format!("{target}.stats"));
        let _ = std::fs::remove_file(&fifo);
        make_fifo(&fifo);
        std::thread::sleep(older_by);
        let mut last_pid = std::fs::OpenOptions::new()
            .write(true)
            .open(LAST_PID)
            .ok()?;
        if last_pid
            .write_all(format!("{}", target - 1).as_bytes())
            .is_err()
        {
            std::fs::remove_file(&fifo).ok();
            return None;
        }
        let pid = processes.sleeper();
        if pid == target {
            return Some(pid);
        }
        processes.kill(pid);
        std::fs::remove_file(&fifo).ok();
    }
    None
}
