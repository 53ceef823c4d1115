//! Garbage collection of stale pipes: FIFOs left behind by dead processes
//! (or by an earlier holder of a reused PID). A live process's pipe is never
//! removed, whatever it does.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
/// spares, `.<pid>.stats.tmp` and `.<pid>.stats.<n>.tmp`, in a spare
/// directory `.spares-<uid>` of `dir` or, left by older writers, in `dir`
/// itself) whose PID is dead, or whose ctime is older than the start of the process now holding
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
    let mut starts = Starts::default();
    for path in list(dir)? {
        if is_spare_dir(&path) {
            gc_spare_dir(&path, dry_run, &mut starts, &mut actions);
            continue;
        }
        judge(&path, &path, dry_run, &mut starts, &mut actions);
    }
    Ok(actions)
}

/// The start times of the live processes one sweep has looked up. A
/// writer's pipe and its spares, nine names or more, are named after one
/// PID: each live process is looked up once a sweep instead of once a
/// name (`serve` sweeps every 5 s; over 1,000 writers that was 8,000
/// `stat`s of `/proc/<pid>` a sweep out of 18,000 calls).
///
/// Only answers that a process lives are kept. Keeping one past the
/// process's exit errs toward keeping pipes: a name the next holder of
/// the PID made is newer than the start kept, so it is not stale by it,
/// and a name older than that start was a leftover already. A dead or
/// unreadable PID is asked again for each name, so a pipe a new holder of
/// the PID made meanwhile is never judged by the old answer.
#[derive(Default)]
struct Starts(HashMap<u32, SystemTime>);

impl Starts {
    /// [`procfs::staleness`], with each live process looked up once.
    fn staleness(&mut self, pid: u32, changed: SystemTime) -> Option<Staleness> {
        if let Some(&started) = self.0.get(&pid) {
            return procfs::stale_by_start(changed, started);
        }
        match procfs::look(pid) {
            Ok(seen) => {
                self.0.insert(pid, seen.started);
                procfs::stale_by_start(changed, seen.started)
            }
            // As `procfs::staleness`: missing is dead unless the kill
            // probe finds it alive (hidden by hidepid); then not judged.
            Err(_) if !procfs::is_alive(pid) => Some(Staleness::Dead),
            Err(_) => None,
        }
    }
}

/// Whether `path` (an entry of the pipe directory) is a writers' private
/// spare directory, `.spares-<uid>` ([`pipe_writer::spare_dir_name`]): a
/// real directory, not a link to one.
fn is_spare_dir(path: &Path) -> bool {
    let named = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix(pipe_writer::SPARE_DIR_PREFIX))
        .is_some_and(|uid| !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()));
    named && std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_dir())
}

/// [`gc`] over the spares in a writers' spare directory. It is held by a
/// descriptor opened without following links, and every name in it is
/// reached through `/proc/self/fd/N/<name>`, so a directory swapped for a
/// link meanwhile leads nowhere else. Best effort: a directory we may not
/// list (another user's, and we are not root) is skipped.
fn gc_spare_dir(shown: &Path, dry_run: bool, starts: &mut Starts, actions: &mut Vec<GcAction>) {
    let Ok(held) = open(
        shown,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let at = PathBuf::from(format!("/proc/self/fd/{}", held.as_raw_fd()));
    let Ok(entries) = std::fs::read_dir(&at) else {
        return;
    };
    let mut names: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.file_name()))
        .collect();
    names.sort_unstable();
    for name in names {
        judge(
            &at.join(&name),
            &shown.join(&name),
            dry_run,
            starts,
            actions,
        );
    }
}

/// Judges the entry at `path` (shown as `shown`) and, if it is a stale pipe,
/// removes it (or, when `dry_run`, only says so).
fn judge(
    path: &Path,
    shown: &Path,
    dry_run: bool,
    starts: &mut Starts,
    actions: &mut Vec<GcAction>,
) {
    let Some(pid) = pipe_pid(path) else {
        return;
    };
    let Ok(listed) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !listed.file_type().is_fifo() {
        return;
    }
    let Some(reason) = starts.staleness(pid, changed_at(&listed)) else {
        return;
    };
    // A reused PID's process that holds the FIFO open is its writer
    // (every pipe-writer holds its FIFOs by descriptor), whatever the
    // clock says: a clock stepped forward makes a live writer's FIFO
    // look older than its process. Unreadable: not judged.
    if reason == Staleness::Reused
        && pipe_writer::leftovers::holds_file(pid, listed.dev(), listed.ino()) != Some(false)
    {
        return;
    }
    let outcome = if dry_run {
        GcOutcome::WouldRemove
    } else {
        match remove_if_unchanged(path, &listed) {
            Ok(true) => GcOutcome::Removed,
            // Changed or gone meanwhile: not ours to judge any more.
            Ok(false) => return,
            Err(e) => GcOutcome::Failed(e.to_string()),
        }
    };
    actions.push(GcAction {
        path: shown.to_path_buf(),
        pid,
        reason,
        outcome,
    });
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

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).unwrap();
    }

    #[test]
    fn a_live_process_is_looked_up_once_a_sweep_and_a_dead_one_for_every_name() {
        let mut starts = Starts::default();
        let (me, dead) = (std::process::id(), dead_pid());
        let now = SystemTime::now();
        for _ in 0..3 {
            assert_eq!(starts.staleness(me, now), None);
        }
        assert_eq!(starts.0.len(), 1);
        // By the start kept: a name older than this process is a leftover.
        assert_eq!(
            starts.staleness(me, SystemTime::UNIX_EPOCH),
            Some(Staleness::Reused)
        );
        for _ in 0..2 {
            assert_eq!(starts.staleness(dead, now), Some(Staleness::Dead));
        }
        assert_eq!(starts.0.len(), 1, "a dead PID's answer was kept");
    }

    #[test]
    fn dead_spares_in_spare_directories_go_and_links_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("gc-spares-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let spares = dir.join(pipe_writer::spare_dir_name(1000));
        std::fs::create_dir(&spares).unwrap();
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(pipe_writer::spare_dir_name(1001)))
            .unwrap();
        let (dead, me) = (dead_pid(), std::process::id());
        let gone = [
            spares.join(format!(".{dead}.stats.tmp")),
            spares.join(format!(".{dead}.stats.2.tmp")),
            dir.join(format!("{dead}.stats")),
        ];
        let kept = [
            spares.join(format!(".{me}.stats.tmp")),
            elsewhere.join(format!(".{dead}.stats.tmp")),
        ];
        for path in gone.iter().chain(&kept) {
            mkfifo(path);
        }
        let actions = gc(&dir, false).unwrap();
        let mut removed: Vec<&Path> = actions.iter().map(|a| a.path.as_path()).collect();
        removed.sort_unstable();
        let mut want: Vec<&Path> = gone.iter().map(PathBuf::as_path).collect();
        want.sort_unstable();
        assert_eq!(removed, want, "{actions:?}");
        assert!(actions.iter().all(|a| a.outcome == GcOutcome::Removed));
        for path in &gone {
            assert!(std::fs::symlink_metadata(path).is_err(), "{path:?} stayed");
        }
        for path in &kept {
            assert!(std::fs::symlink_metadata(path).is_ok(), "{path:?} went");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
