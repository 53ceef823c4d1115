//! `Snapshot`: every stat of one source at one moment, sorted by name.

use crate::format::write_line;
use crate::kinds::{Kinds, KindsCache, parse_kind_line};
use crate::name::is_metadata;
use crate::parse::{ErrorLog, Parser};
use crate::value::Value;

/// One stat in a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The stat's name (valid: see [`crate::name`]).
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// Stats sorted by name, each name once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    entries: Vec<Entry>,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Builds a snapshot from entries in any order; for a repeated name the
    /// later entry wins (as in a pipestatic reader's dict).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Snapshot {
        let mut entries: Vec<Entry> = entries.into_iter().collect();
        // Our writers render in name order: then there is nothing to sort or
        // drop, and no second vector to build (a reader does this once per
        // pipe per pass).
        if entries.windows(2).all(|w| w[0].name < w[1].name) {
            return Snapshot { entries };
        }
        // Stable sort keeps the written order among equal names, so keeping
        // the last of each run is "later wins".
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut deduped: Vec<Entry> = Vec::with_capacity(entries.len());
        for entry in entries {
            match deduped.last_mut() {
                Some(last) if last.name == entry.name => *last = entry,
                _ => deduped.push(entry),
            }
        }
        Snapshot { entries: deduped }
    }

    /// Builds a snapshot from entries already sorted by name with no repeats
    /// (as a registry or a merge produces them).
    ///
    /// # Panics
    /// In debug builds, if the entries are not strictly sorted.
    pub fn from_sorted(entries: Vec<Entry>) -> Snapshot {
        debug_assert!(entries.windows(2).all(|w| w[0].name < w[1].name));
        Snapshot { entries }
    }

    /// Reads `name: value` lines, skipping metadata (`#...`) lines and
    /// counting bad ones. Lines longer than `max_line` bytes are skipped.
    pub fn parse(bytes: &[u8], max_line: usize) -> (Snapshot, ErrorLog) {
        Snapshot::parse_noting_metadata(bytes, max_line, |_| {})
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
    pub fn parse_with_kinds_cached(
        bytes: &[u8],
        max_line: usize,
        cache: &mut KindsCache,
    ) -> (Snapshot, Kinds, ErrorLog) {
        let mut kind_lines = Vec::new();
        let (snapshot, errors) = Snapshot::parse_noting_metadata(bytes, max_line, |name| {
            if parse_kind_line(name).is_some() {
                kind_lines.extend_from_slice(name.as_bytes());
                kind_lines.push(b'\n');
            }
        });
        (snapshot, cache.get(&kind_lines), errors)
    }

    /// The one parse loop: stats kept, each metadata (`#`) line's name
    /// handed to `metadata`, bad lines counted.
    fn parse_noting_metadata(
        bytes: &[u8],
        max_line: usize,
        mut metadata: impl FnMut(&str),
    ) -> (Snapshot, ErrorLog) {
        let mut parser = Parser::new(max_line);
        // One entry per line at most, not counting metadata lines (our
        // writer's kind lines can be half of them, and a reader holds a
        // thousand snapshots): no regrowth while parsing, little slack.
        let metadata_lines = memchr::memmem::find_iter(bytes, b"\n#").count()
            + usize::from(bytes.first() == Some(&b'#'));
        let lines = memchr::memchr_iter(b'\n', bytes).count() + 1;
        let mut entries = Vec::with_capacity(lines - metadata_lines);
        let mut keep = |name: &str, value: Value| {
            if is_metadata(name) {
                metadata(name);
            } else {
                entries.push(Entry {
                    name: name.to_owned(),
                    value,
                });
            }
        };
        parser.feed(bytes, &mut keep);
        parser.finish(&mut keep);
        (Snapshot::from_entries(entries), parser.take_errors())
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| self.entries[i].value)
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Takes the entries out, sorted by name.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Iterates `(name, value)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Value)> {
        self.entries.iter().map(|e| (e.name.as_str(), e.value))
    }

    /// Number of stats.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no stats.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends every stat as a `name: value\n` line, with no allocation per
    /// line.
    pub fn render_into(&self, buf: &mut Vec<u8>) {
        buf.reserve(self.entries.len() * 24);
        for entry in &self.entries {
            write_line(buf, &entry.name, entry.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: Value) -> Entry {
        Entry {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn sorted_and_later_wins() {
        let s = Snapshot::from_entries([
            entry("b", Value::Int(1)),
            entry("a", Value::Int(2)),
            entry("b", Value::Float(3.0)),
        ]);
        assert_eq!(
            s.entries(),
            &[entry("a", Value::Int(2)), entry("b", Value::Float(3.0))]
        );
        assert_eq!(s.get("b"), Some(Value::Float(3.0)));
        assert_eq!(s.get("c"), None);
    }

    #[test]
    fn render_then_parse() {
        let s = Snapshot::from_entries([
            entry("My Nice Stat", Value::Int(5)),
            entry("a:b", Value::Float(3.0)),
            entry("t[k=v]", Value::Float(f64::NEG_INFINITY)),
        ]);
        let mut buf = Vec::new();
        s.render_into(&mut buf);
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "My Nice Stat: 5\na:b: 3.0\nt[k=v]: -inf\n"
        );
        let (parsed, errors) = Snapshot::parse(&buf, 4096);
        assert!(errors.is_empty());
        assert_eq!(parsed, s);
    }

    #[test]
    fn parse_drops_metadata() {
        let (s, _) = Snapshot::parse(b"#pid: 5\nx: 1\n#end: 13\n", 4096);
        assert_eq!(s.entries(), &[entry("x", Value::Int(1))]);
    }

    #[test]
    fn parse_with_kinds_keeps_declarations() {
        let (s, kinds, errors) =
            Snapshot::parse_with_kinds(b"#pid: 5\n#counter x: 1\n#histogram h a: 1\nx: 1\n", 4096);
        assert!(errors.is_empty());
        assert_eq!(s.entries(), &[entry("x", Value::Int(1))]);
        assert_eq!(kinds.get("x"), Some(crate::kinds::WireKind::Counter));
        assert_eq!(kinds.get("h a"), Some(crate::kinds::WireKind::Histogram));
    }
}
