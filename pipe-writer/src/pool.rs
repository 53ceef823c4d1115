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
    spares: VecDeque<Spare>,
    /// Cleared for good when the filesystem cannot exchange two names: every
    /// serve then renames a fresh FIFO over the path.
    exchange: bool,
}

impl Pool {
    pub(crate) fn new(pid: u32, suffix: &'static str) -> Pool {
        Pool {
            pid,
            suffix,
            spares: VecDeque::with_capacity(SPARES + 1),
            exchange: true,
        }
    }

    fn name(&self, index: usize) -> String {
        match index {
            0 => format!(".{}.{}.tmp", self.pid, self.suffix),
            n => format!(".{}.{}.{n}.tmp", self.pid, self.suffix),
        }
    }

    /// Notes on `fifo` that it now goes by the spare name `index`, for the
    /// serving thread's probes ([`Fifo::open_nearby`]).
    fn named(&self, fifo: &Fifo, index: usize) {
        fifo.set_spare_name(Some(Arc::from(self.name(index))));
    }

    /// Makes the first FIFO and renames it over `name` (replacing a stale
    /// FIFO of ours there). Returns it, current.
    pub(crate) fn start(&self, dir: &PipeDir, name: &str, mode: u32) -> Result<Arc<Fifo>, Error> {
        let first = self.fresh(dir, mode)?;
        first.fifo.set_spare_name(None);
        if let Err(errno) = dir.rename_spare(&self.name(first.index), name) {
            dir.remove(Area::Spares, &self.name(first.index), Some(first.fifo.id()));
            return Err(swap_error(dir, name, errno));
        }
        first.fifo.make_current();
        Ok(first.fifo)
    }

    /// Makes a fresh FIFO under a spare name that no spare has (not yet in
    /// the pool).
    fn fresh(&self, dir: &PipeDir, mode: u32) -> Result<Spare, Error> {
        let mut squatted = None;
        for index in 0..NAMES {
            if self.spares.iter().any(|s| s.index == index) {
                continue;
            }
            match dir.make_spare(&self.name(index), mode) {
                Ok(fifo) => {
                    self.named(&fifo, index);
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
            path: dir.join_in(Area::Spares, &self.name(0)),
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
            oldest.fifo.set_spare_name(None);
            dir.remove(
                Area::Spares,
                &self.name(oldest.index),
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
        let spare_name = self.name(spare.index);
        if self.exchange {
            match dir.exchange_spare(&spare_name, name) {
                Ok(()) => {
                    spare.fifo.set_spare_name(None);
                    self.named(current, spare.index);
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
        match dir.rename_spare(&spare_name, name) {
            Ok(()) => {
                spare.fifo.set_spare_name(None);
                // Renamed over: the FIFO that was at our path has no name.
                current.set_spare_name(None);
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
            spare.fifo.set_spare_name(None);
            dir.remove(Area::Spares, &self.name(spare.index), Some(spare.fifo.id()));
            drop(spare.fifo.open_if_reader());
        }
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
