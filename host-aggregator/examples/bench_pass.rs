//! The read benchmark's driver: starts N writer processes in a fresh
//! directory, then times read passes over them two ways, interleaved pass
//! by pass so both see the same load. The writer is either the real
//! `pipe-writer` binary (`--linger`, fed ~180 `name: value` / `name +=
//! value` lines on stdin; chosen when the binary's name starts with
//! `pipe-writer`) or the stand-in `bench_writer` example (the same stats
//! through the same registry and envelope, without kind lines, spare-FIFO
//! pool or orphan sweeper).
//!
//! - `rust`: [`Collector::collect`], the aggregator's whole pass (listing,
//!   the safety checks, envelope, parse, typed merge);
//! - `floor`: the bare FIFO round trip with the same writers: list the
//!   directory, open every `*.stats` non-blocking, one epoll loop, read to
//!   end of file, close. No checks, no parsing: what any reader pays.
//!
//! Prints one line each: `<reader> N <median ms> <min ms> <cpu ms per pass>
//! <peak RSS KiB> <stats merged> <ok sources> <opens>` (the floor's peak RSS
//! is the process's, so it is the Rust reader's too; read the Rust line).
//!
//! Usage: `bench_pass WRITER_BIN N [PASSES] [STATS]` (run by
//! `scripts/bench-aggregate.sh`).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_aggregator::{Collector, ReadOptions};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::resource::{UsageWho, getrusage};

/// The writers, killed and reaped however the benchmark ends.
struct Writers(Vec<Child>);

impl Drop for Writers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

fn cpu_time() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// What every writer is fed: a third counters with a tag, a third counters,
/// a third gauges (the shape of prom_multiproc.py's 180 metrics).
fn commands(stats: usize) -> String {
    let mut text = String::new();
    for i in 0..stats {
        let module = i / 3;
        text += &match i % 3 {
            0 => format!("app.module{module}.requests[code=200] += {i}\n"),
            1 => format!("app.module{module}.bytes_sent += {}\n", i * 1000),
            _ => format!("app.module{module}.latency_seconds: {}\n", i as f64 / 8.0),
        };
    }
    text
}

/// The floor: one bare read of every pipe, at most [`IN_FLIGHT`] open at
/// once as the aggregator's reader does; returns (bytes, pipes read).
fn floor_pass(dir: &Path, chunk: &mut [u8]) -> (usize, usize) {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).expect("epoll");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().ends_with(".stats") {
            paths.push(path);
        }
    }
    let mut files: Vec<Option<File>> = Vec::with_capacity(paths.len());
    let (mut open, mut bytes, mut read) = (0, 0, 0);
    let mut events = vec![EpollEvent::empty(); 256];
    while read < paths.len() {
        while open < IN_FLIGHT && files.len() < paths.len() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc_nonblock())
                .open(&paths[files.len()])
                .expect("open");
            epoll
                .add(
                    &file,
                    EpollEvent::new(EpollFlags::EPOLLIN, files.len() as u64),
                )
                .expect("epoll add");
            files.push(Some(file));
            open += 1;
        }
        let ready = epoll
            .wait(&mut events, EpollTimeout::from(1000u16))
            .expect("epoll wait");
        assert!(ready > 0, "floor: a writer did not answer in 1 s");
        for event in &events[..ready] {
            let i = event.data() as usize;
            let Some(file) = files[i].as_mut() else {
                continue;
            };
            loop {
                match file.read(chunk) {
                    Ok(0) => {
                        files[i] = None;
                        open -= 1;
                        read += 1;
                        break;
                    }
                    Ok(n) => bytes += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("floor read: {e}"),
                }
            }
        }
    }
    (bytes, read)
}

/// The aggregator reader's limit of pipes opened and not yet answered.
const IN_FLIGHT: usize = 64;

fn libc_nonblock() -> i32 {
    nix::fcntl::OFlag::O_NONBLOCK.bits()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let writer = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().expect("N");
    let passes: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(20);
    let stats: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(180);
    let dir = std::env::temp_dir().join(format!("stats-pipe-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    // Fed from a file, not a pipe: a thousand idle stdin pipes would hold
    // pipe buffers for nothing.
    let input = std::env::temp_dir().join(format!("stats-pipe-bench-{}.in", std::process::id()));
    File::create(&input)
        .and_then(|mut f| f.write_all(commands(stats).as_bytes()))
        .expect("writer input");
    let mut writers = Writers(Vec::with_capacity(n));
    let real = writer
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("pipe-writer"));
    for _ in 0..n {
        let mut command = Command::new(&writer);
        if real {
            command
                .arg("--dir")
                .arg(&dir)
                .arg("--linger")
                .stdin(File::open(&input).expect("writer input"));
        } else {
            command
                .arg(&dir)
                .arg(stats.to_string())
                .stdin(Stdio::null());
        }
        let child = command.stdout(Stdio::null()).spawn().expect("spawn writer");
        writers.0.push(child);
    }
    let until = Instant::now() + Duration::from_secs(120);
    for child in &writers.0 {
        let path = dir.join(format!("{}.stats", child.id()));
        while !path.exists() {
            assert!(Instant::now() < until, "writers did not start");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut collector = Collector::new(ReadOptions::new(&dir));
    // Warm-up: first-touch page faults in the writers, not our reading; and
    // every writer has read its input by the time it is measured.
    for _ in 0..3 {
        collector.collect().expect("pass");
    }
    let mut chunk = vec![0u8; 128 * 1024];
    let (mut walls, mut floor_walls) = (Vec::new(), Vec::new());
    let (mut cpu, mut floor_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut last = None;
    let mut floor_read = (0, 0);
    // PAUSE_MS: a rest before every timed read, so each starts with the
    // writers idle, as `serve` reading once a second finds them. Without
    // it (0, the default) reads run back to back and every writer is still
    // probing the FIFOs it retired in the last passes (its orphan sweeper).
    let pause = Duration::from_millis(
        std::env::var("PAUSE_MS")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
    );
    for _ in 0..passes {
        // One pass alive at a time, as in `dump`: peak RSS is one pass's.
        drop(last.take());
        std::thread::sleep(pause);
        let (clock, cpu_before) = (Instant::now(), cpu_time());
        let pass = collector.collect().expect("pass");
        walls.push(clock.elapsed());
        cpu += cpu_time() - cpu_before;
        last = Some(pass);
        std::thread::sleep(pause);
        let (clock, cpu_before) = (Instant::now(), cpu_time());
        floor_read = floor_pass(&dir, &mut chunk);
        floor_walls.push(clock.elapsed());
        floor_cpu += cpu_time() - cpu_before;
    }
    let pass = last.expect("at least one pass");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let line = |name: &str, walls: &mut Vec<Duration>, cpu: Duration, merged, ok, opens| {
        walls.sort();
        println!(
            "{name} {n} {:.2} {:.2} {:.2} {} {merged} {ok} {opens}",
            ms(walls[walls.len() / 2]),
            ms(walls[0]),
            ms(cpu / passes as u32),
            peak_rss_kib(),
        );
    };
    let opens: u32 = pass.sources.iter().map(|s| s.attempts).sum();
    if pass.ok_count() < n {
        let mut statuses = std::collections::BTreeMap::new();
        for source in &pass.sources {
            *statuses.entry(source.status.to_string()).or_insert(0) += 1;
        }
        eprintln!("bench_pass: last pass not all ok: {statuses:?}");
    }
    line(
        "rust",
        &mut walls,
        cpu,
        pass.merged.len(),
        pass.ok_count(),
        opens as usize,
    );
    line(
        "floor",
        &mut floor_walls,
        floor_cpu,
        floor_read.0 / floor_read.1.max(1),
        floor_read.1,
        floor_read.1,
    );
    drop(writers);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&input);
}
