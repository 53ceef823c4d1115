//! The collector: one read pass over the pipe directory (discover, read,
//! merge by kind), remembering each source's last good read and every
//! process's cumulative stats across passes (see [`crate::retention`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use stats_core::kinds::KindsCache;
use stats_core::merge::TypedMerger;

use crate::discovery::{by_bytes, discover};
use crate::error::Error;
use crate::reader::{Enveloped, Known, read_all};
use crate::retention::Retention;
use crate::rules::MergeOverrides;
use crate::source::{Pass, ReadOptions, Status};

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
    /// The paths that timed out in the last pass without sending a byte,
    /// sorted: the reader waits for them only briefly (see
    /// [`crate::reader::SILENT_GRACE`]).
    silent_last_pass: Vec<PathBuf>,
    /// `--rule` overrides.
    overrides: MergeOverrides,
    /// Counters and histograms of live and exited processes.
    retention: Retention,
    /// One shared set of kind declarations per distinct text, across passes.
    kinds: KindsCache,
    /// Writers that have served an envelope: a piece without one from them
    /// is torn, never foreign (see [`Enveloped`]).
    enveloped: Enveloped,
    /// Processes checked in earlier passes, by pidfd (see [`Known`]).
    known: Known,
}

impl Collector {
    /// A collector reading with `options`.
    pub fn new(options: ReadOptions) -> Collector {
        Collector {
            options,
            last_seen: HashMap::new(),
            ok_last_pass: Vec::new(),
            silent_last_pass: Vec::new(),
            overrides: MergeOverrides::new(),
            retention: Retention::new(),
            kinds: KindsCache::new(),
            enveloped: Enveloped::default(),
            known: Known::new(),
        }
    }

    /// Merges stats matched by `overrides` by their rule instead of their
    /// kind (see [`crate::MergeOverrides`]).
    pub fn with_overrides(mut self, overrides: MergeOverrides) -> Collector {
        self.overrides = overrides;
        self
    }

    /// Starts from `retention` (a one-shot run restores what the last run
    /// kept) instead of an empty one.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // archive's command only
    pub(crate) fn with_retention(mut self, retention: Retention) -> Collector {
        self.retention = retention;
        self
    }

    /// The counters and histograms it retains, as of the last pass.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // archive's command only
    pub(crate) fn retention(&self) -> &Retention {
        &self.retention
    }

    /// How many times a process's cumulative stats were folded into the
    /// retained totals (an exit, a PID reuse, or a counter reset).
    pub fn folds(&self) -> u64 {
        self.retention.folds()
    }

    /// The options it reads with.
    pub fn options(&self) -> &ReadOptions {
        &self.options
    }

    /// One pass: finds every `*.stats` entry in the directory, reads them all
    /// at once under the deadline, and merges the `Ok` ones by the kinds
    /// their writers declared ([`TypedMerger`]: gauges and counters summed,
    /// histograms as one distribution, `max` stats by the largest; a foreign
    /// writer's stats are gauges, pipestatic's sum), with `--rule`
    /// overrides, plus the counters and histograms this collector retains
    /// from exited processes (so a long-lived collector's counters never go
    /// backwards; a new collector starts with none). Sources come sorted by
    /// path, each with its status, counts and last-seen time.
    ///
    /// # Errors
    /// [`Error::Dir`] if the directory cannot be listed;
    /// [`Error::UntrustedDir`] if another user could take it over (owned by
    /// a user other than root and us, or writable without the sticky bit;
    /// see [`crate::discovery::check_dir`]). A bad source is never an error:
    /// it has a status.
    pub fn collect(&mut self) -> Result<Pass, Error> {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut paths = discover(&self.options.dir)?;
        // A pipe read last pass but missing from this listing may be a
        // pipestatic writer caught between unlink and mkfifo: try it anyway
        // (the reader retries a missing path, then reports it Vanished).
        let listed = paths.len();
        for path in &self.ok_last_pass {
            if paths[..listed]
                .binary_search_by(|listed| by_bytes(listed, path))
                .is_err()
            {
                paths.push(path.clone());
            }
        }
        paths.sort_unstable_by(|a, b| by_bytes(a, b));
        let (mut sources, started_at): (Vec<_>, Vec<_>) = read_all(
            paths,
            &self.silent_last_pass,
            &self.options,
            &mut self.kinds,
            &mut self.enveloped,
            &mut self.known,
        )
        .into_iter()
        .unzip();
        let mut pids: Vec<u32> = sources.iter().filter_map(|s| s.pid).collect();
        pids.sort_unstable();
        self.enveloped
            .retain(|pid| pids.binary_search(&pid).is_ok());
        self.kinds.sweep();
        let mut merger = TypedMerger::new();
        let overrides = &self.overrides;
        let rule_for = |name: &str| overrides.rule_for(name);
        let mut seen = HashMap::with_capacity(sources.len());
        for source in &mut sources {
            if source.status.is_ok() {
                merger.add_source(&source.snapshot, &source.kinds, rule_for);
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
        // Sorted, as the sources are.
        self.silent_last_pass = sources
            .iter()
            .filter(|s| s.status == Status::TimedOut && s.bytes == 0)
            .map(|s| s.path.clone())
            .collect();
        let read = sources
            .iter()
            .zip(started_at)
            .filter(|(s, _)| s.status.is_ok())
            .filter_map(|(s, started)| Some((s.pid?, started, &s.snapshot, &s.kinds)));
        for (held, kinds) in &self.retention.update(read, overrides) {
            merger.add_source(held, kinds, rule_for);
        }
        if let Some((retained, kinds)) = self.retention.retained() {
            merger.add_source(retained, kinds, rule_for);
        }
        let (merged, kinds) = merger.finish();
        Ok(Pass {
            started,
            duration: clock.elapsed(),
            sources,
            merged,
            kinds,
        })
    }
}
