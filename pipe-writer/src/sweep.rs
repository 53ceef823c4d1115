//! The orphan watch: serves readers that opened a FIFO after it was
//! retired, so a blocking `cat` that raced with a replacement is not left
//! waiting forever.
//!
//! A reader whose path lookup found FIFO X just before the serving thread
//! swapped a spare in over it, but whose `open` completed only after the
//! thread had written X and closed it, waits for a writer that never comes
//! (docs/FIFO.md: two `cat`s stuck 15 minutes). Every retired FIFO is
//! therefore opened again once, with `O_WRONLY | O_NONBLOCK`, between
//! [`EARLIEST_PROBE`] and [`LATEST_PROBE`] after its snapshot: `ENXIO`
//! means nobody is there (the FIFO is then drained, ready to go back to
//! our path); success means a reader is, and it gets a snapshot of its own.
//!
//! One probe per retirement (issue 15): the race that makes an orphan is
//! one `open` system call wide, so the orphan is there well within a
//! second. Only a FIFO whose reader is still reading its snapshot at the
//! probe is probed again, every [`ORPHAN_WAIT`], until [`KEEP`].
//!
//! Who probes (issue 15, a lighter writer): the serving thread, right
//! after each serve (off the reader's clock), probes every retired FIFO at
//! least [`EARLIEST_PROBE`] old, so a writer read about once a second
//! probes the FIFO of the read before at the next read, with no other
//! thread woken. The sweeper thread is the fallback for when no read
//! comes: it sleeps on a timer (a `timerfd`) set to the first
//! [`LATEST_PROBE`] due (up to [`ARM_SLACK`] later), which the serving
//! thread moves on after a serve when it would fire too early; moving a
//! timer wakes nobody. The serving thread probes by own name, not
//! through `/proc/self/fd` ([`crate::fifo::Fifo::open_nearby`]). So the sweeper wakes only when a
//! writer's reads stop (once, [`LATEST_PROBE`] after the last one) or an
//! orphan was found, and a writer nobody reads makes no wake-up at all.
//! The serving thread never writes to an orphan itself (a stalled one
//! would hold up the next reader): it hands the opened FIFO to the
//! sweeper, which serves it at once.
//!
//! A probe never releases a reader with nothing (issue 15): it first peeks
//! ([`crate::fifo::Fifo::peek`]: the read side, which wakes no reader)
//! and leaves a pipe with bytes of the last snapshot unread alone; a reader
//! found once the pipe of the last snapshot is gone is an orphan for sure.
//! The spare pool peeks too, and hands such orphans here ([`Watch::hand_over`]).
//!
//! The writer side cannot always tell an orphan from a slow reader still
//! finishing the snapshot it was served. A reader found while bytes of
//! the snapshot are still unread in the pipe is that slow reader, and is left
//! alone (an aggregator busy with a thousand pipes). A reader found with
//! the pipe empty at least [`EARLIEST_PROBE`] after its snapshot is taken
//! for an orphan and served, unless the FIFO's readers stalled; a reader
//! that has read everything but is still attached that much later (a `cat` blocked on
//! a slow terminal) can so be sent one extra snapshot (its read shows two
//! envelopes: recognisably not one complete snapshot); never more than one.
//!
//! The process's own figures (the `process.*` lines,
//! [`crate::process_stats`]) are refreshed by whichever thread probes, at
//! most every [`REFRESH`] and only if a snapshot used them since.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use nix::fcntl::OFlag;

use crate::counters::Counters;
use crate::dir::PipeDir;
use crate::fifo::{Fifo, Peek};
use crate::process_stats::{OwnFigures, REFRESH};
use crate::send::Delivery;
use crate::snapshot::Snapshotter;

/// How long a FIFO whose reader is still reading at its probe waits for
/// the next one.
pub(crate) const ORPHAN_WAIT: Duration = Duration::from_secs(1);
/// From how long after a FIFO's last snapshot it is probed for an orphan
/// (by the next serve, or the sweeper when awake): the readers it was
/// served to have left by then, and an orphan has come.
pub(crate) const EARLIEST_PROBE: Duration = Duration::from_millis(500);
/// By how long after a FIFO's last snapshot it is probed, by the sweeper
/// if no serve came since [`EARLIEST_PROBE`]: a writer read once a second
/// probes at its serves and never wakes the sweeper.
pub(crate) const LATEST_PROBE: Duration = Duration::from_secs(2);
/// How long a FIFO whose reader is still reading at its probe is watched.
pub(crate) const KEEP: Duration = Duration::from_secs(5);
/// How many retired FIFOs wait for their probe at most (each holds one
/// descriptor): past it the oldest are probed at once. A flood of opens
/// retires thousands a second.
pub(crate) const MAX_RETIRED: usize = 128;
/// A FIFO probed early (the flood) may be served only this long after its
/// snapshot, so the readers it was served to have left.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);
/// How much later than the first `due` the sweeper's timer may fire: a
/// timer already set within this of it is left alone, so a writer read
/// once a second moves it (a `timerfd_settime`) every other serve rather
/// than after every one (issue 15). Reads that stop have their last FIFO
/// probed [`LATEST_PROBE`] to [`LATEST_PROBE`] plus this after its snapshot.
pub(crate) const ARM_SLACK: Duration = Duration::from_secs(1);

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

#[derive(Debug)]
struct Watched {
    retired: Retired,
    /// From when it is probed, by a serve or by the sweeper when awake.
    probe_from: Instant,
    /// When the sweeper wakes for it if no serve probed it.
    due: Instant,
}

impl Watched {
    fn new(retired: Retired) -> Watched {
        Watched {
            probe_from: retired.closed_at + EARLIEST_PROBE,
            due: retired.closed_at + LATEST_PROBE,
            retired,
        }
    }

    /// Probed again later, if still worth it: its reader was still reading.
    fn again(mut self, now: Instant) -> Option<Watched> {
        (now - self.retired.closed_at < KEEP).then(|| {
            self.probe_from = now + ORPHAN_WAIT;
            self.due = now + 2 * ORPHAN_WAIT;
            self
        })
    }
}

/// What a probe found.
#[derive(Debug)]
enum Found {
    /// Nothing more to watch: drained, released, or taken back.
    Done,
    /// A reader still reading its snapshot: probe again later.
    Reading,
    /// A reader that may be sent a snapshot: the FIFO's write end, open.
    Orphan(OwnedFd),
}

/// The retired FIFOs being watched, shared by the serving thread (which
/// adds them and probes them after its serves) and the sweeper (which
/// serves orphans and probes what no serve did).
#[derive(Debug)]
pub(crate) struct Watch {
    state: Mutex<State>,
    /// The sweeper sleeps reading it; set to the first `due` (or now),
    /// unset when nothing is watched.
    timer: TimerFd,
}

#[derive(Debug, Default)]
struct State {
    watched: Vec<Watched>,
    /// Orphans found by the serving thread, for the sweeper to serve.
    orphans: Vec<(Retired, OwnedFd)>,
    /// The server is stopping: release everyone and end.
    ending: bool,
    /// When the timer is set to fire, as last set; `None`: unset, or fired
    /// (the sweeper clears it when it wakes).
    armed: Option<Instant>,
}

impl Watch {
    /// A watch with nothing in it, its timer unset.
    ///
    /// # Errors
    /// No timer can be made (`timerfd_create`: out of descriptors).
    pub(crate) fn new() -> Result<Watch, Errno> {
        Ok(Watch {
            state: Mutex::new(State::default()),
            timer: TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC)?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches a FIFO just retired (or found stale at start). The timer is
    /// set by the next [`Watch::after_serve`], or here if `arm`.
    pub(crate) fn add(&self, retired: Retired, arm: bool) {
        let mut state = self.lock();
        state.watched.push(Watched::new(retired));
        if arm {
            self.arm(&mut state);
        }
    }

    /// The serving thread's share, after each serve: probes every FIFO
    /// at least [`EARLIEST_PROBE`] old (past [`MAX_RETIRED`], the oldest at
    /// once), hands orphans found to the sweeper, and moves the sweeper's
    /// timer on.
    /// `dir`: the serving thread's pipe directory, whose spare names it
    /// probes by ([`Fifo::open_nearby`](crate::fifo::Fifo::open_nearby)).
    pub(crate) fn after_serve(&self, dir: &PipeDir) {
        let now = Instant::now();
        let mut state = self.lock();
        let State {
            watched, orphans, ..
        } = &mut *state;
        let flood = watched.len().saturating_sub(MAX_RETIRED);
        let mut index = 0;
        watched.retain_mut(|w| {
            let oldest = index < flood;
            index += 1;
            let age = now - w.retired.closed_at;
            // Past the cap, probed early, but never before SETTLE: a reader
            // found on it is then served, never released with nothing.
            if w.probe_from > now && !(oldest && age >= SETTLE) {
                return true;
            }
            match probe(&w.retired, true, Some(dir.spares())) {
                Found::Done => false,
                Found::Reading if !oldest => {
                    if now - w.retired.closed_at < KEEP {
                        w.probe_from = now + ORPHAN_WAIT;
                        w.due = now + 2 * ORPHAN_WAIT;
                        true
                    } else {
                        false
                    }
                }
                Found::Reading => false,
                Found::Orphan(writer) => {
                    orphans.push((w.retired.clone_watch(), writer));
                    false
                }
            }
        });
        self.arm(&mut state);
    }

    /// Hands an orphan the serving thread found on `fifo` (retirement
    /// `retirement`) to the sweeper, which serves it at once: the serving
    /// thread never writes to an orphan itself (a stalled one would hold up
    /// the next reader).
    pub(crate) fn hand_over(&self, fifo: Arc<Fifo>, retirement: u64, writer: OwnedFd) {
        let mut state = self.lock();
        let retired = Retired {
            fifo,
            retirement,
            closed_at: Instant::now(),
            may_serve: true,
        };
        state.orphans.push((retired, writer));
        self.arm(&mut state);
    }

    /// Stops the sweeper: it releases every reader still attached to a
    /// watched FIFO and ends. Called once the serving thread has ended.
    pub(crate) fn end(&self) {
        let mut state = self.lock();
        state.ending = true;
        self.arm(&mut state);
    }

    /// Sets the sweeper's timer from `state`: now if it has work, by the
    /// first `due` otherwise (up to [`ARM_SLACK`] later: a timer already
    /// set within that is left as it is), unset if nothing is watched.
    fn arm(&self, state: &mut State) {
        let now = Instant::now();
        let when = if state.ending || !state.orphans.is_empty() {
            Some(now)
        } else {
            let due = state.watched.iter().map(|w| w.due).min();
            if let (Some(due), Some(armed)) = (due, state.armed)
                && due <= armed
                && armed <= due + ARM_SLACK
            {
                return;
            }
            due.map(|due| due + ARM_SLACK)
        };
        if when.is_none() && state.armed.is_none() {
            return;
        }
        state.armed = when;
        let _ = match when {
            // A zero time would unset the timer: at least a nanosecond.
            Some(when) => self.timer.set(
                Expiration::OneShot(TimeSpec::from_duration(
                    when.saturating_duration_since(now)
                        .max(Duration::from_nanos(1)),
                )),
                TimerSetTimeFlags::empty(),
            ),
            None => self.timer.unset(),
        };
    }
}

impl Retired {
    /// The same watch, for the sweeper (the FIFO is shared).
    fn clone_watch(&self) -> Retired {
        Retired {
            fifo: Arc::clone(&self.fifo),
            retirement: self.retirement,
            closed_at: self.closed_at,
            may_serve: self.may_serve,
        }
    }
}

/// The sweeper thread: runs until [`Watch::end`], refreshing `own` on its
/// wake-ups (at most every [`REFRESH`]) if given.
pub(crate) fn run(
    watch: &Watch,
    snapshotter: &mut Snapshotter,
    delivery: &Delivery,
    counters: &Counters,
    stop: &Arc<AtomicBool>,
    own: Option<&OwnFigures>,
) {
    let mut sweeper = Sweeper {
        snapshotter,
        delivery,
        counters,
        stop,
    };
    let mut refreshed = Instant::now();
    loop {
        // Fired, or unset (waits for good): only an error ends the wait
        // early, and then the state says what to do.
        let _ = watch.timer.wait();
        let now = Instant::now();
        let (orphans, due) = {
            let mut state = watch.lock();
            // Fired (a one-shot timer is then unset), or woken early: set
            // afresh below either way.
            state.armed = None;
            if state.ending {
                // Stopping: release whoever is attached (they read
                // end-of-file) rather than write to readers that may still
                // be finishing.
                for w in state.watched.drain(..) {
                    drop(probe(&w.retired, false, None));
                }
                state.orphans.clear();
                return;
            }
            let orphans = std::mem::take(&mut state.orphans);
            // Awake anyway: every FIFO old enough is probed now.
            let (due, keep) = std::mem::take(&mut state.watched)
                .into_iter()
                .partition(|w: &Watched| w.probe_from <= now);
            state.watched = keep;
            (orphans, due)
        };
        for (retired, writer) in orphans {
            sweeper.serve(&retired, writer);
        }
        let mut again = Vec::new();
        for w in due {
            match probe(&w.retired, true, None) {
                Found::Done => {}
                Found::Reading => again.extend(w.again(now)),
                Found::Orphan(writer) => sweeper.serve(&w.retired, writer),
            }
        }
        if let Some(own) = own
            && refreshed.elapsed() >= REFRESH
            && own.refresh_if_wanted()
        {
            refreshed = Instant::now();
        }
        let mut state = watch.lock();
        state.watched.append(&mut again);
        watch.arm(&mut state);
    }
}

struct Sweeper<'a> {
    snapshotter: &'a mut Snapshotter,
    delivery: &'a Delivery,
    counters: &'a Counters,
    stop: &'a AtomicBool,
}

impl Sweeper<'_> {
    /// Sends an orphan found on a retired FIFO a snapshot of its own,
    /// unless the FIFO went back to our path since it was found (the
    /// reader then gets end-of-file).
    fn serve(&mut self, retired: &Retired, writer: OwnedFd) {
        // Held while serving, so the FIFO is not taken back meanwhile.
        let mut turn = retired.fifo.turn();
        if turn.current || turn.retirement != retired.retirement {
            return;
        }
        let (sent, marker) = self
            .delivery
            .send(&writer, self.snapshotter.build(), self.stop);
        // Not drained: the pool puts it back only once this pipe is gone.
        turn.marker = marker;
        self.counters.record(sent, true);
        drop(writer);
        drop(turn);
    }
}

/// Looks for a reader on a retired FIFO. One that may be served is
/// returned with the write end open: any reader found, while `serve`,
/// unless the FIFO's readers stalled and the pipe of that stall is still
/// there (that reader holds a cut snapshot). A reader not served is
/// released with end-of-file (stopping, or the stalled reader).
///
/// It peeks first ([`Fifo::peek`](crate::fifo::Fifo::peek)): a pipe with
/// bytes of the last snapshot unread is left alone without opening the
/// write side, and a reader found once that pipe is gone is an orphan for
/// sure (it opened after the last snapshot's readers all closed).
///
/// `spares`: the spare directory when the serving thread probes (by spare
/// name), `None` from the sweeper (through `/proc/self/fd`).
fn probe(retired: &Retired, serve: bool, spares: Option<BorrowedFd<'_>>) -> Found {
    let mut turn = retired.fifo.turn();
    if turn.current || turn.retirement != retired.retirement {
        return Found::Done;
    }
    let peek = retired.fifo.peek(turn.marker, spares);
    if let Peek::Alive { unread } = peek
        && unread > 0
    {
        // Its last snapshot is still being read: that reader is no orphan.
        return Found::Reading;
    }
    let found = retired
        .fifo
        .open_nearby(OFlag::O_WRONLY | OFlag::O_NONBLOCK, spares);
    turn.drained = matches!(found, Err(Errno::ENXIO));
    let may_serve = retired.may_serve || peek == Peek::Fresh;
    match found {
        Err(Errno::ENXIO) => Found::Done,
        // EMFILE and the like: the pool peeks at it again before reuse.
        Err(_) => Found::Done,
        // Bytes came back in between: a reader of the last snapshot after all.
        Ok(writer) if unread_bytes(&writer) > 0 => Found::Reading,
        Ok(writer) if serve && may_serve => {
            turn.hand_over();
            Found::Orphan(writer)
        }
        Ok(_released) => Found::Done,
    }
}

/// Bytes written to the pipe that no reader has taken yet (0 if unknown).
fn unread_bytes(writer: &OwnedFd) -> u64 {
    rustix::io::ioctl_fionread(writer).unwrap_or(0)
}
