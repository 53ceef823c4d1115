//! Time from a reader's `open` of `<pid>.stats` to end-of-file, for 100 and
//! 10,000 stats, next to the floor measured in the same run: a bare FIFO
//! whose writer thread only writes a prebuilt buffer of the same size; and,
//! to show where the rest goes, building the snapshot's body alone. At 100
//! stats also with the process's own `process.*` lines on (the default) and
//! off, measured in alternation (see [`process_stats_side_by_side`]).
//!
//! `cargo bench -p pipe-writer --bench serve -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use nix::unistd::{mkfifo, read, write};
use stats_core::Registry;

/// The careful reader of docs/FIFO.md: non-blocking open, poll, read until
/// end-of-file after an event. Returns the bytes read.
fn open_to_eof(path: &Path, chunk: &mut [u8]) -> usize {
    let fd = open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .expect("open");
    let mut total = 0;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(2000u16)) {
            Ok(0) => panic!("no end-of-file within 2 s"),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
        loop {
            match read(&fd, chunk) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn registry_with(n: usize) -> Arc<Registry> {
    let registry = Arc::new(Registry::new());
    for i in 0..n {
        registry.set(&format!("app.module{}.stat_{i:05}", i % 10), i as i64 * 7);
    }
    registry
}

/// A plain FIFO with a writer thread that, each time it is told to, opens
/// it (blocking until the reader comes), writes `bytes` and closes.
struct BareFifo {
    path: PathBuf,
    go: mpsc::Sender<()>,
}

impl BareFifo {
    fn new(path: PathBuf, bytes: Vec<u8>) -> BareFifo {
        mkfifo(&path, Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let (go, wait) = mpsc::channel::<()>();
        let fifo = path.clone();
        std::thread::spawn(move || {
            while wait.recv().is_ok() {
                let fd: OwnedFd = open(&fifo, OFlag::O_WRONLY, Mode::empty()).expect("open");
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    match write(&fd, rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(Errno::EINTR) => {}
                        Err(e) => panic!("write: {e}"),
                    }
                }
            }
        });
        BareFifo { path, go }
    }

    /// One round trip; the writer is released only once the previous reader
    /// has closed, so it can never hand a reader two buffers.
    fn read(&self, chunk: &mut [u8]) -> usize {
        self.go.send(()).expect("writer thread");
        open_to_eof(&self.path, chunk)
    }
}

/// Open-to-EOF with the `process.*` lines on and off. Two servers (in two
/// directories) run at once and every timed read of one is followed by an
/// untimed read of the other, so both see the same load on a shared,
/// noisy machine: the difference is what the lines cost a reader.
fn process_stats_side_by_side(
    group: &mut BenchmarkGroup<'_, WallTime>,
    dir: &Path,
    registry: &Arc<Registry>,
    chunk: &mut [u8],
) {
    let start = |on: bool| {
        let sub = dir.join(if on { "on" } else { "off" });
        std::fs::create_dir(&sub).expect("bench subdir");
        pipe_writer::Builder::new()
            .dir(sub)
            .registry(Arc::clone(registry))
            .process_stats(on)
            .start()
            .expect("start")
    };
    let servers = [start(true), start(false)];
    // Both settle first (spares made, retired FIFOs under watch), so the
    // first one measured is not also the one that pays for that.
    for _ in 0..2_000 {
        for server in &servers {
            black_box(open_to_eof(server.path(), chunk));
        }
    }
    for (timed, name) in [(0, "process_stats_on"), (1, "process_stats_off")] {
        let (measured, other) = (servers[timed].path(), servers[1 - timed].path());
        group.bench_function(BenchmarkId::new(name, 100), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    black_box(open_to_eof(measured, chunk));
                    spent += t.elapsed();
                    black_box(open_to_eof(other, chunk));
                }
                spent
            });
        });
    }
    for server in servers {
        server.stop().expect("stop");
    }
}

fn bench(c: &mut Criterion) {
    // PIPE_WRITER_BENCH_DIR picks the filesystem (mkfifo and rename cost
    // more on a journalling one than on tmpfs); default: the temp dir.
    let base =
        std::env::var_os("PIPE_WRITER_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("pipe-writer-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("bench dir");
    let mut chunk = vec![0u8; 1 << 20];
    let mut group = c.benchmark_group("serve/open_to_eof");
    for stats in [100, 10_000] {
        let registry = registry_with(stats);
        let server = pipe_writer::Builder::new()
            .dir(&dir)
            .registry(Arc::clone(&registry))
            .start()
            .expect("start");
        let size = open_to_eof(server.path(), &mut chunk);
        eprintln!("{stats} stats: snapshot of {size} bytes");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("pipe_writer", stats), |b| {
            b.iter(|| open_to_eof(server.path(), &mut chunk));
        });
        server.stop().expect("stop");

        if stats == 100 {
            process_stats_side_by_side(&mut group, &dir, &registry, &mut chunk);
        }

        // What the serving thread spends building the snapshot's body in
        // stats-core, of the open-to-EOF time above.
        let mut body = Vec::with_capacity(size);
        group.bench_function(BenchmarkId::new("render_only", stats), |b| {
            b.iter(|| {
                body.clear();
                registry.render_kinds_into(&mut body);
                registry.render_into(&mut body);
                body.len()
            });
        });

        let bare = BareFifo::new(dir.join(format!("bare-{stats}")), vec![b'x'; size]);
        group.bench_function(BenchmarkId::new("bare_fifo", stats), |b| {
            b.iter(|| bare.read(&mut chunk));
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
