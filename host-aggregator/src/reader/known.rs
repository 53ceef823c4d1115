//! Processes whose pipes passed the checks, kept across passes by pidfd
//! (issue 15): the pipe of a process seen before is read without the `stat`
//! of `/proc/<pid>` a pass otherwise makes per pipe (7 % of a pass's CPU at
//! 1,000 writers). A pidfd names one process, not a PID: it turns readable
//! when that process exits, so a PID reused later never inherits an entry.
//! One `epoll_wait` at the start of each pass hears of the exits since the
//! last, and the pass keeps [`Known::exits`] in its own epoll set to hear of
//! those while it reads (a pipe whose writer died is then not waited on).
//!
//! An entry keeps what the full checks found: the process's start time and
//! the FIFO owner they accepted. A pipe of the same process with another
//! owner goes through the full checks again, and every kept process's pipe
//! does so one pass in [`FULL_CHECK_EVERY`]: a process that changed user
//! since (a `setuid` program it ran) is refused within that many passes,
//! and forgotten.
//!
//! Bounded: at most a quarter of the descriptor limit (`serve` gives half
//! to connections); a process is kept only from its second pass on, so a
//! one-shot read (`dump`, `archive`) opens no pidfd at all, and forgotten
//! after a pass that did not check it (its pipe is gone, though it lives).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::resource::{Resource, getrlimit};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::procfs::{self, PipeFault, Staleness};

/// How often a kept process's pipe is checked in full all the same (in
/// passes): a process that changes user after its first checks (a
/// `setuid` program it runs, a dropped privilege) is refused within this
/// many passes, as it would have been at once without the entry.
const FULL_CHECK_EVERY: u64 = 8;

/// The processes checked, by PID.
#[derive(Debug)]
pub(crate) struct Known {
    /// Every kept pidfd, readable once its process exits; `None` where
    /// none is kept (a one-shot read, or no epoll).
    exits: Option<Epoll>,
    entries: HashMap<u32, Entry>,
    /// PIDs checked in full in the last pass and this one, without an
    /// entry: a second sight makes one.
    seen_before: HashSet<u32>,
    seen_now: HashSet<u32>,
    /// Entries at most.
    limit: usize,
    /// Passes started, to forget entries no pass checks any more.
    pass: u64,
    /// The processes heard to exit since the pass started, with their
    /// start times: `/proc` still shows one until its parent reaps it.
    exited: HashMap<u32, SystemTime>,
}

#[derive(Debug)]
struct Entry {
    /// Registered in [`Known::exits`]; closing it unregisters it.
    _pidfd: OwnedFd,
    started: SystemTime,
    owner: u32,
    /// The last pass that checked it.
    checked_in: u64,
}

impl Known {
    /// Keeps up to a quarter of the descriptor limit.
    pub(crate) fn new() -> Known {
        let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft) / 4;
        Known {
            exits: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            ..Known::none()
        }
    }

    /// Keeps nothing: every check is a full one (one-shot reads).
    pub(crate) fn none() -> Known {
        Known {
            exits: None,
            entries: HashMap::new(),
            seen_before: HashSet::new(),
            seen_now: HashSet::new(),
            limit: 0,
            pass: 0,
            exited: HashMap::new(),
        }
    }

    /// Called as a pass starts: forgets the processes that have exited and
    /// those the last pass did not check, and turns the last pass's first
    /// sights into the ones before.
    pub(crate) fn start_pass(&mut self) {
        self.exited.clear();
        self.forget_exited();
        let last = self.pass;
        self.entries.retain(|_, entry| entry.checked_in >= last);
        self.pass += 1;
        self.seen_before = std::mem::take(&mut self.seen_now);
    }

    /// The descriptor that turns readable when a kept process exits (for
    /// the pass's epoll set), while any is kept.
    pub(crate) fn exits(&self) -> Option<BorrowedFd<'_>> {
        self.exits
            .as_ref()
            .filter(|_| !self.entries.is_empty())
            .map(|epoll| epoll.0.as_fd())
    }

    /// Forgets the kept processes that have exited; returns their PIDs.
    pub(crate) fn forget_exited(&mut self) -> Vec<u32> {
        let mut exited = Vec::new();
        let Some(epoll) = &self.exits else {
            return exited;
        };
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let ready = match epoll.wait(&mut events, EpollTimeout::ZERO) {
                Ok(ready) => ready,
                Err(Errno::EINTR) => continue,
                // Unreadable: forget everything, the full checks still hold.
                Err(_) => {
                    exited.extend(self.entries.drain().map(|(pid, _)| pid));
                    return exited;
                }
            };
            for event in &events[..ready] {
                let pid = u32::try_from(event.data()).unwrap_or(0);
                // Dropping the pidfd takes it out of the epoll set.
                if let Some(entry) = self.entries.remove(&pid) {
                    self.exited.insert(pid, entry.started);
                    exited.push(pid);
                }
            }
            if ready < events.len() {
                return exited;
            }
        }
    }

    /// [`procfs::check_pipe`] for the FIFO of `pid`, owned by `owner`,
    /// last changed at `changed`: answered from the entry where there is
    /// one for that owner, except every [`FULL_CHECK_EVERY`]th pass (by
    /// PID, so not all at once), which checks in full as a pipe without an
    /// entry is: a process that changed user since is then refused again.
    /// Kept where the full check passes, the PID was seen in the last
    /// pass, and there is room. A process heard to exit in this pass that
    /// the full check still finds, by its start time, is a zombie: dead.
    pub(crate) fn check_pipe(
        &mut self,
        pid: u32,
        owner: u32,
        changed: SystemTime,
    ) -> Result<Option<SystemTime>, PipeFault> {
        let due = (self.pass + u64::from(pid)) % FULL_CHECK_EVERY == 0;
        if let Some(entry) = self.entries.get_mut(&pid)
            && entry.owner == owner
            && !due
        {
            entry.checked_in = self.pass;
            return match procfs::stale_by_start(changed, entry.started) {
                Some(stale) => Err(PipeFault::Stale(stale)),
                None => Ok(Some(entry.started)),
            };
        }
        // Opened before the checks, so the process they find is the one
        // the pidfd names, or an exit shows on it at the next look.
        let pidfd = if self.entries.contains_key(&pid) {
            None
        } else {
            self.pidfd_for(pid)
        };
        let checked = match procfs::check_pipe(pid, owner, changed) {
            Ok(Some(started)) if self.exited.get(&pid) == Some(&started) => {
                Err(PipeFault::Stale(Staleness::Dead))
            }
            checked => checked,
        };
        let Ok(Some(started)) = checked else {
            // The process is gone, or no longer of the user it was kept
            // for: its entry no longer answers for it. (A leftover FIFO, or
            // another user's FIFO under its name, says nothing of it.)
            let forget = match &checked {
                Err(PipeFault::Stale(Staleness::Dead)) => true,
                Err(PipeFault::WrongOwner(_)) => self
                    .entries
                    .get(&pid)
                    .is_some_and(|entry| entry.owner == owner),
                _ => false,
            };
            if forget {
                self.entries.remove(&pid);
            }
            self.seen_now.insert(pid);
            return checked;
        };
        if let Some(entry) = self.entries.get_mut(&pid) {
            // The pidfd still names the process the checks found.
            entry.owner = owner;
            entry.checked_in = self.pass;
        } else if let (Some(pidfd), Some(exits)) = (pidfd, &self.exits) {
            let event = EpollEvent::new(EpollFlags::EPOLLIN, u64::from(pid));
            if exits.add(&pidfd, event).is_ok() {
                let entry = Entry {
                    _pidfd: pidfd,
                    started,
                    owner,
                    checked_in: self.pass,
                };
                self.entries.insert(pid, entry);
            }
        } else {
            self.seen_now.insert(pid);
        }
        checked
    }

    /// A pidfd for `pid` if it is to be kept now.
    fn pidfd_for(&self, pid: u32) -> Option<OwnedFd> {
        if self.exits.is_none()
            || self.entries.len() >= self.limit
            || !self.seen_before.contains(&pid)
        {
            return None;
        }
        let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
        pidfd_open(pid, PidfdFlags::empty()).ok()
    }

    /// How many processes are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::Duration;

    fn sleeper() -> Child {
        Command::new("sleep").arg("60").spawn().unwrap()
    }

    fn our_uid() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    /// A `Known` that has checked `pid` in two passes (so keeps it), and
    /// a FIFO change time that passes the start-time check.
    fn kept_after_two_passes(pid: u32) -> (Known, SystemTime) {
        let now = SystemTime::now() + Duration::from_secs(1);
        let mut known = Known::new();
        for _ in 0..2 {
            known.start_pass();
            known.check_pipe(pid, our_uid(), now).unwrap();
        }
        assert_eq!(known.len(), 1);
        (known, now)
    }

    /// A sleeping child kept by a `Known` (see [`kept_after_two_passes`]).
    fn kept_sleeper() -> (Child, Known, SystemTime) {
        let child = sleeper();
        let (known, now) = kept_after_two_passes(child.id());
        (child, known, now)
    }

    #[test]
    fn a_process_is_kept_from_its_second_pass_and_forgotten_when_it_exits() {
        let mut child = sleeper();
        let pid = child.id();
        let mut known = Known::new();
        let now = SystemTime::now() + Duration::from_secs(1);

        known.start_pass();
        let first = known.check_pipe(pid, our_uid(), now).unwrap();
        assert!(first.is_some());
        assert_eq!(known.len(), 0, "kept at first sight");
        assert!(known.exits().is_none());

        known.start_pass();
        assert_eq!(known.check_pipe(pid, our_uid(), now).unwrap(), first);
        assert_eq!(known.len(), 1);
        assert!(known.exits().is_some());
        // Answered from the entry: the same start time, and a FIFO older
        // than the process is still a leftover.
        assert_eq!(known.check_pipe(pid, our_uid(), now).unwrap(), first);
        let long_before = first.unwrap() - Duration::from_secs(5);
        assert!(matches!(
            known.check_pipe(pid, our_uid(), long_before),
            Err(PipeFault::Stale(Staleness::Reused))
        ));
        assert!(known.forget_exited().is_empty());

        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(known.forget_exited(), vec![pid]);
        assert_eq!(known.len(), 0);
        assert!(matches!(
            known.check_pipe(pid, our_uid(), now),
            Err(PipeFault::Stale(Staleness::Dead))
        ));
    }

    #[test]
    fn a_kept_process_that_exited_is_dead_while_still_a_zombie() {
        let (mut child, mut known, now) = kept_sleeper();
        let pid = child.id();
        child.kill().unwrap();
        // Not reaped: /proc/<pid> is still there, with the same start time.
        let exited = loop {
            let exited = known.forget_exited();
            if !exited.is_empty() {
                break exited;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(exited, vec![pid]);
        assert!(procfs::look(pid).is_ok(), "a zombie shows in /proc");
        assert!(matches!(
            known.check_pipe(pid, our_uid(), now),
            Err(PipeFault::Stale(Staleness::Dead))
        ));
        child.wait().unwrap();
    }

    #[test]
    fn another_owner_is_checked_in_full_and_nothing_is_kept_by_none() {
        let (mut child, mut known, now) = kept_sleeper();
        let pid = child.id();
        let other = our_uid().wrapping_add(1);
        assert!(matches!(
            known.check_pipe(pid, other, now),
            Err(PipeFault::WrongOwner(uid)) if uid == our_uid()
        ));

        let mut none = Known::none();
        for _ in 0..3 {
            none.start_pass();
            none.check_pipe(pid, our_uid(), now).unwrap();
        }
        assert_eq!(none.len(), 0);
        assert!(none.exits().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_process_no_pass_checks_any_more_is_forgotten_though_it_lives() {
        let (mut child, mut known, now) = kept_sleeper();
        let pid = child.id();
        // A pass that checks it keeps it; the pass after one that did not
        // forgets it (its pidfd closed).
        known.start_pass();
        known.check_pipe(pid, our_uid(), now).unwrap();
        known.start_pass();
        assert_eq!(known.len(), 1);
        known.start_pass();
        assert_eq!(known.len(), 0);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_kept_process_that_changes_user_is_refused_within_the_full_check_interval() {
        // Root runs the tests (as CI does): the child drops to nobody.
        assert_eq!(
            our_uid(),
            0,
            "this test needs root, as the test command runs"
        );
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import os, sys, time; sys.stdin.read(1); os.setuid(65534); time.sleep(60)",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (mut known, now) = kept_after_two_passes(pid);
        drop(child.stdin.take()); // EOF: the child drops to nobody
        std::thread::sleep(Duration::from_millis(300));
        let mut refused_after = None;
        for pass in 0..FULL_CHECK_EVERY.min(64) {
            known.start_pass();
            if matches!(
                known.check_pipe(pid, our_uid(), now),
                Err(PipeFault::WrongOwner(65534))
            ) {
                refused_after = Some(pass);
                break;
            }
        }
        assert!(
            refused_after.is_some(),
            "a root FIFO under a process now of nobody was still read after {FULL_CHECK_EVERY} passes"
        );
        assert_eq!(known.len(), 0, "the entry is forgotten");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn no_more_are_kept_than_the_limit() {
        let mut children: Vec<Child> = (0..3).map(|_| sleeper()).collect();
        let now = SystemTime::now() + Duration::from_secs(1);
        let mut known = Known::new();
        known.limit = 2;
        for _ in 0..2 {
            known.start_pass();
            for child in &children {
                known.check_pipe(child.id(), our_uid(), now).unwrap();
            }
        }
        assert_eq!(known.len(), 2);
        for child in &mut children {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert_eq!(known.forget_exited().len(), 2);
    }
}
