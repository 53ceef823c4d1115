//! The collector: one read pass over the pipe directory (discover, read,
//! merge), remembering each source's last good read across passes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use stats_core::merge::Merger;

use crate::discovery::discover;
use crate::error::Error;
use crate::reader::read_all;
use crate::source::{Pass, ReadOptions};

/// Reads passes over one pipe directory. Keep one per directory and call
/// [`Collector::collect`] for each pass; it is not shared between threads
/// (wrap it in a `Mutex` to share passes between request handlers).
#[derive(Debug)]
pub struct Collector {
    options: ReadOptions,
    /// When each path last gave a good snapshot; forgotten once the path is
    /// gone from the directory.
    last_seen: HashMap<PathBuf, SystemTime>,
    /// The paths read `Ok` in the last pass, sorted.
    ok_last_pass: Vec<PathBuf>,
}

impl Collector {
    /// A collector reading with `options`.
    pub fn new(options: ReadOptions) -> Collector {
        Collector {
            options,
            last_seen: HashMap::new(),
            ok_last_pass: Vec::new(),
        }
    }

    /// The options it reads with.
    pub fn options(&self) -> &ReadOptions {
        &self.options
    }

    /// One pass: finds every `*.stats` entry in the directory, reads them all
    /// at once under the deadline, and sums the `Ok` ones (pipestatic's rule,
    /// [`stats_core::merge`]). Sources come sorted by path, each with its
    /// status, counts and last-seen time.
    ///
    /// # Errors
    /// [`Error::Dir`] if the directory cannot be listed. A bad source is never
    /// an error: it has a status.
    pub fn collect(&mut self) -> Result<Pass, Error> {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut paths = discover(&self.options.dir)?;
        // A pipe read last pass but missing from this listing may be a
        // pipestatic writer caught between unlink and mkfifo: try it anyway
        // (the reader retries a missing path, then reports it Vanished).
        let listed = paths.len();
        for path in &self.ok_last_pass {
            if paths[..listed].binary_search(path).is_err() {
                paths.push(path.clone());
            }
        }
        paths.sort_unstable();
        let mut sources = read_all(paths, &self.options);
        let mut merger = Merger::new();
        let mut seen = HashMap::with_capacity(sources.len());
        for source in &mut sources {
            if source.status.is_ok() {
                merger.add_snapshot(&source.snapshot);
                source.last_seen = Some(started);
            } else {
                source.last_seen = self.last_seen.get(&source.path).copied();
            }
            if let Some(when) = source.last_seen {
                seen.insert(source.path.clone(), when);
            }
        }
        self.last_seen = seen;
        self.ok_last_pass = sources
            .iter()
            .filter(|s| s.status.is_ok())
            .map(|s| s.path.clone())
            .collect();
        Ok(Pass {
            started,
            duration: clock.elapsed(),
            sources,
            merged: merger.finish(),
        })
    }
}
