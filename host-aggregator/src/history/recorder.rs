//! The recorder thread: runs a tick (`serve` records a pass into its
//! history) every interval on a fixed schedule.

use std::time::Duration;

/// A thread that runs `tick` every interval on a fixed schedule (a slow
/// tick delays the next one, never shifts every later one) until dropped.
/// `serve` records a pass into its [`History`](super::History) on each tick.
pub struct Recorder {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    /// Starts calling `tick` now and then every `interval`.
    pub fn start(interval: Duration, mut tick: impl FnMut() + Send + 'static) -> Recorder {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut next = std::time::Instant::now();
            loop {
                tick();
                next += interval;
                let now = std::time::Instant::now();
                if next < now {
                    // Fell behind (a pass longer than the interval): skip the
                    // missed beats rather than run them back to back.
                    next = now;
                }
                match stopped.recv_timeout(next - now) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    // Dropping the sender (or sending) stops the thread.
                    _ => return,
                }
            }
        });
        Recorder {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
