//! Ports for servers that take a port number rather than a listening socket
//! (influxd, Prometheus, PostgreSQL, chromedriver).
//!
//! The usual trick, bind port 0 and close it, races: between our close and
//! the server's bind, anything else binding port 0 may be handed the same
//! port, and on some kernels (sandboxed network stacks among them) the port
//! just freed is the very next one given out. Two tests in one run then
//! start servers on one port and one of them talks to the wrong peer. So we
//! hand out ports from *below* the kernel's ephemeral range, which bind(0)
//! never picks, each one at most once per test process, starting at an
//! offset drawn from our PID so that concurrent test processes rarely meet.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Ports we may hand out: below Linux's default ephemeral range
/// (32768–60999) and above the usual well-known services.
const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A loopback TCP port that is free right now, outside the ephemeral range,
/// and never returned twice by this process.
///
/// # Panics
/// If no port in the range can be bound.
pub fn free_port() -> u16 {
    let start = std::process::id().wrapping_mul(7_919) % COUNT;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + step % COUNT;
        let port = u16::try_from(port).expect("the range fits in u16");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ports.len(), "a port was handed out twice");
        for port in ports {
            assert!((20_000..32_000).contains(&port), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("still free");
        }
    }
}
