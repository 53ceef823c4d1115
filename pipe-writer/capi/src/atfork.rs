//! The `pthread_atfork` registration: one libc call, in a module of its
//! own so that the handlers (in `runtime`, safe code) and the C ABI
//! (`ffi`) both sit above it and nothing here depends on them.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering::AcqRel, Ordering::Acquire};

/// A fork handler: runs in the forking thread (`prepare`, `parent`) or in
/// the child's only thread (`child`).
pub(crate) type Handler = extern "C" fn();

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Registers the three handlers with `pthread_atfork`, once per process
/// image (a child inherits the registration); later calls do nothing.
#[inline]
pub(crate) fn register_once(prepare: Handler, parent: Handler, child: Handler) {
    if !INSTALLED.load(Acquire) {
        register(prepare, parent, child);
    }
}

#[cold]
fn register(prepare: Handler, parent: Handler, child: Handler) {
    if INSTALLED.swap(true, AcqRel) {
        return;
    }
    // SAFETY: the three handlers are `extern "C" fn()` items, which live as
    // long as the program; pthread_atfork copies the pointers. What they
    // may do in a forking process is the callers' promise (`runtime`: they
    // catch every panic and only touch atomics and our own state).
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc != 0 {
        eprintln!(
            "stats_pipe: pthread_atfork failed (errno {rc}); a child of fork would not reset its stats"
        );
    }
}
