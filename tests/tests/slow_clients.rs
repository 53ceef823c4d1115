//! End-to-end test that clients which never read their answers do not stop
//! the aggregator from serving everyone else (issue 8, point 3): the real
//! `host-aggregator serve` with a large `/stats`, more non-reading
//! pipelining clients than it has worker threads, and a normal client
//! beside them.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use stats_pipe_tests::hostile::{Processes, TempDir, spawn_pipestatic_writer};
use stats_pipe_tests::http_client::{HttpResponse, try_send};
use stats_pipe_tests::serve::Aggregator;

/// More than the server's 4 worker threads.
const SILENT_CLIENTS: usize = 8;
/// Requests each silent client sends at once: 20 answers of over 1 MB are
/// far more than a connection's socket buffers (4 MB send + 128 KB
/// receive here), so the server's writes to them block.
const PIPELINED: usize = 20;
/// Writers, and distinct stats they serve together.
const WRITERS: usize = 4;
const STATS: usize = 40_000;
/// How long a normal client may wait for an answer: a functional bound
/// (the old server took minutes), not a benchmark.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// `GET path` on a thread, waiting at most [`ANSWER_WITHIN`].
fn get_within_bound(addr: SocketAddr, path: &'static str) -> HttpResponse {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(try_send(addr, "GET", path, &[], b""));
    });
    match rx.recv_timeout(ANSWER_WITHIN) {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => panic!("GET {path}: {error}"),
        Err(_) => panic!(
            "GET {path} got no answer within {ANSWER_WITHIN:?} while \
             {SILENT_CLIENTS} clients did not read"
        ),
    }
}

#[test]
fn clients_that_never_read_do_not_starve_the_others() {
    let dir = TempDir::new("slow-clients");
    let mut processes = Processes::new();
    // 4 writers x 10,000 distinct stats with long names: /stats is ~2 MB.
    for writer in 0..WRITERS {
        let stats: Vec<String> = (0..STATS / WRITERS)
            .map(|i| format!("slow_clients.padding_to_make_it_big.w{writer}.stat_{i:05}=1"))
            .collect();
        let stats: Vec<&str> = stats.iter().map(String::as_str).collect();
        spawn_pipestatic_writer(&mut processes, dir.path(), &stats);
    }
    let server = Aggregator::serve(dir.path(), &[]);
    let addr = server.addr();
    let full = get_within_bound(addr, "/stats");
    assert_eq!(full.status, 200);
    assert!(
        full.body.len() > 1 << 20,
        "/stats is only {} bytes: too small to fill the socket buffers",
        full.body.len()
    );

    // Clients that send many requests and never read a byte back.
    let pipelined = "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n".repeat(PIPELINED);
    let silent: Vec<TcpStream> = (0..SILENT_CLIENTS)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect a silent client");
            stream
                .write_all(pipelined.as_bytes())
                .expect("send pipelined requests");
            stream
        })
        .collect();
    // Let the workers take the silent clients' requests first.
    std::thread::sleep(Duration::from_millis(500));

    // Probe across the 5 s write timeout, so both the writes that block and
    // the cut-off that follows are covered.
    for _ in 0..4 {
        let health = get_within_bound(addr, "/healthz");
        assert_eq!(health.status, 200);
        assert_eq!(health.json()["status"], "ok");
        let stats = get_within_bound(addr, "/stats");
        assert_eq!(stats.status, 200);
        let count = stats.json()["stats"].as_object().map(|stats| stats.len());
        assert_eq!(count, Some(STATS));
        std::thread::sleep(Duration::from_secs(2));
    }

    // The server says what it did with the silent clients: their writes
    // made no progress for the 5 s write timeout, so they were cut off.
    let health = get_within_bound(addr, "/healthz").json();
    let timeouts = health["connections"]["write_timeouts"]
        .as_u64()
        .expect("write_timeouts in /healthz");
    assert!(
        timeouts >= SILENT_CLIENTS as u64,
        "only {timeouts} of {SILENT_CLIENTS} silent clients timed out: {health}"
    );
    assert!(
        health["connections"]["open"].as_u64() < Some(SILENT_CLIENTS as u64),
        "the silent clients' connections are still open: {health}"
    );
    drop(silent);
}
