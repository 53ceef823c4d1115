//! A process's own figures read from `/proc/<pid>`: resident memory, CPU
//! time, threads, open descriptors, uptime. The aggregator reads them for
//! every source it lists; a writer reads its own in the background and
//! appends them to each snapshot as the reserved `process.*` lines.
//!
//! For another process everything but the descriptor count comes from one
//! read of `/proc/<pid>/stat`: rendering `/proc/<pid>/status` costs the
//! kernel several times more, and its `VmRSS` is the same counter as field
//! 24 (`rss`, in pages) of `stat`. A writer's own refresh is lighter still
//! (see `SelfFiles`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::time::{ClockId, clock_gettime};
use nix::unistd::{SysconfVar, sysconf};
use stats_core::Value;
use stats_core::kinds::WireKind;

use crate::error::Error;

/// Basic figures about one process.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessStats {
    /// The PID.
    pub pid: u32,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time used.
    pub cpu: Duration,
    /// Number of threads.
    pub threads: u64,
    /// Open file descriptors (`None` when `/proc/<pid>/fd` is not readable:
    /// another user's process, or no descriptor left to read it with).
    pub open_fds: Option<u64>,
    /// Time since the process started.
    pub uptime: Duration,
}

impl ProcessStats {
    /// Reads the figures of process `pid` from `/proc`.
    ///
    /// # Errors
    /// The process is gone ([`Error::Proc`]), or `/proc/<pid>/stat` is not
    /// as expected ([`Error::ProcMalformed`]).
    pub fn read(pid: u32) -> Result<ProcessStats, Error> {
        let fields = StatFields::read(&pid.to_string())?;
        // Another process's directory: nothing of ours is counted in it.
        let open_fds = count_entries(&format!("/proc/{pid}/fd"));
        Ok(fields.into_stats(pid, open_fds))
    }

    /// Reads this process's figures through `/proc/self`.
    ///
    /// # Errors
    /// As [`ProcessStats::read`].
    pub fn read_self() -> Result<ProcessStats, Error> {
        let fields = StatFields::read("self")?;
        // Reading the directory takes a descriptor, listed there too.
        let open_fds = count_entries("/proc/self/fd").map(|n| n.saturating_sub(1));
        Ok(fields.into_stats(std::process::id(), open_fds))
    }
}

/// When process `pid` started, as wall-clock time: field 22 of
/// `/proc/<pid>/stat` (clock ticks after boot) plus the boot time, taken as
/// `CLOCK_REALTIME - CLOCK_BOOTTIME` now; exact to a tick (the `btime` of
/// `/proc/stat` is whole seconds only). Wall-clock time moves with the
/// clock, so two answers for one process may differ by the clock's steps.
///
/// # Errors
/// As [`ProcessStats::read`].
pub fn start_time(pid: u32) -> Result<SystemTime, Error> {
    let fields = StatFields::read(&pid.to_string())?;
    let since_boot = since_boot();
    let boot = SystemTime::now()
        .checked_sub(since_boot)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(boot + fields.started_after_boot())
}

/// When process `pid` started, as time after boot: field 22 of
/// `/proc/<pid>/stat`, exact to a tick and, unlike [`start_time`], moved by
/// no step of the wall clock (a key for a process that outlives the reader).
///
/// # Errors
/// As [`ProcessStats::read`].
pub fn started_after_boot(pid: u32) -> Result<Duration, Error> {
    Ok(StatFields::read(&pid.to_string())?.started_after_boot())
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatFields {
    utime_ticks: u64,
    stime_ticks: u64,
    threads: u64,
    start_ticks: u64,
    rss_pages: u64,
}

/// The whole of a small `/proc` file, in two reads: `std::fs::read` asks
/// the size (which /proc gives as 0), seeks, and reads in doubling pieces
/// from 32 bytes, nine calls where three do (`gc` reads the start of a
/// thousand processes this way).
fn read_proc_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut bytes = vec![0; 1024];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

impl StatFields {
    /// Reads `/proc/<which>/stat` (`which`: a PID or `self`).
    fn read(which: &str) -> Result<StatFields, Error> {
        let path = PathBuf::from(format!("/proc/{which}/stat"));
        let bytes = read_proc_file(&path).map_err(|e| Error::Proc {
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            path: path.clone(),
        })?;
        StatFields::parse(&bytes).ok_or(Error::ProcMalformed {
            path,
            what: "fields",
        })
    }

    /// The command name (field 2) is in parentheses and may hold spaces and
    /// `)`, so fields are counted after the LAST `)`: field 3 is the first
    /// one there.
    fn parse(stat: &[u8]) -> Option<StatFields> {
        let after_comm = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
        let mut fields = after_comm
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty());
        // Field n (1-based, as in proc(5)); `nth` moves on, so each call
        // counts from the field after the last one taken.
        let mut at = 3;
        let mut field = |n: usize| -> Option<u64> {
            let text = fields.nth(n - at)?;
            at = n + 1;
            std::str::from_utf8(text).ok()?.parse().ok()
        };
        Some(StatFields {
            utime_ticks: field(14)?,
            stime_ticks: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            rss_pages: field(24)?,
        })
    }

    fn started_after_boot(&self) -> Duration {
        ticks_to_duration(self.start_ticks)
    }

    fn into_stats(self, pid: u32, open_fds: Option<u64>) -> ProcessStats {
        ProcessStats {
            pid,
            rss_bytes: self.rss_pages.saturating_mul(page_size()),
            cpu: ticks_to_duration(self.utime_ticks + self.stime_ticks),
            threads: self.threads,
            open_fds,
            uptime: since_boot().saturating_sub(self.started_after_boot()),
        }
    }
}

fn count_entries(dir: &str) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()
        .map(|entries| entries.count() as u64)
}

/// Time since boot, suspend included: the clock the start time of
/// `/proc/<pid>/stat` counts on, so uptime needs no wall-clock time.
fn since_boot() -> Duration {
    clock_gettime(ClockId::CLOCK_BOOTTIME).map_or(Duration::ZERO, Duration::from)
}

/// Clock ticks per second (`_SC_CLK_TCK`, 100 on Linux), asked once: glibc's
/// `sysconf` is slow enough to show in a 1,000-pipe pass.
fn ticks_per_second() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => hz as u64,
        _ => 100,
    })
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(size)) if size > 0 => size as u64,
        _ => 4096,
    })
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = ticks_per_second();
    Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz)
}

/// The names of the lines a writer appends about its own process; the
/// `process.` prefix is reserved for them (FORMAT.md, "Process stats").
pub const RSS_BYTES: &str = "process.rss_bytes";
/// See [`RSS_BYTES`]; a `#counter` (host-wide CPU time keeps what exited
/// processes used).
pub const CPU_SECONDS: &str = "process.cpu_seconds";
/// See [`RSS_BYTES`].
pub const THREADS: &str = "process.threads";
/// See [`RSS_BYTES`].
pub const OPEN_FDS: &str = "process.open_fds";
/// See [`RSS_BYTES`]; a `#max` (host-wide: the oldest live process).
pub const UPTIME_SECONDS: &str = "process.uptime_seconds";

/// How often at most a writer that is being read re-reads its own figures
/// (on its serving thread right after a serve, or its orphan sweeper when
/// that wakes; never on a reader's clock). Read once a second, the figures
/// in a snapshot are at most this old plus the gap between reads, and
/// never older than [`STALE`]; uptime is exact (worked out when the
/// snapshot is). Five seconds (issue 15): a refresh (then a `pread` of
/// `/proc/self/stat` and an `fstat` of `/proc/self/fd`) was about 4 % of a
/// serve read once a second, and whoever looks at these figures scrapes every 10
/// to 15 s (Prometheus, gops), so every scrape still sees figures read
/// within the last half of its interval. The first serve after start
/// refreshes at once (the figures read at start predate the program's
/// other threads).
pub(crate) const REFRESH: Duration = Duration::from_secs(5);

/// Figures older than this when a snapshot is built are read again on the
/// spot: [`REFRESH`] plus two seconds, so a writer read once a second never
/// does. A writer nobody reads does not refresh in the background (a
/// thousand idle writers would otherwise each wake and read `/proc` every
/// few seconds for nothing), so the first snapshot after such a pause pays
/// for one read of `/proc/self` (about 30 µs).
pub(crate) const STALE: Duration = Duration::from_secs(7);

/// The writer's latest figures about itself, refreshed in the background
/// while it is being read and copied into every snapshot.
#[derive(Debug, Default)]
pub(crate) struct OwnFigures {
    latest: Mutex<Latest>,
    /// A snapshot used the figures since the last background refresh.
    wanted: AtomicBool,
    /// What a refresh reads in `/proc/self`, opened at the first refresh
    /// and kept: no path lookup in `/proc` after that (issue 15: a lighter
    /// writer).
    files: Mutex<Option<SelfFiles>>,
}

/// What a refresh reads, kept open: the lightest source of each figure
/// (issue 15). Rendering `/proc/self/stat` makes the kernel print some
/// fifty fields and walk every thread; it is read once, for the start
/// time, which never changes. (No change in the writers' CPU could be
/// measured either way: BENCHMARKS.md, 2026-12-02 third session.)
struct SelfFiles {
    /// `/proc/self/statm`: its second field is the resident set in pages.
    statm: std::fs::File,
    /// `/proc/self/task`: its link count is the number of threads plus two.
    tasks: std::fs::File,
    fds: nix::dir::Dir,
    started_after_boot: Duration,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SelfFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SelfFiles")
    }
}

impl SelfFiles {
    fn open() -> Option<SelfFiles> {
        let started_after_boot = StatFields::read("self").ok()?.started_after_boot();
        let statm = std::fs::File::open("/proc/self/statm").ok()?;
        let tasks = std::fs::File::open("/proc/self/task").ok()?;
        let fds = nix::dir::Dir::open(
            "/proc/self/fd",
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        Some(SelfFiles {
            statm,
            tasks,
            fds,
            started_after_boot,
            buf: Vec::with_capacity(128),
        })
    }

    /// The figures now: CPU time from the process's CPU clock (exact, one
    /// system call), the resident set from `statm`, threads and descriptors
    /// from two `fstat`s.
    fn read(&mut self) -> Option<Figures> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let cpu = Duration::from(clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).ok()?);
        // A proc file is generated afresh by each read from offset 0; a
        // read shorter than asked is the end.
        self.buf.clear();
        let mut chunk = [0u8; 128];
        loop {
            let n = self.statm.read_at(&mut chunk, self.buf.len() as u64).ok()?;
            self.buf.extend_from_slice(&chunk[..n]);
            if n < chunk.len() {
                break;
            }
        }
        let rss_pages = std::str::from_utf8(&self.buf)
            .ok()?
            .split_ascii_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()?;
        let threads = self.tasks.metadata().ok()?.nlink().checked_sub(2)?;
        Some(Figures {
            cpu,
            rss_pages,
            threads,
            started_after_boot: self.started_after_boot,
            open_fds: Some(self.open_fds()),
        })
    }

    /// Open descriptors but the one held on `/proc/self/fd`. Since Linux
    /// 6.2 that directory's size is the count: one `fstat`, where a listing
    /// makes the kernel build (and free) a dentry per descriptor, the
    /// largest part of a refresh (issue 15). It also counts a number a
    /// thread holds while it waits in `open` (the serving thread waiting
    /// for a reader), which a listing shows only once the open returns.
    /// Older kernels say 0: listed.
    fn open_fds(&mut self) -> u64 {
        match nix::sys::stat::fstat(&self.fds) {
            Ok(stat) if stat.st_size > 0 => (stat.st_size as u64).saturating_sub(1),
            // Every entry but `.`, `..` and the listing's own descriptor
            // (each `iter` rewinds when it ends, so the next one lists
            // afresh).
            _ => (self.fds.iter().filter(Result::is_ok).count() as u64).saturating_sub(3),
        }
    }
}

/// What the last read of `/proc/self` gave, and when it was made.
#[derive(Clone, Copy, Debug, Default)]
struct Latest {
    /// `None` before the first read, or when the last one failed.
    figures: Option<Figures>,
    read_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Figures {
    cpu: Duration,
    rss_pages: u64,
    threads: u64,
    started_after_boot: Duration,
    open_fds: Option<u64>,
}

impl Figures {
    fn into_stats(self) -> ProcessStats {
        ProcessStats {
            // Not needed here (and `getpid` is a system call).
            pid: 0,
            rss_bytes: self.rss_pages.saturating_mul(page_size()),
            cpu: self.cpu,
            threads: self.threads,
            open_fds: self.open_fds,
            uptime: since_boot().saturating_sub(self.started_after_boot),
        }
    }
}

impl OwnFigures {
    /// Re-reads `/proc/self`; on failure the lines are left out until a
    /// read succeeds again, rather than served stale.
    pub(crate) fn refresh(&self) {
        let figures = {
            let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
            if files.is_none() {
                *files = SelfFiles::open();
            }
            match files.as_mut().map(SelfFiles::read) {
                Some(Some(figures)) => Some(figures),
                // Opened but unreadable: opened again next time.
                Some(None) => {
                    *files = None;
                    None
                }
                None => None,
            }
        };
        *self.lock() = Latest {
            figures,
            read_at: Some(Instant::now()),
        };
    }

    /// The background refresh: re-reads `/proc/self` only if a snapshot
    /// used the figures since the last one. Returns whether it read.
    pub(crate) fn refresh_if_wanted(&self) -> bool {
        let wanted = self.wanted.swap(false, Ordering::Relaxed);
        if wanted {
            self.refresh();
        }
        wanted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `process.*` lines of this moment, in name order (`None` for a
    /// figure not known); all `None` while `/proc/self` cannot be read.
    /// Figures older than [`STALE`] are read again first.
    pub(crate) fn lines(&self) -> [Option<OwnLine>; 5] {
        self.wanted.store(true, Ordering::Relaxed);
        let mut latest = *self.lock();
        if latest.read_at.is_none_or(|at| at.elapsed() > STALE) {
            self.refresh();
            latest = *self.lock();
        }
        let Some(figures) = latest.figures else {
            return [None; 5];
        };
        let stats = figures.into_stats();
        let line = |name, value, kind| Some(OwnLine { name, value, kind });
        [
            line(
                CPU_SECONDS,
                Value::Float(stats.cpu.as_secs_f64()),
                Some(WireKind::Counter),
            ),
            stats
                .open_fds
                .and_then(|fds| line(OPEN_FDS, Value::from(fds), None)),
            line(RSS_BYTES, Value::from(stats.rss_bytes), None),
            line(THREADS, Value::from(stats.threads), None),
            line(
                UPTIME_SECONDS,
                Value::Float(stats.uptime.as_secs_f64()),
                Some(WireKind::Max),
            ),
        ]
    }
}

/// One `process.*` line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct OwnLine {
    pub(crate) name: &'static str,
    pub(crate) value: Value,
    /// How a reader merges it; `None`: a gauge (summed over live processes).
    pub(crate) kind: Option<WireKind>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_paren() {
        let stat = b"42 (a) b (c)) R 1 42 42 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 5 0 12345 1000 200 18446744073709551615";
        let fields = StatFields::parse(stat).unwrap();
        assert_eq!(
            fields,
            StatFields {
                utime_ticks: 7,
                stime_ticks: 3,
                threads: 5,
                start_ticks: 12345,
                rss_pages: 200,
            }
        );
        assert_eq!(StatFields::parse(b"42 (a) R 1 2 3"), None);
        assert_eq!(StatFields::parse(b"no paren at all"), None);
    }

    #[test]
    fn own_figures_match_proc_status() {
        let me = ProcessStats::read(std::process::id()).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |key: &str| -> u64 {
            let line = status.lines().find_map(|l| l.strip_prefix(key)).unwrap();
            line.split_whitespace().next().unwrap().parse().unwrap()
        };
        let rss = field("VmRSS:") * 1024;
        assert!(
            me.rss_bytes.abs_diff(rss) < rss / 4,
            "stat says {} bytes, status {rss}",
            me.rss_bytes
        );
        assert!(me.threads >= 1);
        assert!(me.open_fds.unwrap() >= 3);
        assert!(me.uptime < Duration::from_secs(3600), "{:?}", me.uptime);
        let started = start_time(std::process::id()).unwrap();
        let age = SystemTime::now().duration_since(started).unwrap();
        assert!(age.abs_diff(me.uptime) < Duration::from_millis(100));

        // Through /proc/self the directory's own descriptor is not counted.
        let own = ProcessStats::read_self().unwrap();
        assert_eq!(own.pid, std::process::id());
        assert!(own.open_fds.unwrap() >= 3);
    }

    /// A writer's own refresh reads lighter sources (CPU clock, `statm`,
    /// the link count of `task`) than [`ProcessStats::read_self`] (`stat`):
    /// the same figures.
    #[test]
    fn own_refresh_agrees_with_proc_stat() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        let (ready, wait) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || wait.recv().is_err());
        let mut files = SelfFiles::open().unwrap();
        // Other tests start and end threads meanwhile: the light read is
        // taken between two full ones that agree on the count.
        let (light, full) = (0..100)
            .find_map(|_| {
                let before = ProcessStats::read_self().unwrap();
                let light = files.read().unwrap().into_stats();
                let after = ProcessStats::read_self().unwrap();
                (before.threads == after.threads).then_some((light, after))
            })
            .unwrap();
        drop(ready);
        assert!(helper.join().unwrap());
        assert_eq!(light.threads, full.threads);
        assert!(light.threads >= 2, "{light:?}");
        assert!(
            light.rss_bytes.abs_diff(full.rss_bytes) < full.rss_bytes / 4,
            "{light:?} {full:?}"
        );
        // `stat` counts whole ticks (10 ms), the clock nanoseconds.
        assert!(light.cpu >= Duration::from_millis(30), "{light:?}");
        assert!(
            light.cpu.abs_diff(full.cpu) < Duration::from_millis(50),
            "{light:?} {full:?}"
        );
        assert!(light.uptime.abs_diff(full.uptime) < Duration::from_millis(50));
        assert_eq!(light.open_fds.is_some(), full.open_fds.is_some());
    }

    #[test]
    fn a_missing_process_is_an_error_naming_its_path() {
        // PIDs above pid_max (at most 2^22) never exist.
        let error = ProcessStats::read(u32::MAX).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::Proc {
                    errno: Errno::ENOENT,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("cannot read /proc/{}/stat: {}", u32::MAX, Errno::ENOENT)
        );
    }

    #[test]
    fn own_lines_come_in_name_order_with_their_kinds() {
        let figures = OwnFigures::default();
        let lines = figures.lines().map(Option::unwrap);
        let names = lines.map(|line| line.name);
        assert_eq!(
            names,
            [CPU_SECONDS, OPEN_FDS, RSS_BYTES, THREADS, UPTIME_SECONDS]
        );
        let kinds = lines.map(|line| line.kind);
        assert_eq!(
            kinds,
            [
                Some(WireKind::Counter),
                None,
                None,
                None,
                Some(WireKind::Max)
            ]
        );
        assert!(lines[0].value.is_float() && lines[4].value.is_float());
        assert!(!lines[2].value.is_float() && lines[2].value.as_f64() > 0.0);
    }

    #[test]
    fn the_descriptor_count_by_size_is_the_listing_count() {
        let mut files = SelfFiles::open().unwrap();
        let mut counts = Vec::new();
        // Other tests open and close descriptors in parallel threads, and a
        // serving thread waiting in `open` holds a number the listing does
        // not show yet: the size may count those, never fewer.
        let agree = (0..50).any(|_| {
            let by_size = files.open_fds();
            let listed = (files.fds.iter().filter(Result::is_ok).count() as u64) - 3;
            counts.push((by_size, listed));
            (listed..=listed + 2).contains(&by_size)
        });
        assert!(agree, "fstat and listing of /proc/self/fd: {counts:?}");
    }

    #[test]
    fn figures_are_refreshed_in_the_background_only_while_used() {
        let own = OwnFigures::default();
        assert!(!own.refresh_if_wanted(), "nobody used them: no read");
        // The first snapshot reads them on the spot.
        let lines = own.lines();
        assert!(lines.iter().flatten().any(|l| l.name == THREADS));
        assert!(own.refresh_if_wanted());
        assert!(!own.refresh_if_wanted());
    }
}
