//! `Snapshotter`: builds one enveloped snapshot of a registry, with the
//! process's own `process.*` lines, into a reused buffer, so serving a reader
//! allocates nothing once the buffer has grown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use stats_core::Registry;
use stats_core::envelope::{Header, write_header, write_trailer};
use stats_core::format::write_line;
use stats_core::kinds::write_kind_line;

use crate::process_stats::OwnFigures;
use crate::traces::{self, Content};

/// Which registry a server serves.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Global,
    Own(Arc<Registry>),
}

impl Source {
    pub(crate) fn registry(&self) -> &Registry {
        match self {
            Source::Global => Registry::global(),
            Source::Own(registry) => registry,
        }
    }
}

/// Builds snapshots; each serving thread has its own, sharing the sequence.
#[derive(Debug)]
pub(crate) struct Snapshotter {
    source: Source,
    pid: u32,
    /// Snapshots built so far by every thread of this server: the next
    /// snapshot's `#seq`.
    seq: Arc<AtomicU64>,
    /// The process's own figures, kept fresh by the orphan sweeper; `None`
    /// when turned off.
    own: Option<Arc<OwnFigures>>,
    content: Content,
    buf: Vec<u8>,
    /// The `process.*` lines of the snapshot being built, and where each
    /// goes in `buf`.
    own_lines: Vec<u8>,
    inserts: Vec<Insert>,
    /// Which of our `process.*` names the user made a stat of, as found when
    /// the registry held this many metrics: looked up again only when that
    /// number changes (stats are never removed), not five lock-and-hash
    /// look-ups per serve (issue 15).
    taken: Option<(usize, [bool; 5])>,
}

/// One line of `own_lines` to put at `at` in the buffer.
#[derive(Clone, Copy, Debug)]
struct Insert {
    at: usize,
    line: (usize, usize),
}

impl Snapshotter {
    pub(crate) fn new(
        source: Source,
        pid: u32,
        seq: Arc<AtomicU64>,
        own: Option<Arc<OwnFigures>>,
    ) -> Snapshotter {
        Snapshotter {
            source,
            pid,
            seq,
            own,
            content: Content::Stats,
            buf: Vec::new(),
            own_lines: Vec::new(),
            inserts: Vec::new(),
            taken: None,
        }
    }

    /// Serves `content` instead of the stats.
    pub(crate) fn serving(mut self, content: Content) -> Snapshotter {
        self.content = content;
        self
    }

    /// The registry's stats right now, wrapped in the envelope (FORMAT.md).
    /// Recording threads are not held up: the registry takes its lock only
    /// to clone the list of stats, then every value is one atomic load.
    pub(crate) fn build(&mut self) -> &[u8] {
        if self.content == Content::Traces {
            let seq = self.seq.fetch_add(1, Relaxed);
            traces::build(&mut self.buf, self.source.registry(), self.pid, seq);
            return &self.buf;
        }
        self.buf.clear();
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let header = Header {
            pid: self.pid,
            seq: self.seq.fetch_add(1, Relaxed),
            time,
        };
        write_header(&mut self.buf, &header);
        let registry = self.source.registry();
        // Kinds first, so a reader knows how to merge each stat it meets:
        // ours, then the registry's.
        self.own_lines.clear();
        if let Some(own) = &self.own {
            let lines = own.lines();
            let count = registry.len();
            let taken = match self.taken {
                Some((known, taken)) if known == count => taken,
                _ => {
                    let taken = lines
                        .map(|line| line.is_some_and(|line| registry.get(line.name).is_some()));
                    // Only lines all present are kept: a figure missing now
                    // (unreadable) is looked up once it is back.
                    if lines.iter().all(Option::is_some) {
                        self.taken = Some((count, taken));
                    }
                    taken
                }
            };
            // Copied, never read here: /proc is read off the reader's clock.
            for (line, taken) in lines.into_iter().zip(taken) {
                // The prefix is reserved, but a stat the user made under one
                // of our names is theirs: no second line with that name.
                let Some(line) = line.filter(|_| !taken) else {
                    continue;
                };
                if let Some(kind) = line.kind {
                    write_kind_line(&mut self.buf, kind, line.name);
                }
                write_line(&mut self.own_lines, line.name, line.value);
            }
        }
        let registry_start = self.buf.len();
        registry.render_kinds_into(&mut self.buf);
        registry.render_into(&mut self.buf);
        if !self.own_lines.is_empty() {
            self.insert_own_lines(registry_start);
        }
        write_trailer(&mut self.buf);
        &self.buf
    }

    /// Puts the `process.*` lines where they sort among the registry's lines
    /// from `body_start` on (its kind lines, whose `#` sorts before any
    /// name, then its stats in name order), so a reader that finds a
    /// snapshot sorted keeps its no-sort fast path. Each place is found by a
    /// binary search over the lines, and everything is moved once, from the
    /// back. The same works on each part of a snapshot rendered in parts.
    fn insert_own_lines(&mut self, body_start: usize) {
        self.inserts.clear();
        let mut line_start = 0;
        let mut at = body_start;
        for (i, &byte) in self.own_lines.iter().enumerate() {
            if byte != b'\n' {
                continue;
            }
            let line = (line_start, i + 1);
            let name = line_name(&self.own_lines[line.0..line.1]);
            // One search; the other lines go at or just after the first
            // one's place. Never before it, even where the registry's lines
            // are not all in order (histograms and tasks write their lines
            // in groups).
            at = if self.inserts.is_empty() {
                body_start + insertion_point(&self.buf[body_start..], name)
            } else {
                skip_lines_before(&self.buf, at, name)
            };
            self.inserts.push(Insert { at, line });
            line_start = i + 1;
        }
        let old_len = self.buf.len();
        let mut shift = self.own_lines.len();
        self.buf.resize(old_len + shift, 0);
        let mut end = old_len;
        for insert in self.inserts.iter().rev() {
            self.buf.copy_within(insert.at..end, insert.at + shift);
            let (from, to) = insert.line;
            shift -= to - from;
            self.buf[insert.at + shift..insert.at + shift + (to - from)]
                .copy_from_slice(&self.own_lines[from..to]);
            end = insert.at;
        }
    }
}

/// The name of a `name: value` line: everything before its last `:`.
fn line_name(line: &[u8]) -> &[u8] {
    let colon = line.iter().rposition(|&b| b == b':').unwrap_or(line.len());
    &line[..colon]
}

/// The start of the first line from `at` on whose name does not sort before
/// `name`.
fn skip_lines_before(buf: &[u8], mut at: usize, name: &[u8]) -> usize {
    while at < buf.len() {
        let end = buf[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| at + i + 1);
        if line_name(&buf[at..end]) >= name {
            break;
        }
        at = end;
    }
    at
}

/// Where a line named `name` goes among `body`'s lines (whole lines in name
/// order): the start of the first line whose name does not sort before it.
fn insertion_point(body: &[u8], name: &[u8]) -> usize {
    // Lines starting before `lo` sort before `name`; lines starting at `hi`
    // or later do not. Both are always line starts (or the end).
    let (mut lo, mut hi) = (0, body.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = body[lo..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(lo, |i| lo + i + 1);
        let end = body[start..hi]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(hi, |i| start + i + 1);
        if line_name(&body[start..end]) < name {
            lo = end;
        } else {
            hi = start;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use stats_core::envelope::{Verdict, verify};

    #[test]
    fn snapshots_are_complete_and_numbered() {
        let registry = Arc::new(Registry::new());
        registry.set("load avg", 0.5);
        registry.incr("a: b", 2);
        let seq = Arc::new(AtomicU64::new(0));
        let mut snap = Snapshotter::new(Source::Own(registry), 4242, Arc::clone(&seq), None);
        for expected_seq in 0..3 {
            let bytes = snap.build().to_vec();
            let Verdict::Complete { header, body } = verify(&bytes) else {
                panic!("not complete: {}", String::from_utf8_lossy(&bytes));
            };
            assert_eq!((header.pid, header.seq), (4242, expected_seq));
            assert!(header.time > 1.7e9, "time is Unix seconds: {}", header.time);
            assert_eq!(&bytes[body], b"#counter a: b: 1\na: b: 2\nload avg: 0.5\n");
        }
        assert_eq!(seq.load(Relaxed), 3);
    }

    fn body_of(bytes: &[u8]) -> String {
        let Verdict::Complete { body, .. } = verify(bytes) else {
            panic!("not complete: {}", String::from_utf8_lossy(bytes));
        };
        String::from_utf8(bytes[body].to_vec()).unwrap()
    }

    fn names(body: &str) -> Vec<&str> {
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| line.rsplit_once(": ").unwrap().0)
            .collect()
    }

    /// A snapshotter of `registry` that adds the process's own figures,
    /// read once.
    fn with_own_figures(registry: Arc<Registry>) -> Snapshotter {
        let own = Arc::new(OwnFigures::default());
        own.refresh();
        Snapshotter::new(
            Source::Own(registry),
            1,
            Arc::new(AtomicU64::new(0)),
            Some(own),
        )
    }

    #[test]
    fn own_lines_are_sorted_in_with_their_kinds() {
        let registry = Arc::new(Registry::new());
        for name in ["a", "process", "process.zz", "requests", "zeta"] {
            registry.incr(name, 1);
        }
        let mut snap = with_own_figures(registry);
        let body = body_of(snap.build());
        let names = names(&body);
        let expected = [
            "a",
            "process",
            "process.cpu_seconds",
            "process.open_fds",
            "process.rss_bytes",
            "process.threads",
            "process.uptime_seconds",
            "process.zz",
            "requests",
            "zeta",
        ];
        assert_eq!(names, expected, "{body}");
        let has = |line: &str| body.lines().any(|l| l == line);
        assert!(has("#counter process.cpu_seconds: 1"), "{body}");
        assert!(has("#max process.uptime_seconds: 1"), "{body}");
        assert_eq!(body.matches("#counter ").count(), 6, "{body}");
        // The same again from the reused buffers.
        assert_eq!(self::names(&body_of(snap.build())), expected);
    }

    #[test]
    fn a_stat_the_user_made_under_our_name_wins() {
        let registry = Arc::new(Registry::new());
        registry.set("process.threads", 77);
        registry.set("process.cpu_seconds", 1.5);
        let mut snap = with_own_figures(registry);
        let body = body_of(snap.build());
        assert_eq!(
            names(&body),
            [
                "process.cpu_seconds",
                "process.open_fds",
                "process.rss_bytes",
                "process.threads",
                "process.uptime_seconds"
            ],
            "{body}"
        );
        assert!(body.contains("\nprocess.threads: 77\n"), "{body}");
        assert!(body.contains("\nprocess.cpu_seconds: 1.5\n"), "{body}");
        // The user's gauge is not declared a counter on its behalf.
        assert!(!body.contains("#counter"), "{body}");
        assert!(body.contains("#max process.uptime_seconds: 1\n"), "{body}");
    }

    #[test]
    fn a_stat_the_user_makes_under_our_name_later_wins_too() {
        // The look-up of our names is kept between snapshots while the
        // registry holds as many metrics: a stat made later is seen.
        let registry = Arc::new(Registry::new());
        registry.set("jobs", 1);
        let mut snap = with_own_figures(Arc::clone(&registry));
        let body = body_of(snap.build());
        assert!(
            body.contains("\n#counter process.cpu_seconds: 1\n")
                || body.starts_with("#counter process.cpu_seconds: 1\n"),
            "{body}"
        );
        assert_eq!(body.matches("process.threads:").count(), 1, "{body}");
        assert!(!body.contains("process.threads: 77"), "{body}");
        registry.set("process.threads", 77);
        registry.set("process.cpu_seconds", 2);
        let body = body_of(snap.build());
        assert_eq!(body.matches("process.threads:").count(), 1, "{body}");
        assert!(body.contains("\nprocess.threads: 77\n"), "{body}");
        assert!(body.contains("\nprocess.cpu_seconds: 2\n"), "{body}");
        assert!(!body.contains("#counter process.cpu_seconds"), "{body}");
        // And kept while nothing is added.
        let again = body_of(snap.build());
        assert_eq!(again.matches("process.threads:").count(), 1, "{again}");
        assert!(again.contains("\nprocess.threads: 77\n"), "{again}");
    }

    #[test]
    fn own_lines_survive_bodies_out_of_order() {
        // A histogram and a task named like our lines' prefix write groups
        // of lines that are not in name order among themselves.
        let registry = Arc::new(Registry::new());
        registry.record("process", 3);
        registry.record("process.threads.x", 1.5);
        registry.task("process.q").run(|| Ok::<(), ()>(())).unwrap();
        registry.set("zz", 1);
        let mut snap = with_own_figures(Arc::clone(&registry));
        let body = body_of(snap.build());
        let mut expected = body_of_registry(&registry);
        for name in [
            "process.cpu_seconds",
            "process.open_fds",
            "process.rss_bytes",
            "process.threads",
            "process.uptime_seconds",
        ] {
            assert_eq!(
                names(&body).iter().filter(|n| **n == name).count(),
                1,
                "{body}"
            );
            expected.push(name.to_owned());
        }
        let mut got: Vec<String> = names(&body).into_iter().map(str::to_owned).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
    }

    fn body_of_registry(registry: &Registry) -> Vec<String> {
        let mut buf = Vec::new();
        registry.render_into(&mut buf);
        names(std::str::from_utf8(&buf).unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn insertion_points_are_line_starts_in_any_body() {
        let sorted = b"a: 1\nb: 2\nd: 4\n";
        assert_eq!(insertion_point(sorted, b"0"), 0);
        assert_eq!(insertion_point(sorted, b"a"), 0);
        assert_eq!(insertion_point(sorted, b"c"), 10);
        assert_eq!(insertion_point(sorted, b"e"), sorted.len());
        assert_eq!(insertion_point(b"", b"x"), 0);
        // Histogram groups are not in order inside; any answer must still be
        // a line start.
        let groups = b"h.count: 3\nh.sum: 6\nh.min: 1\nh.max: 3\nh.p50: 2.0\nx: 1\n";
        for name in [&b"h.n"[..], b"h.q", b"h.m", b"h", b"z", b"a"] {
            let at = insertion_point(groups, name);
            assert!(at == 0 || groups[at - 1] == b'\n', "{at}");
        }
    }
}
