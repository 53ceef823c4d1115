//! Pipe sizes as a mark of our writers (issue 15): a writer of ours gives
//! each snapshot's pipe a size that no pipe made afresh has (`send.rs`), so
//! whoever holds the pipe can tell it from a fresh one by `F_GETPIPE_SZ`
//! alone: the writer's own peek of a retired FIFO, and a reader that got a
//! piece with no envelope line (a torn middle piece from one of our
//! writers, never a foreign writer's snapshot). Shared by the writer and
//! the aggregator.

use std::os::fd::AsFd;
use std::sync::OnceLock;

use nix::fcntl::{FcntlArg, fcntl};

/// Pages of a pipe made afresh (`PIPE_DEF_BUFFERS`: 65,536 bytes with 4 KiB
/// pages, docs/FIFO.md).
pub(crate) const FRESH_PAGES: usize = 16;
/// Pages of a pipe made afresh by a user past
/// `/proc/sys/fs/pipe-user-pages-soft` (`PIPE_MIN_DEF_BUFFERS`).
pub(crate) const FRESH_PAGES_OVER_LIMIT: usize = 2;
/// The cap on pipe growth when `/proc/sys/fs/pipe-max-size` cannot be read
/// (the kernel's default).
const FALLBACK_PIPE_MAX: usize = 1024 * 1024;

/// The largest pipe an unprivileged process may ask for.
pub(crate) fn pipe_max_size() -> usize {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(FALLBACK_PIPE_MAX)
}

/// The system's page size (4 KiB if it cannot be read).
pub(crate) fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|page| usize::try_from(page).ok())
        .unwrap_or(4096)
}

/// Every size a pipe made afresh may have: the default, the default past
/// the per-user page limit, and the default capped by a small
/// `pipe-max-size`.
pub(crate) fn fresh_sizes(page: usize, pipe_max: usize) -> [usize; 3] {
    [
        FRESH_PAGES * page,
        FRESH_PAGES_OVER_LIMIT * page,
        (FRESH_PAGES * page).min(pipe_max),
    ]
}

/// Whether the pipe behind `fd` (a FIFO held open) was sized by a writer
/// of ours for a snapshot: its size is none a fresh pipe has. `false` when
/// the size cannot be read, or when the writer could not set it (past the
/// per-user pipe page limit), so it is a hint that only ever adds
/// certainty, never a check to rely on alone.
pub fn sized_by_our_writer(fd: impl AsFd) -> bool {
    let Ok(size) = fcntl(fd.as_fd(), FcntlArg::F_GETPIPE_SZ) else {
        return false;
    };
    let Ok(size) = usize::try_from(size) else {
        return false;
    };
    // Read once: a reader asks for every foreign writer's pipe in every
    // pass, and neither figure changes while a process runs (root may
    // change pipe-max-size, but our writers read it once at start too).
    static FRESH: OnceLock<[usize; 3]> = OnceLock::new();
    !FRESH
        .get_or_init(|| fresh_sizes(page_size(), pipe_max_size()))
        .contains(&size)
}
