//! `Snapshotter`: builds one enveloped snapshot of a registry into a reused
//! buffer, so serving a reader allocates nothing once the buffer has grown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use stats_core::Registry;
use stats_core::envelope::{Header, write_header, write_trailer};

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
    buf: Vec<u8>,
}

impl Snapshotter {
    pub(crate) fn new(source: Source, pid: u32, seq: Arc<AtomicU64>) -> Snapshotter {
        Snapshotter {
            source,
            pid,
            seq,
            buf: Vec::new(),
        }
    }

    /// The registry's stats right now, wrapped in the envelope (FORMAT.md).
    /// Recording threads are not held up: the registry takes its lock only
    /// to clone the list of stats, then every value is one atomic load.
    pub(crate) fn build(&mut self) -> &[u8] {
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
        // Kinds first, so a reader knows how to merge each stat it meets.
        registry.render_kinds_into(&mut self.buf);
        registry.render_into(&mut self.buf);
        write_trailer(&mut self.buf);
        &self.buf
    }
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
        let mut snap = Snapshotter::new(Source::Own(registry), 4242, Arc::clone(&seq));
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
}
