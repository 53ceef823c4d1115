//! The pipe directory: chosen, created with a safe mode, and every name in it
//! reached through one directory descriptor without following symlinks.
//!
//! The directory is shared by every user's processes on the host, like
//! `/tmp`: when we create it, it gets mode `1777` (everyone may add a FIFO;
//! the sticky bit stops anyone but a file's owner from renaming or deleting
//! it). An existing directory is used as it is, never `chmod`ed, but refused
//! ([`check_dir`]) if it is owned by a user other than root or us (its owner
//! may delete or rename any FIFO in it, sticky or not, and plant their own
//! at our name: issue 12), or if others may write to it and it is not sticky
//! (then anyone could rename a FIFO of theirs over ours). The directory path
//! itself must not be a symbolic link: a planted link at `/tmp/stats-pipe`
//! would make us create FIFOs wherever it points. Links in the parent
//! components (`/tmp` -> `/private/tmp`) are the administrator's and are
//! followed.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, renameat};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, fchmod, fchmodat, fstat, fstatat, mkdirat,
};
use nix::unistd::{Uid, UnlinkatFlags, User, geteuid, mkdir, mkfifoat, unlinkat};

use crate::error::Error;
use crate::fifo::{Fifo, FileId};

/// The directory used when neither the builder nor the environment names one.
pub const DEFAULT_DIR: &str = "/tmp/stats-pipe";
/// The environment variable that names the directory.
pub const DIR_ENV: &str = "STATS_PIPE_DIR";
/// Mode of a directory we create: world-writable and sticky, like `/tmp`.
pub const DIR_MODE: u32 = 0o1777;
/// How the private directory of a user's spare FIFOs is named in the pipe
/// directory: this prefix, then the user ID (`.spares-1000`). Readers of the
/// pipe directory never look in it; see [`spare_dir_name`].
pub const SPARE_DIR_PREFIX: &str = ".spares-";
/// Mode of a spare directory: only its owner may enter, list or change it.
pub const SPARE_DIR_MODE: u32 = 0o700;

/// The name, in the pipe directory, of the private directory where the
/// writers of user `uid` keep their spare FIFOs (`.spares-<uid>`). It is
/// on the pipe directory's filesystem, so a spare can be exchanged with the
/// FIFO at `<pid>.stats` by one `renameat2`, and it keeps everything but
/// `<pid>.stats` out of a listing of the pipe directory.
pub fn spare_dir_name(uid: u32) -> String {
    format!("{SPARE_DIR_PREFIX}{uid}")
}

/// Whether a pipe directory may be trusted, given its owner and `st_mode`:
/// like OpenSSH's `StrictModes`, it must be owned by root or by our
/// effective user, and if group or others may write to it, it must be
/// sticky (a shared directory is `1777`, like `/tmp`). The aggregator
/// applies the same rule to the directory it reads.
///
/// # Errors
///
/// [`Error::DirOwner`] naming the owner (and their user name, if it
/// resolves); [`Error::UnsafeDir`] for a writable directory that is not
/// sticky.
pub fn check_dir(path: &Path, owner: u32, mode: u32) -> Result<(), Error> {
    check_dir_for(path, owner, mode, geteuid())
}

/// [`check_dir`] for the effective user `uid`, known already (a serving
/// thread's check after a serve makes no `geteuid` call).
pub(crate) fn check_dir_for(path: &Path, owner: u32, mode: u32, uid: Uid) -> Result<(), Error> {
    let uid = uid.as_raw();
    if owner != 0 && owner != uid {
        return Err(Error::DirOwner {
            path: path.to_path_buf(),
            owner,
            owner_name: user_name(owner),
            uid,
        });
    }
    let mode = mode & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(Error::UnsafeDir {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// The user name of `uid`, if the user database knows it.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The pipe directory every writer and reader uses unless told another:
/// `STATS_PIPE_DIR` if set and not empty, else [`DEFAULT_DIR`], trailing
/// slashes dropped.
pub fn default_dir() -> PathBuf {
    resolve(None)
}

/// The directory from the builder, else `STATS_PIPE_DIR` (if set and not
/// empty), else [`DEFAULT_DIR`]; trailing slashes dropped, because a path
/// ending in `/` makes the kernel follow a final symlink even with
/// `O_NOFOLLOW`.
pub(crate) fn resolve(given: Option<PathBuf>) -> PathBuf {
    let chosen = given
        .or_else(|| {
            std::env::var_os(DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    chosen.components().collect()
}

/// An open pipe directory, with our user's private spare directory in it.
#[derive(Debug)]
pub(crate) struct PipeDir {
    path: PathBuf,
    fd: OwnedFd,
    /// `<path>/.spares-<uid>`, held by descriptor too.
    spares_path: PathBuf,
    spares: OwnedFd,
    uid: Uid,
    id: FileId,
}

/// Which of the two directories a name is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Area {
    /// The pipe directory: `<pid>.stats`.
    Pipes,
    /// Our private spare directory: the spare FIFOs.
    Spares,
}

/// What sits at a name we want.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    Nothing,
    /// A FIFO of ours: a stale leftover of a dead earlier holder of our PID.
    OurFifo,
}

impl PipeDir {
    /// Opens `path`, creating it (mode [`DIR_MODE`]) if missing. Only the last
    /// component is created: a missing parent is an error.
    pub(crate) fn open(path: PathBuf) -> Result<PipeDir, Error> {
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let fd = match open(&path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let created = made(mkdir(&path, Mode::from_bits_truncate(DIR_MODE)), &path)?;
                let fd = open(&path, flags, Mode::empty()).map_err(|e| dir_open_error(&path, e))?;
                if created {
                    set_shared_mode(&path, &fd)?;
                }
                fd
            }
            Err(errno) => return Err(dir_open_error(&path, errno)),
        };
        let stat = fstat(&fd).map_err(|errno| Error::Dir {
            path: path.clone(),
            op: "stat",
            errno,
        })?;
        check_dir(&path, stat.st_uid, stat.st_mode)?;
        let uid = geteuid();
        let (spares, spares_path) = open_spare_dir(&fd, &path, uid)?;
        Ok(PipeDir {
            path,
            fd,
            spares_path,
            spares,
            uid,
            id: FileId::of(&stat),
        })
    }

    /// The descriptor and path of `area`.
    fn area(&self, area: Area) -> (&OwnedFd, &Path) {
        match area {
            Area::Pipes => (&self.fd, &self.path),
            Area::Spares => (&self.spares, &self.spares_path),
        }
    }

    /// The path of `name` in `area`, for messages.
    pub(crate) fn join_in(&self, area: Area, name: &str) -> PathBuf {
        self.area(area).1.join(name)
    }

    pub(crate) fn id(&self) -> FileId {
        self.id
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The effective user ID we had when opening it: the owner of our FIFOs.
    pub(crate) fn uid(&self) -> Uid {
        self.uid
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Checks what sits at `name` without following a symlink: nothing, our
    /// own FIFO, or an error for anything we must leave alone.
    pub(crate) fn inspect(&self, area: Area, name: &str) -> Result<Existing, Error> {
        let stat = match fstatat(self.area(area).0, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(Existing::Nothing),
            Err(errno) => {
                return Err(Error::Fifo {
                    path: self.join_in(area, name),
                    op: "inspect",
                    errno,
                });
            }
        };
        self.check_ours(area, name, &stat)?;
        Ok(Existing::OurFifo)
    }

    /// Opens our FIFO at `name` as an `O_PATH` descriptor (no reader or
    /// writer is created) and checks it is a FIFO of ours.
    pub(crate) fn open_fifo(&self, area: Area, name: &str) -> Result<Fifo, Error> {
        let fail = |errno| Error::Fifo {
            path: self.join_in(area, name),
            op: "open",
            errno,
        };
        let fd = openat(
            self.area(area).0,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        let stat = fstat(&fd).map_err(fail)?;
        self.check_ours(area, name, &stat)?;
        Ok(Fifo::new(fd, FileId::of(&stat)))
    }

    /// Creates a FIFO with exactly `mode` at the spare name `name` in our
    /// spare directory. A stale FIFO of ours already there is removed first;
    /// anything else there is an error.
    pub(crate) fn make_spare(&self, name: &str, mode: u32) -> Result<Fifo, Error> {
        let perm = Mode::from_bits_truncate(mode);
        let made = match mkfifoat(&self.spares, name, perm) {
            Err(Errno::EEXIST) if self.inspect(Area::Spares, name)? == Existing::OurFifo => {
                self.remove(Area::Spares, name, None);
                mkfifoat(&self.spares, name, perm)
            }
            other => other,
        };
        made.map_err(|errno| Error::Fifo {
            path: self.join_in(Area::Spares, name),
            op: "mkfifo",
            errno,
        })?;
        let fifo = self.open_fifo(Area::Spares, name)?;
        // mkfifo's mode passed through the umask; set the mode asked for.
        let stat = fstat(fifo.path_fd()).map_err(|errno| Error::Fifo {
            path: self.join_in(Area::Spares, name),
            op: "stat",
            errno,
        })?;
        if stat.st_mode & 0o7777 != mode {
            fchmodat(
                nix::fcntl::AT_FDCWD,
                fifo.proc_path().as_str(),
                perm,
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|errno| Error::Fifo {
                path: self.join_in(Area::Spares, name),
                op: "chmod",
                errno,
            })?;
        }
        Ok(fifo)
    }

    /// The pipe directory, held open.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The spare directory, for the serving thread to open a retired FIFO
    /// by its spare name ([`Fifo::open_nearby`](crate::fifo::Fifo::open_nearby)).
    pub(crate) fn spares(&self) -> BorrowedFd<'_> {
        self.spares.as_fd()
    }

    /// Whether a second name for a FIFO in the spare directory costs no
    /// inode: false on tmpfs, where every name takes one of the
    /// filesystem's `nr_inodes` (and memory), so spare FIFOs are given no
    /// own names there (see `pool.rs`).
    pub(crate) fn links_are_free(&self) -> bool {
        nix::sys::statfs::fstatfs(&self.spares)
            .is_ok_and(|fs| fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC)
    }

    /// Gives the spare `from` a second name `to` in the spare directory (a
    /// hard link, not following a link at `from`); a stale FIFO of ours at
    /// `to` is replaced.
    pub(crate) fn link_spare(&self, from: &str, to: &str) -> Result<(), Errno> {
        let link = || {
            nix::unistd::linkat(
                &self.spares,
                from,
                &self.spares,
                to,
                // No flag: a link at `from` is linked, not followed.
                AtFlags::empty(),
            )
        };
        match link() {
            Err(Errno::EEXIST)
                if matches!(self.inspect(Area::Spares, to), Ok(Existing::OurFifo)) =>
            {
                self.remove(Area::Spares, to, None);
                link()
            }
            other => other,
        }
    }

    /// Atomically replaces `to` in the pipe directory with the spare `from`.
    pub(crate) fn rename_spare(&self, from: &str, to: &str) -> Result<(), Errno> {
        renameat(&self.spares, from, &self.fd, to)
    }

    /// Atomically swaps the spare `a` with the file at `b` in the pipe
    /// directory (both must exist; the two directories are on one
    /// filesystem): neither name is ever missing. `EINVAL` where the
    /// filesystem cannot (`renameat2(RENAME_EXCHANGE)`), `ENOSYS` where the
    /// platform cannot.
    pub(crate) fn exchange_spare(&self, a: &str, b: &str) -> Result<(), Errno> {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        return nix::fcntl::renameat2(
            &self.spares,
            a,
            &self.fd,
            b,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        );
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        {
            let _ = (a, b);
            Err(Errno::ENOSYS)
        }
    }

    /// Removes `name` if it is still the file `id` (any file of ours when
    /// `id` is `None`). Best effort: a name that is gone or someone else's is
    /// left as it is.
    pub(crate) fn remove(&self, area: Area, name: &str, id: Option<FileId>) {
        let at = self.area(area).0;
        let Ok(stat) = fstatat(at, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            return;
        };
        let ours = stat.st_uid == self.uid.as_raw();
        if ours && id.is_none_or(|id| id == FileId::of(&stat)) {
            let _ = unlinkat(at, name, UnlinkatFlags::NoRemoveDir);
        }
    }

    /// Every name in the directory with its type as `readdir` gives it
    /// (`None` where the filesystem does not say), listed through our
    /// descriptor: the very directory we serve in, whatever its path names
    /// now. Names that are not UTF-8 are left out (none of ours is).
    pub(crate) fn entries(
        &self,
        area: Area,
    ) -> Result<Vec<(String, Option<nix::dir::Type>)>, Errno> {
        let mut listing = nix::dir::Dir::openat(
            self.area(area).0,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for entry in listing.iter() {
            let entry = entry?;
            if let Ok(name) = entry.file_name().to_str() {
                names.push((name.to_owned(), entry.file_type()));
            }
        }
        Ok(names)
    }

    /// `fstatat` of `name` in `area`, not following a symlink.
    pub(crate) fn stat(&self, area: Area, name: &str) -> Result<FileStat, Errno> {
        fstatat(self.area(area).0, name, AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    /// Removes the FIFO of ours at `name` if it is still the very FIFO
    /// `seen` describes (same device, inode and change time), then releases
    /// readers blocked in opening it: they read end-of-file instead of
    /// waiting for a writer that is gone. True if it was removed.
    pub(crate) fn remove_leftover(&self, area: Area, name: &str, seen: &FileStat) -> bool {
        let same = |stat: &FileStat| {
            FileId::of(stat) == FileId::of(seen)
                && (stat.st_ctime, stat.st_ctime_nsec) == (seen.st_ctime, seen.st_ctime_nsec)
        };
        // Held by descriptor (and checked to be a FIFO of ours), so the
        // readers released below are this FIFO's, whatever the name holds.
        let Ok(fifo) = self.open_fifo(area, name) else {
            return false;
        };
        if fifo.id() != FileId::of(seen) {
            return false;
        }
        // Checked again just before the unlink: a FIFO put at the name
        // meanwhile (a new process with the PID) is not ours to remove.
        if !self.stat(area, name).is_ok_and(|now| same(&now)) {
            return false;
        }
        if unlinkat(self.area(area).0, name, UnlinkatFlags::NoRemoveDir).is_err() {
            return false;
        }
        drop(fifo.open_if_reader());
        true
    }

    fn check_ours(&self, area: Area, name: &str, stat: &FileStat) -> Result<(), Error> {
        check_fifo_of(&self.join_in(area, name), stat, self.uid)
    }
}

/// Checks that `stat` (of `path`, not followed) is a FIFO owned by `uid`.
pub(crate) fn check_fifo_of(path: &Path, stat: &FileStat, uid: Uid) -> Result<(), Error> {
    if stat.st_uid != uid.as_raw() {
        return Err(Error::Squatted {
            path: path.to_path_buf(),
            owner: stat.st_uid,
            uid: uid.as_raw(),
        });
    }
    let found = match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFIFO => return Ok(()),
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFSOCK => "a socket",
        _ => "a device or other special file",
    };
    Err(Error::NotFifo {
        path: path.to_path_buf(),
        found,
    })
}

/// Whether a `mkdir` of `path` made it: `false` if it was already there
/// (another process may have made it first), an error otherwise.
fn made(mkdir: nix::Result<()>, path: &Path) -> Result<bool, Error> {
    match mkdir {
        Ok(()) => Ok(true),
        Err(Errno::EEXIST) => Ok(false),
        Err(errno) => Err(Error::Dir {
            path: path.to_path_buf(),
            op: "create",
            errno,
        }),
    }
}

/// Opens (creating it if missing, mode [`SPARE_DIR_MODE`]) our user's
/// private spare directory in the pipe directory `dir`, and checks it as
/// strictly as the pipe directory: not a symbolic link (never followed), a
/// directory, owned by our effective user, and entered by nobody else (no
/// permission bits for group or others). Anything else is refused: another
/// user who could write in it could swap a FIFO of theirs in at our path.
fn open_spare_dir(dir: &OwnedFd, dir_path: &Path, uid: Uid) -> Result<(OwnedFd, PathBuf), Error> {
    let name = spare_dir_name(uid.as_raw());
    let path = dir_path.join(&name);
    let created = made(
        mkdirat(dir, name.as_str(), Mode::from_bits_truncate(SPARE_DIR_MODE)),
        &path,
    )?;
    let fd = match openat(
        dir,
        name.as_str(),
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(errno) => {
            let kind = fstatat(dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map(|stat| SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()));
            return Err(match kind {
                Ok(SFlag::S_IFLNK) => Error::DirIsSymlink { path },
                Ok(kind) if kind != SFlag::S_IFDIR => Error::NotADirectory { path },
                _ => Error::Dir {
                    path,
                    op: "open",
                    errno,
                },
            });
        }
    };
    let stat = fstat(&fd).map_err(|errno| Error::Dir {
        path: path.clone(),
        op: "stat",
        errno,
    })?;
    if created && stat.st_uid == uid.as_raw() && stat.st_mode & 0o7777 != SPARE_DIR_MODE {
        // mkdir's mode passed through the umask.
        fchmod(&fd, Mode::from_bits_truncate(SPARE_DIR_MODE)).map_err(|errno| Error::Dir {
            path: path.clone(),
            op: "chmod",
            errno,
        })?;
    } else if stat.st_uid != uid.as_raw() || stat.st_mode & 0o077 != 0 {
        return Err(Error::SpareDir {
            path,
            owner: stat.st_uid,
            mode: stat.st_mode & 0o7777,
            uid: uid.as_raw(),
        });
    }
    Ok((fd, path))
}

fn dir_open_error(path: &Path, errno: Errno) -> Error {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match errno {
        _ if is_link => Error::DirIsSymlink {
            path: path.to_path_buf(),
        },
        Errno::ENOTDIR => Error::NotADirectory {
            path: path.to_path_buf(),
        },
        errno => Error::Dir {
            path: path.to_path_buf(),
            op: "open",
            errno,
        },
    }
}

/// mkdir's mode passed through the umask; a directory we just created (and
/// still own, checked on the open descriptor) gets the full shared mode.
fn set_shared_mode(path: &Path, fd: &OwnedFd) -> Result<(), Error> {
    let stat = fstat(fd).map_err(|errno| Error::Dir {
        path: path.to_path_buf(),
        op: "stat",
        errno,
    })?;
    if stat.st_uid == geteuid().as_raw() && stat.st_mode & 0o7777 != DIR_MODE {
        fchmod(fd, Mode::from_bits_truncate(DIR_MODE)).map_err(|errno| Error::Dir {
            path: path.to_path_buf(),
            op: "chmod",
            errno,
        })?;
    }
    Ok(())
}
