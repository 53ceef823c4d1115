//! Garbage collection of stale pipes: FIFOs left behind by dead processes
//! (or by an earlier holder of a reused PID). A live process's pipe is never
//! removed, whatever it does.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use crate::discovery::list;
use crate::error::Error;
use crate::procfs::{self, Staleness};
use crate::reader::changed_at;
use crate::source::pid_from_path;

/// What `gc` did (or would do) with one stale pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcAction {
    /// The FIFO.
    pub path: PathBuf,
    /// The PID in its name.
    pub pid: u32,
    /// Why it is stale.
    pub reason: Staleness,
    /// What happened to it.
    pub outcome: GcOutcome,
}

/// The fate of one stale pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcOutcome {
    /// Removed.
    Removed,
    /// Left in place: a dry run.
    WouldRemove,
    /// Removing it failed (the message says why); `gc` went on with the rest.
    Failed(String),
}

/// Finds the stale pipes in `dir` and removes them (or only lists them when
/// `dry_run`). Stale: a FIFO named `<pid>.stats` (or one of the writer's
/// spares, `.<pid>.stats.tmp` and `.<pid>.stats.<n>.tmp`) whose PID is
/// dead, or whose ctime is older than the start of the process now holding
/// the PID (see [`procfs::STALE_MARGIN`]).
///
/// Only FIFOs are removed: never a symlink (links are never followed), a
/// regular file or a directory, and never a FIFO of a live process, even one
/// that does not answer, nor one the process holding its PID has open (a
/// writer holds its FIFOs by descriptor; see
/// [`pipe_writer::leftovers::holds_file`]). Just before unlinking, the path
/// is checked again to be the same FIFO, unchanged, so a pipe re-created
/// meanwhile by a new process with that PID is kept. Readers blocked in
/// opening a removed FIFO are released: they read end-of-file.
///
/// # Errors
/// [`Error::Dir`] if `dir` cannot be listed; [`Error::UntrustedDir`] if
/// another user could take it over. A pipe that cannot be removed
/// is reported in its [`GcAction`], not as an error.
pub fn gc(dir: &Path, dry_run: bool) -> Result<Vec<GcAction>, Error> {
    let mut actions = Vec::new();
    for path in list(dir)? {
        let Some(pid) = pipe_pid(&path) else {
            continue;
        };
        let Ok(listed) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !listed.file_type().is_fifo() {
            continue;
        }
        let Some(reason) = procfs::staleness(pid, changed_at(&listed)) else {
            continue;
        };
        // A reused PID's process that holds the FIFO open is its writer
        // (every pipe-writer holds its FIFOs by descriptor), whatever the
        // clock says: a clock stepped forward makes a live writer's FIFO
        // look older than its process. Unreadable: not judged.
        if reason == Staleness::Reused
            && pipe_writer::leftovers::holds_file(pid, listed.dev(), listed.ino()) != Some(false)
        {
            continue;
        }
        let outcome = if dry_run {
            GcOutcome::WouldRemove
        } else {
            match remove_if_unchanged(&path, &listed) {
                Ok(true) => GcOutcome::Removed,
                // Changed or gone meanwhile: not ours to judge any more.
                Ok(false) => continue,
                Err(e) => GcOutcome::Failed(e.to_string()),
            }
        };
        actions.push(GcAction {
            path,
            pid,
            reason,
            outcome,
        });
    }
    Ok(actions)
}

/// The PID of a pipe name or of one of the writer's temporary FIFOs.
fn pipe_pid(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    match name.strip_prefix('.') {
        Some(hidden) => {
            let (pid, rest) = hidden.split_once(".stats.")?;
            (rest == "tmp" || rest.ends_with(".tmp"))
                .then(|| pid_from_path(Path::new(&format!("{pid}.stats"))))?
        }
        None => pid_from_path(path),
    }
}

/// Removes the FIFO at `path` if it is still the one `listed` describes,
/// then releases the readers blocked in opening it (a `cat` started before
/// the sweep): they read end-of-file instead of waiting for ever for a
/// writer that is gone. The FIFO is held by an `O_PATH` descriptor (which
/// opens neither side and follows no link), so the readers released are
/// exactly this FIFO's.
fn remove_if_unchanged(path: &Path, listed: &std::fs::Metadata) -> io::Result<bool> {
    let held = match open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(held) => held,
        Err(Errno::ENOENT) => return Ok(false),
        Err(errno) => return Err(errno.into()),
    };
    let same = |now: &std::fs::Metadata| {
        now.file_type().is_fifo()
            && (now.dev(), now.ino(), now.ctime(), now.ctime_nsec())
                == (
                    listed.dev(),
                    listed.ino(),
                    listed.ctime(),
                    listed.ctime_nsec(),
                )
    };
    let proc_path = format!("/proc/self/fd/{}", held.as_raw_fd());
    // Followed: the magic link leads to the held file itself (a symlink
    // held with O_NOFOLLOW shows as a symlink, and is not the same).
    if !std::fs::metadata(&proc_path).is_ok_and(|now| same(&now)) {
        return Ok(false);
    }
    // Checked again just before the unlink: a FIFO put at the name meanwhile
    // (a new process with the PID) is kept.
    match std::fs::symlink_metadata(path) {
        Ok(now) if same(&now) => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    // ENXIO: nobody was waiting. EACCES: not ours to write to (a user's
    // 0600 FIFO and a non-root aggregator): its readers wait on.
    drop(open(
        proc_path.as_str(),
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_pids() {
        assert_eq!(pipe_pid(Path::new("/d/42.stats")), Some(42));
        assert_eq!(pipe_pid(Path::new("/d/.42.stats.7.tmp")), Some(42));
        assert_eq!(pipe_pid(Path::new("/d/.42.stats.tmp")), Some(42));
        assert_eq!(pipe_pid(Path::new("/d/.42.stats")), None);
        assert_eq!(pipe_pid(Path::new("/d/.x.stats.7.tmp")), None);
        assert_eq!(pipe_pid(Path::new("/d/x.stats")), None);
        assert_eq!(pipe_pid(Path::new("/d/042.stats")), None);
    }
}
