//! Parsing beside reading (issue 15, "use both cores where it pays"): the
//! reader's epoll loop hands each whole snapshot to a parsing thread and goes
//! back to its pipes, so parsing a thousand snapshots overlaps with waiting
//! for the writers instead of following it. The merge stays after the pass,
//! in path order (float sums must not depend on which pipe answered first).
//!
//! A std channel (its implementation is crossbeam's since Rust 1.67), so no
//! extra crate. Where no thread can be started, snapshots are parsed inline
//! as before.

use std::sync::mpsc::{Sender, channel};
use std::thread::{Scope, ScopedJoinHandle};

use stats_core::kinds::{Kinds, KindsCache};
use stats_core::{ParseError, Snapshot};

use crate::source::Source;

/// What parsing one snapshot gives a source.
pub(crate) struct Parsed {
    snapshot: Snapshot,
    kinds: Kinds,
    bad_lines: u64,
    first_errors: Vec<ParseError>,
}

impl Parsed {
    /// Parses `bytes`: stats kept, kind declarations kept apart (shared
    /// through `cache`), other metadata lines dropped, bad lines counted.
    fn new(bytes: &[u8], max_line: usize, cache: &mut KindsCache) -> Parsed {
        let (snapshot, kinds, errors) = Snapshot::parse_with_kinds_cached(bytes, max_line, cache);
        Parsed {
            snapshot,
            kinds,
            bad_lines: errors.count(),
            first_errors: errors.first().to_vec(),
        }
    }

    /// Puts it into its source.
    pub(crate) fn apply(self, source: &mut Source) {
        source.lines = self.snapshot.len() as u64;
        source.kinds = self.kinds;
        source.bad_lines = self.bad_lines;
        source.first_errors = self.first_errors;
        source.snapshot = self.snapshot;
    }
}

/// Snapshots parsed so far, by slot index.
type Done = Vec<(usize, Parsed)>;

/// Where the reader sends each snapshot it read whole.
pub(crate) struct Parser<'c, 'scope> {
    max_line: usize,
    /// The reading thread's own parses; with no parsing thread, all of them.
    inline: Done,
    /// The kinds cache while no parsing thread holds it.
    cache: &'c mut KindsCache,
    beside: Option<Beside<'scope>>,
}

struct Beside<'scope> {
    to: Sender<(usize, Vec<u8>)>,
    thread: ScopedJoinHandle<'scope, (Done, KindsCache)>,
}

impl<'c, 'scope> Parser<'c, 'scope> {
    /// Starts a parsing thread in `scope`, lending it `cache` until
    /// [`Parser::finish`]; parses inline if no thread can be started (the
    /// cache is then empty for this pass: a cost, not an error).
    pub(crate) fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        cache: &'c mut KindsCache,
        max_line: usize,
    ) -> Parser<'c, 'scope> {
        let (to, from) = channel::<(usize, Vec<u8>)>();
        let mut lent = std::mem::take(cache);
        let spawned = std::thread::Builder::new()
            .name("parse".into())
            .spawn_scoped(scope, move || {
                let mut done = Vec::new();
                for (i, bytes) in from {
                    done.push((i, Parsed::new(&bytes, max_line, &mut lent)));
                }
                (done, lent)
            });
        Parser {
            max_line,
            inline: Vec::new(),
            cache,
            beside: spawned.ok().map(|thread| Beside { to, thread }),
        }
    }

    /// A parser with no thread, for a single pipe (`show`).
    pub(crate) fn inline(cache: &'c mut KindsCache, max_line: usize) -> Parser<'c, 'scope> {
        Parser {
            max_line,
            inline: Vec::new(),
            cache,
            beside: None,
        }
    }

    /// Parses the snapshot `bytes` of slot `i`, here or on the parsing thread.
    pub(crate) fn parse(&mut self, i: usize, bytes: &[u8]) {
        let sent = match &self.beside {
            Some(beside) => beside.to.send((i, bytes.to_vec())).is_ok(),
            None => false,
        };
        // No thread, or it is gone (it panicked): parse here.
        if !sent {
            let parsed = Parsed::new(bytes, self.max_line, self.cache);
            self.inline.push((i, parsed));
        }
    }

    /// Waits for the parsing thread, gives the cache back, and returns every
    /// parse by slot index.
    pub(crate) fn finish(self) -> Done {
        let mut done = self.inline;
        if let Some(beside) = self.beside {
            drop(beside.to);
            if let Ok((theirs, cache)) = beside.thread.join() {
                done.extend(theirs);
                *self.cache = cache;
            }
        }
        done
    }
}
