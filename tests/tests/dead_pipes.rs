//! Dead pipes go away by themselves (issue 13): a SIGKILLed `pipe-writer`'s
//! FIFO and spares are removed by a running `serve` within a sweep
//! (`--gc-interval`), or by the next writer of the same user to start in
//! the directory; a `cat` on the dead path then fails at once, and one that
//! was already waiting is released. Real processes, FIFOs, `cat` and
//! `timeout`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use stats_core::envelope::{Verdict, verify};
use stats_pipe_tests::faults::{entries_of, fifos_of, sigkill};
use stats_pipe_tests::live::{Feeder, TempDir, wait_for};
use stats_pipe_tests::serve::{first_stdout_line, workspace_binary};

/// A `host-aggregator serve` with its stderr in a file, killed on drop.
struct Serve {
    child: Child,
    stderr: PathBuf,
}

impl Serve {
    fn start(dir: &Path, gc_interval: &str) -> Serve {
        let stderr = dir.with_extension("serve-stderr");
        let mut child = Command::new(workspace_binary("host-aggregator", "host-aggregator"))
            .args(["serve", "--listen", "127.0.0.1:0", "--pipe-dir"])
            .arg(dir)
            .args(["--gc-interval", gc_interval])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("create the stderr file"))
            .spawn()
            .expect("spawn host-aggregator serve");
        let first = first_stdout_line(&mut child, "host-aggregator serve");
        assert!(first.starts_with("listening on http://"), "{first:?}");
        Serve { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// A writer with its pipe and three spares in place (the spares are made
/// just after the pipe).
fn writer_with_spares(dir: &Path, line: &str) -> Feeder {
    let mut writer = Feeder::start(dir);
    writer.send(line);
    let pid = writer.pid();
    wait_for("the writer's three spares", Duration::from_secs(10), || {
        if fifos_of(dir, pid) == 4 {
            Ok(())
        } else {
            Err(format!("{:?}", entries_of(dir, pid)))
        }
    });
    writer
}

/// SIGKILLs the writer and reaps it (a zombie still looks alive).
fn kill(writer: Feeder) -> u32 {
    let pid = writer.pid();
    sigkill(pid);
    drop(writer);
    pid
}

/// `timeout <limit> cat <path>` and how long it took.
fn timed_cat(path: &Path, limit: &str) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new("timeout")
        .arg(limit)
        .arg("cat")
        .arg(path)
        .output()
        .expect("run timeout cat");
    (output, started.elapsed())
}

fn assert_cat_serves(path: &Path, stat: &str) {
    let (output, took) = timed_cat(path, "3");
    assert!(
        output.status.success(),
        "cat {}: {output:?}",
        path.display()
    );
    let Verdict::Complete { .. } = verify(&output.stdout) else {
        panic!("not a complete snapshot: {output:?}");
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(stat), "{stat:?} not in {text}");
    assert!(took < Duration::from_secs(2), "cat took {took:?}");
}

#[test]
fn serve_removes_a_killed_writers_pipe_and_spares_and_never_a_live_ones() {
    let dir = TempDir::new("dead-serve");
    let live = writer_with_spares(dir.path(), "alive: 1");
    let doomed = writer_with_spares(dir.path(), "doomed: 1");
    let live_path = dir.path().join(format!("{}.stats", live.pid()));
    let serve = Serve::start(dir.path(), "1s");

    // Its pipe and spares, and where the filesystem allows, each FIFO's own
    // second name: gc removes and counts every name.
    let names = entries_of(dir.path(), doomed.pid()).len();
    let pid = kill(doomed);
    let killed_at = Instant::now();
    let dead_path = dir.path().join(format!("{pid}.stats"));
    // A `cat` started before the sweep waits on the dead FIFO...
    let waiting = {
        let path = dead_path.clone();
        std::thread::spawn(move || timed_cat(&path, "10"))
    };
    wait_for(
        "the dead writer's FIFOs to go",
        Duration::from_secs(5),
        || {
            let names = entries_of(dir.path(), pid);
            if names.is_empty() {
                Ok(())
            } else {
                Err(format!("{names:?}"))
            }
        },
    );
    let gone_after = killed_at.elapsed();
    eprintln!("pipe and spares gone {gone_after:?} after SIGKILL (--gc-interval 1s)");
    assert!(gone_after < Duration::from_secs(3), "{gone_after:?}");

    // ...and is released by the sweep, reading nothing: not a hang.
    let (output, took) = waiting.join().expect("the waiting cat");
    eprintln!("a cat waiting on the dead pipe returned after {took:?}");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A `cat` from now on fails at once.
    let (output, took) = timed_cat(&dead_path, "3");
    eprintln!("timeout 3 cat on the dead path failed after {took:?}");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    let told = serve.stderr();
    assert!(
        told.contains(&format!(
            "gc: removed {names} stale pipe(s) in {}",
            dir.path().display()
        )) && told.contains(&format!("{pid}.stats (PID {pid} is dead)")),
        "serve's stderr: {told}"
    );

    // The live writer, read or idle, keeps its pipe and spares over three
    // more sweeps.
    assert_cat_serves(&live_path, "alive: 1");
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(fifos_of(dir.path(), live.pid()), 4);
    assert_cat_serves(&live_path, "alive: 1");
    assert_eq!(
        serve.stderr().matches("gc: removed").count(),
        1,
        "{}",
        serve.stderr()
    );
}

#[test]
fn gc_interval_0s_leaves_a_dead_writers_pipe() {
    let dir = TempDir::new("dead-nogc");
    let doomed = writer_with_spares(dir.path(), "doomed: 1");
    let serve = Serve::start(dir.path(), "0s");
    let pid = kill(doomed);
    std::thread::sleep(Duration::from_millis(2500));
    let names = entries_of(dir.path(), pid);
    assert_eq!(fifos_of(dir.path(), pid), 4, "nothing swept: {names:?}");
    // So `cat` waits for a writer that is gone, as before issue 13.
    let (output, _) = timed_cat(&dir.path().join(format!("{pid}.stats")), "1");
    assert_eq!(output.status.code(), Some(124), "{output:?}");
    assert!(!serve.stderr().contains("gc:"), "{}", serve.stderr());
}

#[test]
fn a_starting_writer_removes_dead_writers_fifos_of_its_user_only() {
    let dir = TempDir::new("dead-writer");
    let pid = kill(writer_with_spares(dir.path(), "doomed: 1"));
    assert_eq!(fifos_of(dir.path(), pid), 4, "no serve, no sweep");
    // A dead writer's FIFO of another user: not ours to judge.
    let foreign_pid = {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("reap true");
        pid
    };
    let foreign = dir.path().join(format!("{foreign_pid}.stats"));
    nix::unistd::mkfifo(&foreign, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None)
        .expect("chown the FIFO to nobody (tests run as root)");

    let next = Feeder::start(dir.path());
    assert_eq!(
        entries_of(dir.path(), pid),
        Vec::<String>::new(),
        "the new writer removed the dead one's pipe and spares"
    );
    let (output, took) = timed_cat(&dir.path().join(format!("{pid}.stats")), "3");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let meta = std::fs::symlink_metadata(&foreign).expect("another user's FIFO stays");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    assert!(!entries_of(dir.path(), next.pid()).is_empty());
    drop(next);
}
