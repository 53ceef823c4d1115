//! What the kernel says about a process: liveness, owner, start time, and a
//! few figures (memory, CPU, threads, descriptors) read from `/proc` (those
//! by [`pipe_writer::process_stats`], which a writer uses on itself).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
pub use pipe_writer::process_stats::ProcessStats;

/// Whether a process with this PID exists. `kill(pid, 0)`: ESRCH means dead;
/// EPERM means alive but another user's. A reused PID reads as alive: see
/// [`start_time`] to tell an old holder from the new one.
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // kill(0) and kill(-1) address groups, not a process.
    if raw <= 0 {
        return false;
    }
    match kill(Pid::from_raw(raw), None) {
        Ok(()) | Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// The effective user ID of a process (second field of the `Uid:` line of
/// `/proc/<pid>/status`): the owner of the files it creates.
///
/// # Errors
/// The process is gone, or `/proc` is not readable or not as expected.
pub fn owner_uid(pid: u32) -> io::Result<u32> {
    let status = std::fs::read_to_string(proc_path(pid, "status"))?;
    status_field(&status, "Uid:")
        .and_then(|uids| uids.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| malformed(pid, "status", "Uid"))
}

/// When a process started, as wall-clock time
/// ([`pipe_writer::process_stats::start_time`]: exact to a tick), read when
/// the process is first seen. The answer is remembered per process (see
/// [`look`]), so asking again for the same process gives the very same
/// `SystemTime`.
///
/// # Errors
/// The process is gone, or `/proc` is not readable or not as expected.
pub fn start_time(pid: u32) -> io::Result<SystemTime> {
    look(pid).map(|seen| seen.started)
}

/// When a process started, as time after boot
/// ([`pipe_writer::process_stats::started_after_boot`]): exact to a tick
/// and moved by no step of the wall clock, so a key that stays the same for
/// one process across runs days apart (with [`boot_id`] beside it).
///
/// # Errors
/// The process is gone, or `/proc` is not readable or not as expected.
pub fn started_after_boot(pid: u32) -> io::Result<Duration> {
    pipe_writer::process_stats::started_after_boot(pid).map_err(into_io_error)
}

/// This boot's random ID (`/proc/sys/kernel/random/boot_id`): a process
/// seen under another one is gone, whatever its PID and start time.
///
/// # Errors
/// The file cannot be read.
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// What one `stat` of `/proc/<pid>` tells, with the start time remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// When the process started (see [`start_time`]).
    pub started: SystemTime,
    /// Owner of `/proc/<pid>` now: the process's effective UID if it is
    /// dumpable, root if not (see [`check_pipe`]).
    pub dir_uid: u32,
}

/// Which process `/proc/<pid>` stands for: the directory's inode number and
/// change time. procfs makes a new inode, with a new number and the time of
/// its making, for each process, and drops it when the process dies, so a
/// reused PID never shows the same pair (checked on Linux 6.18 by forcing a
/// PID's reuse through `ns_last_pid`: both differed; see the tests). An
/// inode evicted under memory pressure comes back with a new pair too: that
/// only costs one more read of `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DirKey {
    ino: u64,
    ctime: (i64, i64),
}

/// Start times by PID, each valid while `/proc/<pid>` keeps its [`DirKey`].
/// At most one entry per PID, so bounded by `pid_max`; cleared past
/// [`START_CACHE_MAX`] entries anyway.
static START_CACHE: Mutex<Option<HashMap<u32, (DirKey, SystemTime)>>> = Mutex::new(None);

/// More entries than the default `pid_max` (32768) ever needs.
const START_CACHE_MAX: usize = 65_536;

/// One `stat` of `/proc/<pid>`; the start time comes from the cache when the
/// directory is the one it was read through, else from `/proc/<pid>/stat`.
/// A pass over a thousand pipes asks this once per pipe: reading and
/// parsing `stat` each time was a tenth of the pass's CPU.
///
/// # Errors
/// The process is gone, or `/proc` is not readable or not as expected.
pub fn look(pid: u32) -> io::Result<Seen> {
    let dir = format!("/proc/{pid}");
    let (key, dir_uid) = dir_key(&dir)?;
    let cached = cache_lock()
        .as_ref()
        .and_then(|cache| cache.get(&pid).copied());
    if let Some((cached_key, started)) = cached {
        if cached_key == key {
            return Ok(Seen { started, dir_uid });
        }
    }
    let started = pipe_writer::process_stats::start_time(pid).map_err(into_io_error)?;
    // Only if the same process was there before and after the read: a PID
    // reused in between must not have its start time filed under the
    // earlier process's directory.
    if dir_key(&dir).is_ok_and(|(after, _)| after == key) {
        let mut guard = cache_lock();
        let cache = guard.get_or_insert_with(HashMap::new);
        if cache.len() >= START_CACHE_MAX {
            cache.clear();
        }
        cache.insert(pid, (key, started));
    }
    Ok(Seen { started, dir_uid })
}

fn dir_key(dir: &str) -> io::Result<(DirKey, u32)> {
    let meta = std::fs::metadata(dir)?;
    let key = DirKey {
        ino: meta.ino(),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    };
    Ok((key, meta.uid()))
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `localhost`
/// if it cannot be read: the `host` of archived samples and of the
/// Influx format's tag.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The cache is only ever a shortcut: a panic elsewhere while it was held
/// leaves it usable.
fn cache_lock() -> std::sync::MutexGuard<'static, Option<HashMap<u32, (DirKey, SystemTime)>>> {
    START_CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How much older than its process's start a FIFO must be to count as a
/// leftover of an earlier holder of the PID. Covers the tick resolution of
/// the start time (10 ms) and the coarse clock behind file times; a reused
/// PID that the margin misses is only read (and finds no writer), never
/// removed.
pub const STALE_MARGIN: Duration = Duration::from_millis(100);

/// Why a pipe is a leftover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staleness {
    /// No process has the PID.
    Dead,
    /// A process has the PID but started after the FIFO last changed: the
    /// PID was reused.
    Reused,
}

/// Whether a pipe named after `pid` whose FIFO last changed at `changed`
/// (its ctime) is a leftover, and why; `None` for a live owner.
pub fn staleness(pid: u32, changed: SystemTime) -> Option<Staleness> {
    match look(pid) {
        Ok(seen) => stale_by_start(changed, seen.started),
        // /proc/<pid> missing: dead, or hidden from us (hidepid), which the
        // kill probe tells apart.
        Err(_) if !is_alive(pid) => Some(Staleness::Dead),
        // Alive but /proc unreadable: do not judge.
        Err(_) => None,
    }
}

/// Whether a FIFO last changed at `changed` is older than the process that
/// started at `started` (by more than [`STALE_MARGIN`]): a reused PID.
pub(crate) fn stale_by_start(changed: SystemTime, started: SystemTime) -> Option<Staleness> {
    (changed + STALE_MARGIN < started).then_some(Staleness::Reused)
}

/// Why a pipe named after a PID is not to be read.
#[derive(Debug)]
pub enum PipeFault {
    /// A leftover (see [`staleness`]).
    Stale(Staleness),
    /// The FIFO's owner is not the process's effective UID, which is this.
    WrongOwner(u32),
    /// `/proc` could not say, for this reason, though the process lives.
    Unreadable(io::Error),
}

/// Everything the reader checks about the process a pipe is named after,
/// from one `stat` of `/proc/<pid>` in the common case: that it is alive,
/// started no later than the FIFO last changed (`changed`), and has the
/// FIFO's owner `fifo_uid` as its effective UID. The owner of `/proc/<pid>`
/// is the process's effective UID (for a dumpable process; root for one
/// that is not), which that `stat` gives far cheaper than rendering
/// `/proc/<pid>/status`; only a mismatch reads `status` for the exact
/// answer. (A root-owned pipe of a non-dumpable process is accepted: root
/// can do anything to the pipe directory anyway.)
///
/// Returns the process's start time when `/proc/<pid>` gave it (the reader
/// tells a writer from a later holder of its PID by it).
///
/// # Errors
/// The fault found.
pub fn check_pipe(
    pid: u32,
    fifo_uid: u32,
    changed: SystemTime,
) -> Result<Option<SystemTime>, PipeFault> {
    let seen = match look(pid) {
        Ok(seen) => seen,
        Err(_) if !is_alive(pid) => return Err(PipeFault::Stale(Staleness::Dead)),
        // Hidden from us: the slow path says what it can.
        Err(_) => return check_owner_slowly(pid, fifo_uid).map(|()| None),
    };
    if let Some(stale) = stale_by_start(changed, seen.started) {
        return Err(PipeFault::Stale(stale));
    }
    if seen.dir_uid != fifo_uid {
        check_owner_slowly(pid, fifo_uid)?;
    }
    Ok(Some(seen.started))
}

fn check_owner_slowly(pid: u32, fifo_uid: u32) -> Result<(), PipeFault> {
    match owner_uid(pid) {
        Ok(owner) if owner == fifo_uid => Ok(()),
        Ok(owner) => Err(PipeFault::WrongOwner(owner)),
        Err(_) if !is_alive(pid) => Err(PipeFault::Stale(Staleness::Dead)),
        Err(e) => Err(PipeFault::Unreadable(e)),
    }
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| line.strip_prefix(key))
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

fn malformed(pid: u32, file: &str, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("/proc/{pid}/{file}: no readable {what}"),
    )
}

/// Keeps the error's kind (a vanished process reads as `NotFound`) and its
/// message, which names the file.
fn into_io_error(error: pipe_writer::Error) -> io::Error {
    let kind = match &error {
        pipe_writer::Error::Proc { errno, .. } => io::Error::from(*errno).kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_start_after_boot_is_the_same_on_every_read_and_the_boot_has_an_id() {
        let me = std::process::id();
        let first = started_after_boot(me).unwrap();
        assert_eq!(started_after_boot(me).unwrap(), first);
        assert!(first > Duration::ZERO);
        let id = boot_id().unwrap();
        assert_eq!((id.len(), id.matches('-').count()), (36, 4), "{id}");
        assert_eq!(boot_id().unwrap(), id);
        let gone = started_after_boot(u32::MAX).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound, "{gone}");
    }

    #[test]
    fn own_process_is_alive_with_our_uid_and_a_recent_start() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert_eq!(owner_uid(me).unwrap(), nix::unistd::geteuid().as_raw());
        let started = start_time(me).unwrap();
        let age = SystemTime::now().duration_since(started).unwrap();
        assert!(age < Duration::from_secs(600), "{age:?}");
        let figures = ProcessStats::read(me).unwrap();
        assert!(figures.rss_bytes > 0);
        assert!(figures.threads >= 1);
        assert!(figures.open_fds.unwrap() >= 3);
        assert_eq!(staleness(me, SystemTime::now()), None);
        assert_eq!(
            staleness(me, started - Duration::from_secs(5)),
            Some(Staleness::Reused)
        );
    }

    /// The claim behind the start-time cache: a process that reuses a PID
    /// gets a `/proc/<pid>` with another inode number and change time. Needs
    /// root to force the reuse through `ns_last_pid` (CI runs as root);
    /// elsewhere it says so and checks only the cache's use.
    #[test]
    fn reused_pid_gets_a_new_proc_dir_and_start_time() {
        let spawn = || {
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap()
        };
        for _ in 0..50 {
            let mut first = spawn();
            let pid = first.id();
            let (key, _) = dir_key(&format!("/proc/{pid}")).unwrap();
            let real = look(pid).unwrap().started;
            assert_eq!(
                look(pid).unwrap().started,
                real,
                "same process, same answer"
            );
            // Mark the cached entry: while the directory is the same, the
            // marked value is what comes back.
            cache_lock()
                .get_or_insert_with(HashMap::new)
                .insert(pid, (key, UNIX_EPOCH));
            assert_eq!(look(pid).unwrap().started, UNIX_EPOCH);
            first.kill().unwrap();
            first.wait().unwrap();
            if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
                eprintln!("not root: PID reuse not forced, only the cache checked");
                return;
            }
            let mut second = spawn();
            if second.id() != pid {
                // Another process took the PID first: try again.
                second.kill().unwrap();
                second.wait().unwrap();
                continue;
            }
            let (reused_key, _) = dir_key(&format!("/proc/{pid}")).unwrap();
            let started = look(pid).unwrap().started;
            second.kill().unwrap();
            second.wait().unwrap();
            assert_ne!(reused_key.ino, key.ino);
            assert_ne!(reused_key, key);
            assert_ne!(started, UNIX_EPOCH, "the marked entry was not used");
            return;
        }
        panic!("could not get PID reuse in 50 tries");
    }

    #[test]
    fn reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // The PID could be reused at once in theory; it is not within a
        // test's lifetime on a 32768-PID system unless something forks
        // tens of thousands of times.
        assert!(!is_alive(pid));
        assert_eq!(staleness(pid, SystemTime::now()), Some(Staleness::Dead));
        assert!(!is_alive(0));
        assert!(!is_alive(u32::MAX));
    }
}
