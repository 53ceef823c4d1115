//! The binary's only unsafe code: putting `SIGPIPE` back to its default
//! action, so tests can show that a host program that does so survives a
//! reader that hangs up (Rust programs start with `SIGPIPE` ignored).
#![allow(unsafe_code)]

use nix::sys::signal::{SigHandler, Signal, signal};

/// Sets `SIGPIPE` to `SIG_DFL` (a write to a pipe with no reader kills the
/// process, unless the writing thread blocks the signal, as ours do).
pub(crate) fn restore_default_sigpipe() -> nix::Result<()> {
    // SAFETY: `SIG_DFL` installs no handler, so no code of ours ever runs in
    // signal context; this runs first thing in `main`, before any other
    // thread exists that could read or change the disposition.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map(drop)
}
