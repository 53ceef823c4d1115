//! `Error`: what the runtime and the C ABI report.

use std::fmt;

/// Why serving could not start, or a C call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The pipe server failed to start or ended early; it names the path.
    Serve(pipe_writer::Error),
    /// A C caller passed a null pointer or a string that is not UTF-8.
    BadArgument {
        /// The function that was called.
        function: &'static str,
        /// What was wrong (`"name is NULL"`, ...).
        what: &'static str,
    },
    /// A call panicked inside the library (a bug); the panic was stopped
    /// at the C boundary.
    Panicked {
        /// The function that was called.
        function: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Serve(e) => write!(f, "{e}"),
            Error::BadArgument { function, what } => write!(f, "{function}: {what}"),
            Error::Panicked { function } => {
                write!(
                    f,
                    "{function}: panicked inside stats-pipe (a bug); stopped at the C boundary"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Serve(e) => Some(e),
            _ => None,
        }
    }
}
