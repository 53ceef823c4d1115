//! The safe reader: opens every pipe non-blocking without following links,
//! checks what it opened, and reads all of them in one epoll loop under one
//! deadline, with a byte cap, a line cap and retries.
//!
//! The rules it follows come from measured FIFO behaviour
//! (`docs/FIFO.md`):
//! - a non-blocking read-only open of a FIFO never blocks, writer or not;
//! - before a writer has connected, `read` returns 0 (a false end of file)
//!   while `poll` reports nothing, so a 0 is trusted only right after `poll`
//!   reported an event on that descriptor;
//! - readers opening at the same instant split one snapshot, so an empty or
//!   torn snapshot (seen through the envelope) is retried after ~2 ms;
//! - pipestatic's writer unlinks and re-creates its FIFO after every read,
//!   so a path that was listed but is missing at open is retried too.

use std::fs::File;
use std::io::{self, Read};

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use pipe_writer::TracesRead;
use stats_core::Snapshot;
use stats_core::envelope::{self, Verdict};
use stats_core::kinds::KindsCache;

use crate::discovery::by_bytes;
use crate::source::{ReadOptions, Source, Status};

mod enveloped;
mod known;
mod open;
pub(crate) use enveloped::Enveloped;
pub(crate) use known::Known;
pub(crate) use open::changed_at;
use open::{Opened, attempt_open, common_dir};

/// The epoll token of [`Known::exits`] in a pass's set (slots are
/// numbered from 0).
const EXITS: u64 = u64::MAX;

/// Bytes asked for per `read`: large, so a snapshot of up to a pipe buffer
/// comes out whole and readers that race split it all-or-nothing.
const READ_CHUNK: usize = 128 * 1024;

/// When a FIFO that has not answered yet is first checked for being
/// orphaned (see [`PassState::check_orphans`]); the interval then doubles.
const ORPHAN_CHECK: Duration = Duration::from_millis(5);

/// Pipes opened and not yet answered, at most; the next opens wait for one
/// of them to end. Opening a thousand pipes before reading any left the
/// first snapshots unread in their pipes for a hundred milliseconds and
/// more on two busy cores, long enough for our writer's orphan sweeper to
/// take a reader still attached for an orphan and send it a second
/// snapshot (a doubled read, retried). A pipe that has not answered within
/// [`ORPHAN_CHECK`] stops counting, so stuck or slow writers cannot hold
/// the others back.
const MAX_IN_FLIGHT: usize = 64;

/// How long a pipe that sent nothing at all in the last pass (a FIFO with
/// no writer, which any local user can make) is waited for before it is
/// given up as timed out again. A live writer answers in well under a
/// millisecond, and one that sends a first byte gets the whole deadline;
/// without this, one writerless FIFO made every pass, and every request
/// waiting on one, take the whole deadline (issue 12).
pub(crate) const SILENT_GRACE: Duration = Duration::from_millis(50);

/// Reads one pipe through the safe reader (for `show PID`): the same checks,
/// limits and retries as a pass, with `options.deadline` for this one pipe.
/// `options.dir` is not used.
pub fn read_one(path: &Path, options: &ReadOptions) -> Source {
    read_all(
        vec![path.to_path_buf()],
        &[],
        options,
        &mut KindsCache::new(),
        &mut Enveloped::default(),
        &mut Known::none(),
    )
    .pop()
    .map_or_else(|| Source::new(path.to_path_buf()), |(source, _)| source)
}

/// Reads every path in one epoll loop that ends by `options.deadline`; one
/// source per path, in the same order. One bad source never affects another.
/// Paths in `silent_before` (sorted) sent nothing in the last pass: they
/// are given up after [`SILENT_GRACE`] unless they send something.
/// Sources whose writers declare the same kinds share one [`Kinds`] set
/// from `kinds` (see [`KindsCache`]). A read with no envelope from a
/// writer in `enveloped` is retried, never taken as a foreign snapshot; the
/// writers that serve envelopes in this pass are added to it. Each source
/// comes with the start time of its process as its checks found it (see
/// [`crate::procfs::check_pipe`]).
///
/// [`Kinds`]: stats_core::kinds::Kinds
pub(crate) fn read_all(
    paths: Vec<PathBuf>,
    silent_before: &[PathBuf],
    options: &ReadOptions,
    kinds: &mut KindsCache,
    enveloped: &mut Enveloped,
    known: &mut Known,
) -> Vec<(Source, Option<SystemTime>)> {
    run_pass(
        paths,
        silent_before,
        options,
        (kinds, enveloped, known),
        (Framing::Stats, usize::MAX, &mut 0),
    )
    .into_iter()
    .map(|read| (read.source, read.started))
    .collect()
}

/// Reads `<pid>.traces` FIFOs (issue 16) with the same checks, limits,
/// retries and deadline as a pass over `.stats` pipes; only the framing
/// differs ([`pipe_writer::verify_traces`] instead of the envelope). Each
/// source comes with the trace lines of its answer (empty unless its
/// status is `Ok`). A torn or doubled answer is retried, then left
/// `Incomplete`, never returned. Once `budget` bytes have been read in
/// all (retries included), the pipe being read and every pipe not done
/// end `TooLarge`: the second figure says how many were never finished
/// for that reason, so hostile writers cannot make one read hold more.
pub(crate) fn read_traces(
    paths: Vec<PathBuf>,
    silent_before: &[PathBuf],
    options: &ReadOptions,
    budget: usize,
) -> (Vec<(Source, Vec<u8>)>, usize) {
    let mut skipped = 0;
    let read = run_pass(
        paths,
        silent_before,
        options,
        (
            &mut KindsCache::new(),
            &mut Enveloped::default(),
            &mut Known::none(),
        ),
        (Framing::Traces, budget, &mut skipped),
    );
    (
        read.into_iter()
            .map(|read| (read.source, read.kept))
            .collect(),
        skipped,
    )
}

fn run_pass(
    paths: Vec<PathBuf>,
    silent_before: &[PathBuf],
    options: &ReadOptions,
    caches: (&mut KindsCache, &mut Enveloped, &mut Known),
    (framing, budget, skipped): (Framing, usize, &mut usize),
) -> Vec<PathRead> {
    // Made before the slots, so a failure needs no copy of the paths.
    match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
        Ok(epoll) => {
            let mut pass = PassState::new(paths, silent_before, options, caches, epoll);
            pass.framing = framing;
            pass.budget = budget;
            pass.run();
            *skipped = pass.skipped;
            pass.slots
                .into_iter()
                .map(|mut slot| PathRead {
                    kept: std::mem::take(&mut slot.kept),
                    started: slot.started,
                    source: slot.into_source(),
                })
                .collect()
        }
        Err(e) => paths
            .into_iter()
            .map(|path| {
                let mut source = Source::new(path);
                source.status = Status::Failed(format!("epoll_create: {e}"));
                PathRead {
                    source,
                    kept: Vec::new(),
                    started: None,
                }
            })
            .collect(),
    }
}

/// What a pass gives for one path.
struct PathRead {
    source: Source,
    /// The trace lines of a complete `.traces` answer.
    kept: Vec<u8>,
    /// The start time of the process, as its last checks found it.
    started: Option<SystemTime>,
}

/// How an answer is framed, so a torn one can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `.stats`: the envelope (FORMAT.md), or a foreign writer's lines.
    Stats,
    /// `.traces`: the traces header and `{"end":N}` trailer (FORMAT.md,
    /// "Traces"); nothing else is accepted.
    Traces,
}

enum State {
    /// To be opened at the instant given; `otherwise` is the status it ends
    /// with if the pass ends first.
    Waiting {
        at: Instant,
        otherwise: Status,
    },
    /// Open and in the epoll set; reading until end of file.
    Reading {
        file: File,
        /// The FIFO's (device, inode), to notice it was replaced at its path.
        id: (u64, u64),
        /// When to check next whether it was orphaned, and the step after.
        check_at: Instant,
        check_every: Duration,
        /// Whether it counts in [`PassState::in_flight`].
        counted: bool,
    },
    Done,
}

struct Slot {
    source: Source,
    state: State,
    bytes: Vec<u8>,
    /// It sent nothing in the last pass: given up [`SILENT_GRACE`] after
    /// its open unless it sends something.
    silent_before: bool,
    /// When it is given up (set at open, for `silent_before` slots).
    give_up_at: Option<Instant>,
    /// The start time of the process the pipe is named after, from the
    /// checks before its last open (`None` where `/proc` did not say).
    started: Option<SystemTime>,
    /// The trace lines of a complete `.traces` answer ([`Framing::Traces`]).
    kept: Vec<u8>,
}

impl Slot {
    fn into_source(mut self) -> Source {
        match self.state {
            State::Waiting { otherwise, .. } => self.source.status = otherwise,
            State::Reading { .. } => {
                self.source.status = Status::TimedOut;
                self.source.bytes = self.bytes.len();
            }
            State::Done => {}
        }
        self.source
    }
}

struct PassState<'o> {
    slots: Vec<Slot>,
    options: &'o ReadOptions,
    kinds: &'o mut KindsCache,
    /// Writers known to serve envelopes (see [`Enveloped`]).
    enveloped: &'o mut Enveloped,
    /// Processes checked in earlier passes (see [`Known`]).
    known: &'o mut Known,
    deadline: Instant,
    /// One epoll set for the whole pass: a wake-up costs O(ready), not
    /// O(open pipes) as `poll` would with a thousand pipes.
    epoll: Epoll,
    /// Slots that are `Done`; the pass ends when all are.
    done: usize,
    /// An open failed for lack of descriptors: open no more until one closes.
    out_of_fds: bool,
    /// Earliest `Waiting::at` among `retrying`.
    next_open: Option<Instant>,
    /// Slots before this one have been tried at least once.
    unopened: usize,
    /// Slots waiting for another attempt (a few at most).
    retrying: Vec<usize>,
    /// Slots `Reading` with `counted` set (see [`MAX_IN_FLIGHT`]).
    in_flight: usize,
    /// Earliest `Reading::check_at`.
    next_check: Option<Instant>,
    chunk: Vec<u8>,
    /// What the answers are.
    framing: Framing,
    /// Bytes the pass may read in all before it gives up (see
    /// [`read_traces`]); `usize::MAX` for `.stats`.
    budget: usize,
    /// Sources ended unfinished because the budget was spent.
    skipped: usize,
    /// Pipes are opened `O_NOATIME` until one refuses it (see
    /// [`attempt_open`]).
    noatime: bool,
    /// The one directory every path of the pass is in, opened once (see
    /// [`common_dir`]).
    dir: Option<OwnedFd>,
}

impl<'o> PassState<'o> {
    fn new(
        paths: Vec<PathBuf>,
        silent_before: &[PathBuf],
        options: &'o ReadOptions,
        (kinds, enveloped, known): (&'o mut KindsCache, &'o mut Enveloped, &'o mut Known),
        epoll: Epoll,
    ) -> PassState<'o> {
        known.start_pass();
        if let Some(exits) = known.exits() {
            // Without it the pass still works: exits are then noticed at
            // the next pass's start only.
            let _ = epoll.add(exits, EpollEvent::new(EpollFlags::EPOLLIN, EXITS));
        }
        let dir = common_dir(&paths);
        let now = Instant::now();
        let slots = paths
            .into_iter()
            .map(|path| Slot {
                silent_before: silent_before
                    .binary_search_by(|silent| by_bytes(silent, &path))
                    .is_ok(),
                source: Source::new(path),
                state: State::Waiting {
                    at: now,
                    // Not reached before the deadline.
                    otherwise: Status::TimedOut,
                },
                bytes: Vec::new(),
                give_up_at: None,
                started: None,
                kept: Vec::new(),
            })
            .collect();
        PassState {
            slots,
            options,
            kinds,
            enveloped,
            known,
            deadline: now + options.deadline,
            epoll,
            done: 0,
            out_of_fds: false,
            next_open: None,
            unopened: 0,
            retrying: Vec::new(),
            in_flight: 0,
            next_check: None,
            chunk: vec![0; READ_CHUNK],
            framing: Framing::Stats,
            budget: usize::MAX,
            skipped: 0,
            noatime: true,
            dir,
        }
    }

    fn run(&mut self) {
        let mut events = vec![EpollEvent::empty(); 256];
        while self.done < self.slots.len() {
            let now = Instant::now();
            if self.has_room()
                && (self.unopened < self.slots.len() || self.next_open.is_some_and(|at| at <= now))
            {
                self.open_due(now);
            }
            if self.next_check.is_some_and(|at| at <= now) {
                self.check_orphans(now);
            }
            if now >= self.deadline || self.done == self.slots.len() {
                return;
            }
            let mut wake = self.deadline;
            if self.has_room() {
                wake = self.next_open.map_or(wake, |at| at.min(wake));
            }
            wake = self.next_check.map_or(wake, |at| at.min(wake));
            let ready = match self.epoll.wait(
                &mut events,
                wait_timeout(wake.saturating_duration_since(now)),
            ) {
                Ok(ready) => ready,
                Err(Errno::EINTR) => continue,
                Err(e) => return self.fail_unfinished(&format!("epoll_wait: {e}")),
            };
            if ready == 0 && self.out_of_fds && self.next_check.is_none() {
                // Nothing open to wait for, yet no descriptor to open with.
                return self.fail_unfinished("too many open files");
            }
            for event in &events[..ready] {
                match event.data() {
                    EXITS => self.writers_exited(),
                    slot => self.drain(slot as usize),
                }
            }
        }
    }

    /// Whether another pipe may be opened now.
    fn has_room(&self) -> bool {
        !self.out_of_fds && self.in_flight < MAX_IN_FLIGHT
    }

    /// Opens the retries that are due and then new slots, in order, while
    /// there is room; finds when the next retry is due.
    fn open_due(&mut self, now: Instant) {
        self.next_open = None;
        let mut k = 0;
        while k < self.retrying.len() {
            let i = self.retrying[k];
            let State::Waiting { at, .. } = self.slots[i].state else {
                self.retrying.swap_remove(k);
                continue;
            };
            if at <= now && self.has_room() {
                // `open` may put it back at the end, to be seen again below.
                self.retrying.swap_remove(k);
                self.open(i, now);
            } else {
                self.next_open = Some(self.next_open.map_or(at, |n| n.min(at)));
                k += 1;
            }
        }
        while self.unopened < self.slots.len() && self.has_room() {
            self.unopened += 1;
            self.open(self.unopened - 1, now);
        }
    }

    /// One attempt at a source: check the path, open it, check that what was
    /// opened is what was checked.
    fn open(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        slot.source.attempts += 1;
        let dir = self.dir.as_ref().map(AsFd::as_fd);
        match attempt_open(&slot.source, dir, &mut self.noatime, self.known) {
            Opened::Reading(file, id, started) => {
                slot.started = started;
                if let Err(e) = self
                    .epoll
                    .add(&file, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                {
                    return self.finish(i, Status::Failed(format!("epoll_ctl: {e}")));
                }
                let check_at = now + ORPHAN_CHECK;
                let mut next = check_at;
                if slot.silent_before {
                    let give_up = now + SILENT_GRACE;
                    slot.give_up_at = Some(give_up);
                    next = next.min(give_up);
                }
                self.next_check = Some(self.next_check.map_or(next, |n| n.min(next)));
                slot.state = State::Reading {
                    file,
                    id,
                    check_at,
                    check_every: ORPHAN_CHECK,
                    counted: true,
                };
                self.in_flight += 1;
            }
            Opened::Refused(status) => self.finish(i, status),
            Opened::Missing => self.retry(i, now + self.options.retry_delay, Status::Vanished),
            Opened::OutOfFds => {
                slot.source.attempts -= 1;
                self.out_of_fds = true;
                // Still `Waiting` and due: tried again once a descriptor closes.
                self.retrying.push(i);
            }
        }
    }

    /// Reads what is there. Called only after epoll reported an event on
    /// this descriptor, so a 0 from `read` is a real end of file.
    fn drain(&mut self, i: usize) {
        let max_bytes = self.options.max_bytes;
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let State::Reading { file, .. } = &mut slot.state else {
            return;
        };
        // What this call read stays in `chunk` (`..filled`) unless it has to
        // wait for more: a snapshot that arrives in one go, the usual case,
        // is checked and parsed where it was read, never copied.
        let mut filled = 0;
        let end = loop {
            if filled == self.chunk.len() {
                slot.bytes.extend_from_slice(&self.chunk);
                filled = 0;
            }
            match file.read(&mut self.chunk[filled..]) {
                Ok(0) => break None,
                Ok(n) if n > self.budget => {
                    self.budget = 0;
                    slot.source.bytes = slot.bytes.len() + filled + n;
                    slot.bytes = Vec::new();
                    break Some(Status::TooLarge);
                }
                Ok(n) if slot.bytes.len() + filled + n > max_bytes => {
                    slot.source.bytes = slot.bytes.len() + filled + n;
                    slot.bytes = Vec::new();
                    break Some(Status::TooLarge);
                }
                Ok(n) => {
                    self.budget -= n;
                    filled += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slot.bytes.extend_from_slice(&self.chunk[..filled]);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    slot.source.bytes = slot.bytes.len() + filled;
                    break Some(Status::Failed(format!("read: {e}")));
                }
            }
        };
        if let Some(status) = end {
            self.finish(i, status);
            if self.budget == 0 {
                self.skip_the_rest();
            }
            return;
        }
        let bytes = if slot.bytes.is_empty() {
            &self.chunk[..filled]
        } else {
            slot.bytes.extend_from_slice(&self.chunk[..filled]);
            &slot.bytes[..]
        };
        slot.source.bytes = bytes.len();
        if self.framing == Framing::Traces {
            return match pipe_writer::verify_traces(bytes) {
                TracesRead::Complete { body, .. } => {
                    // An answer longer than a chunk is kept where it was
                    // read (a ring can be megabytes), never copied.
                    slot.kept = if slot.bytes.is_empty() {
                        bytes[body].to_vec()
                    } else {
                        let mut kept = std::mem::take(&mut slot.bytes);
                        kept.truncate(body.end);
                        kept.drain(..body.start);
                        kept
                    };
                    self.finish(i, Status::Ok);
                }
                TracesRead::Empty | TracesRead::Incomplete => {
                    slot.bytes = Vec::new();
                    let at = Instant::now() + self.options.retry_delay;
                    self.retry(i, at, Status::Incomplete);
                }
            };
        }
        let verdict = envelope::verify(bytes);
        let writer = slot.source.pid.zip(slot.started);
        if let (Verdict::Complete { .. } | Verdict::Incomplete(_), Some((pid, started))) =
            (&verdict, writer)
        {
            self.enveloped.saw(pid, started);
        }
        let torn = match verdict {
            Verdict::Complete { header, .. } => {
                slot.source.header = Some(header);
                slot.source.foreign = false;
                false
            }
            // A piece with no envelope line from a writer that serves
            // envelopes: the middle of a snapshot split between readers.
            // The writer's pipe size tells it too, even to a reader that
            // never saw an envelope from it (its every earlier read torn):
            // no foreign writer resizes its pipe to a size a fresh pipe
            // never has (`pipe_writer::sized_by_our_writer`).
            Verdict::Foreign => {
                let ours = writer
                    .is_some_and(|(pid, started)| self.enveloped.serves_envelopes(pid, started))
                    || matches!(&slot.state, State::Reading { file, .. }
                        if pipe_writer::sized_by_our_writer(file));
                slot.source.foreign = !ours;
                ours
            }
            Verdict::Empty | Verdict::Incomplete(_) => true,
        };
        if torn {
            slot.bytes = Vec::new();
            let at = Instant::now() + self.options.retry_delay;
            return self.retry(i, at, Status::Incomplete);
        }
        parse_into(&mut slot.source, bytes, self.options.max_line, self.kinds);
        slot.bytes = Vec::new();
        self.finish(i, Status::Ok);
    }

    /// Finds the FIFOs we hold that no writer can reach any more and opens
    /// their path again. pipestatic's writer unlinks its FIFO after each
    /// read and makes a new one: a reader that opened the old one just
    /// before the unlink would wait on it until the deadline. Such a FIFO
    /// is no longer at its path AND has no writer attached (`read` gives 0,
    /// not EAGAIN). Our writer renames a fresh FIFO over the path only after
    /// its own open returned, so its readers always have a writer attached.
    /// Each FIFO is checked 5 ms after its open, then at doubling intervals,
    /// so a thousand slow pipes cost a few scans, not one every 5 ms.
    fn check_orphans(&mut self, now: Instant) {
        self.next_check = None;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if let (State::Reading { .. }, Some(give_up)) = (&slot.state, slot.give_up_at)
                && slot.bytes.is_empty()
            {
                if give_up <= now {
                    // Silent again: as it ended last pass, without the wait.
                    self.finish(i, Status::TimedOut);
                    continue;
                }
                self.next_check = Some(self.next_check.map_or(give_up, |n| n.min(give_up)));
            }
            let slot = &mut self.slots[i];
            let State::Reading {
                file,
                id,
                check_at,
                check_every,
                counted,
            } = &mut slot.state
            else {
                continue;
            };
            if *counted && *check_at <= now {
                // Slow to answer: no longer holds back the next opens.
                *counted = false;
                self.in_flight -= 1;
            }
            if !slot.bytes.is_empty() {
                continue;
            }
            if *check_at > now {
                self.next_check = Some(self.next_check.map_or(*check_at, |n| n.min(*check_at)));
                continue;
            }
            *check_every *= 2;
            *check_at = now + *check_every;
            let next = *check_at;
            let at_path = std::fs::symlink_metadata(&slot.source.path);
            let orphaned = !at_path.as_ref().is_ok_and(|m| (m.dev(), m.ino()) == *id)
                && writerless(file, &mut self.chunk, &mut slot.bytes, &mut self.budget);
            if orphaned {
                let at = if at_path.is_ok() {
                    now
                } else {
                    now + self.options.retry_delay
                };
                self.retry(i, at, Status::Vanished);
            } else {
                self.next_check = Some(self.next_check.map_or(next, |n| n.min(next)));
            }
        }
    }

    /// Kept processes exited during the pass: a pipe of theirs that has
    /// sent nothing and has no writer attached will never answer, so it is
    /// tried again at once, and the checks find it stale (a zombie not yet
    /// reaped included: see [`Known::check_pipe`]). A writer that wrote its
    /// snapshot before exiting is read as usual.
    fn writers_exited(&mut self) {
        let exited = self.known.forget_exited();
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let State::Reading { file, .. } = &mut slot.state else {
                continue;
            };
            if !slot.bytes.is_empty() || !slot.source.pid.is_some_and(|pid| exited.contains(&pid)) {
                continue;
            }
            // A writer still attached (a child that inherited it, say), or
            // bytes that came: read on.
            if writerless(file, &mut self.chunk, &mut slot.bytes, &mut self.budget) {
                self.retry(i, Instant::now(), Status::Vanished);
            }
        }
    }

    /// Ends a source with `status`, closing its descriptor if open.
    fn finish(&mut self, i: usize, status: Status) {
        self.stop_reading(i);
        let slot = &mut self.slots[i];
        slot.source.status = status;
        slot.state = State::Done;
        self.done += 1;
    }

    /// Schedules another attempt at `at` (closing the descriptor if open),
    /// or ends the source with `status` when the retries or the time are
    /// used up.
    fn retry(&mut self, i: usize, at: Instant, status: Status) {
        let slot = &mut self.slots[i];
        if slot.source.attempts <= self.options.retries && at < self.deadline {
            self.stop_reading(i);
            self.slots[i].state = State::Waiting {
                at,
                otherwise: status,
            };
            self.retrying.push(i);
            self.next_open = Some(self.next_open.map_or(at, |n| n.min(at)));
        } else {
            self.finish(i, status);
        }
    }

    /// Bookkeeping for a slot about to leave `Reading` (its descriptor
    /// closes when the state is replaced).
    fn stop_reading(&mut self, i: usize) {
        if let State::Reading { counted, .. } = self.slots[i].state {
            self.out_of_fds = false;
            if counted {
                self.in_flight -= 1;
            }
        }
    }

    /// Ends every source not done with `TooLarge`: the pass's budget is
    /// spent. Counted in `skipped`.
    fn skip_the_rest(&mut self) {
        for i in 0..self.slots.len() {
            if !matches!(self.slots[i].state, State::Done) {
                self.skipped += 1;
                self.finish(i, Status::TooLarge);
            }
        }
    }

    fn fail_unfinished(&mut self, why: &str) {
        for i in 0..self.slots.len() {
            if !matches!(self.slots[i].state, State::Done) {
                self.finish(i, Status::Failed(why.to_owned()));
            }
        }
    }
}

/// Parses a whole snapshot into the source: stats kept, kind declarations
/// kept apart, other metadata (`#`) lines dropped, bad lines counted.
/// One `read` of a pipe that has not answered yet, keeping what came in
/// `bytes` (counted against `budget`): whether it was a bare end of file,
/// no writer attached and nothing buffered. `EAGAIN` (a writer is attached
/// and will write) is not.
fn writerless(file: &mut File, chunk: &mut [u8], bytes: &mut Vec<u8>, budget: &mut usize) -> bool {
    match file.read(chunk) {
        Ok(0) => true,
        Ok(n) => {
            *budget = budget.saturating_sub(n);
            bytes.extend_from_slice(&chunk[..n]);
            false
        }
        Err(_) => false,
    }
}

fn parse_into(source: &mut Source, bytes: &[u8], max_line: usize, cache: &mut KindsCache) {
    let (snapshot, kinds, errors) = Snapshot::parse_with_kinds_cached(bytes, max_line, cache);
    source.kinds = kinds;
    source.lines = snapshot.len() as u64;
    source.bad_lines = errors.count();
    source.first_errors = errors.first().to_vec();
    source.snapshot = snapshot;
}

/// `epoll_wait` counts whole milliseconds: round up, so the loop never
/// spins on a sub-millisecond remainder.
fn wait_timeout(wait: Duration) -> EpollTimeout {
    let millis = wait.as_micros().div_ceil(1000);
    EpollTimeout::try_from(millis).unwrap_or(EpollTimeout::MAX)
}
