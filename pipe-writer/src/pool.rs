//! The spare FIFOs a server rotates through its path. Each serve swaps a
//! spare with the FIFO at `<pid>.stats` by `renameat2(RENAME_EXCHANGE)`, so
//! the retired FIFO keeps a spare name and can be put back at the path
//! later: no `mkfifo`, no unlink, no inode to free per serve (on ext4 inode
//! allocation was half the cost of a serve; BENCHMARKS.md).
//!
//! A retired FIFO goes back only once it is drained ([`Fifo::claim`]): the
//! pipe of its last snapshot is gone and nobody is attached, so no reader
//! that already has a snapshot from it can be handed a second one. Looking
//! never releases a reader: an orphan found is handed to the sweeper to be
//! served. A spare that is not drained stays with the orphan sweeper and is
//! replaced by a fresh FIFO under its name (what every serve did before the
//! pool).
//!
//! Spares live in our user's private spare directory in the pipe directory
//! (`<dir>/.spares-<uid>`, mode 0700: see [`crate::spare_dir_name`]), under
//! `.<pid>.stats.tmp` and `.<pid>.stats.<n>.tmp`, so a listing of the pipe
//! directory shows only the `<pid>.stats` of live writers; a name found
//! taken by something not ours is stepped around.
//!
//! Each FIFO also has a name of its own there, a second hard link made
//! with it (`.<pid>.stats.<n>.tmp`, `n` from [`NAMES`] on, never reused
//! by this process), kept while the pool holds it, at our path or at a
//! slot name: the serving thread opens it by that name, its wait for a
//! reader included, never through `/proc/self/fd` (issue 15). Not on
//! tmpfs, where each name takes an inode (a writer would need twice as
//! many), and no more once the filesystem runs out of inodes.

use std::collections::VecDeque;
use std::sync::Arc;

use nix::errno::Errno;

use crate::dir::{Area, PipeDir};
use crate::error::Error;
use crate::fifo::{Drain, Fifo};
use crate::sweep::Watch;

/// Spare FIFOs kept besides the one at the path. Back-to-back readers need
/// two (the last FIFO served is still being read while the one before it
/// is probed); a third covers readers that overlap.
pub(crate) const SPARES: usize = 3;
/// Spare names tried, stepping around squatted ones.
const NAMES: usize = 8;

/// A spare FIFO under its spare name.
#[derive(Debug)]
struct Spare {
    /// Which spare name it has.
    index: usize,
    fifo: Arc<Fifo>,
}

/// The spares of one server, the next to use first.
#[derive(Debug)]
pub(crate) struct Pool {
    pid: u32,
    /// The served name's suffix: `stats` or `traces`.
    suffix: &'static str,
    /// The slot names, made once: formatting one per serve showed in a
    /// profile of the serving thread (issue 15; no change in the writers'
    /// CPU could be measured, BENCHMARKS.md).
    slot_names: [Box<str>; NAMES],
    spares: VecDeque<Spare>,
    /// Cleared for good when the filesystem cannot exchange two names: every
    /// serve then renames a fresh FIFO over the path.
    exchange: bool,
    /// The number in the next FIFO's own name, from [`NAMES`] on.
    next_own: u64,
    /// Whether FIFOs get own names: cleared for good when the filesystem
    /// runs out of inodes (on tmpfs each name takes one), so the names
    /// never keep a FIFO from being made.
    own_names: bool,
}

impl Pool {
    /// `own_names`: whether FIFOs get own names (where they cost no inode,
    /// [`PipeDir::links_are_free`]).
    pub(crate) fn new(pid: u32, suffix: &'static str, own_names: bool) -> Pool {
        Pool {
            pid,
            suffix,
            slot_names: std::array::from_fn(|index| numbered(pid, suffix, index as u64).into()),
            spares: VecDeque::with_capacity(SPARES + 1),
            exchange: true,
            next_own: NAMES as u64,
            own_names,
        }
    }

    /// The slot name `index` (below [`NAMES`]).
    fn name(&self, index: usize) -> &str {
        &self.slot_names[index]
    }

    /// Gives a FIFO just made under the slot name `index` its own name, for
    /// the serving thread's opens ([`Fifo::open_nearby`]). Where no link
    /// can be made (a filesystem without hard links, the link count at its
    /// limit), it has none and is opened through `/proc/self/fd`.
    fn name_own(&mut self, dir: &PipeDir, fifo: &Fifo, index: usize) {
        if !self.own_names {
            return;
        }
        let own = numbered(self.pid, self.suffix, self.next_own);
        self.next_own += 1;
        let named = dir.link_spare(self.name(index), &own).is_ok();
        fifo.set_spare_name(named.then(|| Arc::from(own)));
    }

    /// Makes the first FIFO and renames it over `name` (replacing a stale
    /// FIFO of ours there). Returns it, current.
    pub(crate) fn start(
        &mut self,
        dir: &PipeDir,
        name: &str,
        mode: u32,
    ) -> Result<Arc<Fifo>, Error> {
        let first = self.fresh(dir, mode)?;
        if let Err(errno) = dir.rename_spare(self.name(first.index), name) {
            dir.remove(Area::Spares, self.name(first.index), Some(first.fifo.id()));
            forget(dir, &first.fifo);
            return Err(swap_error(dir, name, errno));
        }
        first.fifo.make_current();
        Ok(first.fifo)
    }

    /// Makes a fresh FIFO under a spare name that no spare has (not yet in
    /// the pool).
    fn fresh(&mut self, dir: &PipeDir, mode: u32) -> Result<Spare, Error> {
        let mut squatted = None;
        for index in 0..NAMES {
            if self.spares.iter().any(|s| s.index == index) {
                continue;
            }
            let made = match dir.make_spare(self.name(index), mode) {
                // Out of inodes: on tmpfs each own name takes one. They go,
                // for good, and the FIFO is tried again.
                Err(Error::Fifo {
                    errno: Errno::ENOSPC | Errno::EDQUOT,
                    ..
                }) if self.own_names => {
                    self.own_names = false;
                    for spare in &self.spares {
                        forget(dir, &spare.fifo);
                    }
                    dir.make_spare(self.name(index), mode)
                }
                other => other,
            };
            match made {
                Ok(fifo) => {
                    self.name_own(dir, &fifo, index);
                    return Ok(Spare {
                        index,
                        fifo: Arc::new(fifo),
                    });
                }
                Err(error @ (Error::Squatted { .. } | Error::NotFifo { .. })) => {
                    squatted = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        // Every free name is squatted (the pool itself holds at most SPARES).
        Err(squatted.unwrap_or_else(|| Error::Fifo {
            path: dir.join_in(Area::Spares, self.name(0)),
            op: "find a free spare name for",
            errno: Errno::EEXIST,
        }))
    }

    /// Gets the pool ready for the next serve, off the reader's clock: full,
    /// with a drained spare first. Probes the oldest spares first (their
    /// readers had the longest to leave); when none is drained, the oldest is
    /// left to the sweeper and a fresh FIFO takes its name. An orphan found
    /// on the way is handed to `watch`'s sweeper to be served.
    pub(crate) fn prepare(&mut self, dir: &PipeDir, mode: u32, watch: &Watch) -> Result<(), Error> {
        while self.spares.len() < SPARES {
            let fresh = self.fresh(dir, mode)?;
            self.spares.push_front(fresh);
        }
        let ready = self
            .spares
            .iter()
            .position(|s| is_ready(&s.fifo, s.fifo.is_drained(Some(dir.spares())), watch));
        if let Some(ready) = ready {
            self.spares.swap(0, ready);
            return Ok(());
        }
        if let Some(oldest) = self.spares.pop_front() {
            // Left to the sweeper, which knows it by descriptor only.
            forget(dir, &oldest.fifo);
            dir.remove(
                Area::Spares,
                self.name(oldest.index),
                Some(oldest.fifo.id()),
            );
        }
        let fresh = self.fresh(dir, mode)?;
        self.spares.push_front(fresh);
        Ok(())
    }

    /// Puts a drained spare at `name` in place of `current` and returns it
    /// (claimed, see [`Fifo::claim`]). `current` takes the spare's name and
    /// joins the pool (or, where names cannot be exchanged, loses its name).
    pub(crate) fn swap_in(
        &mut self,
        dir: &PipeDir,
        name: &str,
        current: &Arc<Fifo>,
        mode: u32,
        watch: &Watch,
    ) -> Result<Arc<Fifo>, Error> {
        let claimed = self
            .spares
            .iter()
            .position(|s| is_ready(&s.fifo, s.fifo.claim(Some(dir.spares())), watch));
        let spare = match claimed {
            Some(ready) => self.spares.remove(ready),
            None => None,
        };
        let spare = match spare {
            Some(spare) => spare,
            // The spare prepared was taken by the sweeper in the meantime (an
            // orphan came): rare, so a fresh FIFO now.
            None => {
                let fresh = self.fresh(dir, mode)?;
                fresh.fifo.make_current();
                fresh
            }
        };
        // The field itself, not `self.name`: the arms below change other
        // fields while it is borrowed.
        let spare_name = &self.slot_names[spare.index];
        if self.exchange {
            match dir.exchange_spare(spare_name, name) {
                Ok(()) => {
                    // Each keeps its own name: no other name to note.
                    self.spares.push_back(Spare {
                        index: spare.index,
                        fifo: Arc::clone(current),
                    });
                    return Ok(spare.fifo);
                }
                Err(Errno::EINVAL | Errno::ENOSYS) => self.exchange = false,
                // Our path was removed: a plain rename puts it back.
                Err(Errno::ENOENT) => {}
                Err(errno) => return Err(self.give_back(dir, spare, name, errno)),
            }
        }
        match dir.rename_spare(spare_name, name) {
            Ok(()) => {
                // Renamed over: the FIFO that was at our path leaves the
                // pool, for the sweeper.
                forget(dir, current);
                Ok(spare.fifo)
            }
            Err(errno) => Err(self.give_back(dir, spare, name, errno)),
        }
    }

    /// Returns a claimed spare to the pool after the swap failed.
    fn give_back(&mut self, dir: &PipeDir, spare: Spare, name: &str, errno: Errno) -> Error {
        spare.fifo.unclaim();
        self.spares.push_front(spare);
        swap_error(dir, name, errno)
    }

    /// Removes every spare name still ours and releases readers attached to
    /// the spares with end-of-file (stopping).
    pub(crate) fn remove_all(&mut self, dir: &PipeDir) {
        while let Some(spare) = self.spares.pop_front() {
            forget(dir, &spare.fifo);
            dir.remove(Area::Spares, self.name(spare.index), Some(spare.fifo.id()));
            drop(spare.fifo.open_if_reader());
        }
    }
}

/// The spare name numbered `n`: `.<pid>.<suffix>.tmp` for 0, else
/// `.<pid>.<suffix>.<n>.tmp`.
fn numbered(pid: u32, suffix: &str, n: u64) -> String {
    match n {
        0 => format!(".{pid}.{suffix}.tmp"),
        n => format!(".{pid}.{suffix}.{n}.tmp"),
    }
}

/// Removes `fifo`'s own name ([`Pool::name_own`]), once the pool lets it
/// go: from then on it is known by descriptor only.
pub(crate) fn forget(dir: &PipeDir, fifo: &Fifo) {
    let own = fifo.take_spare_name();
    if let Some(own) = own {
        dir.remove(Area::Spares, &own, Some(fifo.id()));
    }
}

/// Whether `drain` says `fifo` may go back to our path; an orphan found
/// is handed to the sweeper.
fn is_ready(fifo: &Arc<Fifo>, drain: Drain, watch: &Watch) -> bool {
    match drain {
        Drain::Ready => true,
        Drain::NotYet => false,
        Drain::Orphan(writer, retirement) => {
            watch.hand_over(Arc::clone(fifo), retirement, writer);
            false
        }
    }
}

fn swap_error(dir: &PipeDir, name: &str, errno: Errno) -> Error {
    Error::Fifo {
        path: dir.join(name),
        op: "put a spare FIFO in place at",
        errno,
    }
}
