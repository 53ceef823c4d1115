//! The pipe directory and our name in it, against hostile setups: planted
//! symlinks, squatted names, unsafe or missing directories. (Tests run as
//! root, so "another user" is made with `chown`.)

mod util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, chown, mkfifo};
use pipe_writer::{Builder, Error};
use util::{TempDir, complete_body, read_once, registry_with};

const OTHER_USER: u32 = 54_321;

fn our_path(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{}.stats", std::process::id()))
}

fn start_in(dir: &Path) -> Result<pipe_writer::Server, Error> {
    Builder::new()
        .dir(dir)
        .registry(registry_with(3, 0))
        .start()
}

#[test]
fn a_symlink_planted_at_our_path_is_never_followed() {
    let dir = TempDir::new("link");
    let target = dir.path().join("target");
    std::fs::write(&target, "secret: 1\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::metadata(&target).unwrap();
    let path = our_path(dir.path());
    std::os::unix::fs::symlink(&target, &path).unwrap();

    let err = start_in(dir.path()).unwrap_err();
    assert_eq!(
        err,
        Error::NotFifo {
            path: path.clone(),
            found: "a symbolic link"
        }
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    // Link and target untouched, nothing else made.
    assert_eq!(std::fs::read_link(&path).unwrap(), target);
    let after = std::fs::metadata(&target).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"secret: 1\n");
    assert_eq!(
        (after.ino(), after.mode(), after.mtime_nsec(), after.len()),
        (
            before.ino(),
            before.mode(),
            before.mtime_nsec(),
            before.len()
        )
    );
    assert_eq!(dir.list().len(), 2, "{:?}", dir.list());

    // Also a link to a FIFO of ours elsewhere.
    let elsewhere = dir.path().join("elsewhere.fifo");
    mkfifo(&elsewhere, Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    assert!(matches!(
        start_in(dir.path()),
        Err(Error::NotFifo {
            found: "a symbolic link",
            ..
        })
    ));
}

#[test]
fn a_squatted_name_is_a_clear_error() {
    let dir = TempDir::new("squat");
    let path = our_path(dir.path());
    mkfifo(&path, Mode::from_bits_truncate(0o666)).unwrap();
    chown(
        &path,
        Some(Uid::from_raw(OTHER_USER)),
        Some(Gid::from_raw(OTHER_USER)),
    )
    .unwrap();
    let err = start_in(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::Squatted { owner: OTHER_USER, uid: 0, path: p } if *p == path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("54321"),
        "{message}"
    );
    assert_eq!(std::fs::symlink_metadata(&path).unwrap().uid(), OTHER_USER);

    // A squatter's symlink is reported as a squat too.
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &path,
        Some(Uid::from_raw(OTHER_USER)),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    assert!(matches!(
        start_in(dir.path()),
        Err(Error::Squatted {
            owner: OTHER_USER,
            ..
        })
    ));
}

#[test]
fn a_squatted_temporary_name_is_stepped_around() {
    let dir = TempDir::new("squat-tmp");
    let temp = dir
        .path()
        .join(format!(".{}.stats.tmp", std::process::id()));
    mkfifo(&temp, Mode::from_bits_truncate(0o666)).unwrap();
    chown(&temp, Some(Uid::from_raw(OTHER_USER)), None).unwrap();
    let server = start_in(dir.path()).unwrap();
    complete_body(&read_once(server.path(), std::time::Duration::from_secs(1)).unwrap());
    server.stop().unwrap();
    assert_eq!(std::fs::symlink_metadata(&temp).unwrap().uid(), OTHER_USER);
}

#[test]
fn a_regular_file_at_our_path_is_left_alone() {
    let dir = TempDir::new("file");
    let path = our_path(dir.path());
    std::fs::write(&path, "x: 1\n").unwrap();
    let err = start_in(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFifo {
                found: "a regular file",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"x: 1\n");
}

#[test]
fn a_missing_directory_is_created_shared_and_sticky() {
    let parent = TempDir::new("create");
    let dir = parent.path().join("stats-pipe");
    let server = start_in(&dir).unwrap();
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o1777);
    server.stop().unwrap();
    // A missing parent is not created.
    let err = start_in(&parent.path().join("no/such")).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Dir {
                op: "create",
                errno: nix::errno::Errno::ENOENT,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn an_existing_directory_is_used_as_it_is_unless_unsafe() {
    let dir = TempDir::new("existing");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
    start_in(dir.path()).unwrap().stop().unwrap();
    assert_eq!(
        std::fs::metadata(dir.path()).unwrap().mode() & 0o7777,
        0o750
    );

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = start_in(dir.path()).unwrap_err();
    assert_eq!(
        err,
        Error::UnsafeDir {
            path: dir.path().to_path_buf(),
            mode: 0o777
        }
    );
    assert!(err.to_string().contains("not sticky"));
    assert!(dir.list().is_empty());
}

#[test]
fn a_directory_that_is_a_symlink_is_refused() {
    let parent = TempDir::new("dirlink");
    let real = parent.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for given in [link.clone(), link.join("")] {
        let err = start_in(&given).unwrap_err();
        assert_eq!(err, Error::DirIsSymlink { path: link.clone() }, "{given:?}");
    }
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
}

#[test]
fn a_file_as_directory_is_an_error() {
    let parent = TempDir::new("notdir");
    let file = parent.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert_eq!(
        start_in(&file).unwrap_err(),
        Error::NotADirectory { path: file }
    );
}

#[test]
fn the_directory_comes_from_the_environment_when_not_given() {
    // Run a child with STATS_PIPE_DIR set (no in-process set_var).
    let dir = TempDir::new("env");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pipe-writer"))
        .env("STATS_PIPE_DIR", dir.path())
        .arg("--print-path")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let stdin = child.stdin.take();
    let mut guard = util::ChildGuard(child);
    let path = dir.path().join(format!("{}.stats", guard.pid()));
    assert_eq!(line.trim_end(), path.display().to_string());
    complete_body(&read_once(&path, std::time::Duration::from_secs(1)).unwrap());
    drop(stdin);
    let status = guard
        .wait_within(std::time::Duration::from_secs(5))
        .unwrap();
    assert!(status.success());
    assert!(dir.list().is_empty(), "{:?}", dir.list());
}
