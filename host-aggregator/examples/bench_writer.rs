//! A minimal stand-in writer for the read benchmark: serves ~N stats at
//! `<dir>/<pid>.stats` with the envelope, replacing its FIFO by rename each
//! time (the protocol of FORMAT.md and docs/FIFO.md). Not a library: the
//! real writer is the `pipe-writer` crate; this keeps the benchmark's 1,000
//! processes small and independent of it.
//!
//! Usage: `bench_writer DIR STATS` (run by `bench_pass`)

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use stats_core::Registry;
use stats_core::envelope::{Header, write_header, write_trailer};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: bench_writer DIR STATS"));
    let stats: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(180);
    let pid = std::process::id();
    let registry = Registry::new();
    for i in 0..stats {
        match i % 3 {
            0 => registry.incr(&format!("app.module{}.requests[code=200]", i / 3), i as i64),
            1 => registry.incr(
                &format!("app.module{}.bytes_sent", i / 3),
                (i * 1000) as i64,
            ),
            _ => registry.set(
                &format!("app.module{}.latency_seconds", i / 3),
                i as f64 / 8.0,
            ),
        }
    }
    let path = dir.join(format!("{pid}.stats"));
    let fresh = |n: u64| {
        let tmp = dir.join(format!(".{pid}.stats.{n}.tmp"));
        mkfifo(&tmp, Mode::from_bits_truncate(0o600)).expect("mkfifo");
        std::fs::rename(&tmp, &path).expect("rename");
    };
    fresh(0);
    let mut buf = Vec::new();
    for seq in 0u64.. {
        let Ok(mut pipe) = OpenOptions::new().write(true).open(&path) else {
            return;
        };
        // A reader is attached to this FIFO: later readers get a fresh one.
        fresh(seq + 1);
        buf.clear();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        write_header(&mut buf, &Header { pid, seq, time });
        registry.render_into(&mut buf);
        write_trailer(&mut buf);
        // A reader that went away (EPIPE) is no concern of the benchmark.
        let _ = pipe.write_all(&buf);
    }
}
