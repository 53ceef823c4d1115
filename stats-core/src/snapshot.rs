//! `Snapshot`: every stat of one source at one moment, sorted by name.

use std::sync::Arc;

use crate::format::{parse_line, parse_value, write_line};
use crate::kinds::{Kinds, KindsCache, parse_kind_line};
use crate::name::is_metadata;
use crate::parse::{ErrorLog, LineSink, Parser};
use crate::value::Value;

/// One stat in a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The stat's name (valid: see [`crate::name`]).
    pub name: std::sync::Arc<str>,
    /// Its value.
    pub value: Value,
}

/// Stats sorted by name, each name once.
///
/// The names are one shared list (issue 15): a reader's snapshots of many
/// processes of one program, which send the same names, share their list
/// through one reference, and a parse that finds the names of the last
/// snapshot read at every position takes no reference per stat.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    names: Arc<[Arc<str>]>,
    values: Vec<Value>,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Builds a snapshot from entries in any order; for a repeated name the
    /// later entry wins (as in a pipestatic reader's dict).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Snapshot {
        let (names, values) = split(entries);
        Snapshot::from_parts(names, values)
    }

    /// [`Snapshot::from_entries`] from the names and values apart.
    fn from_parts(names: Vec<Arc<str>>, values: Vec<Value>) -> Snapshot {
        // Our writers render in name order: then there is nothing to sort or
        // drop, and no second vector to build (a reader does this once per
        // pipe per pass).
        if names.windows(2).all(|w| w[0] < w[1]) {
            return Snapshot {
                names: names.into(),
                values,
            };
        }
        let mut entries: Vec<(Arc<str>, Value)> = names.into_iter().zip(values).collect();
        // Stable sort keeps the written order among equal names, so keeping
        // the last of each run is "later wins".
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut names: Vec<Arc<str>> = Vec::with_capacity(entries.len());
        let mut values: Vec<Value> = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            match (names.last(), values.last_mut()) {
                (Some(last), Some(kept)) if *last == name => *kept = value,
                _ => {
                    names.push(name);
                    values.push(value);
                }
            }
        }
        Snapshot {
            names: names.into(),
            values,
        }
    }

    /// Builds a snapshot from entries already sorted by name with no repeats
    /// (as a registry or a merge produces them).
    ///
    /// # Panics
    /// In debug builds, if the entries are not strictly sorted.
    pub fn from_sorted(entries: Vec<Entry>) -> Snapshot {
        debug_assert!(entries.windows(2).all(|w| w[0].name < w[1].name));
        let (names, values) = split(entries);
        Snapshot {
            names: names.into(),
            values,
        }
    }

    /// Reads `name: value` lines, skipping metadata (`#...`) lines and
    /// counting bad ones. Lines longer than `max_line` bytes are skipped.
    pub fn parse(bytes: &[u8], max_line: usize) -> (Snapshot, ErrorLog) {
        Snapshot::parse_parts(&[bytes], 0, max_line, None, |_| {})
    }

    /// Like [`Snapshot::parse`], also keeping the kind declarations
    /// (`#counter NAME: 1`, ...; see [`crate::kinds`]) the writer sent.
    pub fn parse_with_kinds(bytes: &[u8], max_line: usize) -> (Snapshot, Kinds, ErrorLog) {
        Snapshot::parse_with_kinds_cached(bytes, max_line, &mut KindsCache::new())
    }

    /// Like [`Snapshot::parse_with_kinds`], taking the kinds from `cache`:
    /// a snapshot whose kind lines read exactly like an earlier one's gets
    /// that one's shared [`Kinds`] (a reader of many processes of one
    /// program builds and holds their declarations once).
    ///
    /// Our writer sends its kind lines as one block after the envelope's
    /// header, the same bytes snapshot after snapshot. A block the cache has
    /// seen parse cleanly, with no kind line anywhere else, is recognised
    /// by its bytes and not parsed again: only its lines are counted. Every
    /// snapshot still carries its declarations (any reader may get any
    /// snapshot); a reader that knows them only skips the work.
    pub fn parse_with_kinds_cached(
        bytes: &[u8],
        max_line: usize,
        cache: &mut KindsCache,
    ) -> (Snapshot, Kinds, ErrorLog) {
        let (block, known) = match recent_kind_block(bytes, cache) {
            Some((block, kinds)) => {
                cache.used_recent_block();
                (Some(block), Some(kinds))
            }
            None => {
                let block = kind_block(bytes);
                let known = block
                    .as_ref()
                    .and_then(|block| cache.known_block(&bytes[block.bytes.clone()]));
                (block, known)
            }
        };
        if let Some(block) = &block
            && let Some(kinds) = known
        {
            let mut elsewhere = false;
            let (snapshot, errors) = Snapshot::parse_parts(
                &[&bytes[..block.bytes.start], &bytes[block.bytes.end..]],
                block.lines,
                max_line,
                Some(cache),
                |name| elsewhere |= parse_kind_line(name).is_some(),
            );
            if !elsewhere {
                return (snapshot, kinds, errors);
            }
        }
        let mut kind_lines = Vec::new();
        let mut declared = 0;
        let (snapshot, errors) =
            Snapshot::parse_parts(&[bytes], 0, max_line, Some(&mut *cache), |name| {
                if parse_kind_line(name).is_some() {
                    kind_lines.extend_from_slice(name.as_bytes());
                    kind_lines.push(b'\n');
                    declared += 1;
                }
            });
        let kinds = cache.get(&kind_lines);
        // Remembered only when parsing it gave exactly what skipping it will:
        // every line of the block a good kind line, and no other anywhere
        // (as many declared in all as the block has lines). The count alone
        // took a kind line after the stats for the block's bad one.
        if let Some(block) = block
            && errors.is_empty()
            && declared == block.lines
            && all_good_kind_lines(&bytes[block.bytes.clone()])
        {
            cache.remember_block(&bytes[block.bytes], &kinds);
        }
        (snapshot, kinds, errors)
    }

    /// Parses `parts` as one stream with `skipped` lines left out between
    /// the first part and the second (line numbers count them): stats kept
    /// under names interned by `cache` if given (a line that starts with
    /// the name the last snapshot had at its position is read without
    /// parsing the name: [`KindsCache::recent`]), each metadata (`#`)
    /// line's name handed to `metadata`, bad lines counted.
    fn parse_parts(
        parts: &[&[u8]],
        skipped: u64,
        max_line: usize,
        cache: Option<&mut KindsCache>,
        metadata: impl FnMut(&str),
    ) -> (Snapshot, ErrorLog) {
        let mut parser = Parser::new(max_line);
        // One entry per line at most, not counting metadata lines (our
        // writer's kind lines can be half of them, and a reader holds a
        // thousand snapshots): no regrowth while parsing, little slack.
        // The last snapshot's count where there is one (the next source of
        // the same program has as many), else counted: no line search
        // before parsing where a parse goes by the last names.
        let last = cache.as_deref().and_then(KindsCache::recent);
        let capacity = match &last {
            Some(last) => last.len(),
            None => {
                let lines: usize = parts
                    .iter()
                    .map(|p| memchr::memchr_iter(b'\n', p).count())
                    .sum();
                let metadata_lines: usize = parts
                    .iter()
                    .map(|p| {
                        memchr::memmem::find_iter(p, b"\n#").count()
                            + usize::from(p.first() == Some(&b'#'))
                    })
                    .sum();
                (lines + 1).saturating_sub(metadata_lines)
            }
        };
        let mut keep = Keep {
            following: last.is_some(),
            last,
            names: Vec::new(),
            values: Vec::with_capacity(capacity),
            cache,
            metadata,
        };
        for (i, part) in parts.iter().enumerate() {
            if i == 1 {
                parser.skip_lines(skipped);
            }
            parser.feed_to(part, &mut keep);
        }
        parser.finish_to(&mut keep);
        (keep.finish(), parser.take_errors())
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.names
            .binary_search_by(|held| (**held).cmp(name))
            .ok()
            .map(|i| self.values[i])
    }

    /// The names, sorted; [`Snapshot::values`] holds their values at the
    /// same positions.
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The values, in the order of [`Snapshot::names`].
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The shared list [`Snapshot::names`] reads from: a reader that keeps
    /// a clone knows, by one pointer comparison, a later snapshot with the
    /// very same names (see [`Snapshot::shares_names_with`]).
    pub fn names_list(&self) -> &Arc<[Arc<str>]> {
        &self.names
    }

    /// Whether both snapshots hold the very same list of names (one parse
    /// took it from the other, or both from a third): then the names are
    /// equal position by position without comparing any.
    pub fn shares_names_with(&self, other: &Snapshot) -> bool {
        Arc::ptr_eq(&self.names, &other.names)
    }

    /// Iterates `(name, value)` in name order, each name as the shared
    /// string the snapshot holds.
    pub fn entries(&self) -> impl Iterator<Item = (&Arc<str>, Value)> {
        self.names.iter().zip(self.values.iter().copied())
    }

    /// Takes the entries out, sorted by name.
    pub fn into_entries(self) -> Vec<Entry> {
        self.names
            .iter()
            .zip(self.values)
            .map(|(name, value)| Entry {
                name: Arc::clone(name),
                value,
            })
            .collect()
    }

    /// Iterates `(name, value)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Value)> {
        self.names
            .iter()
            .zip(self.values.iter().copied())
            .map(|(name, value)| (&**name, value))
    }

    /// Number of stats.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no stats.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Appends every stat as a `name: value\n` line, with no allocation per
    /// line.
    pub fn render_into(&self, buf: &mut Vec<u8>) {
        buf.reserve(self.values.len() * 24);
        for (name, value) in self.iter() {
            write_line(buf, name, value);
        }
    }
}

/// The names and the values of `entries`, apart, in their order.
fn split(entries: impl IntoIterator<Item = Entry>) -> (Vec<Arc<str>>, Vec<Value>) {
    entries
        .into_iter()
        .map(|entry| (entry.name, entry.value))
        .unzip()
}

/// What [`Snapshot::parse_parts`] keeps of the lines.
struct Keep<'c, M> {
    /// The names of the last snapshot parsed through the cache, if any: a
    /// line that starts with the name at its position is read by it.
    last: Option<Arc<[Arc<str>]>>,
    /// Every stat so far had `last`'s name at its position: `names` is
    /// still empty, and a snapshot that ends so shares `last`.
    following: bool,
    names: Vec<Arc<str>>,
    values: Vec<Value>,
    cache: Option<&'c mut KindsCache>,
    metadata: M,
}

impl<M> Keep<'_, M> {
    /// Stops following `last`: the names so far, taken from it, are now
    /// this snapshot's own.
    fn leave_last(&mut self) {
        if std::mem::take(&mut self.following)
            && let Some(last) = &self.last
        {
            self.names.reserve(self.values.capacity());
            self.names
                .extend(last[..self.values.len()].iter().map(Arc::clone));
        }
    }

    /// The snapshot kept; the cache remembers its names for the next parse
    /// when they came in order (our writers sort them).
    fn finish(mut self) -> Snapshot {
        if self.following
            && let Some(last) = &self.last
            && last.len() == self.values.len()
        {
            return Snapshot {
                names: Arc::clone(last),
                values: self.values,
            };
        }
        self.leave_last();
        let in_order = self.names.windows(2).all(|w| w[0] < w[1]);
        let snapshot = Snapshot::from_parts(self.names, self.values);
        if in_order && let Some(cache) = self.cache {
            cache.set_recent(Arc::clone(&snapshot.names));
        }
        snapshot
    }
}

impl<M: FnMut(&str)> LineSink for Keep<'_, M> {
    fn reads_quickly(&self) -> bool {
        self.last.is_some()
    }

    /// A line that reads `<name>:<value>` where `<name>` is the very name
    /// the last snapshot parsed had at this position: the name is taken as
    /// is, only the value is parsed, and while every line does so no name
    /// is even referenced (the snapshot shares the last one's list).
    /// Exactly [`crate::format::parse_line`]'s reading: that name came out
    /// of it (trimmed, not empty, no control character, not metadata), and
    /// a value that parses has no other `:`, so this `:` is the last one,
    /// where it splits. Anything else (another name, a bad value) is parsed
    /// in full, errors and all.
    fn quick(&mut self, rest: &str, max_line: usize) -> Option<usize> {
        let position = self.values.len();
        let name = self.last.as_deref()?.get(position)?;
        let after = rest.strip_prefix(&**name)?.strip_prefix(':')?;
        // A value is a few bytes: a plain loop finds its end sooner than a
        // call to `memchr` (which, once per line, was a fifth of a parse).
        let len = after
            .bytes()
            .position(|b| b == b'\n')
            .unwrap_or(after.len());
        let line_len = name.len() + 1 + len;
        if line_len > max_line {
            return None;
        }
        // No number holds a `:` or ends in anything `trim` keeps: where this
        // parses, `parse_line` splits here and drops the same `\r`.
        let value = parse_value(&after[..len])?;
        // The value before the name: kept past the name's push, it went
        // through the stack as two stores read back as one 16-byte load,
        // which the CPU cannot forward (seen in a profile; benches/parse.rs
        // did not move, BENCHMARKS.md).
        self.values.push(value);
        if !self.following {
            self.names.push(Arc::clone(name));
        }
        Some(line_len)
    }

    fn entry(&mut self, name: &str, value: Value) {
        if is_metadata(name) {
            (self.metadata)(name);
            return;
        }
        self.leave_last();
        let position = self.values.len();
        let at_position = self.last.as_deref().and_then(|last| last.get(position));
        let name = match (at_position, self.cache.as_deref_mut()) {
            (Some(held), _) if **held == *name => Arc::clone(held),
            (_, Some(cache)) => cache.intern(name),
            (_, None) => Arc::from(name),
        };
        self.names.push(name);
        self.values.push(value);
    }
}

/// The block of kind lines among a snapshot's leading metadata lines: whole
/// lines, `\n` included.
#[derive(Clone, Debug, PartialEq)]
struct KindBlock {
    bytes: std::ops::Range<usize>,
    lines: u64,
}

/// Finds the first run of lines that start like a kind line (`#counter `,
/// `#histogram `, `#max `) among the metadata (`#`) lines a snapshot starts
/// with (the envelope's header, then our writer's declarations). Only the
/// first bytes of each line are looked at; nothing is parsed.
fn kind_block(bytes: &[u8]) -> Option<KindBlock> {
    let (mut at, mut start, mut lines) = (0, None, 0);
    while at < bytes.len() && bytes[at] == b'#' {
        let end = memchr::memchr(b'\n', &bytes[at..]).map(|i| at + i + 1)?;
        if looks_kind(&bytes[at..end]) {
            start.get_or_insert(at);
            lines += 1;
        } else if start.is_some() {
            break;
        }
        at = end;
    }
    start.map(|start| KindBlock {
        bytes: start..at,
        lines,
    })
}

/// Whether every line of `block` (whole lines) declares a kind.
fn all_good_kind_lines(block: &[u8]) -> bool {
    block.split_inclusive(|&b| b == b'\n').all(|line| {
        std::str::from_utf8(line)
            .ok()
            .and_then(|line| parse_line(line.trim_end_matches('\n')).ok())
            .is_some_and(|(name, _)| parse_kind_line(name).is_some())
    })
}

/// Whether a line (or the bytes from its start) starts like a kind line.
fn looks_kind(line: &[u8]) -> bool {
    [&b"#counter "[..], b"#histogram ", b"#max "]
        .iter()
        .any(|word| line.starts_with(word))
}

/// What [`kind_block`] finds, where it is the cache's recent block
/// ([`KindsCache::recent_block`]): the block's bytes compared where the
/// first kind line starts, and the line after it looked at, rather than
/// every line's end searched for and the block hashed. `None` where it is
/// not that block, or where [`kind_block`] would not find it so.
fn recent_kind_block(bytes: &[u8], cache: &KindsCache) -> Option<(KindBlock, Kinds)> {
    let (block, lines, kinds) = cache.recent_block()?;
    let mut at = 0;
    while bytes.get(at) == Some(&b'#') && !looks_kind(&bytes[at..]) {
        at += memchr::memchr(b'\n', &bytes[at..])? + 1;
    }
    let end = at + block.len();
    if !bytes[at..].starts_with(block) {
        return None;
    }
    // The run of kind lines ends there, as in `kind_block`: at the end, at
    // a line that is not metadata, or at a whole metadata line that is not
    // a kind line.
    if bytes.get(end) == Some(&b'#') {
        memchr::memchr(b'\n', &bytes[end..])?;
        if looks_kind(&bytes[end..]) {
            return None;
        }
    }
    Some((
        KindBlock {
            bytes: at..end,
            lines,
        },
        kinds.clone(),
    ))
}

#[cfg(test)]
mod tests;
