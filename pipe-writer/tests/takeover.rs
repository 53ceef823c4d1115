//! Issue 12, point 5: the pipe directory cannot be taken over. The
//! `pipe-writer` binary refuses a directory another user owns, reports a
//! FIFO of another user put at its path (and never serves into it), and
//! reports a full disk by its errno. (Tests run as root: "another user" is
//! uid 65534, `nobody`, made with `chown`.)

mod util;

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, fstat};
use nix::unistd::{Gid, Uid, chown, mkfifo};
use stats_core::{Snapshot, Value};
use util::{ChildGuard, ReadFail, TempDir, complete_body, eventually, read_once};

const NOBODY: u32 = 65_534;
/// The binary checks its path once a second; this leaves room for a busy
/// machine.
const NOTICE: Duration = Duration::from_secs(10);

/// A running `pipe-writer` binary whose stderr lines arrive on a channel.
struct Writer {
    child: ChildGuard,
    stdin: Option<std::process::ChildStdin>,
    stderr: Receiver<String>,
    path: PathBuf,
}

impl Writer {
    /// Starts the binary in `dir`, fed `input`, and waits until it serves.
    fn start(dir: &Path, input: &str) -> Writer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pipe-writer"))
            .arg("--dir")
            .arg(dir)
            .arg("--print-path")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take();
        std::io::Write::write_all(stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let child = ChildGuard(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let path = PathBuf::from(line.trim_end());
        assert_eq!(path, dir.join(format!("{}.stats", child.pid())));
        Writer {
            child,
            stdin,
            stderr: rx,
            path,
        }
    }

    /// The first stderr line holding every one of `parts`; panics with all
    /// lines seen if none does within [`NOTICE`].
    fn stderr_line(&self, parts: &[&str]) -> String {
        let end = Instant::now() + NOTICE;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Ok(line) = self.stderr.recv_timeout(left) else {
                break;
            };
            if parts.iter().all(|part| line.contains(part)) {
                return line;
            }
            seen.push(line);
        }
        panic!("no stderr line with {parts:?} within {NOTICE:?}; saw {seen:#?}");
    }

    /// Its stats, once a complete snapshot holds `name` = `value`.
    fn wait_for_stat(&self, name: &str, value: i64) {
        let mut last = None;
        let found = eventually(NOTICE, || {
            let Ok(bytes) = read_once(&self.path, Duration::from_secs(1)) else {
                return false;
            };
            let snapshot = Snapshot::parse(complete_body(&bytes), 1 << 16).0;
            last = snapshot.get(name);
            last == Some(Value::Int(value))
        });
        assert!(
            found,
            "{name} never became {value} at {:?} (last {last:?})",
            self.path
        );
    }

    /// Closes stdin and expects a clean exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait_within(Duration::from_secs(5)).unwrap();
        assert!(status.success(), "{status:?}");
    }
}

fn share_as(dir: &Path, owner: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    chown(dir, Some(Uid::from_raw(owner)), Some(Gid::from_raw(owner))).unwrap();
}

#[test]
fn the_binary_refuses_a_directory_owned_by_another_user() {
    let dir = TempDir::new("bin-owner");
    share_as(dir.path(), NOBODY);
    let out = util::output_within(
        Command::new(env!("CARGO_BIN_EXE_pipe-writer"))
            .arg("--dir")
            .arg(dir.path()),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        format!("stats pipe directory {} ", dir.path().display()),
        "owned by user 65534 (nobody)".to_owned(),
        "refused".to_owned(),
    ] {
        assert!(stderr.contains(&part), "{part:?} not in {stderr}");
    }
    assert!(dir.list().is_empty(), "{:?}", dir.list());

    // Owned by root (us), shared and sticky: served.
    share_as(dir.path(), 0);
    let writer = Writer::start(dir.path(), "jobs += 2\n");
    writer.wait_for_stat("jobs", 2);
    writer.finish();
}

#[test]
fn the_binary_reports_a_squatted_path_and_never_serves_into_it() {
    let dir = TempDir::new("bin-squat");
    share_as(dir.path(), 0);
    let writer = Writer::start(dir.path(), "jobs += 7\n");
    writer.wait_for_stat("jobs", 7);

    // Root (or whoever may) removes our FIFO; another user's takes the name.
    let path = writer.path.clone();
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path, Mode::from_bits_truncate(0o666)).unwrap();
    chown(&path, Some(Uid::from_raw(NOBODY)), None).unwrap();
    let line = writer.stderr_line(&[
        &path.display().to_string(),
        "belongs to user 65534",
        "not serving into it",
    ]);
    assert!(line.starts_with("pipe-writer: "), "{line}");

    // Reported, not written to: across several checks nothing arrives, and
    // the writer's own spare FIFOs are gone; the squatter's FIFO stays.
    let entries = |dir: &TempDir| dir.list();
    assert!(
        eventually(NOTICE, || entries(&dir).len() == 1),
        "{:?}",
        entries(&dir)
    );
    assert_eq!(
        read_once(&path, Duration::from_millis(2500)),
        Err(ReadFail::TimedOut { got: 0 })
    );
    assert_eq!(std::fs::symlink_metadata(&path).unwrap().uid(), NOBODY);

    // Once the squatter's FIFO is removed, the same stats are served again.
    std::fs::remove_file(&path).unwrap();
    writer.wait_for_stat("jobs", 7);
    assert_eq!(std::fs::symlink_metadata(&path).unwrap().uid(), 0);
    writer.finish();
}

/// A tmpfs with room for only a few files, unmounted (lazily) on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, inodes: u32) -> SmallDisk {
        std::fs::create_dir(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size=1m,nr_inodes={inodes},mode=1777"))
            .arg("pipe-writer-test-full")
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test needs root with CAP_SYS_ADMIN to mount a tiny tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Opens `path` for reading without waiting, as a reader that then never
/// reads nor closes: the FIFO it got cannot be reused by the writer.
fn hold_reader(path: &Path) -> (OwnedFd, u64) {
    let fd = open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let ino = fstat(&fd).unwrap().st_ino;
    (fd, ino)
}

#[test]
fn the_binary_reports_a_full_disk_by_its_errno() {
    let root = TempDir::new("bin-enospc");
    let disk = SmallDisk::mount(&root.path().join("disk"), 16);
    let dir = disk.0.clone();
    let writer = Writer::start(&dir, "jobs += 3\n");
    writer.wait_for_stat("jobs", 3);

    // Every inode taken: the writer can make no new FIFO.
    let mut fillers = 0;
    loop {
        match std::fs::File::create(dir.join(format!("filler-{fillers}"))) {
            Ok(_) => fillers += 1,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => panic!("filling the inodes failed otherwise: {e}"),
        }
    }
    // Readers that never finish hold FIFO after FIFO: after the third, the
    // FIFO at the path is served and all 3 spares are held, so the writer
    // must make a new FIFO for its next serve, and cannot.
    let mut held = Vec::new();
    for _ in 0..3 {
        let (fd, ino) = hold_reader(&writer.path);
        held.push(fd);
        let swapped = eventually(NOTICE, || {
            std::fs::symlink_metadata(&writer.path).map_or(true, |m| m.ino() != ino)
        });
        assert!(swapped, "the writer never served the held reader");
    }
    let line = writer.stderr_line(&["ENOSPC: No space left on device"]);
    assert!(line.contains(&dir.display().to_string()), "{line}");
    assert!(!line.contains("removed?"), "{line}");

    // Room again: served again, same stats.
    drop(held);
    for n in 0..fillers {
        std::fs::remove_file(dir.join(format!("filler-{n}"))).unwrap();
    }
    writer.wait_for_stat("jobs", 3);
    writer.finish();
    drop(disk);
}
