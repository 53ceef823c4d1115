//! Opening one pipe and checking what was opened: the reader's checks
//! (no symbolic link, a FIFO, named after a live process of its owner).

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::known::Known;
use crate::discovery::by_bytes;
use crate::procfs::PipeFault;
use crate::source::{RefuseReason, Source, Status};

/// What one open attempt gave.
pub(super) enum Opened {
    /// Open; the FIFO's (device, inode), and the start time of the
    /// process it is named after.
    Reading(File, (u64, u64), Option<SystemTime>),
    Refused(Status),
    /// Listed but not there (now).
    Missing,
    OutOfFds,
}

/// Opens the path first and checks what was opened (issue 15: one
/// `fstat` of the descriptor instead of an `lstat` of the path before the
/// open and an `fstat` after it to see that both are the same file; a
/// thousand pipes a pass). Every check is still made before a byte is
/// read: `O_NOFOLLOW` refuses a symbolic link (`ELOOP`), and the descriptor
/// must be a FIFO named after a live process of its owner
/// ([`check_listed`]). Opening what is then refused costs nothing: a
/// non-blocking read-only open neither waits nor changes a FIFO, a
/// directory or a regular file, and `O_NOCTTY` keeps a terminal from
/// becoming ours. A device node cannot be put in the pipe directory
/// without root's `CAP_MKNOD` (a hard link to one needs the same
/// filesystem as `/dev` and, with `protected_hardlinks`, access to it).
/// Where the open fails, an `lstat` says why in the same words as before.
///
/// With `noatime` set the pipe is opened `O_NOATIME` (issue 15): a read of
/// a FIFO otherwise sets its access time, and since our writer renames a
/// fresh FIFO over its path after every serve (a newer change time), it
/// did on every read: a journalled inode update per pipe and pass for a
/// time no one reads. Only the file's owner (or `CAP_FOWNER`) may ask it:
/// refused (`EPERM`), the pipe is opened as before, and `noatime` is
/// cleared for the rest of the pass.
///
/// `dir` is the pass's directory, opened once, where every path of the pass
/// is in it: the name is then looked up there, without a walk of the whole
/// path per pipe.
pub(super) fn attempt_open(
    source: &Source,
    dir: Option<BorrowedFd<'_>>,
    noatime: &mut bool,
    known: &mut Known,
) -> Opened {
    let flags = OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY;
    let name = source.path.file_name();
    let open = |flags: OFlag| match (dir, name) {
        (Some(dir), Some(name)) => openat(dir, name, flags | OFlag::O_CLOEXEC, Mode::empty())
            .map(File::from)
            .map_err(io::Error::from),
        _ => OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits())
            .open(&source.path),
    };
    let mut opened = open(if *noatime {
        flags | OFlag::O_NOATIME
    } else {
        flags
    });
    if *noatime
        && let Err(e) = &opened
        && e.raw_os_error() == Some(Errno::EPERM as i32)
    {
        *noatime = false;
        opened = open(flags);
    }
    let file = match opened {
        Ok(file) => file,
        Err(e) => {
            return match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                Errno::ENOENT => Opened::Missing,
                Errno::EMFILE | Errno::ENFILE => Opened::OutOfFds,
                _ => refused_unopened(source, &e, known),
            };
        }
    };
    let opened = match file.metadata() {
        Ok(opened) => opened,
        Err(e) => return Opened::Refused(open_error(&e, "fstat")),
    };
    match check_listed(source, &opened, known) {
        Ok(started) => Opened::Reading(file, (opened.dev(), opened.ino()), started),
        Err(refused) => Opened::Refused(refused),
    }
}

/// The directory every one of `paths` is in, opened `O_PATH`, or `None`
/// where they are in several (or it cannot be opened: each path is then
/// opened whole). A directory put in its place during the pass is not
/// looked at: the pass reads what was listed, in the directory listed.
pub(super) fn common_dir(paths: &[PathBuf]) -> Option<OwnedFd> {
    let dir = paths.first()?.parent()?;
    if !paths.iter().all(|path| {
        path.parent()
            .is_some_and(|parent| by_bytes(parent, dir).is_eq())
    }) {
        return None;
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(dir, flags, Mode::empty()).ok()
}

/// Why a path could not be opened: what the checks say of it (a socket,
/// say, gives `ENXIO`, an unreadable regular file `EACCES`: both are not
/// FIFOs), else the open's error.
fn refused_unopened(source: &Source, e: &io::Error, known: &mut Known) -> Opened {
    match std::fs::symlink_metadata(&source.path) {
        Ok(listed) => match check_listed(source, &listed, known) {
            Err(refused) => Opened::Refused(refused),
            Ok(_) => Opened::Refused(open_error(e, "open")),
        },
        Err(gone) if gone.kind() == io::ErrorKind::NotFound => Opened::Missing,
        Err(_) => Opened::Refused(open_error(e, "open")),
    }
}

/// The checks made on what a path holds before it is read: a FIFO, named
/// `<pid>.stats` (or `<pid>.traces`), of a live process that started before
/// the FIFO was made, owned by that process's user.
fn check_listed(
    source: &Source,
    listed: &Metadata,
    known: &mut Known,
) -> Result<Option<SystemTime>, Status> {
    let kind = listed.file_type();
    if kind.is_symlink() {
        return Err(Status::Refused(RefuseReason::Symlink));
    }
    if !kind.is_fifo() {
        return Err(Status::Refused(RefuseReason::NotFifo));
    }
    let Some(pid) = source.pid else {
        return Err(Status::Refused(RefuseReason::BadName));
    };
    let checked = known.check_pipe(pid, listed.uid(), changed_at(listed));
    checked.map_err(|fault| match fault {
        PipeFault::Stale(_) => Status::Stale,
        PipeFault::WrongOwner(process_uid) => Status::Refused(RefuseReason::WrongOwner {
            fifo_uid: listed.uid(),
            process_uid,
        }),
        PipeFault::Unreadable(e) => Status::Failed(format!("owner of PID {pid}: {e}")),
    })
}

/// The FIFO's change time (ctime): when it was made or last renamed.
pub(crate) fn changed_at(meta: &Metadata) -> SystemTime {
    let secs = u64::try_from(meta.ctime()).unwrap_or(0);
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn open_error(e: &io::Error, call: &str) -> Status {
    match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
        Errno::ELOOP => Status::Refused(RefuseReason::Symlink),
        Errno::EACCES | Errno::EPERM => Status::Refused(RefuseReason::Permission),
        _ => Status::Failed(format!("{call}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_opens_its_directory_once_only_where_every_path_is_in_it() {
        let tmp = std::env::temp_dir();
        let here = |name: &str| tmp.join(name);
        assert!(common_dir(&[here("1.stats"), here("2.stats")]).is_some());
        assert!(common_dir(&[here("1.stats"), tmp.join("sub").join("2.stats")]).is_none());
        assert!(common_dir(&[]).is_none());
        // Relative names have no directory to open.
        assert!(common_dir(&[PathBuf::from("1.stats")]).is_none());
        assert!(common_dir(&[tmp.join("missing-dir-of-a-test").join("1.stats")]).is_none());
    }
}
