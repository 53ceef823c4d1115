//! Leftovers of dead writers: as it starts, a writer removes the FIFOs that
//! processes of its own user left in its directory when they died without
//! stopping (SIGKILL, a crash, a power cut on a persistent directory), so a
//! `cat` on such a path fails at once (`No such file or directory`) instead
//! of waiting for a writer that is gone. The aggregator's `serve` does the
//! same for every user's pipes, every few seconds (issue 13).
//!
//! Two directory listings per start (the pipe directory and our user's
//! private spare directory in it, `.spares-<uid>`), then work only for
//! names a writer makes: `<pid>.stats` and its spares `.<pid>.stats.tmp`
//! and `.<pid>.stats.<n>.tmp` (in the spare directory; in the pipe
//! directory itself where writers from before the spare directory left
//! them). A FIFO is removed only if it is owned by our
//! effective user, is not a symbolic link (never followed), and its PID is
//! dead or now held by a process that started after the FIFO last changed
//! ([`STALE_MARGIN`]) and does not hold it open ([`holds_file`]: every
//! writer holds its FIFOs by descriptor, so that check tells a reused PID
//! from its own writer whatever the clock did). Just before the unlink the
//! name is checked to hold the same FIFO still; readers blocked in opening
//! it are released with end-of-file.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::sys::stat::{FileStat, SFlag};
use nix::unistd::Pid;

use crate::dir::{Area, PipeDir};
use crate::process_stats::start_time;

/// How much older than the start of the process now holding its PID a FIFO
/// must be to count as an earlier holder's: the start time is exact to a
/// clock tick (10 ms) and file times come from a coarse clock. The
/// aggregator uses the same margin.
pub const STALE_MARGIN: Duration = Duration::from_millis(100);

/// Whether process `pid` has the file `(dev, ino)` open, by any descriptor
/// (an `O_PATH` one too, as a writer holds its FIFOs): a look at every
/// entry of `/proc/<pid>/fd`. `None` when that cannot be read (the process
/// is gone, or is another user's and we are not root).
pub fn holds_file(pid: u32, dev: u64, ino: u64) -> Option<bool> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    for fd in fds {
        let Ok(fd) = fd else {
            continue;
        };
        // Followed: the magic link leads to the open file itself.
        if std::fs::metadata(fd.path()).is_ok_and(|m| (m.dev(), m.ino()) == (dev, ino)) {
            return Some(true);
        }
    }
    Some(false)
}

/// The inode number of the initial PID namespace, fixed by the kernel
/// (`PROC_PID_INIT_INO` in `include/linux/proc_ns.h`).
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// Whether this process runs in a PID namespace other than the initial one
/// (a container): `/proc/self/ns/pid` is then another namespace. (`NSpid:`
/// in `/proc/self/status` would not tell: a container's own `/proc` shows
/// only its PIDs.) Pipe names carry PIDs of the writer's namespace, so
/// from another one a host writer's PID reads as dead: nothing is judged
/// from there. (Processes of several PID namespaces sharing one pipe
/// directory are not supported anyway: the aggregator checks PIDs too.)
pub fn nested_pid_namespace() -> bool {
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|ns| ns.ino() != INITIAL_PID_NAMESPACE)
}

/// Removes the stale FIFOs of our user's dead writers in `dir` (not
/// `own_pid`'s: a server replaces its own name itself). Returns how many it
/// removed. Best effort: whatever cannot be listed, looked at or removed is
/// left as it is; nothing at all from a nested PID namespace
/// ([`nested_pid_namespace`]).
pub(crate) fn remove_dead(dir: &PipeDir, own_pid: u32) -> usize {
    if nested_pid_namespace() {
        return 0;
    }
    let uid = dir.uid().as_raw();
    let mut holders: HashMap<u32, Holder> = HashMap::new();
    let mut removed = 0;
    // The pipe directory (`<pid>.stats`, and spares of writers from before
    // the spare directory), then our private spare directory.
    for area in [Area::Pipes, Area::Spares] {
        let Ok(entries) = dir.entries(area) else {
            continue;
        };
        removed += remove_dead_in(dir, area, entries, own_pid, uid, &mut holders);
    }
    removed
}

/// [`remove_dead`] over the listing `entries` of `area`.
fn remove_dead_in(
    dir: &PipeDir,
    area: Area,
    entries: Vec<(String, Option<nix::dir::Type>)>,
    own_pid: u32,
    uid: u32,
    holders: &mut HashMap<u32, Holder>,
) -> usize {
    let mut removed = 0;
    for (name, kind) in entries {
        let Some(pid) = leftover_pid(&name) else {
            continue;
        };
        if pid == own_pid || kind.is_some_and(|kind| kind != nix::dir::Type::Fifo) {
            continue;
        }
        let Ok(stat) = dir.stat(area, &name) else {
            continue;
        };
        let is_fifo =
            SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFIFO;
        if !is_fifo || stat.st_uid != uid {
            continue;
        }
        let holder = *holders.entry(pid).or_insert_with(|| Holder::of(pid));
        if holder.left(pid, &stat) && dir.remove_leftover(area, &name, &stat) {
            removed += 1;
        }
    }
    removed
}

/// What holds a PID now.
#[derive(Clone, Copy, Debug)]
enum Holder {
    /// No process.
    Dead,
    /// A process that started then.
    Started(SystemTime),
    /// A process `/proc` says nothing about: left alone.
    Unknown,
}

impl Holder {
    fn of(pid: u32) -> Holder {
        if !is_alive(pid) {
            return Holder::Dead;
        }
        match start_time(pid) {
            Ok(started) => Holder::Started(started),
            // Exited between the two looks.
            Err(_) if !is_alive(pid) => Holder::Dead,
            Err(_) => Holder::Unknown,
        }
    }

    /// Whether the FIFO `stat` named after `pid` was left by an earlier,
    /// dead holder of the PID.
    fn left(self, pid: u32, stat: &FileStat) -> bool {
        match self {
            Holder::Dead => true,
            Holder::Started(started) => {
                changed_at(stat) + STALE_MARGIN < started
                    && holds_file(pid, stat.st_dev, stat.st_ino) == Some(false)
            }
            Holder::Unknown => false,
        }
    }
}

/// `kill(pid, 0)`: only `ESRCH` means no such process (`EPERM`: another
/// user's, alive).
fn is_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(raw) if raw > 0 => !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH)),
        _ => false,
    }
}

fn changed_at(stat: &FileStat) -> SystemTime {
    let secs = u64::try_from(stat.st_ctime).unwrap_or(0);
    let nanos = u32::try_from(stat.st_ctime_nsec).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// The PID of a name a writer makes: `<pid>.stats`, `.<pid>.stats.tmp` or
/// `.<pid>.stats.<n>.tmp`, the PID written as `format!` writes it.
fn leftover_pid(name: &str) -> Option<u32> {
    let pid = match name.strip_prefix('.') {
        Some(hidden) => {
            let (pid, rest) = hidden
                .split_once(".stats.")
                .or_else(|| hidden.split_once(".traces."))?;
            let spare = rest == "tmp"
                || rest
                    .strip_suffix(".tmp")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            spare.then_some(pid)?
        }
        None => name
            .strip_suffix(".stats")
            .or_else(|| name.strip_suffix(".traces"))?,
    };
    let canonical =
        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !(pid.starts_with('0'));
    canonical.then(|| pid.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_writer_makes() {
        let cases = [
            ("42.stats", Some(42)),
            ("42.traces", Some(42)),
            (".42.traces.3.tmp", Some(42)),
            (".42.stats.tmp", Some(42)),
            (".42.stats.7.tmp", Some(42)),
            (".42.stats.12.tmp", Some(42)),
            ("042.stats", None),
            ("0.stats", None),
            (".42.stats", None),
            (".42.stats.x.tmp", None),
            (".42.stats..tmp", None),
            ("42.stats.tmp", None),
            ("x.stats", None),
            ("+42.stats", None),
            ("99999999999.stats", None),
            (".stats", None),
        ];
        for (name, want) in cases {
            assert_eq!(leftover_pid(name), want, "{name}");
        }
    }

    #[test]
    fn a_process_holds_its_own_open_files_and_not_others() {
        let me = std::process::id();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        let held = file.metadata().unwrap();
        assert_eq!(holds_file(me, held.dev(), held.ino()), Some(true));
        let other = std::fs::metadata("/").unwrap();
        assert_eq!(holds_file(me, other.dev(), other.ino()), Some(false));
        assert_eq!(holds_file(u32::MAX, held.dev(), held.ino()), None);
    }

    fn mkfifo(path: &std::path::Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_starting_server_removes_dead_writers_fifos_of_our_user_only() {
        use std::io::Read;
        let dir = std::env::temp_dir().join(format!("leftovers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let (dead, other) = (dead_pid(), dead_pid());
        let mut sleeper = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let live = sleeper.id();
        // Spares in our private spare directory, and (older writers) in
        // the pipe directory itself.
        let spare_dir = crate::spare_dir_name(nix::unistd::geteuid().as_raw());
        std::fs::create_dir(dir.join(&spare_dir)).unwrap();
        std::fs::set_permissions(
            dir.join(&spare_dir),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let gone = [
            format!("{dead}.stats"),
            format!(".{dead}.stats.tmp"),
            format!(".{dead}.stats.2.tmp"),
            format!("{spare_dir}/.{dead}.stats.tmp"),
            format!("{spare_dir}/.{dead}.stats.1.tmp"),
        ];
        for name in &gone {
            mkfifo(&dir.join(name));
        }
        // Kept: a live process's FIFO, names a writer never makes, what is
        // not a FIFO, and (as root) another user's FIFO.
        let kept = [
            format!("{live}.stats"),
            format!("0{dead}.stats"),
            format!(".{dead}.stats.x.tmp"),
            format!("{other}.stats"),
            format!(".{other}.stats.tmp"),
            format!(".{other}.stats.1.tmp"),
            format!("{spare_dir}/.{live}.stats.tmp"),
        ];
        for name in kept[..3].iter().chain(&kept[6..]) {
            mkfifo(&dir.join(name));
        }
        std::fs::write(dir.join(&kept[3]), "planted: 1\n").unwrap();
        std::os::unix::fs::symlink(dir.join(&gone[0]), dir.join(&kept[4])).unwrap();
        mkfifo(&dir.join(&kept[5]));
        let root = nix::unistd::geteuid().is_root();
        if root {
            let nobody = nix::unistd::Uid::from_raw(65534);
            nix::unistd::chown(&dir.join(&kept[5]), Some(nobody), None).unwrap();
        }
        // A `cat` already waiting on the dead writer's pipe.
        let blocked = {
            let path = dir.join(&gone[0]);
            std::thread::spawn(move || {
                let mut read = Vec::new();
                std::fs::File::open(path)?.read_to_end(&mut read)?;
                Ok::<_, std::io::Error>(read)
            })
        };
        std::thread::sleep(Duration::from_millis(100));

        let server = crate::Builder::new().dir(&dir).start().unwrap();
        for name in &gone {
            assert!(
                std::fs::symlink_metadata(dir.join(name)).is_err(),
                "{name} is still there"
            );
        }
        for name in &kept {
            if name == &kept[5] && !root {
                continue;
            }
            assert!(
                std::fs::symlink_metadata(dir.join(name)).is_ok(),
                "{name} was removed"
            );
        }
        assert_eq!(blocked.join().unwrap().unwrap(), b"", "released with EOF");
        server.stop().unwrap();
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reused_pid_is_told_by_the_clock_and_by_what_its_process_holds() {
        let dir = std::env::temp_dir().join(format!("leftovers-held-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("fifo");
        mkfifo(&path);
        let stat = nix::sys::stat::lstat(&path).unwrap();
        let me = std::process::id();
        let later = Holder::Started(SystemTime::now() + Duration::from_secs(3600));
        let earlier = Holder::Started(SystemTime::now() - Duration::from_secs(3600));
        assert!(later.left(me, &stat), "older than its PID's process");
        assert!(!earlier.left(me, &stat), "made by its PID's process");
        // Held open (as a writer holds its FIFOs): its process's, whatever
        // the clock says.
        let held = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        assert!(!later.left(me, &stat));
        drop(held);
        assert!(Holder::Dead.left(me, &stat));
        assert!(!Holder::Unknown.left(me, &stat));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_process_in_a_new_pid_namespace_knows_it() {
        // `unshare --pid` (root) runs this very check in a new namespace,
        // with and without a /proc of its own.
        let initial = format!("{INITIAL_PID_NAMESPACE}");
        let here = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        assert_eq!(nested_pid_namespace(), here.to_string() != initial);
        for extra in [&["--mount-proc"][..], &[]] {
            let nested = std::process::Command::new("unshare")
                .args(["--pid", "--fork"])
                .args(extra)
                .args(["stat", "-L", "-c", "%i", "/proc/self/ns/pid"])
                .output();
            match nested {
                Ok(out) if out.status.success() => {
                    let ino = String::from_utf8_lossy(&out.stdout);
                    assert_ne!(ino.trim(), initial, "{extra:?}");
                }
                _ => eprintln!("unshare --pid not available here: not checked"),
            }
        }
    }

    #[test]
    fn a_dead_pid_is_dead_and_a_live_one_started_before_now() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(matches!(Holder::of(pid), Holder::Dead));
        let Holder::Started(started) = Holder::of(std::process::id()) else {
            panic!("we are alive");
        };
        assert!(started <= SystemTime::now());
    }
}
