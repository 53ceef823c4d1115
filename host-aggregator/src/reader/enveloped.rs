//! The writers known to serve envelopes, so a read without one from them
//! is taken for a torn piece, never for a foreign snapshot (issue 15).

use std::collections::HashMap;
use std::time::SystemTime;

/// Sources remembered by [`Enveloped`], at most; past this it starts afresh
/// (more than the default `pid_max` ever needs).
const ENVELOPED_MAX: usize = 65_536;

/// The writers, each a PID and its process's start time, that have served
/// an envelope (issue 15, "torn pieces are never stats"). A read without
/// any envelope line from such a writer is not a foreign snapshot but the
/// middle piece of one of its snapshots split between three or more
/// readers: it is incomplete and retried, never taken as stats. A PID now
/// held by another process (another start time) is forgotten, so a
/// pipestatic writer that reuses the PID is read as foreign again.
#[derive(Debug, Default)]
pub(crate) struct Enveloped(HashMap<u32, SystemTime>);

impl Enveloped {
    /// Notes that `pid`, a process started at `started`, served (part of)
    /// an envelope.
    pub(super) fn saw(&mut self, pid: u32, started: SystemTime) {
        if self.0.len() >= ENVELOPED_MAX && !self.0.contains_key(&pid) {
            self.0.clear();
        }
        self.0.insert(pid, started);
    }

    /// Whether `pid`, a process started at `started`, is one that served
    /// an envelope before. A different start time: the PID was reused, and
    /// the earlier process is forgotten.
    pub(super) fn serves_envelopes(&mut self, pid: u32, started: SystemTime) -> bool {
        match self.0.get(&pid) {
            Some(&then) if then == started => true,
            Some(_) => {
                self.0.remove(&pid);
                false
            }
            None => false,
        }
    }

    /// Forgets every PID `keep` does not want (those whose pipes were not
    /// listed in a pass).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.0.retain(|pid, _| keep(*pid));
    }
}
