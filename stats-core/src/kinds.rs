//! How our writer tells a reader what each stat is, through the pipe itself:
//! metadata lines `#counter NAME: 1`, `#histogram NAME: 1`, `#max NAME: 1`.
//! Each is still a plain `name: value` line. A stat with no such line is a
//! gauge (a foreign writer's stats are all gauges): summed over live
//! processes, gone when its process is.

use std::collections::HashMap;

use crate::format::write_line;
use crate::value::Value;

/// What a reader must know about a stat to merge it right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireKind {
    /// Only counts up: summed, and kept counting after its process exits.
    Counter,
    /// A histogram: its `.count`, `.sum`, `.min`, `.max`, `.pNN`, `.nan` and
    /// `.bucket[le=..]` lines merge as one distribution.
    Histogram,
    /// Merged by taking the largest value (a task's `.highwater`).
    Max,
}

impl WireKind {
    /// The word used in the metadata line.
    pub fn word(self) -> &'static str {
        match self {
            WireKind::Counter => "counter",
            WireKind::Histogram => "histogram",
            WireKind::Max => "max",
        }
    }

    fn from_word(word: &str) -> Option<WireKind> {
        match word {
            "counter" => Some(WireKind::Counter),
            "histogram" => Some(WireKind::Histogram),
            "max" => Some(WireKind::Max),
            _ => None,
        }
    }
}

/// Appends `#<kind> <name>: 1`.
pub fn write_kind_line(buf: &mut Vec<u8>, kind: WireKind, name: &str) {
    let mut line_name = String::with_capacity(name.len() + 12);
    line_name.push('#');
    line_name.push_str(kind.word());
    line_name.push(' ');
    line_name.push_str(name);
    write_line(buf, &line_name, Value::Int(1));
}

/// Reads a metadata line's name as a kind declaration, if it is one.
pub fn parse_kind_line(name: &str) -> Option<(WireKind, &str)> {
    let (word, stat) = name.strip_prefix('#')?.split_once(' ')?;
    Some((WireKind::from_word(word)?, stat.trim()))
}

/// The kinds one source declared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kinds {
    map: HashMap<String, WireKind, foldhash::fast::RandomState>,
}

impl Kinds {
    /// No declarations (a foreign writer).
    pub fn new() -> Kinds {
        Kinds::default()
    }

    /// Records a metadata line if it declares a kind; returns whether it did.
    pub fn note(&mut self, metadata_name: &str) -> bool {
        match parse_kind_line(metadata_name) {
            Some((kind, stat)) => {
                self.map.insert(stat.to_owned(), kind);
                true
            }
            None => false,
        }
    }

    /// Declares `name` as `kind`.
    pub fn declare(&mut self, name: &str, kind: WireKind) {
        self.map.insert(name.to_owned(), kind);
    }

    /// The declared kind of `name`, if any.
    pub fn get(&self, name: &str) -> Option<WireKind> {
        self.map.get(name).copied()
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every declaration.
    pub fn iter(&self) -> impl Iterator<Item = (&str, WireKind)> {
        self.map.iter().map(|(n, k)| (n.as_str(), *k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_lines_round_trip_and_stay_plain_lines() {
        let mut buf = Vec::new();
        write_kind_line(&mut buf, WireKind::Histogram, "db latency[route=/a b]");
        assert_eq!(buf, b"#histogram db latency[route=/a b]: 1\n");
        let (name, value) =
            crate::format::parse_line(std::str::from_utf8(&buf).unwrap().trim_end()).unwrap();
        assert_eq!(value, Value::Int(1));
        assert_eq!(
            parse_kind_line(name),
            Some((WireKind::Histogram, "db latency[route=/a b]"))
        );
        let mut kinds = Kinds::new();
        assert!(kinds.note(name));
        assert!(!kinds.note("#pid"));
        assert!(!kinds.note("#gauge x"));
        assert_eq!(
            kinds.get("db latency[route=/a b]"),
            Some(WireKind::Histogram)
        );
    }
}
