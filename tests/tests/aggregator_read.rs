//! End-to-end tests of the aggregator's reading half: real FIFOs, real
//! writers (pipestatic's protocol in Python, the `pipe-writer` library and
//! binary), hostile entries, and `gc`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use host_aggregator::procfs::Staleness;
use host_aggregator::{
    Collector, GcOutcome, Pass, ReadOptions, RefuseReason, Status, gc, read_one,
};
use nix::unistd::{Gid, Uid, chown};
use stats_core::{Registry, Value};
use stats_pipe_tests::hostile::{
    Processes, TempDir, dead_pid, make_fifo, spawn_hostile_writer, spawn_pipestatic_writer,
    spawn_with_reused_pid,
};
use stats_pipe_tests::serve::workspace_binary;

/// Sums are exact across our writer (the `pipe-writer` library, in this
/// process), a pipestatic-protocol writer (Python) and the `pipe-writer`
/// binary fed from a shell: int stays int, overflow and floats become float.
#[test]
fn sums_are_exact_across_our_library_pipestatic_and_the_pipe_writer_binary() {
    let dir = TempDir::new("sums");
    let mut processes = Processes::new();
    let registry = Arc::new(Registry::new());
    registry.incr("requests", 3);
    registry.set("load", 0.5);
    registry.set("big", i64::MAX);
    let library = pipe_writer::Builder::new()
        .dir(dir.path())
        .registry(Arc::clone(&registry))
        .start()
        .unwrap();
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["requests=4", "load=0.25", "big=1"],
    );
    // The shell execs the binary (so its PID is the writer's), feeding it
    // from a here-document.
    let script = format!(
        "exec '{}' --dir '{}' --linger --print-path <<'EOF'\n\
         requests: 5\nload += 0.125\nshell.only += 2\nshell.only += 3\nEOF\n",
        workspace_binary("pipe-writer", "pipe-writer").display(),
        dir.path().display()
    );
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    BufReader::new(shell.stdout.take().unwrap())
        .read_line(&mut printed)
        .unwrap();
    let binary_pid = processes.adopt(shell);
    assert_eq!(
        PathBuf::from(printed.trim()),
        dir.join(format!("{binary_pid}.stats"))
    );

    let mut collector = Collector::new(ReadOptions::new(dir.path()));
    // The binary reads its stdin after it starts serving: wait for its lines.
    let mut pass = collector.collect().unwrap();
    for _ in 0..200 {
        if pass.merged.get("shell.only") == Some(Value::Int(5)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        pass = collector.collect().unwrap();
    }
    assert_eq!(pass.ok_count(), 3, "{:#?}", pass.sources);
    assert_eq!(pass.merged.get("requests"), Some(Value::Int(12)));
    assert_eq!(pass.merged.get("load"), Some(Value::Float(0.875)));
    assert_eq!(pass.merged.get("shell.only"), Some(Value::Int(5)));
    // i64::MAX + 1 overflows: the exact float sum, not a wrapped integer.
    assert_eq!(
        pass.merged.get("big"),
        Some(Value::Float(i64::MAX as f64 + 1.0))
    );
    let ours = pass.source(std::process::id()).unwrap();
    assert!(!ours.foreign && ours.header.is_some());
    assert!(!pass.source(binary_pid).unwrap().foreign);
    assert_eq!(pass.sources.iter().filter(|s| s.foreign).count(), 1);
    library.stop().unwrap();
}

fn status_of<'p>(pass: &'p Pass, path: &Path) -> &'p Status {
    &pass
        .sources
        .iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| panic!("{} not in the pass", path.display()))
        .status
}

#[test]
fn pipestatic_writers_are_summed_on_every_pass_despite_their_unlink_gap() {
    let dir = TempDir::new("pipestatic");
    let mut processes = Processes::new();
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["requests=4", "load=0.25", "big=9223372036854775807"],
    );
    spawn_pipestatic_writer(
        &mut processes,
        dir.path(),
        &["requests=5", "load=0.5", "only.here=1"],
    );
    let mut collector = Collector::new(ReadOptions::new(dir.path()));
    // pipestatic's writer unlinks and re-creates its FIFO after each read:
    // back-to-back passes catch it in that gap, and must retry, not drop it.
    for _ in 0..30 {
        let pass = collector.collect().unwrap();
        assert_eq!(pass.ok_count(), 2, "{:#?}", pass.sources);
        assert_eq!(pass.merged.get("requests"), Some(Value::Int(9)));
        assert_eq!(pass.merged.get("load"), Some(Value::Float(0.75)));
        assert_eq!(pass.merged.get("only.here"), Some(Value::Int(1)));
        // i64::MAX + 0 from the other writer: still exact as an int.
        assert_eq!(pass.merged.get("big"), Some(Value::Int(i64::MAX)));
        for source in &pass.sources {
            assert!(source.foreign, "pipestatic writes no envelope");
            assert_eq!(source.bad_lines, 0);
            assert!(source.last_seen.is_some());
        }
    }
}

/// Every kind of bad entry at once, next to two good writers.
#[test]
fn hostile_directory_gives_good_sum_right_statuses_no_secret_and_keeps_the_deadline() {
    let dir = TempDir::new("hostile");
    let secret_dir = TempDir::new("secret");
    let mut processes = Processes::new();

    // Good: two pipestatic-protocol writers and one that also sends garbage.
    spawn_pipestatic_writer(&mut processes, dir.path(), &["good.a=10", "good.b=0.5"]);
    spawn_pipestatic_writer(&mut processes, dir.path(), &["good.a=20"]);
    let garbage = spawn_hostile_writer(&mut processes, dir.path(), "garbage");

    // A live process whose FIFO nobody serves.
    let silent = processes.sleeper();
    let no_writer = dir.join(format!("{silent}.stats"));
    make_fifo(&no_writer);
    // A writer that never closes, and one that sends 100 MB.
    let held = dir.join(format!(
        "{}.stats",
        spawn_hostile_writer(&mut processes, dir.path(), "never-close")
    ));
    let flood = dir.join(format!(
        "{}.stats",
        spawn_hostile_writer(&mut processes, dir.path(), "flood")
    ));
    // A symlink to a secret, named after a live PID.
    let secret = secret_dir.join("secret");
    std::fs::write(&secret, "secret.token.7f3a9c: 424242\n").unwrap();
    let linked = processes.sleeper();
    let link = dir.join(format!("{linked}.stats"));
    symlink(&secret, &link).unwrap();
    // A regular file, a directory, a FIFO with no PID in its name.
    let plain = dir.join(format!("{}.stats", processes.sleeper()));
    std::fs::write(&plain, "planted.stat: 1\n").unwrap();
    let directory = dir.join("x.stats");
    std::fs::create_dir(&directory).unwrap();
    // A listening Unix socket named after a live PID: its open fails
    // (ENXIO) before any check of what it is.
    let socket = dir.join(format!("{}.stats", processes.sleeper()));
    let _listening = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let unnamed = dir.join("abc.stats");
    make_fifo(&unnamed);
    // A FIFO owned by another user than its process's (root) owner.
    let squatted = dir.join(format!("{}.stats", processes.sleeper()));
    make_fifo(&squatted);
    chown(
        &squatted,
        Some(Uid::from_raw(65534)),
        Some(Gid::from_raw(65534)),
    )
    .unwrap();
    // Stale: a dead PID, and (where the kernel lets us pick PIDs) a FIFO
    // older than the process now holding its PID.
    let dead = dir.join(format!("{}.stats", dead_pid()));
    make_fifo(&dead);
    let reused = spawn_with_reused_pid(&mut processes, dir.path(), Duration::from_millis(300))
        .map(|pid| dir.join(format!("{pid}.stats")));
    if reused.is_none() {
        eprintln!("note: cannot choose PIDs here (ns_last_pid); reused-PID case not checked");
    }

    let mut options = ReadOptions::new(dir.path());
    options.deadline = Duration::from_millis(700);
    let mut collector = Collector::new(options.clone());
    let pass = collector.collect().unwrap();

    // The sum of the good sources only.
    assert_eq!(pass.merged.get("good.a"), Some(Value::Int(31)));
    assert_eq!(pass.merged.get("good.b"), Some(Value::Float(3.0)));
    assert_eq!(pass.merged.len(), 2, "{:?}", pass.merged);

    // The right status for each.
    let garbage_source = pass.source(garbage).unwrap();
    assert_eq!(garbage_source.status, Status::Ok);
    assert_eq!((garbage_source.lines, garbage_source.bad_lines), (2, 4));
    assert_eq!(status_of(&pass, &no_writer), &Status::TimedOut);
    assert_eq!(status_of(&pass, &held), &Status::TimedOut);
    assert_eq!(status_of(&pass, &flood), &Status::TooLarge);
    assert_eq!(
        status_of(&pass, &link),
        &Status::Refused(RefuseReason::Symlink)
    );
    assert_eq!(
        status_of(&pass, &plain),
        &Status::Refused(RefuseReason::NotFifo)
    );
    assert_eq!(
        status_of(&pass, &directory),
        &Status::Refused(RefuseReason::NotFifo)
    );
    assert_eq!(
        status_of(&pass, &socket),
        &Status::Refused(RefuseReason::NotFifo)
    );
    assert_eq!(
        status_of(&pass, &unnamed),
        &Status::Refused(RefuseReason::BadName)
    );
    assert_eq!(
        status_of(&pass, &squatted),
        &Status::Refused(RefuseReason::WrongOwner {
            fifo_uid: 65534,
            process_uid: 0
        })
    );
    assert_eq!(status_of(&pass, &dead), &Status::Stale);
    if let Some(reused) = &reused {
        assert_eq!(status_of(&pass, reused), &Status::Stale);
    }
    assert_eq!(pass.ok_count(), 3);

    // No secret anywhere in what the pass holds.
    let everything = format!("{pass:?}");
    assert!(!everything.contains("secret.token"), "secret leaked");
    assert!(!everything.contains("424242"), "secret leaked");
    assert!(!everything.contains("planted"), "regular file read");

    // The deadline holds, hostile writers and all (slack for a busy machine).
    assert!(
        pass.duration < options.deadline + Duration::from_millis(500),
        "pass took {:?}",
        pass.duration
    );

    // gc: the stale FIFOs only; never a live process's pipe, link or file.
    let mut expected: Vec<PathBuf> = vec![dead.clone()];
    expected.extend(reused.clone());
    expected.sort();
    let listed = gc(dir.path(), true).unwrap();
    let listed_paths: Vec<PathBuf> = listed.iter().map(|a| a.path.clone()).collect();
    assert_eq!(listed_paths, expected);
    assert!(listed.iter().all(|a| a.outcome == GcOutcome::WouldRemove));
    assert!(dead.exists(), "dry run removed something");
    let removed = gc(dir.path(), false).unwrap();
    assert!(removed.iter().all(|a| a.outcome == GcOutcome::Removed));
    assert_eq!(removed.len(), expected.len());
    for action in &removed {
        let why = if action.path == dead {
            Staleness::Dead
        } else {
            Staleness::Reused
        };
        assert_eq!(action.reason, why, "{}", action.path.display());
    }
    for path in &expected {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{} kept",
            path.display()
        );
    }
    for kept in [
        &no_writer, &held, &flood, &link, &plain, &directory, &unnamed, &squatted,
    ] {
        assert!(
            std::fs::symlink_metadata(kept).is_ok(),
            "{} removed",
            kept.display()
        );
    }
    assert!(secret.exists());

    // The good sources are still read after gc.
    let again = collector.collect().unwrap();
    assert_eq!(again.merged.get("good.a"), Some(Value::Int(31)));
}

#[test]
fn read_one_reads_a_single_pipe_through_the_same_checks() {
    let dir = TempDir::new("one");
    let mut processes = Processes::new();
    let pid = spawn_pipestatic_writer(&mut processes, dir.path(), &["x=1", "y=2.5"]);
    let options = ReadOptions::new(dir.path());
    let source = read_one(&dir.join(format!("{pid}.stats")), &options);
    assert_eq!(source.status, Status::Ok);
    assert_eq!(source.pid, Some(pid));
    assert_eq!(source.snapshot.get("y"), Some(Value::Float(2.5)));
    assert_eq!(source.lines, 2);

    let missing = read_one(&dir.join("999999999.stats"), &options);
    assert_eq!(missing.status, Status::Vanished);
    assert_eq!(missing.attempts, options.retries + 1);
}

/// The reader opens pipes `O_NOATIME` (issue 15): reading a FIFO, newly
/// renamed over its path as our writer does after every serve, leaves its
/// access time alone (it used to cost an inode update per pipe and pass).
#[test]
fn reading_a_pipe_leaves_its_access_time() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("noatime");
    let path = dir.join(format!("{}.stats", std::process::id()));
    make_fifo(&path);
    // An access time long before the FIFO's change time: `relatime` would
    // update it on the next read.
    let old = nix::sys::time::TimeSpec::new(1_000_000, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &path,
        &old,
        &nix::sys::time::TimeSpec::UTIME_OMIT,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("set the FIFO's access time");
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || std::fs::write(path, "requests: 3\n"))
    };
    let source = read_one(&path, &ReadOptions::new(dir.path()));
    writer.join().expect("the writer").expect("write the FIFO");
    assert_eq!(source.status, Status::Ok);
    assert_eq!(source.snapshot.get("requests"), Some(Value::Int(3)));
    let after = std::fs::symlink_metadata(&path).expect("the FIFO");
    assert_eq!(after.atime(), 1_000_000, "the read set the access time");
}

/// A FIFO with no writer (any local user can make one) costs a pass the
/// whole deadline once; in the next passes it is given up after a short
/// grace, and read normally as soon as a writer answers on it (issue 12).
/// Writes `lines` once into the FIFO at `path`, from a thread that blocks
/// until a reader opens it: a writer standing in for the process the FIFO
/// is named after.
fn answer_once(path: &Path, lines: &str) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    let lines = lines.to_owned();
    std::thread::spawn(move || {
        let mut fifo = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut fifo, lines.as_bytes()).unwrap();
    })
}

#[test]
fn a_fifo_silent_last_pass_is_given_up_quickly_and_read_once_it_answers() {
    let dir = TempDir::new("silent-fifo");
    let mut processes = Processes::new();
    let path = dir.join(format!("{}.stats", processes.sleeper()));
    make_fifo(&path);
    let mut options = ReadOptions::new(dir.path());
    options.deadline = Duration::from_millis(600);
    let mut collector = Collector::new(options);

    let first = std::time::Instant::now();
    let pass = collector.collect().unwrap();
    assert_eq!(status_of(&pass, &path), &Status::TimedOut);
    assert!(first.elapsed() >= Duration::from_millis(600));

    let second = std::time::Instant::now();
    let pass = collector.collect().unwrap();
    assert_eq!(status_of(&pass, &path), &Status::TimedOut);
    let took = second.elapsed();
    assert!(
        took < Duration::from_millis(300),
        "second pass took {took:?}"
    );

    // A writer shows up: it answers within the grace and is read.
    let writer = answer_once(&path, "late: 1\n");
    let pass = collector.collect().unwrap();
    writer.join().unwrap();
    assert_eq!(status_of(&pass, &path), &Status::Ok);
    assert_eq!(pass.merged.get("late"), Some(Value::Int(1)));
}

/// A pipe of a process the reader keeps across passes (issue 15: by
/// pidfd, instead of a `stat` of `/proc/<pid>` per pass) whose process
/// dies while a pass waits on it is not waited on until the deadline: the
/// exit is heard at once and the checks, made in full again, find the
/// pipe stale. Without the exit, a FIFO still at its path with no writer
/// is waited on for the whole deadline.
#[test]
fn a_kept_writer_that_dies_while_a_pass_waits_on_it_ends_the_wait() {
    let dir = TempDir::new("dies-mid-pass");
    let mut processes = Processes::new();
    let pid = processes.sleeper();
    let path = dir.join(format!("{pid}.stats"));
    make_fifo(&path);
    let mut options = ReadOptions::new(dir.path());
    options.deadline = Duration::from_secs(20);
    let mut collector = Collector::new(options);
    // Two passes answered (this thread's writes stand for the process's),
    // so the second keeps the process.
    for round in 1..=2 {
        let writer = answer_once(&path, &format!("round: {round}\n"));
        let pass = collector.collect().unwrap();
        writer.join().unwrap();
        assert_eq!(status_of(&pass, &path), &Status::Ok);
        assert_eq!(pass.merged.get("round"), Some(Value::Int(round)));
    }

    // Nobody answers this time; the process dies 300 ms into the pass.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        processes.kill(pid);
    });
    let started = std::time::Instant::now();
    let pass = collector.collect().unwrap();
    let took = started.elapsed();
    killer.join().unwrap();
    assert_eq!(
        status_of(&pass, &path),
        &Status::Stale,
        "a dead writer's pipe: {:?}",
        status_of(&pass, &path)
    );
    assert!(
        took < Duration::from_secs(10),
        "the pass waited {took:?} on a dead writer's pipe (deadline 20 s)"
    );
}
