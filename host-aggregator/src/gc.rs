//! Garbage collection of stale pipes: FIFOs left behind by dead processes
//! (or by an earlier holder of a reused PID). A live process's pipe is never
//! removed, whatever it does.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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
/// that does not answer. Just before unlinking, the path is checked again to
/// be the same FIFO, unchanged, so a pipe re-created meanwhile by a new
/// process with that PID is kept.
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

fn remove_if_unchanged(path: &Path, listed: &std::fs::Metadata) -> io::Result<bool> {
    let now = match std::fs::symlink_metadata(path) {
        Ok(now) => now,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let same = (now.dev(), now.ino(), now.ctime(), now.ctime_nsec())
        == (
            listed.dev(),
            listed.ino(),
            listed.ctime(),
            listed.ctime_nsec(),
        );
    if !same || !now.file_type().is_fifo() {
        return Ok(false);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
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
