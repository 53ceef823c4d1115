//! The process's stats runtime: its registry, its server, autostart, and
//! what a child of `fork` drops.
//!
//! Each process (each [`crate::fork`] epoch) has its own [`Runtime`]: a
//! fresh [`Registry`] and at most one [`pipe_writer::Server`] serving it at
//! `<dir>/<pid>.stats`. Recording through [`recording`] starts serving on
//! the first record unless `STATS_PIPE_AUTOSTART=0` or [`stop`] was called.
//! A child of `fork` starts from an empty registry, serves its own pipe as
//! soon as it records, closes the descriptors of its parent's FIFOs it
//! inherited (a copy of the write end of a snapshot in flight would keep
//! the parent's reader waiting for end-of-file as long as the child lives)
//! and never removes its parent's FIFOs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use pipe_writer::{Builder, Server};
use stats_core::{Registry, Task};

use crate::atfork;
use crate::error::Error;
use crate::fork::{self, Gate, PerProcess};

/// Environment variable: `0` turns serving on the first record off.
pub const AUTOSTART_ENV: &str = "STATS_PIPE_AUTOSTART";
/// Environment variable: how long, in seconds, an exiting process waits for
/// one more read of its pipe (see [`stop_at_exit`]).
pub const LINGER_ENV: &str = "STATS_PIPE_LINGER";
/// The linger when [`LINGER_ENV`] is unset, for a pipe that was read
/// before: a reader every second (`serve`'s default `--interval`) reads a
/// process twice within it.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(2500);

/// One process's stats.
pub struct Runtime {
    pid: u32,
    registry: Arc<Registry>,
    /// Whether serving was started, or decided against; checked on every
    /// record, so it is read without a lock.
    settled: AtomicBool,
    /// Whether a server was ever started here (a child then closes the
    /// inherited descriptors of its FIFOs); read without a lock after a fork.
    served: AtomicBool,
    slot: Mutex<Slot>,
    /// Task handles that live as long as the process, for runs that
    /// outlive a borrow (the C ABI's and Python's begin/end).
    tasks: Mutex<HashMap<Box<str>, &'static Task>>,
}

#[derive(Default)]
struct Slot {
    server: Option<Server>,
    error: Option<Error>,
    /// The directory of the last [`start`], for this process and its
    /// children.
    dir: Option<PathBuf>,
    /// `Some(true)` after [`start`], `Some(false)` after [`stop`]: whether
    /// a child serves when it records, whatever `STATS_PIPE_AUTOSTART` says.
    serve: Option<bool>,
}

impl Runtime {
    fn new(slot: Slot) -> Runtime {
        Runtime {
            pid: std::process::id(),
            registry: Arc::new(Registry::new()),
            settled: AtomicBool::new(false),
            served: AtomicBool::new(false),
            slot: Mutex::new(slot),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// A child's runtime: empty, with the parent's choice of directory and
    /// of serving. The parent's lock is only tried: a thread the child does
    /// not have may have held it at the fork.
    fn child_of(parent: &Runtime) -> Runtime {
        let slot = match parent.slot.try_lock() {
            Ok(slot) => Slot {
                dir: slot.dir.clone(),
                serve: slot.serve,
                ..Slot::default()
            },
            Err(_) => Slot::default(),
        };
        Runtime::new(slot)
    }

    /// This process's registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A task handle for `name` that lives as long as the process.
    pub fn task(&self, name: &str) -> &'static Task {
        let mut tasks = lock(&self.tasks);
        if let Some(task) = tasks.get(name) {
            return task;
        }
        let task: &'static Task = Box::leak(Box::new(self.registry.task(name)));
        tasks.insert(name.into(), task);
        task
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }

    #[cold]
    fn autostart(&self) {
        let _gate = Gate::enter();
        let mut slot = self.slot();
        if self.settled.load(Acquire) {
            return;
        }
        self.settled.store(true, Release);
        let serve = slot
            .serve
            .unwrap_or_else(|| std::env::var_os(AUTOSTART_ENV).is_none_or(|v| v != "0"));
        if !serve {
            return;
        }
        let dir = slot.dir.clone();
        if let Err(error) = self.start_locked(&mut slot, dir.as_deref()) {
            // Recording never fails (pipestatic's promise); say it once.
            eprintln!("stats_pipe: not serving stats: {error}");
            slot.error = Some(error);
        }
    }

    fn start_locked(&self, slot: &mut Slot, dir: Option<&Path>) -> Result<PathBuf, Error> {
        if let Some(server) = &slot.server {
            let same_dir = dir.is_none_or(|d| server.path().parent() == Some(d));
            if same_dir && server.is_serving() {
                return Ok(server.path().to_path_buf());
            }
        }
        if let Some(old) = slot.server.take() {
            let _ = old.stop();
        }
        let mut builder = Builder::new().registry(Arc::clone(&self.registry));
        if let Some(dir) = dir {
            builder = builder.dir(dir);
        }
        let server = builder.start().map_err(Error::Serve)?;
        self.served.store(true, Release);
        slot.dir = server.path().parent().map(Path::to_path_buf);
        slot.serve = Some(true);
        let path = server.path().to_path_buf();
        slot.server = Some(server);
        slot.error = None;
        Ok(path)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static ROOT: OnceLock<&'static PerProcess<Runtime>> = OnceLock::new();

// The fork handlers: no panic may unwind out of them into libc.
extern "C" fn on_prepare() {
    let _ = std::panic::catch_unwind(|| {
        // The chain of runtimes is complete before the copy is made.
        let _ = current();
        fork::before_fork();
    });
}

extern "C" fn on_parent() {
    let _ = std::panic::catch_unwind(fork::after_fork_parent);
}

extern "C" fn on_child() {
    let _ = std::panic::catch_unwind(after_fork_child);
}

/// This process's runtime (made on first use; a child of `fork` gets a new
/// one). Does not start serving.
#[inline]
pub fn current() -> &'static Runtime {
    atfork::register_once(on_prepare, on_parent, on_child);
    ROOT.get_or_init(|| PerProcess::leak(Runtime::new(Slot::default())))
        .get(Runtime::child_of)
}

/// This process's runtime for recording: serving is started first if it
/// has not been settled yet (see the module doc).
#[inline]
pub fn recording() -> &'static Runtime {
    let runtime = current();
    if !runtime.settled.load(Acquire) {
        runtime.autostart();
    }
    runtime
}

/// Starts serving this process's stats at `<dir>/<pid>.stats` (`dir`:
/// given, else `STATS_PIPE_DIR`, else `/tmp/stats-pipe`) and returns the
/// path. Already serving in that directory: the path, nothing restarted.
///
/// # Errors
///
/// [`Error::Serve`]: the server could not start (see
/// [`pipe_writer::Builder::start`]).
pub fn start(dir: Option<&Path>) -> Result<PathBuf, Error> {
    let runtime = current();
    let _gate = Gate::enter();
    let mut slot = runtime.slot();
    runtime.settled.store(true, Release);
    runtime.start_locked(&mut slot, dir)
}

/// Stops serving and removes the FIFO; recording goes on and no longer
/// starts serving by itself (until [`start`]).
///
/// First waits up to `linger` until a reader has taken a snapshot made
/// after this call, so what was recorded last is seen (an aggregator keeps
/// an exited process's counters at their last read value).
///
/// # Errors
///
/// [`Error::Serve`]: the error that had ended serving early.
pub fn stop(linger: Duration) -> Result<(), Error> {
    stop_when(linger, false)
}

/// [`stop`], lingering only if the pipe was read before when `if_read`.
fn stop_when(linger: Duration, if_read: bool) -> Result<(), Error> {
    let runtime = current();
    runtime.settled.store(true, Release);
    // Waiting holds neither the gate nor the slot: forks and records go on.
    let served = runtime.slot().server.as_ref().map(|s| s.stats().snapshots);
    if let Some(before) = served.filter(|&n| (n > 0 || !if_read) && !linger.is_zero()) {
        let deadline = Instant::now() + linger;
        // Two more whole snapshots: the first may have been built before
        // this call and sent after it; the second was built after.
        while Instant::now() < deadline {
            let now = runtime.slot().server.as_ref().map(|s| s.stats().snapshots);
            if now.is_none_or(|n| n >= before + 2) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let _gate = Gate::enter();
    let server = {
        let mut slot = runtime.slot();
        slot.serve = Some(false);
        slot.server.take()
    };
    match server {
        Some(server) => server.stop().map_err(Error::Serve),
        None => Ok(()),
    }
}

/// What a process does at exit: [`stop`], lingering `STATS_PIPE_LINGER`
/// seconds if set; if not, [`DEFAULT_LINGER`] but only if the pipe was read
/// before (a script nobody reads exits at once). A worker that lives less
/// than a reader's interval was never read: set `STATS_PIPE_LINGER` (say to
/// twice the interval) so its last counts are seen.
///
/// # Errors
///
/// As [`stop`].
pub fn stop_at_exit() -> Result<(), Error> {
    let set = std::env::var(LINGER_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    match set {
        Some(linger) => stop_when(linger, false),
        None => stop_when(DEFAULT_LINGER, true),
    }
}

/// The path being served, if serving.
pub fn path() -> Option<PathBuf> {
    current()
        .slot()
        .server
        .as_ref()
        .map(|s| s.path().to_path_buf())
}

/// Why serving failed or ended, if it did.
pub fn last_error() -> Option<Error> {
    let runtime = current();
    let slot = runtime.slot();
    if let Some(error) = &slot.error {
        return Some(error.clone());
    }
    slot.server
        .as_ref()
        .and_then(Server::error)
        .map(Error::Serve)
}

/// The child half of the fork handling: a new epoch, and the descriptors
/// of the parent's FIFOs closed. Called by the `pthread_atfork` child
/// handler.
fn after_fork_child() {
    let parent_epoch = fork::after_fork_child();
    let parent = ROOT
        .get()
        .and_then(|chain| chain.last_before(parent_epoch + 1));
    if let Some(parent) = parent.filter(|p| p.served.load(Acquire)) {
        close_inherited_fifos(parent.pid);
    }
}

/// Closes every descriptor naming one of `pid`'s FIFOs (`<pid>.stats` and
/// its spares `.<pid>.stats[.<n>].tmp`, also unlinked ones): the write end
/// of a snapshot in flight, the serving threads' `O_PATH` handles. Only
/// descriptors are closed; the FIFOs stay, they are the parent's.
fn close_inherited_fifos(pid: u32) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let current = format!("{pid}.stats");
    let spare = format!(".{pid}.stats.");
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let name = name.strip_suffix(" (deleted)").unwrap_or(name);
        let ours = name == current || (name.starts_with(&spare) && name.ends_with(".tmp"));
        if ours {
            let _ = nix::unistd::close(fd);
        }
    }
}
