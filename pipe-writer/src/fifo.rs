//! `Fifo`: one FIFO held by an `O_PATH` descriptor and reopened through
//! `/proc/self/fd`, so we always reach exactly the FIFO we made, whatever
//! its name is now (renamed away, replaced, or planted over by someone else).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::{FileStat, Mode};

/// The identity of a file: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub(crate) fn of(stat: &FileStat) -> FileId {
        FileId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
}

/// A FIFO we created, held without being a reader or a writer of it.
#[derive(Debug)]
pub(crate) struct Fifo {
    path_fd: OwnedFd,
    id: FileId,
}

impl Fifo {
    pub(crate) fn new(path_fd: OwnedFd, id: FileId) -> Fifo {
        Fifo { path_fd, id }
    }

    pub(crate) fn id(&self) -> FileId {
        self.id
    }

    pub(crate) fn path_fd(&self) -> &OwnedFd {
        &self.path_fd
    }

    /// `/proc/self/fd/N`: opening it opens this very FIFO anew.
    pub(crate) fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.path_fd.as_raw_fd())
    }

    /// Opens the write side, blocking until a reader opens the FIFO.
    pub(crate) fn wait_for_reader(&self) -> Result<OwnedFd, Errno> {
        self.reopen(OFlag::O_WRONLY)
    }

    /// Opens the write side only if a reader is there now (also one blocked
    /// in its own `open`, which this releases); `ENXIO` when there is none.
    pub(crate) fn open_if_reader(&self) -> Result<OwnedFd, Errno> {
        self.reopen(OFlag::O_WRONLY | OFlag::O_NONBLOCK)
    }

    /// Opens the read side without waiting: releases a writer blocked in
    /// [`Fifo::wait_for_reader`].
    pub(crate) fn open_wake_reader(&self) -> Result<OwnedFd, Errno> {
        self.reopen(OFlag::O_RDONLY | OFlag::O_NONBLOCK)
    }

    fn reopen(&self, flags: OFlag) -> Result<OwnedFd, Errno> {
        loop {
            match open(
                self.proc_path().as_str(),
                flags | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }
}

/// Checks that FIFOs can be reopened by descriptor.
pub(crate) fn check_proc() -> Result<(), Errno> {
    nix::sys::stat::stat("/proc/self/fd").map(drop)
}
