//! `Fifo`: one FIFO held by an `O_PATH` descriptor and reopened through
//! `/proc/self/fd`, so we always reach exactly the FIFO we made, whatever
//! its name is now (renamed away, replaced, or planted over by someone else).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

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
    turn: Mutex<Turn>,
}

/// Whose turn it is to write to a FIFO: the serving thread's while the FIFO
/// is at our path, the orphan sweeper's while it is retired. A retired FIFO
/// waits in the spare pool (`pool.rs`) to be put back at our path; the lock
/// makes taking it back and the sweeper's probe of it exclusive.
#[derive(Debug)]
pub(crate) struct Turn {
    /// Bumped at every retirement: the sweeper's watch of an earlier
    /// retirement is stale.
    pub(crate) retirement: u64,
    /// At our path (or being put there): the sweeper keeps off.
    pub(crate) current: bool,
    /// No reader can hold a snapshot from it: none was ever sent, or a probe
    /// since the last one found no reader attached. Only then may it be put
    /// back at our path, or a slow reader of its last snapshot would be
    /// handed another one.
    pub(crate) drained: bool,
}

impl Fifo {
    pub(crate) fn new(path_fd: OwnedFd, id: FileId) -> Fifo {
        Fifo {
            path_fd,
            id,
            turn: Mutex::new(Turn {
                retirement: 0,
                current: false,
                drained: true,
            }),
        }
    }

    /// Waits for the sweeper to finish with this FIFO, if it is busy.
    pub(crate) fn turn(&self) -> MutexGuard<'_, Turn> {
        self.turn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a FIFO just made or just put at our path as current.
    pub(crate) fn make_current(&self) {
        self.turn().current = true;
    }

    /// Hands the FIFO to the sweeper after its snapshot was sent: it is no
    /// longer current and may have readers. Returns the retirement number.
    pub(crate) fn retire(&self) -> u64 {
        let mut turn = self.turn();
        turn.current = false;
        turn.drained = false;
        turn.retirement += 1;
        turn.retirement
    }

    /// Whether the FIFO may be put back at our path, probing for readers if
    /// no probe has yet found it empty. Never waits: a FIFO the sweeper is
    /// busy with is not ready.
    pub(crate) fn is_drained(&self) -> bool {
        self.try_turn()
            .is_some_and(|mut turn| self.drain_check(&mut turn))
    }

    /// Takes the FIFO back from the sweeper to put it at our path, if it is
    /// drained (see [`Fifo::is_drained`]).
    pub(crate) fn claim(&self) -> bool {
        let Some(mut turn) = self.try_turn() else {
            return false;
        };
        let drained = self.drain_check(&mut turn);
        turn.current = drained;
        drained
    }

    /// Gives back a claim that could not be used.
    pub(crate) fn unclaim(&self) {
        self.turn().current = false;
    }

    fn try_turn(&self) -> Option<MutexGuard<'_, Turn>> {
        match self.turn.try_lock() {
            Ok(turn) => Some(turn),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn drain_check(&self, turn: &mut Turn) -> bool {
        if !turn.drained {
            // A reader found here is released with end-of-file: it is either
            // slow to close after its snapshot (no harm) or an orphan that
            // came in the last instant (it sees an empty read and retries).
            turn.drained = matches!(self.open_if_reader(), Err(Errno::ENXIO));
        }
        turn.drained
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
