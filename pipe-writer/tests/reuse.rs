//! The spare-FIFO pool: sequential readers are served by a few FIFOs taken
//! in turn (no FIFO made per serve), and a FIFO whose reader is still
//! attached is never put back at the path.

mod util;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, fstat};
use stats_core::envelope::{Verdict, verify};
use util::{
    TempDir, bare_builder, body_of, complete_body, eventually, output_within, read_once,
    read_to_end, registry_with, stalling_server,
};

/// The FIFO at `path` now: its inode, and a descriptor that keeps the inode
/// alive so the filesystem cannot hand its number to another file.
fn fifo_at(path: &Path) -> (u64, OwnedFd) {
    let fd = open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    (fstat(&fd).unwrap().st_ino, fd)
}

/// Inodes seen at the path, each held alive.
#[derive(Default)]
struct Seen(Vec<(u64, OwnedFd)>);

impl Seen {
    fn record(&mut self, path: &Path) -> u64 {
        let (ino, fd) = fifo_at(path);
        if !self.0.iter().any(|(seen, _)| *seen == ino) {
            self.0.push((ino, fd));
        }
        ino
    }

    fn distinct(&self) -> usize {
        self.0.len()
    }
}

/// `cat` of `path` (within 5 s) gets exactly one whole snapshot of
/// `registry`.
fn cat_gets_one_whole_snapshot(path: &Path, registry: &stats_core::Registry, round: usize) {
    let out = output_within(Command::new("cat").arg(path), Duration::from_secs(5));
    assert!(out.status.success(), "round {round}: {out:?}");
    assert_eq!(
        complete_body(&out.stdout),
        body_of(registry),
        "round {round}"
    );
}

#[test]
fn sequential_cats_are_served_by_a_few_fifos_in_turn() {
    let dir = TempDir::new("reuse");
    let registry = registry_with(100, 0);
    let server = bare_builder(&dir, &registry).start().unwrap();
    let mut seen = Seen::default();
    let mut at_path = Vec::new();
    for round in 0..100 {
        at_path.push(seen.record(server.path()));
        cat_gets_one_whole_snapshot(server.path(), &registry, round);
    }
    eprintln!("100 cats served by {} FIFOs: {at_path:?}", seen.distinct());
    // One FIFO per serve would be 100. The pool is the path's FIFO and three
    // spares; a spare the orphan sweeper is probing at the very moment of a
    // swap is skipped (a fresh FIFO then), hence some slack.
    assert!(seen.distinct() <= 8, "{} FIFOs", seen.distinct());
    // Never the same FIFO twice in a row: every reader gets its own.
    assert!(at_path.windows(2).all(|w| w[0] != w[1]), "{at_path:?}");
    server.stop().unwrap();
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}

#[test]
fn a_fifo_with_a_reader_still_attached_is_never_put_back() {
    let dir = TempDir::new("attached");
    // Larger than any pipe, so the reader below stalls its snapshot: the
    // orphan sweeper then never writes to it either, and only reuse could.
    let (registry, server) = stalling_server(&dir);
    let mut seen = Seen::default();
    let attached_ino = seen.record(server.path());
    let attached = open(
        server.path(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(3), || server.stats().stalls == 1));
    // It reads what it was sent, to end-of-file, but stays open: a `cat`
    // slow to exit.
    let first = read_to_end(&attached, Duration::from_secs(2)).unwrap();
    assert!(matches!(verify(&first), Verdict::Incomplete(_)));

    let mut at_path = Vec::new();
    for round in 0..20 {
        let ino = seen.record(server.path());
        assert_ne!(
            ino, attached_ino,
            "round {round}: put back with a reader on it"
        );
        at_path.push(ino);
        let bytes = read_once(server.path(), Duration::from_secs(3)).unwrap();
        assert_eq!(complete_body(&bytes), body_of(&registry), "round {round}");
    }
    eprintln!("attached reader on {attached_ino}; then served by {at_path:?}");
    assert!(
        seen.distinct() < 20,
        "the other FIFOs were reused: {at_path:?}"
    );
    // Nothing more ever reached the attached reader.
    let more = read_to_end(&attached, Duration::from_secs(1)).unwrap();
    assert!(more.is_empty(), "a second snapshot: {} bytes", more.len());
    assert_eq!(server.stats().orphans, 0);
    drop(attached);
    server.stop().unwrap();
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}

/// Whether `path`'s filesystem is tmpfs, where FIFOs get no own names
/// (each would take an inode).
fn on_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// The serving thread opens its FIFOs by their own names in the spare
/// directory (a second hard link each, issue 15) rather than through
/// `/proc/self/fd`: the FIFO at the path has one there, every name there is
/// one a writer makes (so a dead writer's are cleaned up), none is left
/// behind, and a name removed behind the writer's back only costs the
/// shortcut: readers are still served.
#[test]
fn the_fifo_at_the_path_has_an_own_name_and_serves_without_it() {
    let dir = TempDir::new("own-names");
    let registry = registry_with(20, 0);
    let server = bare_builder(&dir, &registry).start().unwrap();
    let pid = std::process::id();
    let cat = |round: usize| cat_gets_one_whole_snapshot(server.path(), &registry, round);
    for round in 0..10 {
        cat(round);
    }
    let spares = dir
        .path()
        .join(pipe_writer::spare_dir_name(nix::unistd::geteuid().as_raw()));
    let entries = || -> Vec<(String, u64, u64)> {
        std::fs::read_dir(&spares)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let meta = std::fs::symlink_metadata(e.path()).unwrap();
                use std::os::unix::fs::MetadataExt;
                (
                    e.file_name().into_string().unwrap(),
                    meta.ino(),
                    meta.nlink(),
                )
            })
            .collect()
    };
    for (name, _, _) in entries() {
        let number = name
            .strip_prefix(&format!(".{pid}.stats."))
            .and_then(|rest| rest.strip_suffix("tmp"));
        assert!(
            number.is_some_and(|n| n.is_empty() || n.trim_end_matches('.').parse::<u64>().is_ok()),
            "a name no writer makes: {name}"
        );
    }
    let (at_path, _held) = fifo_at(server.path());
    let own: Vec<_> = entries().into_iter().filter(|e| e.1 == at_path).collect();
    if on_tmpfs(dir.path()) {
        assert!(own.is_empty(), "own names on tmpfs: {own:?}");
    } else {
        assert_eq!(
            own.len(),
            1,
            "the FIFO at the path by name: {:?}",
            entries()
        );
        assert_eq!(own[0].2, 2, "two names: the path and its own");
        // Removed behind its back: the serving thread still reaches it.
        std::fs::remove_file(spares.join(&own[0].0)).unwrap();
    }
    for round in 10..20 {
        cat(round);
    }
    server.stop().unwrap();
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}
