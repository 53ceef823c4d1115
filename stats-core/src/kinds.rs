//! How our writer tells a reader what each stat is, through the pipe itself:
//! metadata lines `#counter NAME: 1`, `#histogram NAME: 1`, `#max NAME: 1`.
//! Each is still a plain `name: value` line. A stat with no such line is a
//! gauge (a foreign writer's stats are all gauges): summed over live
//! processes, gone when its process is.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

/// Appends `#<kind> <name>: 1` (the bytes of
/// [`crate::format::write_line`]`("#<kind> <name>", 1)`, with no allocation: a writer
/// renders every declaration in every snapshot).
pub fn write_kind_line(buf: &mut Vec<u8>, kind: WireKind, name: &str) {
    buf.push(b'#');
    buf.extend_from_slice(kind.word().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": 1\n");
}

/// Reads a metadata line's name as a kind declaration, if it is one.
pub fn parse_kind_line(name: &str) -> Option<(WireKind, &str)> {
    let (word, stat) = name.strip_prefix('#')?.split_once(' ')?;
    Some((WireKind::from_word(word)?, stat.trim()))
}

/// The kinds one source declared.
///
/// Cloning is cheap (the declarations are shared, copied on the first
/// change), so the many processes of one program can share one set: see
/// [`KindsCache`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kinds {
    declared: Arc<Declarations>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Declarations {
    map: HashMap<String, WireKind, foldhash::fast::RandomState>,
    /// How many of them are histograms (a merge skips the histogram line
    /// parsing for sources that declare none).
    histograms: usize,
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
                self.declare(stat, kind);
                true
            }
            None => false,
        }
    }

    /// Declares `name` as `kind`. Declaring what is already declared costs
    /// a lookup, not an allocation (a merge declares every source's kinds).
    pub fn declare(&mut self, name: &str, kind: WireKind) {
        if self.get(name) == Some(kind) {
            return;
        }
        let declared = Arc::make_mut(&mut self.declared);
        if declared.map.insert(name.to_owned(), kind) == Some(WireKind::Histogram) {
            declared.histograms -= 1;
        }
        if kind == WireKind::Histogram {
            declared.histograms += 1;
        }
    }

    /// The declared kind of `name`, if any.
    pub fn get(&self, name: &str) -> Option<WireKind> {
        self.declared.map.get(name).copied()
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.declared.map.is_empty()
    }

    /// Number of declared stats.
    pub fn len(&self) -> usize {
        self.declared.map.len()
    }

    /// Whether any stat is declared a histogram.
    pub fn has_histograms(&self) -> bool {
        self.declared.histograms > 0
    }

    /// Whether `self` and `other` are the same shared set (a clone, or one
    /// [`KindsCache`] entry), which implies they are equal.
    pub fn shares_with(&self, other: &Kinds) -> bool {
        Arc::ptr_eq(&self.declared, &other.declared)
    }

    /// Every declaration.
    pub fn iter(&self) -> impl Iterator<Item = (&str, WireKind)> {
        self.declared.map.iter().map(|(n, k)| (n.as_str(), *k))
    }
}

/// Distinct declaration texts a [`KindsCache`] keeps at most; past it, the
/// cache starts over, so writers that declare ever new names cannot grow it
/// without bound.
const KINDS_CACHE_LIMIT: usize = 1024;

/// Names a [`KindsCache`] interns at most; past it, new names are allocated
/// each time (a writer making ever new names cannot grow the table, only
/// its own snapshots).
const NAMES_LIMIT: usize = 1 << 20;

/// Builds [`Kinds`] once per distinct text of kind lines and hands out
/// shared copies: a reader of a thousand processes of one program holds one
/// set of declarations, not a thousand, and parses them once.
///
/// ```
/// use stats_core::kinds::{KindsCache, WireKind};
///
/// let mut cache = KindsCache::new();
/// let a = cache.get(b"#counter requests\n#max jobs.highwater\n");
/// let b = cache.get(b"#counter requests\n#max jobs.highwater\n");
/// assert!(a.shares_with(&b));
/// assert_eq!(a.get("requests"), Some(WireKind::Counter));
/// ```
#[derive(Debug, Default)]
pub struct KindsCache {
    /// Kind-line names, each ending in `\n` → the kinds they declare, and
    /// whether a source used them since the last [`KindsCache::sweep`].
    by_text: HashMap<Box<[u8]>, (Kinds, bool), foldhash::fast::RandomState>,
    /// Whole blocks of kind lines, as sent (`#counter requests: 1\n...`),
    /// that parsed cleanly → the kinds they declare, and whether used since
    /// the last sweep: a block seen again is not parsed again.
    by_block: HashMap<Arc<[u8]>, (Kinds, bool), foldhash::fast::RandomState>,
    /// The block last found in or added to `by_block`, with its line count
    /// ([`KindsCache::recent_block`]): the next source of the same program
    /// sends it again, and comparing its bytes where it starts costs less
    /// than finding the block's end line by line and hashing it.
    recent_block: Option<(Arc<[u8]>, u64, Kinds)>,
    /// Whether a source used `recent_block` since the last sweep (matched
    /// in place, so never looked up in `by_block`, which would mark it).
    recent_block_used: bool,
    /// Stat names interned across sources: a thousand processes of one
    /// program send the same names, held once ([`KindsCache::intern`]).
    names: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// The names of the last snapshot parsed whose lines came in name
    /// order ([`KindsCache::recent`]): the next source of the same program
    /// sends the same names in the same order, and shares this list.
    recent: Option<Arc<[Arc<str>]>>,
}

impl KindsCache {
    /// An empty cache.
    pub fn new() -> KindsCache {
        KindsCache::default()
    }

    /// The kinds declared by `kind_lines`: metadata line names such as
    /// `#counter requests`, each followed by `\n`, in the order read (a
    /// later declaration of a name wins). Names that are not kind lines
    /// are ignored.
    pub fn get(&mut self, kind_lines: &[u8]) -> Kinds {
        if let Some((kinds, used)) = self.by_text.get_mut(kind_lines) {
            *used = true;
            return kinds.clone();
        }
        let mut kinds = Kinds::new();
        for line in kind_lines.split(|&b| b == b'\n') {
            if let Ok(name) = std::str::from_utf8(line) {
                kinds.note(name);
            }
        }
        if self.by_text.len() >= KINDS_CACHE_LIMIT {
            self.by_text.clear();
        }
        self.by_text
            .insert(kind_lines.into(), (kinds.clone(), true));
        kinds
    }

    /// The kinds of a block of whole kind lines, as sent, if
    /// [`KindsCache::remember_block`] was told of the same bytes.
    pub fn known_block(&mut self, block: &[u8]) -> Option<Kinds> {
        let held = Arc::clone(self.by_block.get_key_value(block)?.0);
        let (kinds, used) = self.by_block.get_mut(block)?;
        *used = true;
        let kinds = kinds.clone();
        self.set_recent_block(held, &kinds);
        Some(kinds)
    }

    /// Remembers that `block`, whole kind lines as sent, every one of them
    /// good, declares `kinds` (the caller parsed it).
    pub fn remember_block(&mut self, block: &[u8], kinds: &Kinds) {
        if self.by_block.len() >= KINDS_CACHE_LIMIT {
            self.by_block.clear();
        }
        let block: Arc<[u8]> = block.into();
        self.by_block
            .insert(Arc::clone(&block), (kinds.clone(), true));
        self.set_recent_block(block, kinds);
    }

    /// The block of kind lines [`KindsCache::known_block`] last found or
    /// [`KindsCache::remember_block`] last took (while it is remembered:
    /// see [`KindsCache::sweep`]), its number of lines and its kinds.
    pub fn recent_block(&self) -> Option<(&[u8], u64, &Kinds)> {
        self.recent_block
            .as_ref()
            .map(|(block, lines, kinds)| (&**block, *lines, kinds))
    }

    /// Tells the cache that a source had [`KindsCache::recent_block`]
    /// (found where it starts, without a look-up): it was asked for, and
    /// outlives the next sweep as a block found by look-up does.
    pub fn used_recent_block(&mut self) {
        self.recent_block_used = true;
    }

    fn set_recent_block(&mut self, block: Arc<[u8]>, kinds: &Kinds) {
        let same = self
            .recent_block
            .as_ref()
            .is_some_and(|(held, _, _)| Arc::ptr_eq(held, &block));
        if !same {
            let lines = memchr::memchr_iter(b'\n', &block).count() as u64;
            self.recent_block = Some((block, lines, kinds.clone()));
        }
    }

    /// `name` as a shared string: the one held already if any snapshot
    /// still alive has that name, so parsing a stat costs a hash lookup,
    /// not an allocation, and a thousand sources hold one copy of it.
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(held) = self.names.get(name) {
            return Arc::clone(held);
        }
        let fresh: Arc<str> = Arc::from(name);
        if self.names.len() < NAMES_LIMIT {
            self.names.insert(Arc::clone(&fresh));
        }
        fresh
    }

    /// The names of the last snapshot parsed through this cache whose
    /// lines came in name order, as one shared list: a parse reads a line
    /// that starts with the name at its position without parsing the name,
    /// and a snapshot with every one of these names, in order, shares the
    /// list (a thousand processes of one program send the same names in
    /// the same order; issue 15).
    pub fn recent(&self) -> Option<Arc<[Arc<str>]>> {
        self.recent.clone()
    }

    /// Remembers `names` as [`KindsCache::recent`].
    pub fn set_recent(&mut self, names: Arc<[Arc<str>]>) {
        self.recent = Some(names);
    }

    /// Forgets the texts and blocks not asked for since the last sweep, and
    /// the names no snapshot holds any more (call it once per read pass).
    ///
    /// The recent names and block stay for the next pass (the same
    /// programs send them again, and a list kept across passes lets a
    /// reader follow a process by one pointer comparison), as long as
    /// something else holds the list (a snapshot of this pass) and the
    /// block is still remembered: held only here, the list would keep its
    /// names alive for ever.
    pub fn sweep(&mut self) {
        if self
            .recent
            .as_ref()
            .is_some_and(|list| Arc::strong_count(list) == 1)
        {
            self.recent = None;
        }
        self.by_text.retain(|_, (_, used)| std::mem::take(used));
        if std::mem::take(&mut self.recent_block_used)
            && let Some((block, _, _)) = &self.recent_block
            && let Some((_, used)) = self.by_block.get_mut(&**block)
        {
            *used = true;
        }
        self.by_block.retain(|_, (_, used)| std::mem::take(used));
        if let Some((block, _, _)) = &self.recent_block
            && !self.by_block.contains_key(&**block)
        {
            self.recent_block = None;
        }
        self.names.retain(|name| Arc::strong_count(name) > 1);
    }

    /// Distinct texts held.
    pub fn len(&self) -> usize {
        self.by_text.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.by_text.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

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

    #[test]
    fn cache_shares_equal_texts_and_forgets_unused_ones() {
        let mut cache = KindsCache::new();
        let text = b"#counter requests\n#histogram lat\n#counter requests\n";
        let a = cache.get(text);
        let b = cache.get(text);
        assert!(a.shares_with(&b));
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("lat"), Some(WireKind::Histogram));
        let other = cache.get(b"#max requests\n#pid\n");
        assert!(!other.shares_with(&a));
        assert_eq!(other.get("requests"), Some(WireKind::Max));
        assert_eq!(other.len(), 1);
        assert!(a.has_histograms() && !other.has_histograms());
        assert!(cache.get(b"").is_empty());

        // A sweep keeps what was asked for since the last one.
        cache.sweep();
        assert_eq!(cache.len(), 3);
        let again = cache.get(text);
        cache.sweep();
        assert_eq!(cache.len(), 1);
        assert!(again.shares_with(&cache.get(text)));
    }

    #[test]
    fn a_change_to_a_shared_set_is_copied_first() {
        let mut cache = KindsCache::new();
        let shared = cache.get(b"#counter a\n");
        let mut mine = shared.clone();
        mine.declare("a", WireKind::Counter);
        assert!(
            mine.shares_with(&shared),
            "re-declaring the same kind copies nothing"
        );
        mine.declare("b", WireKind::Max);
        assert!(!mine.shares_with(&shared));
        assert_eq!(shared.get("b"), None);
        assert_eq!(mine.get("b"), Some(WireKind::Max));
        mine.declare("h", WireKind::Histogram);
        assert!(mine.has_histograms());
        mine.declare("h", WireKind::Counter);
        assert!(!mine.has_histograms());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = KindsCache::new();
        for i in 0..KINDS_CACHE_LIMIT + 10 {
            cache.get(format!("#counter c{i}\n").as_bytes());
        }
        assert!(cache.len() <= KINDS_CACHE_LIMIT);
    }
}
