//! The orphan sweeper: serves readers that opened a FIFO after it was
//! retired, so a blocking `cat` that raced with a replacement is not left
//! waiting forever.
//!
//! A reader whose path lookup found FIFO X just before the serving thread
//! renamed a fresh FIFO over it, but whose `open` completed only after the
//! thread had written X and closed it, waits for a writer that never comes
//! (FIFO-NOTES.md: two `cat`s stuck 15 minutes). The serving thread hands
//! every retired FIFO to this thread, which keeps it for [`KEEP`] (at most
//! [`MAX_RETIRED`] of them) and every [`INTERVAL`] opens it again with
//! `O_WRONLY | O_NONBLOCK`: `ENXIO` means nobody is there; success means a
//! reader is, and it gets a snapshot of its own.
//!
//! The writer side cannot tell an orphan from a slow reader that is still
//! finishing the snapshot it was served, so a FIFO is probed only
//! [`SETTLE`] after its last snapshot, and served again only after a probe
//! has seen it empty (`ENXIO`). A reader still attached [`SETTLE`] after its
//! snapshot (a `cat` blocked on a slow terminal) can therefore be sent one
//! extra snapshot (its read shows two envelopes: recognisably not one
//! complete snapshot); never more than one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use nix::errno::Errno;

use crate::counters::Counters;
use crate::fifo::Fifo;
use crate::send::Delivery;
use crate::snapshot::Snapshotter;

/// How long a retired FIFO is watched for orphans.
pub(crate) const KEEP: Duration = Duration::from_secs(5);
/// How many retired FIFOs are watched at most (each holds one descriptor);
/// the oldest goes first. A flood of opens retires thousands a second, but
/// orphans come within milliseconds of a retirement.
pub(crate) const MAX_RETIRED: usize = 128;
/// Time after a FIFO's last snapshot before it is probed, so the readers it
/// was served to have left.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);
/// Probe period while any FIFO is watched.
pub(crate) const INTERVAL: Duration = Duration::from_millis(20);

/// A FIFO the serving thread has replaced.
#[derive(Debug)]
pub(crate) struct Retired {
    pub(crate) fifo: Arc<Fifo>,
    /// Which retirement of it this is ([`crate::fifo::Turn`]): once the
    /// serving thread has put it back at our path, this watch is over.
    pub(crate) retirement: u64,
    /// When its last snapshot ended.
    pub(crate) closed_at: Instant,
    /// Whether a reader found there may be sent a snapshot without a
    /// probe seeing it empty first: false when its readers stalled.
    pub(crate) may_serve: bool,
}

struct Watched {
    retired: Retired,
    since: Instant,
}

/// Runs until the serving thread drops its end of `inbox`.
pub(crate) fn run(
    inbox: &Receiver<Retired>,
    snapshotter: &mut Snapshotter,
    delivery: &Delivery,
    counters: &Counters,
    stop: &Arc<AtomicBool>,
) {
    let mut watched: VecDeque<Watched> = VecDeque::new();
    let mut sweeper = Sweeper {
        snapshotter,
        delivery,
        counters,
        stop,
    };
    loop {
        let mut hung_up = false;
        if watched.is_empty() {
            match inbox.recv() {
                Ok(retired) => watched.push_back(Watched {
                    retired,
                    since: Instant::now(),
                }),
                Err(_) => hung_up = true,
            }
        } else {
            // Parked, not waiting on the channel: a send to a channel with
            // no waiting receiver is a plain push, so the serving thread
            // never pays a wake-up per snapshot. Shutdown unparks us.
            std::thread::park_timeout(INTERVAL);
        }
        let now = Instant::now();
        loop {
            match inbox.try_recv() {
                Ok(retired) => watched.push_back(Watched {
                    retired,
                    since: now,
                }),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    hung_up = true;
                    break;
                }
            }
        }
        if hung_up {
            // Stopping: release whoever is attached (they read end-of-file)
            // rather than write to readers that may still be finishing.
            for mut w in watched.drain(..) {
                sweeper.probe(&mut w.retired, false);
            }
            return;
        }
        while watched.len() > MAX_RETIRED || watched.front().is_some_and(|w| now - w.since >= KEEP)
        {
            if let Some(mut w) = watched.pop_front() {
                let settled = now - w.retired.closed_at >= SETTLE;
                sweeper.probe(&mut w.retired, settled);
            }
        }
        watched.retain_mut(|w| {
            now - w.retired.closed_at < SETTLE || sweeper.probe(&mut w.retired, true)
        });
    }
}

struct Sweeper<'a> {
    snapshotter: &'a mut Snapshotter,
    delivery: &'a Delivery,
    counters: &'a Counters,
    stop: &'a AtomicBool,
}

impl Sweeper<'_> {
    /// Looks for a reader on a retired FIFO and serves it if allowed
    /// (`serve`); otherwise a reader found only sees end-of-file. False when
    /// the FIFO is no longer this watch's: the serving thread took it back.
    fn probe(&mut self, retired: &mut Retired, serve: bool) -> bool {
        // Held while serving, so the FIFO is not taken back meanwhile.
        let mut turn = retired.fifo.turn();
        if turn.current || turn.retirement != retired.retirement {
            return false;
        }
        let found = retired.fifo.open_if_reader();
        turn.drained = matches!(found, Err(Errno::ENXIO));
        match found {
            Err(Errno::ENXIO) => retired.may_serve = true,
            Err(_) => retired.may_serve = false,
            Ok(writer) if serve && retired.may_serve => {
                let sent = self
                    .delivery
                    .send(&writer, self.snapshotter.build(), self.stop);
                self.counters.record(sent, true);
                drop(writer);
                retired.may_serve = false;
                retired.closed_at = Instant::now();
            }
            Ok(_released) => {}
        }
        true
    }
}
