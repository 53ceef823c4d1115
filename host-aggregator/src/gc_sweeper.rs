//! `serve`'s background garbage collector: a thread that runs [`gc()`] on
//! the pipe directory every `--gc-interval`, so a crashed writer's FIFO and
//! spares go away by themselves (issue 13) and a `cat` on its path can hang
//! only until the next sweep (readers already blocked are released then).
//!
//! It is [`gc()`] itself, with all its checks (a trusted directory, our
//! names only, FIFOs only, never a live process's, links never followed),
//! so it removes exactly what `host-aggregator gc` would. What it does is
//! told on stderr, one line per sweep that removed something; a failure is
//! told once, not at every sweep.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::gc::{GcAction, GcOutcome, gc};
use crate::procfs::Staleness;

/// `--gc-interval` when not given: a dead writer's pipe is gone within 5 s,
/// for a listing of the directory and a `stat` per name every 5 s (a whole
/// `gc --dry-run` process over 1,000 live writers and their spares: 31 ms
/// of CPU, release build; BENCHMARKS.md).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Paths listed by name in one log line; the rest are counted.
const NAMED_PER_LINE: usize = 4;

/// Failed paths remembered so each is told once; past this, forgotten.
const MAX_REMEMBERED: usize = 1024;

/// The running sweeper thread. Dropping it stops and joins the thread.
#[derive(Debug)]
pub struct GcSweeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    removed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl GcSweeper {
    /// Starts sweeping `dir` every `interval`, the first sweep one interval
    /// from now, telling what it does on stderr; `None` for a zero interval
    /// (`--gc-interval 0s`: no sweeping).
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be started.
    pub fn start(dir: PathBuf, interval: Duration) -> Result<Option<GcSweeper>, Error> {
        if interval.is_zero() {
            return Ok(None);
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let removed = Arc::new(AtomicU64::new(0));
        let (stop_flag, removed_count, swept) =
            (Arc::clone(&stop), Arc::clone(&removed), dir.clone());
        let thread = std::thread::Builder::new()
            .name("gc-sweeper".into())
            .spawn(move || run(&swept, interval, &stop_flag, &removed_count))
            .map_err(|source| Error::Io {
                action: "start the gc thread for",
                path: dir,
                source,
            })?;
        Ok(Some(GcSweeper {
            stop,
            removed,
            thread: Some(thread),
        }))
    }

    /// Stale pipes removed so far.
    pub fn removed(&self) -> u64 {
        self.removed.load(Ordering::Relaxed)
    }
}

impl Drop for GcSweeper {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(dir: &Path, interval: Duration, stop: &(Mutex<bool>, Condvar), removed: &AtomicU64) {
    let (stopped, wake) = stop;
    let mut log = SweepLog::default();
    let mut next = Instant::now() + interval;
    loop {
        {
            let mut stopped = stopped.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if *stopped {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stopped = wake
                    .wait_timeout(stopped, next - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let result = gc(dir, false);
        if let Ok(actions) = &result {
            let count = actions
                .iter()
                .filter(|a| a.outcome == GcOutcome::Removed)
                .count();
            removed.fetch_add(count as u64, Ordering::Relaxed);
        }
        for line in log.lines(dir, &result) {
            eprintln!("host-aggregator: {line}");
        }
        next = Instant::now() + interval;
    }
}

/// What is worth telling about one sweep, without repeating a failure at
/// every sweep.
#[derive(Debug, Default)]
struct SweepLog {
    /// The last directory error told; cleared by a sweep that lists it.
    dir_error: Option<String>,
    /// Pipes whose removal failed, told once each.
    failed: HashSet<PathBuf>,
}

impl SweepLog {
    /// The lines to print for one sweep's result (none for a quiet sweep).
    fn lines(&mut self, dir: &Path, result: &Result<Vec<GcAction>, Error>) -> Vec<String> {
        let actions = match result {
            Ok(actions) => {
                self.dir_error = None;
                actions
            }
            Err(error) => {
                let message = error.to_string();
                if self.dir_error.as_ref() == Some(&message) {
                    return Vec::new();
                }
                self.dir_error = Some(message.clone());
                return vec![format!("gc: {message}; trying again every sweep")];
            }
        };
        let mut lines = Vec::new();
        let mut removed: Vec<&GcAction> = actions
            .iter()
            .filter(|a| a.outcome == GcOutcome::Removed)
            .collect();
        // The pipes first, then the spares' names (a dead writer leaves up
        // to eight of those): the line names whose processes died.
        removed.sort_by_key(|a| {
            a.path
                .file_name()
                .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."))
        });
        if !removed.is_empty() {
            let mut line = format!(
                "gc: removed {} stale pipe(s) in {}:",
                removed.len(),
                dir.display()
            );
            for action in removed.iter().take(NAMED_PER_LINE) {
                let name = action.path.file_name().map_or_else(
                    || action.path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let _ = write!(line, " {name} ({})", why(action));
                line.push(',');
            }
            line.pop();
            if removed.len() > NAMED_PER_LINE {
                let _ = write!(line, " and {} more", removed.len() - NAMED_PER_LINE);
            }
            lines.push(line);
        }
        for action in actions {
            if let GcOutcome::Failed(message) = &action.outcome {
                if self.failed.len() >= MAX_REMEMBERED {
                    self.failed.clear();
                }
                if self.failed.insert(action.path.clone()) {
                    lines.push(format!(
                        "gc: cannot remove {} ({}): {message}",
                        action.path.display(),
                        why(action)
                    ));
                }
            }
        }
        lines
    }
}

fn why(action: &GcAction) -> String {
    match action.reason {
        Staleness::Dead => format!("PID {} is dead", action.pid),
        Staleness::Reused => format!("PID {} was reused", action.pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(name: &str, pid: u32, outcome: GcOutcome) -> GcAction {
        GcAction {
            path: PathBuf::from("/d").join(name),
            pid,
            reason: Staleness::Dead,
            outcome,
        }
    }

    #[test]
    fn a_sweep_is_told_in_one_line_and_failures_once() {
        let dir = Path::new("/d");
        let mut log = SweepLog::default();
        assert_eq!(log.lines(dir, &Ok(Vec::new())), Vec::<String>::new());
        let sweep = Ok(vec![
            action("7.stats", 7, GcOutcome::Removed),
            action(".7.stats.tmp", 7, GcOutcome::Removed),
            action("8.stats", 8, GcOutcome::Failed("EPERM".into())),
        ]);
        assert_eq!(
            log.lines(dir, &sweep),
            [
                "gc: removed 2 stale pipe(s) in /d: 7.stats (PID 7 is dead), .7.stats.tmp (PID 7 is dead)",
                "gc: cannot remove /d/8.stats (PID 8 is dead): EPERM",
            ]
        );
        let again = Ok(vec![action(
            "8.stats",
            8,
            GcOutcome::Failed("EPERM".into()),
        )]);
        assert_eq!(log.lines(dir, &again), Vec::<String>::new());

        let many: Vec<GcAction> = (1..=6)
            .map(|pid| action(&format!("{pid}.stats"), pid, GcOutcome::Removed))
            .collect();
        let line = &log.lines(dir, &Ok(many))[0];
        assert!(
            line.starts_with("gc: removed 6 stale pipe(s) in /d: 1.stats"),
            "{line}"
        );
        assert!(
            line.ends_with("4.stats (PID 4 is dead) and 2 more"),
            "{line}"
        );
    }

    #[test]
    fn a_directory_error_is_told_once_until_it_clears() {
        let dir = Path::new("/missing");
        let mut log = SweepLog::default();
        let missing = || gc(dir, false);
        let first = log.lines(dir, &missing());
        assert_eq!(first.len(), 1);
        assert!(first[0].contains("/missing"), "{first:?}");
        assert_eq!(log.lines(dir, &missing()), Vec::<String>::new());
        assert_eq!(log.lines(dir, &Ok(Vec::new())), Vec::<String>::new());
        assert_eq!(log.lines(dir, &missing()), first);
    }

    #[test]
    fn a_zero_interval_starts_nothing_and_a_sweeper_stops_at_once() {
        assert!(
            GcSweeper::start(PathBuf::from("/missing"), Duration::ZERO)
                .unwrap()
                .is_none()
        );
        let sweeper = GcSweeper::start(PathBuf::from("/missing"), Duration::from_secs(3600))
            .unwrap()
            .unwrap();
        let started = Instant::now();
        drop(sweeper);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_sweeper_removes_a_dead_pipe_by_itself() {
        let dir = std::env::temp_dir().join(format!("gc-sweeper-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let pipe = dir.join(format!("{dead}.stats"));
        nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let sweeper = GcSweeper::start(dir.clone(), Duration::from_millis(50))
            .unwrap()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while sweeper.removed() == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sweeper.removed(), 1);
        assert!(std::fs::symlink_metadata(&pipe).is_err(), "still there");
        drop(sweeper);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
