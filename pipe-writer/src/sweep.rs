//! The orphan sweeper: serves readers that opened a FIFO after it was
//! retired, so a blocking `cat` that raced with a replacement is not left
//! waiting forever.
//!
//! A reader whose path lookup found FIFO X just before the serving thread
//! swapped a spare in over it, but whose `open` completed only after the
//! thread had written X and closed it, waits for a writer that never comes
//! (docs/FIFO.md: two `cat`s stuck 15 minutes). The serving thread hands
//! every retired FIFO to this thread, which opens it again once, with
//! `O_WRONLY | O_NONBLOCK`, [`EARLIEST_PROBE`] to about two seconds after
//! its snapshot (see below): `ENXIO`
//! means nobody is there (the FIFO is then drained, ready to go back to
//! our path); success means a reader is, and it gets a snapshot of its own.
//!
//! One probe per retirement (issue 15): the race that makes an orphan is
//! one `open` system call wide, so the orphan is there well within a
//! second; before, each retired FIFO was probed five times (100 ms to 5 s
//! after its snapshot) and the thread woke every 250 ms while it watched,
//! which with a thousand writers read once a second took 18.5 % of both
//! cores (BENCHMARKS.md). A FIFO also goes back to our path after a few
//! serves (the spare pool), where a reader still blocked on it is served
//! like any other. Only a FIFO whose reader is still reading its snapshot
//! at the probe is probed again, every [`ORPHAN_WAIT`], until [`KEEP`].
//!
//! The thread parks until the next probe is due and is never woken by the
//! serving thread to learn of a retirement (a send to a channel with no
//! waiting receiver is a plain push): every later retirement is due later.
//! When its last watch ends it stays parked two [`ORPHAN_WAIT`]s more (a
//! writer read once a second retires its next FIFOs meanwhile, unseen), and
//! only then, watching nothing, blocks on the channel; awake, it probes
//! every FIFO at least [`EARLIEST_PROBE`] old. So a writer read once a
//! second wakes it about once every two reads, and an orphan is served
//! within about two seconds. Only a flood of retirements
//! ([`MAX_RETIRED`]) unparks it early. A writer nobody reads makes no
//! wake-up at all.
//!
//! The writer side cannot always tell an orphan from a slow reader still
//! finishing the snapshot it was served. A reader found while bytes of the
//! snapshot are still unread in the pipe is that slow reader, and is left
//! alone (an aggregator busy with a thousand pipes). A reader found with
//! the pipe empty at least [`EARLIEST_PROBE`] after its snapshot is taken
//! for an orphan and served, unless the FIFO's readers stalled; a reader
//! that has read everything but is still attached that much later (a `cat` blocked on
//! a slow terminal) can so be sent one extra snapshot (its read shows two
//! envelopes: recognisably not one complete snapshot); never more than one.
//!
//! The same thread keeps the process's own figures fresh (the `process.*`
//! lines, [`crate::process_stats`]): when it wakes for a probe and a
//! snapshot used the figures since the last refresh, it re-reads
//! `/proc/self` (at most every [`REFRESH`]), so readers do not wait for
//! `/proc` and the refresh costs no wake-up of its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use nix::errno::Errno;

use crate::counters::Counters;
use crate::fifo::Fifo;
use crate::process_stats::{OwnFigures, REFRESH};
use crate::send::Delivery;
use crate::snapshot::Snapshotter;

/// How long after a FIFO's last snapshot it is probed for an orphan: the
/// readers it was served to have left by then, and an orphan has come.
pub(crate) const ORPHAN_WAIT: Duration = Duration::from_secs(1);
/// A FIFO this old is probed when the thread is awake for another one:
/// probes are batched, half a second being still long enough for the
/// readers of its snapshot to have left.
pub(crate) const EARLIEST_PROBE: Duration = Duration::from_millis(500);
/// How long a FIFO whose reader is still reading at its probe is watched.
pub(crate) const KEEP: Duration = Duration::from_secs(5);
/// How many retired FIFOs wait for their probe at most (each holds one
/// descriptor): past it the serving thread unparks the sweeper and the
/// oldest are probed at once. A flood of opens retires thousands a second.
pub(crate) const MAX_RETIRED: usize = 128;
/// A FIFO probed early (the flood) may be served only this long after its
/// snapshot, so the readers it was served to have left.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

/// A FIFO the serving thread has replaced.
#[derive(Debug)]
pub(crate) struct Retired {
    pub(crate) fifo: Arc<Fifo>,
    /// Which retirement of it this is ([`crate::fifo::Turn`]): once the
    /// serving thread has put it back at our path, this watch is over.
    pub(crate) retirement: u64,
    /// When its last snapshot ended.
    pub(crate) closed_at: Instant,
    /// Whether a reader found there may be sent a snapshot: false when its
    /// readers stalled.
    pub(crate) may_serve: bool,
}

struct Watched {
    retired: Retired,
    /// When the thread wakes for it.
    next_probe: Instant,
    /// From when it is probed if the thread is awake anyway.
    probe_from: Instant,
}

/// What a probe found.
#[derive(Debug, PartialEq)]
enum Found {
    /// Nothing more to watch: drained, served, released, or taken back.
    Done,
    /// A reader still reading its snapshot: probe again later.
    Reading,
}

/// Runs until the serving thread drops its end of `inbox`, refreshing `own`
/// on its wake-ups (at most every [`REFRESH`]) if given.
pub(crate) fn run(
    inbox: &Receiver<Retired>,
    snapshotter: &mut Snapshotter,
    delivery: &Delivery,
    counters: &Counters,
    stop: &Arc<AtomicBool>,
    own: Option<&OwnFigures>,
) {
    let mut watched: VecDeque<Watched> = VecDeque::new();
    let mut sweeper = Sweeper {
        snapshotter,
        delivery,
        counters,
        stop,
    };
    // The server read the figures once as it started.
    let mut next_refresh = Instant::now() + REFRESH;
    let watch = |retired: Retired| Watched {
        next_probe: retired.closed_at + ORPHAN_WAIT,
        probe_from: retired.closed_at + EARLIEST_PROBE,
        retired,
    };
    // Whether the last watch just ended (see below).
    let mut expecting = false;
    loop {
        let mut hung_up = false;
        match watched.front() {
            // The last watch just ended: a writer read once a second retires
            // its next FIFO within the second, so wait that long parked
            // (that retirement is a plain push, no wake-up) rather than on
            // the channel, which the next retirement would wake: one
            // wake-up per read, not two.
            None if expecting => {
                expecting = false;
                std::thread::park_timeout(2 * ORPHAN_WAIT);
            }
            // Nothing to watch and nobody reading: sleep until the next
            // retirement (a read), with no wake-up in between.
            None => match inbox.recv() {
                Ok(retired) => watched.push_back(watch(retired)),
                Err(_) => hung_up = true,
            },
            // Parked, not waiting on the channel. Probes are due in the
            // order of retirement (a re-probe goes to the back, due later
            // than all before it), so the front is the next one due.
            Some(first) => {
                let wait = first.next_probe.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::park_timeout(wait);
                }
            }
        }
        loop {
            match inbox.try_recv() {
                Ok(retired) => watched.push_back(watch(retired)),
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
        let now = Instant::now();
        while watched.len() > MAX_RETIRED {
            if let Some(mut w) = watched.pop_front() {
                let settled = now - w.retired.closed_at >= SETTLE;
                sweeper.probe(&mut w.retired, settled);
            }
        }
        let mut probed = false;
        while watched.front().is_some_and(|w| w.probe_from <= now) {
            probed = true;
            let Some(mut w) = watched.pop_front() else {
                break;
            };
            let reading = sweeper.probe(&mut w.retired, true) == Found::Reading;
            if reading && now - w.retired.closed_at < KEEP {
                w.next_probe = now + ORPHAN_WAIT;
                w.probe_from = w.next_probe;
                watched.push_back(w);
            }
        }
        if watched.is_empty() && probed {
            expecting = true;
        }
        if let Some(own) = own
            && now >= next_refresh
            && own.refresh_if_wanted()
        {
            next_refresh = Instant::now() + REFRESH;
        }
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
    /// (`serve`); otherwise a reader found only sees end-of-file.
    fn probe(&mut self, retired: &mut Retired, serve: bool) -> Found {
        // Held while serving, so the FIFO is not taken back meanwhile.
        let mut turn = retired.fifo.turn();
        if turn.current || turn.retirement != retired.retirement {
            return Found::Done;
        }
        let found = retired.fifo.open_if_reader();
        turn.drained = matches!(found, Err(Errno::ENXIO));
        match found {
            Err(Errno::ENXIO) => Found::Done,
            // EMFILE and the like: the pool probes it again before reuse.
            Err(_) => Found::Done,
            // Its last snapshot is still being read: that reader is no orphan.
            Ok(writer) if unread_bytes(&writer) > 0 => Found::Reading,
            Ok(writer) if serve && retired.may_serve => {
                let sent = self
                    .delivery
                    .send(&writer, self.snapshotter.build(), self.stop);
                self.counters.record(sent, true);
                drop(writer);
                retired.may_serve = false;
                retired.closed_at = Instant::now();
                Found::Done
            }
            Ok(_released) => Found::Done,
        }
    }
}

/// Bytes written to the pipe that no reader has taken yet (0 if unknown).
fn unread_bytes(writer: &std::os::fd::OwnedFd) -> u64 {
    rustix::io::ioctl_fionread(writer).unwrap_or(0)
}
