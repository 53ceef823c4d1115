//! `Builder` and `Server`: start serving a registry at `<dir>/<pid>.stats`
//! from a background thread, and stop again. The serving protocol itself is
//! described in FORMAT.md ("Serving protocol").

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stats_core::Registry;

use crate::counters::{Counters, ServeStats};
use crate::dir::{Area, Existing, PipeDir, resolve};
use crate::error::Error;
use crate::fifo::{Fifo, FileId, check_proc};
use crate::leftovers;
use crate::pool::Pool;
use crate::process_stats::{OwnFigures, REFRESH};
use crate::reach::{CHECK_AFTER_SERVES, OnUnreachable, check_reach};
use crate::send::{Delivery, Sent, pipe_max_size};
use crate::snapshot::{Snapshotter, Source};
use crate::sweep::{Retired, Watch};
use crate::traces::Content;

/// Permission bits of a FIFO unless [`Builder::mode`] says otherwise: only
/// the owner (and root) may read our stats.
pub const DEFAULT_MODE: u32 = 0o600;
/// How long readers that stop reading may hold up the serving thread before
/// their snapshot is abandoned, unless [`Builder::stall_timeout`] says
/// otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Directories this process serves in: a second server there would take
/// the first one's FIFO for a stale leftover and replace it. Each claim
/// carries the PID that made it: a child made by `fork` inherits its
/// parent's claims (and its `Server`s, whose threads it does not have), and
/// must still be able to serve its own `<pid>.stats` there.
static SERVED_DIRS: Mutex<Vec<(u32, FileId)>> = Mutex::new(Vec::new());

/// Starts serving the process-wide registry ([`Registry::global`]) at
/// `<dir>/<pid>.stats`, `dir` being `STATS_PIPE_DIR` or `/tmp/stats-pipe`.
/// Shorthand for `Builder::new().start()`.
///
/// # Errors
///
/// See [`Builder::start`].
pub fn start() -> Result<Server, Error> {
    Builder::new().start()
}

/// Settings for a [`Server`].
#[derive(Clone, Debug)]
pub struct Builder {
    dir: Option<PathBuf>,
    mode: u32,
    source: Source,
    stall_timeout: Duration,
    process_stats: bool,
    on_unreachable: Option<OnUnreachable>,
    traces: bool,
    content: Content,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// Serve [`Registry::global`] in the default directory, FIFO mode
    /// [`DEFAULT_MODE`], stall timeout [`DEFAULT_STALL_TIMEOUT`], with the
    /// process's own figures.
    pub fn new() -> Builder {
        Builder {
            dir: None,
            mode: DEFAULT_MODE,
            source: Source::Global,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            process_stats: true,
            on_unreachable: None,
            traces: true,
            content: Content::Stats,
        }
    }

    /// Serve in `dir` instead of `STATS_PIPE_DIR` or `/tmp/stats-pipe`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.dir = Some(dir.into());
        self
    }

    /// Permission bits of the FIFO (`0o644` lets every user read our stats);
    /// only the `0o777` bits are used.
    pub fn mode(mut self, mode: u32) -> Builder {
        self.mode = mode & 0o777;
        self
    }

    /// Serve this registry instead of the process-wide one.
    pub fn registry(mut self, registry: Arc<Registry>) -> Builder {
        self.source = Source::Own(registry);
        self
    }

    /// How long readers that stop reading may hold up the serving thread.
    pub fn stall_timeout(mut self, timeout: Duration) -> Builder {
        self.stall_timeout = timeout;
        self
    }

    /// Whether every snapshot carries the process's own figures (on by
    /// default): `process.rss_bytes`, `process.cpu_seconds`,
    /// `process.threads`, `process.open_fds` and `process.uptime_seconds`
    /// (see [`crate::process_stats`]). They are read from `/proc/self` off
    /// the readers' clock, at most every 5 s, right after a serve (or when
    /// the orphan sweeper wakes), so they are at most 7 s old (uptime is
    /// exact): a snapshot that would carry older figures reads them itself
    /// (see [`crate::process_stats`]'s `REFRESH` for why 5 s).
    pub fn process_stats(mut self, on: bool) -> Builder {
        self.process_stats = on;
        self
    }

    /// Has the serving thread check, right after a serve and at most every
    /// [`CHECK_AFTER_SERVES`], what [`Server::check`] checks of the path
    /// (two `lstat`s, on the thread that just served: no wake-up of its
    /// own), and call `report` with the error when readers no longer reach
    /// this server. A program that keeps its pipe published (the
    /// `pipe-writer` binary) then needs a timer only for while nobody
    /// reads. `report` runs on the serving thread and must return at once.
    /// Only the `.stats` FIFO's serves check: the traces server
    /// ([`Builder::traces`]) is started and restored with it, and
    /// [`Server::check`] looks at the `.stats` path.
    pub fn on_unreachable(mut self, report: impl Fn(&Error) + Send + Sync + 'static) -> Builder {
        self.on_unreachable = Some(OnUnreachable(Arc::new(report)));
        self
    }

    /// Whether the registry's completed traces are served too (on by
    /// default), at `<dir>/traces/<pid>.traces` (see FORMAT.md, "Traces"),
    /// by a second serving thread and orphan sweeper. The `traces`
    /// subdirectory is created if missing and checked like `dir`.
    pub fn traces(mut self, on: bool) -> Builder {
        self.traces = on;
        self
    }

    /// Creates `<dir>/<pid>.stats` and starts serving it. When this returns
    /// the path exists and every `open` of it is answered. First, FIFOs that
    /// dead processes of our user left in the directory are removed (see
    /// [`crate::leftovers`]).
    ///
    /// # Errors
    ///
    /// The directory cannot be created or opened, is a symbolic link, is
    /// owned by a user other than root and us ([`Error::DirOwner`]), or is
    /// writable by others without the sticky bit; our path is held by
    /// another user or by something other than a FIFO (a FIFO of ours there
    /// is a stale leftover and is replaced); this process already serves in
    /// that directory; `/proc/self/fd` is missing; a FIFO cannot be made; or
    /// the threads cannot be started.
    pub fn start(self) -> Result<Server, Error> {
        check_proc().map_err(|errno| Error::NoProc { errno })?;
        let dir_path = resolve(self.dir.clone());
        let dir = Arc::new(PipeDir::open(dir_path.clone())?);
        let pid = std::process::id();
        let name = format!("{pid}.{}", self.content.suffix());
        let claim = DirClaim::new(dir.id(), dir.join(&name))?;
        // Made in the pipe directory only once that is known to be safe.
        let traces = match (self.content, self.traces) {
            (Content::Stats, true) => {
                let mut traces = self.clone();
                traces.dir = Some(dir_path.join(crate::traces::TRACES_DIR));
                traces.content = Content::Traces;
                traces.process_stats = false;
                // The path check after serves is the stats FIFO's: what
                // acts on a report ([`Server::check`], serving afresh)
                // checks and restores that path, and the traces server
                // with it; a report about the traces path would name a
                // path nobody checks again.
                traces.on_unreachable = None;
                Some(Box::new(traces.start()?))
            }
            _ => None,
        };
        // Dead writers of our user leave FIFOs a `cat` would hang on.
        leftovers::remove_dead(&dir, pid);
        let stale = match dir.inspect(Area::Pipes, &name)? {
            Existing::OurFifo => Some(dir.open_fifo(Area::Pipes, &name)?),
            Existing::Nothing => None,
        };
        let mut pool = Pool::new(pid, self.content.suffix(), dir.links_are_free());
        let first = pool.start(&dir, &name, self.mode)?;

        let shared = Arc::new(Shared {
            stop: Arc::new(AtomicBool::new(false)),
            counters: Counters::default(),
            current: Mutex::new(Some(Arc::clone(&first))),
            error: Mutex::new(None),
        });
        let seq = Arc::new(AtomicU64::new(0));
        let own = self.process_stats.then(|| {
            let own = Arc::new(OwnFigures::default());
            // Read here, not on a reader's clock; refreshed after serves.
            own.refresh();
            own
        });
        let pipe_max = pipe_max_size();
        let path = dir.join(&name);
        let spawn_failed = |e: std::io::Error| Error::Spawn {
            path: path.clone(),
            reason: e.to_string(),
        };
        let watch = Watch::new().map_err(|errno| {
            dir.remove(Area::Pipes, &name, Some(first.id()));
            crate::pool::forget(&dir, &first);
            spawn_failed(std::io::Error::from(errno))
        })?;
        let watch = Arc::new(watch);
        if let Some(stale) = stale {
            // Readers still blocked on the dead holder's FIFO get served.
            watch.add(
                Retired {
                    fifo: Arc::new(stale),
                    retirement: 0,
                    closed_at: Instant::now(),
                    may_serve: true,
                },
                true,
            );
        }

        let sweeper_shared = Arc::clone(&shared);
        let mut sweeper_snapshots =
            Snapshotter::new(self.source.clone(), pid, Arc::clone(&seq), own.clone())
                .serving(self.content);
        let sweeper_own = own.clone();
        let sweeper_watch = Arc::clone(&watch);
        let stall = self.stall_timeout;
        let (serving_name, sweeper_name) = self.content.thread_names();
        let sweeping = std::thread::Builder::new()
            .name(sweeper_name.into())
            .spawn(move || {
                let delivery = Delivery::for_this_thread(stall, pipe_max);
                crate::sweep::run(
                    &sweeper_watch,
                    &mut sweeper_snapshots,
                    &delivery,
                    &sweeper_shared.counters,
                    &sweeper_shared.stop,
                    sweeper_own.as_deref(),
                );
            })
            .map_err(|e| {
                dir.remove(Area::Pipes, &name, Some(first.id()));
                crate::pool::forget(&dir, &first);
                spawn_failed(e)
            })?;

        let serve = ServeLoop {
            dir: Arc::clone(&dir),
            name: name.clone(),
            pool,
            mode: self.mode,
            shared: Arc::clone(&shared),
            current: first,
            snapshotter: Snapshotter::new(self.source, pid, seq, own.clone()).serving(self.content),
            watch: Arc::clone(&watch),
            own,
            // The first serve refreshes (see `REFRESH`).
            refreshed: Instant::now()
                .checked_sub(REFRESH)
                .unwrap_or_else(Instant::now),
            on_unreachable: self.on_unreachable,
            checked: Instant::now(),
        };
        let serving = std::thread::Builder::new()
            .name(serving_name.into())
            .spawn(move || {
                let delivery = Delivery::for_this_thread(stall, pipe_max);
                serve.run(&delivery);
            });
        let serving = match serving {
            Ok(handle) => handle,
            Err(e) => {
                watch.end();
                let _ = sweeping.join();
                dir.remove(Area::Pipes, &name, None);
                if let Some(first) = lock(&shared.current).as_ref() {
                    crate::pool::forget(&dir, first);
                }
                return Err(spawn_failed(e));
            }
        };
        Ok(Server {
            path,
            name,
            dir,
            shared,
            serving: Some(serving),
            sweeping: Some(sweeping),
            watch,
            _claim: claim,
            traces,
        })
    }
}

/// State shared by the handle and the serving threads.
#[derive(Debug)]
struct Shared {
    stop: Arc<AtomicBool>,
    counters: Counters,
    /// The FIFO at our path now: the handle opens it to wake the serving
    /// thread from its blocking `open`.
    current: Mutex<Option<Arc<Fifo>>>,
    /// Why the serving thread ended early, if it did.
    error: Mutex<Option<Error>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running server. Dropping it (or [`Server::stop`]) stops the threads,
/// joins them and removes the FIFO.
#[must_use = "dropping the Server stops serving at once"]
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    name: String,
    dir: Arc<PipeDir>,
    shared: Arc<Shared>,
    serving: Option<JoinHandle<()>>,
    sweeping: Option<JoinHandle<()>>,
    /// The orphan watch, ended once the serving thread is joined.
    watch: Arc<Watch>,
    _claim: DirClaim,
    /// The server of `<dir>/traces/<pid>.traces`, if traces are served.
    traces: Option<Box<Server>>,
}

impl Server {
    /// The FIFO path, `<dir>/<pid>.stats`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The traces FIFO's path, `<dir>/traces/<pid>.traces`, if traces are
    /// served ([`Builder::traces`]).
    pub fn traces_path(&self) -> Option<&Path> {
        self.traces.as_deref().map(Server::path)
    }

    /// What has been served so far.
    pub fn stats(&self) -> ServeStats {
        self.shared.counters.load()
    }

    /// Why serving ended early, if it did (the FIFO was then removed, so
    /// readers see no pipe rather than a dead one).
    pub fn error(&self) -> Option<Error> {
        lock(&self.shared.error).clone()
    }

    /// Whether the serving thread is still running.
    pub fn is_serving(&self) -> bool {
        self.serving.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Checks that readers of [`Server::path`] still reach this server; call
    /// it now and then to keep a pipe published (the `pipe-writer` binary
    /// does whenever its pipe directory changes, and where it cannot watch
    /// the directory has the serving thread check after its serves,
    /// [`Builder::on_unreachable`], with a timer for while nobody reads;
    /// it serves afresh when a check fails). It checks that
    /// the serving thread runs, that the directory at its path may still be
    /// trusted ([`check_dir`](crate::check_dir)), and that the path names the very FIFO this
    /// server serves now: a FIFO of another user there is a squat, never
    /// taken for ours. Serving goes on whatever this returns, but only ever
    /// into FIFOs this server made (it holds them by descriptor), never into
    /// a FIFO someone else put at the path.
    ///
    /// # Errors
    ///
    /// Why serving ended early (say `ENOSPC` making a FIFO); the directory or
    /// the path cannot be looked up (removed: [`Error::Dir`] or
    /// [`Error::Fifo`] with the errno); the directory is no longer one to
    /// trust ([`Error::DirOwner`], [`Error::UnsafeDir`],
    /// [`Error::DirIsSymlink`], [`Error::NotADirectory`]); the path holds
    /// another user's file ([`Error::Squatted`]), something other than a
    /// FIFO ([`Error::NotFifo`]) or another FIFO of our user
    /// ([`Error::Replaced`]).
    pub fn check(&self) -> Result<(), Error> {
        if !self.is_serving() {
            // It ends by itself only with an error, or by panicking.
            return Err(self.error().unwrap_or_else(|| Error::Panicked {
                path: self.path.clone(),
            }));
        }
        // Held while looking, so a serve swapping FIFOs meanwhile cannot make
        // the path and `current` disagree (the serving thread swaps under it).
        let current = lock(&self.shared.current);
        check_reach(&self.dir, &self.name, &self.path, current.as_deref())
    }

    /// Stops serving: wakes and joins the threads, removes the FIFO.
    ///
    /// # Errors
    ///
    /// The error that ended serving early, if one did.
    pub fn stop(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        if let Some(mut traces) = self.traces.take() {
            let _ = traces.shutdown();
        }
        let Some(serving) = self.serving.take() else {
            return Ok(());
        };
        self.shared.stop.store(true, SeqCst);
        // A reader of our own releases the thread from its blocking open; it
        // stays open until the join, or the wake-up can be lost
        // (docs/FIFO.md).
        let waker = lock(&self.shared.current)
            .as_ref()
            .and_then(|fifo| fifo.open_wake_reader().ok());
        let joined = serving.join();
        drop(waker);
        if let Some(sweeping) = self.sweeping.take() {
            // Nothing more is retired: the sweeper releases what it watches.
            self.watch.end();
            let _ = sweeping.join();
        }
        if joined.is_err() {
            self.dir.remove(Area::Pipes, &self.name, None);
            lock(&self.shared.error).get_or_insert(Error::Panicked {
                path: self.path.clone(),
            });
        }
        match lock(&self.shared.error).clone() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// This process's claim on a directory, released on drop.
#[derive(Debug)]
struct DirClaim((u32, FileId));

impl DirClaim {
    fn new(dir: FileId, path: PathBuf) -> Result<DirClaim, Error> {
        let claim = (std::process::id(), dir);
        let mut dirs = lock(&SERVED_DIRS);
        if dirs.contains(&claim) {
            return Err(Error::AlreadyServing { path });
        }
        dirs.push(claim);
        Ok(DirClaim(claim))
    }
}

impl Drop for DirClaim {
    fn drop(&mut self) {
        lock(&SERVED_DIRS).retain(|d| *d != self.0);
    }
}

/// The serving thread.
struct ServeLoop {
    dir: Arc<PipeDir>,
    name: String,
    /// Spares to swap in, one of them ready ahead so that only a
    /// `renameat2` stands between a reader's open and its snapshot.
    pool: Pool,
    mode: u32,
    shared: Arc<Shared>,
    /// The FIFO at our path.
    current: Arc<Fifo>,
    snapshotter: Snapshotter,
    /// Retired FIFOs, probed after each serve (and by the sweeper when no
    /// serve comes).
    watch: Arc<Watch>,
    /// The process's own figures, refreshed after a serve (off the
    /// reader's clock) at most every [`REFRESH`].
    own: Option<Arc<OwnFigures>>,
    refreshed: Instant,
    /// Told when a check after a serve finds the path lost.
    on_unreachable: Option<OnUnreachable>,
    /// When the path was last checked after a serve.
    checked: Instant,
}

impl ServeLoop {
    fn run(mut self, delivery: &Delivery) {
        let result = self.serve(delivery);
        self.dir
            .remove(Area::Pipes, &self.name, Some(self.current.id()));
        crate::pool::forget(&self.dir, &self.current);
        self.pool.remove_all(&self.dir);
        // Readers that opened the path just before it went get end-of-file
        // rather than a wait for a writer that is gone.
        drop(self.current.open_if_reader());
        if let Err(error) = result {
            *lock(&self.shared.error) = Some(error);
        }
    }

    fn serve(&mut self, delivery: &Delivery) -> Result<(), Error> {
        let stop = Arc::clone(&self.shared.stop);
        loop {
            self.pool.prepare(&self.dir, self.mode, &self.watch)?;
            if stop.load(SeqCst) {
                return Ok(());
            }
            let writer = self
                .current
                .wait_for_reader(Some(self.dir.spares()))
                .map_err(|errno| Error::Fifo {
                    path: self.dir.join(&self.name),
                    op: "open",
                    errno,
                })?;
            if stop.load(SeqCst) {
                // Woken by our own handle; a reader that came at the same
                // moment reads end-of-file.
                return Ok(());
            }
            // Replace before writing (docs/FIFO.md, the duplicate trap):
            // readers from now on open another FIFO, so this writer never
            // reopens the one its reader is still reading.
            let swapped = {
                // Held across the swap, so `Server::check` never sees a
                // FIFO at the path that `current` does not name yet.
                let mut shown = lock(&self.shared.current);
                let swapped =
                    self.pool
                        .swap_in(&self.dir, &self.name, &self.current, self.mode, &self.watch);
                if let Ok(fresh) = &swapped {
                    *shown = Some(Arc::clone(fresh));
                }
                swapped
            };
            let old = swapped
                .as_ref()
                .ok()
                .map(|fresh| std::mem::replace(&mut self.current, Arc::clone(fresh)));
            let (sent, marker) = delivery.send(&writer, self.snapshotter.build(), &stop);
            // Counted before the close that gives the reader its end of
            // file, so whoever has read a snapshot finds it counted.
            self.shared.counters.record(sent, false);
            drop(writer);
            swapped?;
            if let Some(old) = old {
                let retirement = old.retire(marker);
                let retired = Retired {
                    fifo: old,
                    retirement,
                    closed_at: Instant::now(),
                    may_serve: sent != Sent::Stalled,
                };
                self.watch.add(retired, false);
            }
            // The orphan probes and the figures' refresh happen here, off
            // the reader's clock, rather than on a thread woken for them.
            self.watch.after_serve(&self.dir);
            if let Some(own) = &self.own
                && self.refreshed.elapsed() >= REFRESH
                && own.refresh_if_wanted()
            {
                self.refreshed = Instant::now();
            }
            self.check_after_serve();
        }
    }

    /// The path check riding on serves ([`Builder::on_unreachable`]).
    fn check_after_serve(&mut self) {
        let Some(report) = &self.on_unreachable else {
            return;
        };
        if self.checked.elapsed() < CHECK_AFTER_SERVES {
            return;
        }
        self.checked = Instant::now();
        let path = self.dir.join(&self.name);
        if let Err(error) = check_reach(&self.dir, &self.name, &path, Some(&self.current)) {
            (report.0)(&error);
        }
    }
}
