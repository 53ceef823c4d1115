//! The aggregator's error type.

use std::path::PathBuf;

/// What can go wrong in the aggregator as a whole (one bad source is not an
/// error: it gets a [`crate::Status`] and the pass goes on).
#[derive(Debug)]
pub enum Error {
    /// The pipe directory could not be listed.
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The pipe directory is one another user could take over: owned by a
    /// user other than root and us, or writable by others without the
    /// sticky bit (the writer's rule, [`pipe_writer::check_dir`]). It is not
    /// read at all: its pipes could be anyone's.
    UntrustedDir {
        /// Why, naming the directory and its owner.
        source: pipe_writer::Error,
    },
    /// A system call on a path failed.
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The archive database could not be reached, read or written; nothing
    /// of that run was committed.
    Database {
        /// Which database (its URL with any password removed).
        db: String,
        /// What was being done.
        action: &'static str,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A running aggregator could not be read over HTTP.
    Fetch {
        /// The URL asked for.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A command-line value was not usable.
    BadArgument {
        /// Which setting.
        what: &'static str,
        /// The value given.
        given: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Dir { path, source } => {
                write!(f, "cannot list pipe directory {}: {source}", path.display())
            }
            Error::UntrustedDir { source } => write!(f, "{source}"),
            Error::Io {
                action,
                path,
                source,
            } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            Error::Database { db, action, source } => {
                // Drivers keep the cause out of their own message (the
                // `postgres` crate says just "db error" or "error connecting
                // to server"), so the chain is printed, less any cause
                // whose text an outer message already carries.
                let mut message = source.to_string();
                let mut next = source.source();
                while let Some(cause) = next {
                    let text = cause.to_string();
                    if !message.contains(&text) {
                        message = format!("{message}: {text}");
                    }
                    next = cause.source();
                }
                write!(f, "cannot {action} in database {db}: {message}")
            }
            Error::Fetch { url, detail } => write!(f, "cannot read {url}: {detail}"),
            Error::BadArgument {
                what,
                given,
                expected,
            } => {
                write!(f, "bad {what} {given:?}: expected {expected}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Dir { source, .. } | Error::Io { source, .. } => Some(source),
            Error::UntrustedDir { source } => Some(source),
            Error::Database { source, .. } => Some(source.as_ref()),
            Error::Fetch { .. } | Error::BadArgument { .. } => None,
        }
    }
}
