//! Helpers for the fault tests: a small tmpfs to fill up, writers killed
//! with SIGKILL, a FIFO read only part-way, and what a pipe directory holds
//! for one PID.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A tmpfs of a few KiB mounted on a fresh directory, unmounted on drop: a
/// disk that really fills up (`ENOSPC`) without touching the host's disks.
#[derive(Debug)]
pub struct SmallDisk {
    mount_point: PathBuf,
}

impl SmallDisk {
    /// Mounts a `size`-byte tmpfs on `mount_point` (created). `Err` says why
    /// it could not (mounting needs root, or `CAP_SYS_ADMIN`).
    ///
    /// # Errors
    /// `mount`'s message when it fails.
    pub fn mount(mount_point: &Path, size: u64) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(mount_point).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0755"))
            .arg("stats-pipe-test-full")
            .arg(mount_point)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallDisk {
            mount_point: mount_point.to_path_buf(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Writes `name` full of zeros until the disk says it is full; returns
    /// the bytes written.
    ///
    /// # Panics
    /// If writing fails for another reason than `ENOSPC`.
    pub fn fill(&self, name: &str) -> u64 {
        let mut file = std::fs::File::create(self.mount_point.join(name)).expect("create filler");
        let block = [0u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => return written,
                Err(e) => panic!("filling the disk failed otherwise: {e}"),
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there must not keep it mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// Sends SIGKILL to `pid` (the caller reaps it).
///
/// # Panics
/// If the signal cannot be sent.
pub fn sigkill(pid: u32) {
    let pid = Pid::from_raw(i32::try_from(pid).expect("PID fits i32"));
    kill(pid, Signal::SIGKILL).expect("send SIGKILL");
}

/// `count` lines `<prefix>.<n> padded to make the snapshot big: <n>`, ready
/// to feed a `pipe-writer`.
pub fn many_stats(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|n| format!("{prefix}.{n:06} padded to make the snapshot big: {n}\n"))
        .collect()
}

/// Opens the FIFO at `path` (blocking until its writer answers) and reads
/// `first` bytes of the snapshot, leaving the rest in the pipe.
///
/// # Panics
/// If the FIFO cannot be opened or ends before `first` bytes.
pub fn open_and_read_part(path: &Path, first: usize) -> (std::fs::File, Vec<u8>) {
    let mut fifo = std::fs::File::open(path).expect("open the FIFO");
    let mut head = vec![0u8; first];
    fifo.read_exact(&mut head).expect("read the head");
    (fifo, head)
}

/// Reads what is left until end-of-file (the writer closed or died).
///
/// # Panics
/// On a read error other than an interrupt.
pub fn read_rest(mut fifo: std::fs::File, mut bytes: Vec<u8>) -> Vec<u8> {
    loop {
        let mut chunk = vec![0u8; 1 << 16];
        match fifo.read(&mut chunk) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the FIFO: {e}"),
        }
    }
}

/// How many FIFOs of `pid` [`entries_of`] finds: its names counted by inode,
/// since a writer also gives each FIFO its own second name (a hard link) in
/// the spare directory where the filesystem allows (not on tmpfs).
///
/// # Panics
/// If `dir` cannot be listed.
pub fn fifos_of(dir: &Path, pid: u32) -> usize {
    use std::os::unix::fs::MetadataExt;
    let mut inodes: Vec<u64> = entries_of(dir, pid)
        .iter()
        .filter_map(|name| std::fs::symlink_metadata(dir.join(name)).ok())
        .map(|meta| meta.ino())
        .collect();
    inodes.sort_unstable();
    inodes.dedup();
    inodes.len()
}

/// The names in `dir` that belong to `pid`: its pipe and the writer's
/// spare FIFOs (`.<pid>.stats.tmp`, `.<pid>.stats.<n>.tmp`), which live in
/// the spare directory of their user (listed as `.spares-<uid>/<name>`), or
/// in `dir` itself (writers from before the spare directory).
///
/// # Panics
/// If `dir` cannot be listed.
pub fn entries_of(dir: &Path, pid: u32) -> Vec<String> {
    let pipe = format!("{pid}.stats");
    let spare = format!(".{pid}.stats.");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("list the pipe directory")
        .filter_map(|entry| entry.ok())
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if is_dir && name.starts_with(pipe_writer::SPARE_DIR_PREFIX) {
            let Ok(spares) = std::fs::read_dir(entry.path()) else {
                continue;
            };
            names.extend(
                spares
                    .filter_map(|entry| entry.ok())
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|inner| inner.starts_with(&spare))
                    .map(|inner| format!("{name}/{inner}")),
            );
        } else if name == pipe || name.starts_with(&spare) {
            names.push(name);
        }
    }
    names.sort();
    names
}
