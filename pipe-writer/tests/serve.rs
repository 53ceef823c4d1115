//! The serving protocol against real FIFOs and real `cat` processes: one
//! complete snapshot per open, a path that never disappears, bounded stalls,
//! orphans served, a quick stop that cleans up.

mod util;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;
use nix::unistd::read;
use pipe_writer::Builder;
use stats_core::Registry;
use stats_core::envelope::{Verdict, verify};
use util::{
    LookedUp, TempDir, bare_builder, body_of, complete_body, eventually, output_within, read_once,
    read_to_end, registry_with, stalling_server,
};

const READ_DEADLINE: Duration = Duration::from_secs(1);
/// A reader racing other readers of the path may be an orphan of a lookup
/// race: its lookup found a FIFO that another reader's serve retired before
/// its `open`, and when it joins the still-open pipe of that snapshot only
/// the orphan watch tells it from a slow reader of it, 0.5 to about 2 s
/// after the retirement (FORMAT.md, "What a reader can rely on"); when the
/// other readers have just stopped, no serve probes it and the sweeper's
/// timer does, at 2 s. That bound, the stall timeout, and room for a loaded
/// machine (a 1 s deadline failed so once at a load average of 20 on 2
/// cores: one read of a 1.5 s storm waited 1.99 s for a complete snapshot).
const RACING_READ_DEADLINE: Duration = Duration::from_secs(5);
// Every descriptor these tests open is close-on-exec: the tests run in
// parallel threads of one process and several spawn `cat`, which would
// otherwise inherit another test's reader and hold it open for its whole
// life, so that writer waits a stall timeout for a reader that never reads
// (the hang-up test failed so in CI behind the orphan test's `cat`, which
// waits 0.5 to 2 s for its batched probe).

fn serve(dir: &TempDir, registry: &Arc<Registry>) -> pipe_writer::Server {
    bare_builder(dir, registry)
        // The stats FIFO's protocol alone (traces: tests/traces.rs).
        .traces(false)
        .start()
        .unwrap()
}

fn fifo_inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(meta.file_type().is_fifo());
    meta.ino()
}

#[test]
fn a_thousand_sequential_cats_each_print_one_complete_snapshot() {
    let dir = TempDir::new("cats");
    let registry = registry_with(100, 0);
    registry.set("load avg", 0.25);
    let server = serve(&dir, &registry);
    let expected = body_of(&registry);
    let mut last_seq = None;
    for round in 0..1000 {
        let out = output_within(
            Command::new("cat").arg(server.path()),
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "round {round}: {out:?}");
        let Verdict::Complete { header, body } = verify(&out.stdout) else {
            panic!("round {round}: {:?}", verify(&out.stdout));
        };
        assert_eq!(&out.stdout[body], expected, "round {round}");
        assert_eq!(header.pid, std::process::id());
        assert!(last_seq < Some(header.seq), "round {round}: #seq goes up");
        last_seq = Some(header.seq);
    }
    let stats = server.stats();
    assert!(stats.snapshots >= 1000, "{stats:?}");
    server.stop().unwrap();
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}

#[test]
fn the_path_never_goes_missing_while_serving() {
    let dir = TempDir::new("probe");
    let registry = registry_with(100, 0);
    let server = serve(&dir, &registry);
    let path = server.path().to_path_buf();
    let done = Arc::new(AtomicBool::new(false));
    let complete = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, done, complete) = (path.clone(), Arc::clone(&done), Arc::clone(&complete));
            std::thread::spawn(move || {
                while !done.load(Relaxed) {
                    let bytes = read_once(&path, RACING_READ_DEADLINE).unwrap();
                    if matches!(verify(&bytes), Verdict::Complete { .. }) {
                        complete.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    let (mut probes, mut missing) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        // Both a lookup and an open, each of which would see a gap.
        if std::fs::symlink_metadata(&path).is_err() {
            missing += 1;
        }
        match open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Err(Errno::ENOENT) => missing += 1,
            Err(e) => panic!("probe open: {e}"),
            Ok(_) => {}
        }
        probes += 1;
    }
    done.store(true, Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    let served = server.stats();
    eprintln!(
        "probe loop: {probes} probes, {missing} missing, {} complete reads, {served:?}",
        complete.load(Relaxed)
    );
    assert_eq!(missing, 0);
    assert!(probes > 1000 && complete.load(Relaxed) > 10);
    server.stop().unwrap();
}

#[test]
fn stop_joins_quickly_and_removes_the_fifo() {
    let dir = TempDir::new("stop");
    let registry = registry_with(10, 0);
    // Never read: the thread is blocked in open.
    let server = serve(&dir, &registry);
    // The FIFO, and the spares made ahead by the serving thread.
    assert!(eventually(Duration::from_secs(1), || dir.list().len() > 1));
    let ours = format!("{}.stats", std::process::id());
    // The spares are in our private spare directory, never beside the pipe.
    let spare_dir = pipe_writer::spare_dir_name(nix::unistd::geteuid().as_raw());
    let spares = format!("{spare_dir}/.{}.stats.", std::process::id());
    assert!(
        dir.list()
            .iter()
            .all(|n| *n == ours || (n.starts_with(&spares) && n.ends_with(".tmp"))),
        "{:?}",
        dir.list()
    );
    let mode = std::fs::symlink_metadata(dir.path().join(&spare_dir))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
        0o700
    );
    let started = Instant::now();
    server.stop().unwrap();
    let idle = started.elapsed();

    // After serving readers (the sweeper watches retired FIFOs).
    let server = serve(&dir, &registry);
    for _ in 0..20 {
        complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
    }
    let started = Instant::now();
    drop(server);
    let busy = started.elapsed();
    eprintln!("stop: {idle:?} when idle, {busy:?} by drop after 20 reads");
    assert!(idle < Duration::from_secs(1) && busy < Duration::from_secs(1));
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}

#[test]
fn a_stalled_reader_holds_the_writer_no_longer_than_the_stall_timeout() {
    let dir = TempDir::new("stall");
    // Larger than the biggest pipe an unprivileged writer can ask for, so
    // the write cannot finish while nobody reads.
    let (registry, server) = stalling_server(&dir);
    let stalled = open(
        server.path(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(2), || {
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&stalled),
            PollFlags::POLLIN,
        )];
        poll(&mut fds, PollTimeout::ZERO).unwrap() > 0
    }));
    let started = Instant::now();
    let next = read_once(server.path(), Duration::from_secs(3)).unwrap();
    let waited = started.elapsed();
    assert_eq!(complete_body(&next), body_of(&registry));
    assert_eq!(server.stats().stalls, 1);
    // What the stalled reader gets is recognisably cut short.
    let cut = read_to_end(&stalled, READ_DEADLINE).unwrap();
    assert!(
        matches!(verify(&cut), Verdict::Incomplete(_)),
        "{:?}",
        verify(&cut)
    );
    eprintln!(
        "stall: next reader waited {waited:?} behind a stalled one (stall timeout 200 ms); \
         stalled reader got {} of {} bytes",
        cut.len(),
        next.len()
    );

    // A stop during a stalled write does not wait for the stall timeout.
    let _stalled_again = open(
        server.path(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    server.stop().unwrap();
    let stop_time = started.elapsed();
    eprintln!("stop during a stalled write: {stop_time:?}");
    assert!(stop_time < Duration::from_secs(1));
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}

#[test]
fn a_reader_that_hangs_up_costs_a_cut_snapshot_and_nothing_else() {
    let dir = TempDir::new("hangup");
    let registry = registry_with(10_000, 110);
    let server = serve(&dir, &registry);
    for _ in 0..3 {
        let fd = open(
            server.path(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            PollFlags::POLLIN,
        )];
        poll(&mut fds, PollTimeout::from(1000u16)).unwrap();
        let mut head = [0u8; 4096];
        assert!(read(&fd, &mut head).unwrap() > 0);
        drop(fd); // like `head -1`
    }
    assert!(eventually(Duration::from_secs(2), || server
        .stats()
        .readers_gone
        >= 3));
    let next = read_once(server.path(), Duration::from_secs(2)).unwrap();
    assert_eq!(complete_body(&next), body_of(&registry));
    server.stop().unwrap();
}

#[test]
fn an_orphan_blocking_cat_is_served() {
    let dir = TempDir::new("orphan");
    let registry = registry_with(50, 0);
    let server = serve(&dir, &registry);
    // Look the FIFO up now, as a racing reader's path lookup would ...
    let looked_up = LookedUp::new(server.path());
    let old_inode = fifo_inode(server.path());
    // ... then another reader is served, which replaces it ...
    complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
    assert_ne!(fifo_inode(server.path()), old_inode);
    // ... and only now does the racing `cat` open it, blocking, with the
    // writer long gone.
    let own = looked_up.proc_path();
    assert!(std::fs::metadata(&own).is_ok());
    let started = Instant::now();
    let out = output_within(Command::new("cat").arg(&own), Duration::from_secs(5));
    let waited = started.elapsed();
    assert!(out.status.success());
    assert_eq!(complete_body(&out.stdout), body_of(&registry));
    assert_eq!(server.stats().orphans, 1);
    eprintln!("orphan cat served after {waited:?}");
    server.stop().unwrap();
}

#[test]
fn an_orphan_found_by_a_later_serve_is_served_while_reads_go_on() {
    let dir = TempDir::new("handoff");
    let registry = registry_with(50, 0);
    let server = serve(&dir, &registry);
    // A racing reader's path lookup finds the FIFO now ...
    let looked_up = LookedUp::new(server.path());
    // ... another reader is served, which retires it ...
    complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
    // ... and the racing `cat` opens it only now, while a reader keeps
    // reading the path every 600 ms: the first serve at least 0.5 s after
    // the retirement finds the orphan and hands it to the sweeper, which
    // sends it a snapshot of its own. (Reads much faster than that: the
    // spare pool finds it first and hands it over, storm.rs.)
    let reading = Arc::new(AtomicBool::new(true));
    let path = server.path().to_path_buf();
    let reader = {
        let reading = Arc::clone(&reading);
        std::thread::spawn(move || {
            let mut reads = 0;
            while reading.load(Relaxed) {
                complete_body(&read_once(&path, READ_DEADLINE).unwrap());
                reads += 1;
                std::thread::sleep(Duration::from_millis(600));
            }
            reads
        })
    };
    let own = looked_up.proc_path();
    let started = Instant::now();
    let out = output_within(Command::new("cat").arg(&own), Duration::from_secs(5));
    let waited = started.elapsed();
    reading.store(false, Relaxed);
    let reads = reader.join().unwrap();
    assert!(out.status.success());
    assert_eq!(complete_body(&out.stdout), body_of(&registry));
    assert_eq!(server.stats().orphans, 1);
    assert!(reads >= 2, "{reads} reads while the orphan waited");
    eprintln!("orphan cat served after {waited:?}, {reads} reads meanwhile");
    server.stop().unwrap();
}

#[test]
fn a_stale_fifo_of_ours_is_replaced_and_its_waiting_reader_served() {
    let dir = TempDir::new("stale");
    let path = dir.path().join(format!("{}.stats", std::process::id()));
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
    let stale_inode = fifo_inode(&path);
    // A `cat` of the dead holder's pipe, waiting for a writer.
    let path_for_cat = path.clone();
    let cat = std::thread::spawn(move || {
        output_within(
            Command::new("cat").arg(&path_for_cat),
            Duration::from_secs(5),
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    let registry = registry_with(20, 0);
    let server = serve(&dir, &registry);
    assert_ne!(fifo_inode(&path), stale_inode, "replaced");
    let out = cat.join().unwrap();
    assert_eq!(complete_body(&out.stdout), body_of(&registry));
    assert_eq!(
        complete_body(&read_once(&path, READ_DEADLINE).unwrap()),
        body_of(&registry)
    );
    server.stop().unwrap();
}

#[test]
fn fifo_mode_is_exact_and_configurable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let registry = registry_with(1, 0);
    let mode_of =
        |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    let server = serve(&dir, &registry);
    assert_eq!(mode_of(server.path()), 0o600);
    server.stop().unwrap();
    let server = Builder::new()
        .dir(dir.path())
        .registry(Arc::clone(&registry))
        .mode(0o666)
        .start()
        .unwrap();
    // Not narrowed by the umask, also on the fresh FIFO after a read.
    assert_eq!(mode_of(server.path()), 0o666);
    complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
    assert_eq!(mode_of(server.path()), 0o666);
    server.stop().unwrap();
}

#[test]
fn a_second_server_in_the_same_directory_is_refused() {
    let dir = TempDir::new("twice");
    let registry = registry_with(1, 0);
    let first = serve(&dir, &registry);
    let second = Builder::new().dir(dir.path()).start();
    let err = second.unwrap_err();
    assert!(matches!(err, pipe_writer::Error::AlreadyServing { .. }));
    assert!(
        err.to_string()
            .contains(&first.path().display().to_string())
    );
    first.stop().unwrap();
    serve(&dir, &registry).stop().unwrap();
}

#[test]
fn recording_goes_on_while_readers_flood_the_pipe() {
    let dir = TempDir::new("flood");
    let registry = registry_with(1000, 0);
    let server = serve(&dir, &registry);
    let done = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (path, done) = (server.path().to_path_buf(), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Relaxed) {
                    let _ = read_once(&path, RACING_READ_DEADLINE).unwrap();
                }
            })
        })
        .collect();
    let counter = registry.counter("recorded");
    let started = Instant::now();
    for _ in 0..1_000_000 {
        counter.incr();
        registry.incr("by name", 1);
    }
    let took = started.elapsed();
    done.store(true, Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    let stats = server.stats();
    eprintln!("1M handle + 1M by-name records during a read flood: {took:?}; {stats:?}");
    assert_eq!(
        registry.get("recorded"),
        Some(stats_core::Value::Int(1_000_000))
    );
    assert!(stats.snapshots > 10);
    server.stop().unwrap();
}
