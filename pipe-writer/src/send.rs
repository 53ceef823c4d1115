//! Sending one snapshot down a FIFO: grow the pipe to fit it, write it in one
//! non-blocking write loop bounded by a stall deadline, and survive a reader
//! that left (`EPIPE`, never a fatal `SIGPIPE`).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::write;

pub(crate) use crate::pipe_size::pipe_max_size;
use crate::pipe_size::{fresh_sizes, page_size};

/// The smallest size a snapshot's pipe is given, in pages.
const MIN_PAGES: usize = 4;
/// How often a stalled write looks at the stop flag, so stopping a server
/// never waits for a whole stall timeout.
const STOP_CHECK: Duration = Duration::from_millis(10);

/// How a send ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Every byte is in the pipe.
    Complete,
    /// Every reader closed before the end (`EPIPE`): `head -1`, or a reader
    /// that gave up.
    ReaderGone,
    /// The readers stopped reading and the stall timeout ran out.
    Stalled,
    /// The server is stopping.
    Stopped,
    /// Any other write error.
    Failed(Errno),
}

/// Writes snapshots from one serving thread.
#[derive(Debug)]
pub(crate) struct Delivery {
    stall: Duration,
    pipe_max: usize,
    page: usize,
    /// Takes the `SIGPIPE` a failed write raised off our thread's pending
    /// set; `None` if the system refused a signalfd (then the blocked signal
    /// just stays pending, harmless).
    sigpipe: Option<SignalFd>,
}

impl Delivery {
    /// Blocks `SIGPIPE` in the calling thread, for good: a write to a pipe
    /// whose readers left then returns `EPIPE` instead of killing a host
    /// process that restored `SIGPIPE`'s default action (docs/FIFO.md).
    /// Call it first thing in each serving thread.
    pub(crate) fn for_this_thread(stall: Duration, pipe_max: usize) -> Delivery {
        let mut set = SigSet::empty();
        set.add(Signal::SIGPIPE);
        let blocked = set.thread_block().is_ok();
        let sigpipe = blocked
            .then(|| SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC))
            .and_then(Result::ok);
        let page = page_size();
        Delivery {
            stall,
            pipe_max,
            page,
            sigpipe,
        }
    }

    /// Sends `bytes` to the write end `fd` in one write loop. Gives up when
    /// the readers stall longer than the stall timeout or `stop` is set.
    /// Also returns the marker the pipe was given ([`Delivery::size_pipe`]).
    pub(crate) fn send(
        &self,
        fd: &OwnedFd,
        bytes: &[u8],
        stop: &AtomicBool,
    ) -> (Sent, Option<usize>) {
        let (size, marker) = self.size_pipe(fd, bytes.len());
        // A pipe sized to hold the whole snapshot takes it in one write
        // without waiting for the reader: the write end was just opened on
        // a FIFO no snapshot of ours is in (the serving thread's FIFO is
        // drained before it goes back to our path; an orphan is served only
        // once the pipe is empty), so the write cannot stall, and the
        // blocking descriptor needs no `F_SETFL` (one system call a serve
        // fewer, issue 15). Otherwise the write loop is non-blocking and
        // bounded by the stall timeout.
        if size.is_none_or(|size| size < bytes.len())
            && let Err(errno) = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        {
            return (Sent::Failed(errno), None);
        }
        (self.write_all(fd, bytes, stop), marker)
    }

    fn write_all(&self, fd: &OwnedFd, bytes: &[u8], stop: &AtomicBool) -> Sent {
        let deadline = Instant::now() + self.stall;
        let mut rest = bytes;
        while !rest.is_empty() {
            match write(fd, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if stop.load(SeqCst) {
                        return Sent::Stopped;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Sent::Stalled;
                    }
                    let wait = (deadline - now).clamp(Duration::from_millis(1), STOP_CHECK);
                    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
                    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
                    match poll(&mut fds, timeout) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(errno) => return Sent::Failed(errno),
                    }
                }
                Err(Errno::EPIPE) => {
                    self.consume_sigpipe();
                    return Sent::ReaderGone;
                }
                Err(errno) => return Sent::Failed(errno),
            }
        }
        Sent::Complete
    }

    /// Sizes the pipe so the whole snapshot fits in one write: readers that
    /// open in the same instant then split it all-or-nothing instead of
    /// tearing it (docs/FIFO.md). The size is also a marker (issue 15): never
    /// one a pipe made afresh gets, so a later [`crate::fifo::Fifo::peek`]
    /// can tell whether this pipe (and so a reader of this snapshot) is
    /// still there without opening the write side. Returns the size if it
    /// is such a marker. Failure (the per-user pipe page limit) only costs
    /// the guarantee and the marker, so it is otherwise ignored. Also
    /// returns, first, the size the pipe has now (`None`: unknown).
    fn size_pipe(&self, fd: &OwnedFd, len: usize) -> (Option<usize>, Option<usize>) {
        let fresh = fresh_sizes(self.page, self.pipe_max);
        let mut size = len.next_power_of_two().max(MIN_PAGES * self.page);
        while fresh.contains(&size) {
            size *= 2;
        }
        let size = i32::try_from(size.min(self.pipe_max)).unwrap_or(i32::MAX);
        let Some(set) = fcntl(fd, FcntlArg::F_SETPIPE_SZ(size))
            .ok()
            .and_then(|set| usize::try_from(set).ok())
        else {
            return (None, None);
        };
        (Some(set), (!fresh.contains(&set)).then_some(set))
    }

    fn consume_sigpipe(&self) {
        if let Some(sigpipe) = &self.sigpipe {
            let _ = sigpipe.read_signal();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marker a snapshot's pipe gets is never a size a pipe made afresh
    /// has, and still holds the whole snapshot: a peek relies on the first,
    /// readers opening in one instant on the second.
    #[test]
    fn a_snapshots_pipe_size_fits_it_and_is_never_a_fresh_pipes() {
        let delivery = Delivery::for_this_thread(Duration::from_secs(1), pipe_max_size());
        let fresh = fresh_sizes(delivery.page, delivery.pipe_max);
        for len in [1, 4096, 9_000, 40_000, 65_536, 70_000, 300_000] {
            let (read_end, write_end) = nix::unistd::pipe().unwrap();
            let (set, marker) = delivery.size_pipe(&write_end, len);
            assert_eq!(set, marker, "{len} bytes");
            let size = fcntl(&read_end, FcntlArg::F_GETPIPE_SZ).unwrap();
            let size = usize::try_from(size).unwrap();
            assert!(!fresh.contains(&size), "{len} bytes: pipe of {size}");
            assert_eq!(marker, Some(size), "{len} bytes");
            if len <= delivery.pipe_max {
                assert!(size >= len, "{len} bytes in a pipe of {size}");
            }
        }
    }
}
