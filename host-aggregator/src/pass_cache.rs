//! One shared, briefly cached read pass for any number of concurrent
//! requests (single flight), and its renderings made at most once each.
//!
//! Reading every pipe costs each writer a snapshot, so requests never cause
//! a pass each. [`PassCache`] hands out the last pass while it is younger
//! than `max_age`; when it is older, the first request runs a new pass and
//! every request arriving meanwhile waits for that same pass. A failed pass
//! (say the directory cannot be listed) is shared and cached the same way,
//! so a flood of requests cannot turn into a flood of failures.
//!
//! Requests never queue behind passes: see [`crate::single_flight`], which
//! holds the pass (a waiter takes the pass in flight when it arrived, and
//! never waits for a second one).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::single_flight::SingleFlight;
use crate::{Error, Pass};

/// Runs one read pass; the cache calls it from one thread at a time.
pub type CollectFn = Box<dyn FnMut() -> Result<Pass, Error> + Send>;

/// One pass as served: its result, its number, and its renderings, each
/// made at most once however many requests ask.
#[derive(Debug)]
pub struct CachedPass {
    /// 1 for the first pass this cache ran, then 2, 3...
    pub number: u64,
    /// When the pass started.
    pub started: Instant,
    /// What the pass read, or why it failed.
    pub result: Result<Pass, Error>,
    /// Each rendering by name (a format's, or `processes`), made once.
    renderings: Mutex<Vec<(&'static str, Slot)>>,
}

/// One rendering of a pass, made at most once.
type Slot = Arc<OnceLock<Arc<[u8]>>>;

impl CachedPass {
    /// A pass as the cache stores it.
    pub fn new(number: u64, started: Instant, result: Result<Pass, Error>) -> CachedPass {
        CachedPass {
            number,
            started,
            result,
            renderings: Mutex::new(Vec::new()),
        }
    }

    /// The rendering named `which` (a format's name, or `processes`) of
    /// `pass` (this pass's result), made by `render` the first time it is
    /// asked for. Renderings are megabytes at 1,000 writers: answers
    /// waiting on slow clients share one copy. Two renderings are made at
    /// the same time; a second request for one being made waits for it.
    pub fn rendered(
        &self,
        which: &'static str,
        pass: &Pass,
        render: impl FnOnce(&Pass) -> Vec<u8>,
    ) -> Arc<[u8]> {
        let slot = {
            let mut renderings = self
                .renderings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match renderings.iter().find(|(name, _)| *name == which) {
                Some((_, slot)) => Arc::clone(slot),
                None => {
                    let slot = Arc::new(OnceLock::new());
                    renderings.push((which, Arc::clone(&slot)));
                    slot
                }
            }
        };
        Arc::clone(slot.get_or_init(|| render(pass).into()))
    }
}

/// Single-flight cache of the latest pass (see the module docs).
pub struct PassCache {
    collect: Mutex<CollectFn>,
    flight: SingleFlight<CachedPass>,
    max_age: Duration,
}

impl PassCache {
    /// A cache that runs `collect` for a new pass when the last one is older
    /// than `max_age`.
    pub fn new(collect: CollectFn, max_age: Duration) -> PassCache {
        PassCache {
            collect: Mutex::new(collect),
            flight: SingleFlight::default(),
            max_age,
        }
    }

    /// How many passes have run.
    pub fn passes(&self) -> u64 {
        self.flight.made()
    }

    /// The latest pass without running one, if any ran. Never waits for a
    /// pass in flight (the state lock is only ever held for a few
    /// instructions), so `/healthz` can always use it.
    pub fn latest(&self) -> Option<Arc<CachedPass>> {
        self.flight.latest()
    }

    /// A pass no older than `max_age`, or the one in flight, or a new one.
    pub fn get(&self) -> Arc<CachedPass> {
        self.get_within(self.max_age)
    }

    /// A new pass, or the one in flight: the history recorder's tick, which
    /// keeps the cached pass fresh for requests.
    pub fn refresh(&self) -> Arc<CachedPass> {
        self.get_within(Duration::ZERO)
    }

    /// A pass's age counts from its start: what it read is as old as that.
    fn get_within(&self, max_age: Duration) -> Arc<CachedPass> {
        self.flight.get(
            |pass| pass.started.elapsed() <= max_age,
            |number| {
                let started = Instant::now();
                let result = {
                    let mut collect = self.collect.lock().unwrap_or_else(PoisonError::into_inner);
                    collect()
                };
                CachedPass::new(number, started, result)
            },
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::SystemTime;

    use stats_core::{Entry, Snapshot, Value};

    use super::*;
    use crate::{Source, Status};

    pub(crate) fn synthetic_pass(requests: i64) -> Pass {
        let snapshot = Snapshot::from_entries([Entry {
            name: "requests".into(),
            value: Value::Int(requests),
        }]);
        let mut source = Source::new("/nowhere/77.stats".into());
        source.status = Status::Ok;
        source.snapshot = snapshot.clone();
        Pass {
            started: SystemTime::now(),
            duration: Duration::from_millis(1),
            sources: vec![source],
            merged: snapshot,
            kinds: Default::default(),
        }
    }

    /// A collector that counts its calls and takes `delay` per pass.
    pub(crate) fn counting(delay: Duration) -> (CollectFn, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&calls);
        let collect: CollectFn = Box::new(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(delay);
            Ok(synthetic_pass(n as i64))
        });
        (collect, calls)
    }

    #[test]
    fn concurrent_gets_share_one_pass() {
        let (collect, calls) = counting(Duration::from_millis(100));
        let cache = Arc::new(PassCache::new(collect, Duration::ZERO));
        let numbers: Vec<u64> = (0..8)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || cache.get().number)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let runs = calls.load(Ordering::SeqCst);
        assert!(runs < 8, "8 concurrent gets ran {runs} passes");
        assert_eq!(cache.passes(), runs);
        assert!(numbers.iter().all(|&n| n >= 1 && n <= runs));
    }

    #[test]
    fn a_young_pass_is_reused_and_an_old_one_is_not() {
        let (collect, calls) = counting(Duration::ZERO);
        let cache = PassCache::new(collect, Duration::from_millis(200));
        assert_eq!(cache.get().number, 1);
        assert_eq!(cache.get().number, 1);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(cache.get().number, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_collector_does_not_wedge_waiters() {
        let mut first = true;
        let cache = Arc::new(PassCache::new(
            Box::new(move || {
                if std::mem::take(&mut first) {
                    panic!("collector blew up");
                }
                Ok(synthetic_pass(1))
            }),
            Duration::ZERO,
        ));
        let panicking = Arc::clone(&cache);
        assert!(std::thread::spawn(move || panicking.get()).join().is_err());
        assert!(cache.get().result.is_ok());
    }

    /// The starvation of issue 12: a recorder refreshing back to back with
    /// slow passes. A request must get the pass in flight when it arrived,
    /// never wait behind the ones started after.
    #[test]
    fn a_waiter_takes_the_pass_in_flight_and_never_waits_for_a_second() {
        let pass_time = Duration::from_millis(150);
        let (collect, _) = counting(pass_time);
        let cache = Arc::new(PassCache::new(collect, Duration::ZERO));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let recorder = {
            let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    cache.refresh();
                }
            })
        };
        // Let the recorder get going.
        std::thread::sleep(pass_time / 2);
        let mut worst = Duration::ZERO;
        for _ in 0..10 {
            let asked = Instant::now();
            let before = cache.passes();
            let got = cache.get_within(Duration::ZERO);
            worst = worst.max(asked.elapsed());
            assert!(got.number <= before + 2, "{} after {before}", got.number);
        }
        stop.store(true, Ordering::SeqCst);
        recorder.join().unwrap();
        // One pass in flight plus, at worst, one of its own.
        assert!(
            worst < pass_time * 2 + Duration::from_millis(100),
            "a request waited {worst:?} with passes of {pass_time:?}"
        );
    }
}
