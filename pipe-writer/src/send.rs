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

/// A pipe's buffer before `F_SETPIPE_SZ` (docs/FIFO.md: 65,536 bytes).
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;
/// The cap on pipe growth when `/proc/sys/fs/pipe-max-size` cannot be read
/// (the kernel's default).
const FALLBACK_PIPE_MAX: usize = 1024 * 1024;
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
        Delivery {
            stall,
            pipe_max,
            sigpipe,
        }
    }

    /// Sends `bytes` to the write end `fd` in one write loop. Gives up when
    /// the readers stall longer than the stall timeout or `stop` is set.
    pub(crate) fn send(&self, fd: &OwnedFd, bytes: &[u8], stop: &AtomicBool) -> Sent {
        if let Err(errno) = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)) {
            return Sent::Failed(errno);
        }
        self.grow_pipe(fd, bytes.len());
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

    /// Grows the pipe so the whole snapshot fits in one write: readers that
    /// open in the same instant then split it all-or-nothing instead of
    /// tearing it (docs/FIFO.md). Failure (the per-user pipe page limit) only
    /// costs that guarantee, so it is ignored.
    fn grow_pipe(&self, fd: &OwnedFd, len: usize) {
        if len > DEFAULT_PIPE_SIZE {
            let size = len.next_power_of_two().min(self.pipe_max);
            let size = i32::try_from(size).unwrap_or(i32::MAX);
            let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(size));
        }
    }

    fn consume_sigpipe(&self) {
        if let Some(sigpipe) = &self.sigpipe {
            let _ = sigpipe.read_signal();
        }
    }
}

/// The largest pipe an unprivileged process may ask for.
pub(crate) fn pipe_max_size() -> usize {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(FALLBACK_PIPE_MAX)
}
