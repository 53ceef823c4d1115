//! `Fifo`: one FIFO held by an `O_PATH` descriptor and reopened through
//! `/proc/self/fd`, so we always reach exactly the FIFO we made, whatever
//! its name is now (renamed away, replaced, or planted over by someone else);
//! the serving thread takes a shortcut, the FIFO's own name in our private
//! spare directory ([`Fifo::open_nearby`]).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl, open, openat};
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
    /// Its own name in our private spare directory, a second hard link
    /// made with it that stays with it wherever its other name goes (at our
    /// path, or a slot name of the spare pool), until the pool lets it go
    /// (set and cleared by the spare pool on the serving thread). The
    /// serving thread opens it by that name ([`Fifo::open_nearby`]): its
    /// wait for a reader while it is at our path, and its peeks and probes
    /// once retired. A plain lookup in a small directory only we may
    /// change, rather than through the `/proc/self/fd` link, whose walk
    /// (`/proc`, `self`, the PID, `fd`, the number, each revalidated, then
    /// the magic link) was the largest system-call cost a serve has beyond
    /// the minimal writer's (issue 15). Only the serving thread, which
    /// alone makes and removes spare names, may use it: no name can change
    /// under its feet.
    spare_name: Mutex<Option<Arc<str>>>,
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
    /// The pipe size its last snapshot set ([`crate::send`]), one a pipe
    /// made afresh never has: a [`Fifo::peek`] that finds it knows the pipe
    /// of that snapshot is still alive. `None`: not marked, so a peek
    /// cannot tell.
    pub(crate) marker: Option<usize>,
}

/// Whether a retired FIFO may go back to our path ([`Fifo::claim`]).
#[derive(Debug)]
pub(crate) enum Drain {
    /// No reader can hold a snapshot from it.
    Ready,
    /// Readers of its last snapshot may still be attached, or the sweeper
    /// is busy with it.
    NotYet,
    /// An orphan for sure: a reader that opened it after every reader of
    /// its last snapshot had closed. The write end, open, to serve it a
    /// snapshot of its own, and the retirement it was found in.
    Orphan(OwnedFd, u64),
}

/// What a [`Fifo::peek`] found, without opening the write side (which would
/// release a reader blocked in its `open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peek {
    /// The pipe of the last snapshot is gone: every reader that had bytes
    /// of it has closed. Any reader there now opened since, and never had
    /// a snapshot from this FIFO.
    Fresh,
    /// The pipe of the last snapshot is still open somewhere (a reader
    /// still attached, or one blocked in `open`), with `unread` bytes in it.
    Alive { unread: u64 },
    /// The FIFO was not marked, or could not be opened: a peek cannot tell.
    Unknown,
}

impl Turn {
    /// Notes that a reader found here is being handed to the sweeper: until
    /// its snapshot sets a marker again, a peek cannot tell, so nobody finds
    /// (and hands over) the same reader twice.
    pub(crate) fn hand_over(&mut self) {
        self.marker = None;
    }
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
                marker: None,
            }),
            spare_name: Mutex::new(None),
        }
    }

    /// Notes its own name in the spare directory (`None`: it has none, or
    /// it was removed). Serving thread only (see [`Fifo::open_nearby`]).
    pub(crate) fn set_spare_name(&self, name: Option<Arc<str>>) {
        *self
            .spare_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = name;
    }

    /// Takes its own name away (see [`Fifo::set_spare_name`]), returning it.
    pub(crate) fn take_spare_name(&self) -> Option<Arc<str>> {
        self.spare_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Waits for the sweeper to finish with this FIFO, if it is busy.
    pub(crate) fn turn(&self) -> MutexGuard<'_, Turn> {
        self.turn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a FIFO just made or just put at our path as current.
    pub(crate) fn make_current(&self) {
        self.turn().current = true;
    }

    /// Hands the FIFO to the sweeper after its snapshot was sent (`marker`:
    /// the pipe size the send set, see [`Turn::marker`]): it is no longer
    /// current and may have readers. Returns the retirement number.
    pub(crate) fn retire(&self, marker: Option<usize>) -> u64 {
        let mut turn = self.turn();
        turn.current = false;
        turn.drained = false;
        turn.marker = marker;
        turn.retirement += 1;
        turn.retirement
    }

    /// Whether the FIFO may be put back at our path, peeking at it if no
    /// probe has yet found it drained. Never waits: a FIFO the sweeper is
    /// busy with is not ready.
    pub(crate) fn is_drained(&self, spares: Option<BorrowedFd<'_>>) -> Drain {
        match self.try_turn() {
            Some(mut turn) => self.drain_check(&mut turn, spares),
            None => Drain::NotYet,
        }
    }

    /// Takes the FIFO back from the sweeper to put it at our path, if it is
    /// drained (see [`Fifo::is_drained`]).
    pub(crate) fn claim(&self, spares: Option<BorrowedFd<'_>>) -> Drain {
        let Some(mut turn) = self.try_turn() else {
            return Drain::NotYet;
        };
        let drain = self.drain_check(&mut turn, spares);
        turn.current = matches!(drain, Drain::Ready);
        drain
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

    /// Drained once the pipe of its last snapshot is gone and nobody is
    /// attached. Peeks first: the pool looks at FIFOs retired a moment ago
    /// (reads faster than every 0.5 s), whose last reader, still attached,
    /// cannot be told from an orphan, and opening the write side would
    /// release an orphan blocked in `open` with a bare end-of-file (a `cat`
    /// printing nothing). A FIFO whose last pipe is alive is left to the
    /// orphan watch. Once it is gone, a reader found is an orphan for sure
    /// and is returned to be served, not released.
    fn drain_check(&self, turn: &mut Turn, spares: Option<BorrowedFd<'_>>) -> Drain {
        if turn.drained {
            return Drain::Ready;
        }
        if self.peek(turn.marker, spares) != Peek::Fresh {
            return Drain::NotYet;
        }
        match self.open_nearby(OFlag::O_WRONLY | OFlag::O_NONBLOCK, spares) {
            Err(Errno::ENXIO) => {
                turn.drained = true;
                Drain::Ready
            }
            Err(_) => Drain::NotYet,
            Ok(writer) => {
                turn.hand_over();
                Drain::Orphan(writer, turn.retirement)
            }
        }
    }

    /// Looks at the pipe behind the FIFO without releasing anyone: opens the
    /// read side (non-blocking: wakes only writers, and we are the only
    /// one), reads its size and unread bytes, closes it. Takes a
    /// [`Turn::marker`]; `spares`: see [`Fifo::open_nearby`].
    pub(crate) fn peek(&self, marker: Option<usize>, spares: Option<BorrowedFd<'_>>) -> Peek {
        let Some(marker) = marker else {
            return Peek::Unknown;
        };
        let Ok(reader) = self.open_nearby(OFlag::O_RDONLY | OFlag::O_NONBLOCK, spares) else {
            return Peek::Unknown;
        };
        match fcntl(&reader, FcntlArg::F_GETPIPE_SZ) {
            Ok(size) if usize::try_from(size).ok() == Some(marker) => Peek::Alive {
                unread: rustix::io::ioctl_fionread(&reader).unwrap_or(0),
            },
            Ok(_) => Peek::Fresh,
            Err(_) => Peek::Unknown,
        }
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

    /// Opens the write side, blocking until a reader opens the FIFO;
    /// `spares`: see [`Fifo::open_nearby`].
    pub(crate) fn wait_for_reader(&self, spares: Option<BorrowedFd<'_>>) -> Result<OwnedFd, Errno> {
        self.open_nearby(OFlag::O_WRONLY, spares)
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

    /// Opens this FIFO with `flags`: by its own name in the spare
    /// directory `spares` when the serving thread passes it and the FIFO has
    /// one there (never following a link), else through `/proc/self/fd`.
    /// Other threads pass `None`: only the serving thread renames spares.
    pub(crate) fn open_nearby(
        &self,
        flags: OFlag,
        spares: Option<BorrowedFd<'_>>,
    ) -> Result<OwnedFd, Errno> {
        let name = spares.and_then(|_| {
            self.spare_name
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        });
        let (Some(spares), Some(name)) = (spares, name) else {
            return self.reopen(flags);
        };
        loop {
            match openat(
                spares,
                &*name,
                flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY,
                Mode::empty(),
            ) {
                Err(Errno::EINTR) => continue,
                // A name removed behind our back (only our user may): the
                // descriptor still reaches the FIFO.
                Err(Errno::ENOENT) => return self.reopen(flags),
                other => return other,
            }
        }
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
