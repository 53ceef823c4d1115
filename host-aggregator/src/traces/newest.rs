//! The newest K short records of a read, kept while the answers are parsed
//! pipe by pipe: a bounded heap, so a read holds K records however many
//! traces the writers serve (1,000 per ring, a thousand rings), never all
//! of them to be sorted at the end.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::record::Short;

/// The newest `keep` records pushed, in the index's order.
#[derive(Debug)]
pub struct Newest {
    keep: usize,
    heap: BinaryHeap<Listed>,
}

/// A record ordered as the index lists it: newest start first, then PID
/// ascending, then id descending. The heap's top is the one listed last,
/// the first to go.
#[derive(Debug)]
struct Listed(Short);

/// `Less` when `a` is listed before `b`.
pub(crate) fn listed(a: &Short, b: &Short) -> Ordering {
    b.start
        .total_cmp(&a.start)
        .then(a.pid.cmp(&b.pid))
        .then(b.id.cmp(&a.id))
}

impl Ord for Listed {
    fn cmp(&self, other: &Listed) -> Ordering {
        listed(&self.0, &other.0)
    }
}

impl PartialOrd for Listed {
    fn partial_cmp(&self, other: &Listed) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Listed {
    fn eq(&self, other: &Listed) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Listed {}

impl Newest {
    /// Keeps at most `keep` records.
    pub fn new(keep: usize) -> Newest {
        Newest {
            keep,
            heap: BinaryHeap::new(),
        }
    }

    /// Adds `record`, dropping the oldest if more than `keep` are held.
    pub fn push(&mut self, record: Short) {
        if self.keep == 0 {
            return;
        }
        if self.heap.len() == self.keep {
            // Older than everything kept: not worth a push and a pop.
            if self
                .heap
                .peek()
                .is_some_and(|last| listed(&record, &last.0) != Ordering::Less)
            {
                return;
            }
        }
        self.heap.push(Listed(record));
        if self.heap.len() > self.keep {
            self.heap.pop();
        }
    }

    /// The records kept, newest first.
    pub fn into_sorted(self) -> Vec<Short> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|l| l.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::record::Head;

    fn short(pid: u32, id: u64, start: f64) -> Short {
        Short {
            head: Head {
                pid,
                id,
                root: "r".into(),
                tags: Vec::new(),
                start,
                duration_ns: 1,
                outcome: "success".into(),
                dropped_spans: 0,
            },
            spans: 1,
        }
    }

    #[test]
    fn keeps_the_newest_in_the_index_order() {
        let mut newest = Newest::new(3);
        for (pid, id, start) in [
            (1, 1, 5.0),
            (2, 1, 9.0),
            (1, 2, 7.0),
            (3, 1, 1.0),
            (1, 3, 9.0),
        ] {
            newest.push(short(pid, id, start));
        }
        let kept: Vec<(u32, u64)> = newest.into_sorted().iter().map(|s| (s.pid, s.id)).collect();
        assert_eq!(kept, [(1, 3), (2, 1), (1, 2)]);
        let mut none = Newest::new(0);
        none.push(short(1, 1, 1.0));
        assert!(none.into_sorted().is_empty());
    }
}
