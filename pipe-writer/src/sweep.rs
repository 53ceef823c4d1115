//! The orphan sweeper: serves readers that opened a FIFO after it was
//! retired, so a blocking `cat` that raced with a replacement is not left
//! waiting forever.
//!
//! A reader whose path lookup found FIFO X just before the serving thread
//! renamed a fresh FIFO over it, but whose `open` completed only after the
//! thread had written X and closed it, waits for a writer that never comes
//! (docs/FIFO.md: two `cat`s stuck 15 minutes). The serving thread hands
//! every retired FIFO to this thread, which keeps it for [`KEEP`] (at most
//! [`MAX_RETIRED`] of them) and now and then opens it again with
//! `O_WRONLY | O_NONBLOCK`: `ENXIO` means nobody is there; success means a
//! reader is, and it gets a snapshot of its own.
//!
//! Probes come [`SETTLE`] after the FIFO's last snapshot and then at gaps
//! growing [`BACKOFF`]-fold (100, 200, 600 and 2,200 ms after it, and once
//! more when the watch ends at [`KEEP`]): orphans arrive within moments of a
//! retirement, so the early probes serve them well inside a second, and a
//! retired FIFO costs five probes instead of one every few milliseconds.
//! While watching, the thread parks until the next probe is due but never
//! longer than [`WAKE_GAP`], the longest a newly retired FIFO waits to be
//! noticed. That matters at scale: a host with a thousand writers read
//! every second retires a thousand FIFOs a second; probing each every
//! 20 ms took 88 % of all CPU at 1,000 writers, and doubling gaps with a
//! wake-up every 100 ms still took 45 % of a core.
//!
//! The writer side cannot always tell an orphan from a slow reader still
//! finishing the snapshot it was served. A reader found while bytes of the
//! snapshot are still unread in the pipe is that slow reader, and is left
//! alone (an aggregator busy with a thousand pipes). Otherwise a FIFO is
//! served again only once a probe has seen it empty (`ENXIO`) or on the
//! first probe after a snapshot, so a reader that has read everything but
//! is still attached [`SETTLE`] later (a `cat` blocked on a slow terminal)
//! can be sent one extra snapshot (its read shows two envelopes:
//! recognisably not one complete snapshot); never more than one.
//!
//! The same thread keeps the process's own figures fresh (the `process.*`
//! lines, [`crate::process_stats`]): while snapshots are being served it
//! re-reads `/proc/self` every [`REFRESH`], so readers do not wait for
//! `/proc`; a writer nobody reads sleeps with no wake-up at all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use nix::errno::Errno;

use crate::counters::Counters;
use crate::fifo::Fifo;
use crate::process_stats::{OwnFigures, REFRESH};
use crate::send::Delivery;
use crate::snapshot::Snapshotter;

/// How long a retired FIFO is watched for orphans.
pub(crate) const KEEP: Duration = Duration::from_secs(5);
/// How many retired FIFOs are watched at most (each holds one descriptor);
/// the oldest goes first. A flood of opens retires thousands a second, but
/// orphans come within milliseconds of a retirement.
pub(crate) const MAX_RETIRED: usize = 128;
/// Time after a FIFO's last snapshot before it is first probed, so the
/// readers it was served to have left; also the first gap between probes,
/// each later gap [`BACKOFF`] times the one before.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);
/// How much each gap between probes grows.
const BACKOFF: u32 = 4;
/// The longest the thread parks while it watches FIFOs: FIFOs retired
/// meanwhile are seen within it, so their first probe comes [`SETTLE`] to
/// `SETTLE + WAKE_GAP` after their snapshot.
const WAKE_GAP: Duration = Duration::from_millis(250);

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
    /// When to probe next, and the gap after that.
    next_probe: Instant,
    gap: Duration,
}

impl Watched {
    fn new(retired: Retired, now: Instant) -> Watched {
        let next_probe = retired.closed_at + SETTLE;
        Watched {
            retired,
            since: now,
            next_probe,
            gap: SETTLE,
        }
    }

    /// Probes if due; false once the FIFO is no longer this watch's.
    fn probe_if_due(&mut self, sweeper: &mut Sweeper<'_>, now: Instant) -> bool {
        if now < self.next_probe {
            return true;
        }
        let served_before = self.retired.closed_at;
        let keep = sweeper.probe(&mut self.retired, true);
        if self.retired.closed_at == served_before {
            self.next_probe = now + self.gap;
            self.gap *= BACKOFF;
        } else {
            // It just served an orphan: start over, as after any snapshot.
            self.next_probe = self.retired.closed_at + SETTLE;
            self.gap = SETTLE;
        }
        keep
    }
}

/// Runs until the serving thread drops its end of `inbox`, refreshing `own`
/// every [`REFRESH`] if given.
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
    loop {
        let mut hung_up = false;
        if watched.is_empty() {
            // Nothing to watch and nobody reading: sleep until the next
            // retirement (a read), with no wake-up in between.
            let received = match own {
                Some(own) if own.is_wanted() => inbox.recv_deadline(next_refresh),
                _ => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(retired) => watched.push_back(Watched::new(retired, Instant::now())),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => hung_up = true,
            }
        } else {
            // Parked, not waiting on the channel: a send to a channel with
            // no waiting receiver is a plain push, so the serving thread
            // never pays a wake-up per snapshot. Shutdown unparks us. FIFOs
            // retired meanwhile are seen within WAKE_GAP.
            let now = Instant::now();
            let mut due = watched.iter().map(|w| w.next_probe).min().unwrap_or(now);
            if own.is_some() {
                due = due.min(next_refresh);
            }
            std::thread::park_timeout(due.saturating_duration_since(now).min(WAKE_GAP));
        }
        let now = Instant::now();
        loop {
            match inbox.try_recv() {
                Ok(retired) => watched.push_back(Watched::new(retired, now)),
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
        watched.retain_mut(|w| w.probe_if_due(&mut sweeper, now));
        if let Some(own) = own
            && now >= next_refresh
        {
            own.refresh_if_wanted();
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
            // Its last snapshot is still being read: that reader is no orphan.
            Ok(writer) if unread_bytes(&writer) > 0 => {}
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

/// Bytes written to the pipe that no reader has taken yet (0 if unknown).
fn unread_bytes(writer: &std::os::fd::OwnedFd) -> u64 {
    rustix::io::ioctl_fionread(writer).unwrap_or(0)
}
