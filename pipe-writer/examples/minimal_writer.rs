//! The read benchmark's minimal writer (issue 15): the least a process can
//! do to serve its stats through a FIFO without the duplicate trap. One FIFO
//! at `<dir>/<pid>.stats` and one spare `<dir>/.<pid>.spare`; it blocks in
//! `open(O_WRONLY)`, swaps the two names by `renameat2(RENAME_EXCHANGE)`,
//! renders the registry (kind lines, stats, envelope: the bytes
//! `pipe-writer` sends, without its `process.*` lines) in one write, closes,
//! and blocks again. No orphan sweeper, no process stats, no path check, no
//! spare pool: what `scripts/bench-aggregate.sh` compares our writer with.
//! Not a library and not a writer to use: a reader that is slow to close
//! can be handed a second snapshot, and an orphaned `cat` waits forever.
//!
//! Reads `name: value` / `name += value` lines on stdin first (the
//! `pipe-writer` grammar), then serves until killed.
//!
//! Usage: `minimal_writer DIR < commands`

use std::io::{BufReader, Write};
use std::path::PathBuf;

use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use pipe_writer::input::{parse_line, read_line};
use pipe_writer::span_reports::SpanReports;
use stats_core::Registry;
use stats_core::envelope::{Header, write_header, write_trailer};

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: minimal_writer DIR < commands"),
    );
    let registry = Registry::new();
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut line = Vec::new();
    let mut spans = SpanReports::new();
    while let Some(read) = read_line(&mut input, &mut line).expect("stdin") {
        if let Ok(Some(command)) = read.and_then(parse_line) {
            command.apply(&registry, &mut spans);
        }
    }
    let pid = std::process::id();
    let path = dir.join(format!("{pid}.stats"));
    let spare = dir.join(format!(".{pid}.spare"));
    let mode = Mode::from_bits_truncate(0o600);
    mkfifo(&spare, mode).expect("mkfifo spare");
    let first = dir.join(format!(".{pid}.first"));
    mkfifo(&first, mode).expect("mkfifo");
    std::fs::rename(&first, &path).expect("rename into place");
    let mut buf = Vec::new();
    for seq in 0u64.. {
        let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return;
        };
        // Readers from now on open the other FIFO.
        renameat2(
            AT_FDCWD,
            &spare,
            AT_FDCWD,
            &path,
            RenameFlags::RENAME_EXCHANGE,
        )
        .expect("exchange");
        buf.clear();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        write_header(&mut buf, &Header { pid, seq, time });
        registry.render_kinds_into(&mut buf);
        registry.render_into(&mut buf);
        write_trailer(&mut buf);
        // A reader that went away (EPIPE) is no concern of the benchmark.
        let _ = pipe.write_all(&buf);
    }
}
