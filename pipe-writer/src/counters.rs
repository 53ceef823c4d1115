//! Per-server counts of what was served: for tests, soak runs and
//! monitoring the writer itself.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::send::Sent;

/// What a [`crate::Server`] has done so far (see [`crate::Server::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Snapshots written whole into a pipe (orphans included).
    pub snapshots: u64,
    /// Of those, snapshots sent to orphan readers: readers that opened a
    /// FIFO after it had been replaced and would otherwise wait forever.
    pub orphans: u64,
    /// Snapshots cut short because every reader closed first (`head -1`, a
    /// reader that gave up, an open-and-close probe). Harmless.
    pub readers_gone: u64,
    /// Snapshots abandoned because the readers stopped reading for longer
    /// than the stall timeout.
    pub stalls: u64,
    /// Any other write failure.
    pub write_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    snapshots: AtomicU64,
    orphans: AtomicU64,
    readers_gone: AtomicU64,
    stalls: AtomicU64,
    write_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn record(&self, sent: Sent, orphan: bool) {
        let counter = match sent {
            Sent::Complete => {
                if orphan {
                    self.orphans.fetch_add(1, Relaxed);
                }
                &self.snapshots
            }
            Sent::ReaderGone => &self.readers_gone,
            Sent::Stalled => &self.stalls,
            Sent::Failed(_) => &self.write_errors,
            Sent::Stopped => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn load(&self) -> ServeStats {
        ServeStats {
            snapshots: self.snapshots.load(Relaxed),
            orphans: self.orphans.load(Relaxed),
            readers_gone: self.readers_gone.load(Relaxed),
            stalls: self.stalls.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
        }
    }
}
