//! The read benchmark's driver: starts N writer processes with ~180 stats
//! each in a fresh directory, times read passes over them with
//! [`Collector`], prints one line of figures, and stops the writers.
//!
//! Usage: `bench_pass WRITER_BIN N [PASSES] [STATS]` (run by
//! `scripts/bench-aggregate.sh`). Output: `rust N <median ms> <min ms>
//! <cpu ms per pass> <peak RSS KiB> <stats merged> <ok sources> <opens>`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_aggregator::{Collector, ReadOptions};
use nix::sys::resource::{UsageWho, getrusage};

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let writer = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().expect("N");
    let passes: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(20);
    let stats = args.get(4).cloned().unwrap_or_else(|| "180".into());
    let dir = std::env::temp_dir().join(format!("stats-pipe-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut writers = Writers(Vec::with_capacity(n));
    for _ in 0..n {
        let child = Command::new(&writer)
            .arg(&dir)
            .arg(&stats)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn writer");
        writers.0.push(child);
    }
    let until = Instant::now() + Duration::from_secs(60);
    for child in &writers.0 {
        let path = dir.join(format!("{}.stats", child.id()));
        while !path.exists() {
            assert!(Instant::now() < until, "writers did not start");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut collector = Collector::new(ReadOptions::new(&dir));
    // Warm-up: first-touch page faults in the writers, not our reading.
    for _ in 0..3 {
        collector.collect().expect("pass");
    }
    let mut walls = Vec::with_capacity(passes);
    let cpu_before = cpu_time();
    let mut last = None;
    for _ in 0..passes {
        // One pass alive at a time, as in `dump`: peak RSS is one pass's.
        drop(last.take());
        let clock = Instant::now();
        let pass = collector.collect().expect("pass");
        walls.push(clock.elapsed());
        last = Some(pass);
    }
    let cpu = (cpu_time() - cpu_before) / passes as u32;
    walls.sort();
    let pass = last.expect("at least one pass");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "rust {n} {:.2} {:.2} {:.2} {} {} {} {}",
        ms(walls[walls.len() / 2]),
        ms(walls[0]),
        ms(cpu),
        peak_rss_kib(),
        pass.merged.len(),
        pass.ok_count(),
        pass.sources.iter().map(|s| s.attempts).sum::<u32>()
    );
    drop(writers);
    let _ = std::fs::remove_dir_all(&dir);
}
