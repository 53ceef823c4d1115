//! The boundary's error state: a panic stopped at the C boundary, and the
//! calling thread's last error for `stats_pipe_last_error`.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::Error;
use crate::runtime;

thread_local! {
    static LAST_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Records `error` as the calling thread's last.
pub(crate) fn set_error(error: Error) {
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = Some(error));
}

/// The message of the calling thread's last error, else of serving's.
pub(crate) fn last_error() -> Option<String> {
    let own = LAST_ERROR.try_with(|e| e.borrow().clone()).ok().flatten();
    own.or_else(runtime::last_error).map(|e| e.to_string())
}

/// Runs `f` with a panic turned into `fallback` and a recorded error.
pub(crate) fn guarded<R>(function: &'static str, fallback: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            set_error(Error::Panicked { function });
            fallback
        }
    }
}
