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

/// uid of `nobody`: "another user" for the take-over tests (issue 12).
const NOBODY: u32 = 65_534;

/// Makes `dir` a shared directory (`1777`) owned by `owner`.
fn share_as(dir: &Path, owner: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    chown(dir, Some(Uid::from_raw(owner)), Some(Gid::from_raw(owner))).unwrap();
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    let dir = TempDir::new("owner");
    share_as(dir.path(), NOBODY);
    let err = start_in(dir.path()).unwrap_err();
    assert_eq!(
        err,
        Error::DirOwner {
            path: dir.path().to_path_buf(),
            owner: NOBODY,
            owner_name: Some("nobody".into()),
            uid: 0,
        }
    );
    let message = err.to_string();
    for part in [&dir.path().display().to_string(), "user 65534 (nobody)"] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert!(dir.list().is_empty(), "{:?}", dir.list());
    assert_eq!(
        pipe_writer::check_dir(dir.path(), NOBODY, 0o41777),
        Err(err)
    );

    // The same directory owned by root (us) is fine: shared and sticky.
    share_as(dir.path(), 0);
    let server = start_in(dir.path()).unwrap();
    complete_body(&read_once(server.path(), std::time::Duration::from_secs(1)).unwrap());
    server.stop().unwrap();
    assert!(dir.list().is_empty(), "{:?}", dir.list());
}

#[test]
fn check_finds_our_fifo_and_nothing_else_at_our_path() {
    let dir = TempDir::new("check");
    let server = start_in(dir.path()).unwrap();
    let path = server.path().to_path_buf();
    // Served a few times: the FIFO at the path changes at every serve.
    for _ in 0..3 {
        complete_body(&read_once(&path, std::time::Duration::from_secs(1)).unwrap());
        assert_eq!(server.check(), Ok(()));
    }

    // Another user's FIFO put at our path (root, or the directory's owner,
    // removed ours first): a squat, and nothing of ours is written to it.
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path, Mode::from_bits_truncate(0o666)).unwrap();
    chown(&path, Some(Uid::from_raw(NOBODY)), None).unwrap();
    let err = server.check().unwrap_err();
    assert_eq!(
        err,
        Error::Squatted {
            path: path.clone(),
            owner: NOBODY,
            uid: 0
        }
    );
    assert_eq!(
        read_once(&path, std::time::Duration::from_millis(300)),
        Err(util::ReadFail::TimedOut { got: 0 })
    );

    // A FIFO of our user that this server did not make.
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
    assert_eq!(server.check(), Err(Error::Replaced { path: path.clone() }));

    // Gone: named by its errno.
    std::fs::remove_file(&path).unwrap();
    let err = server.check().unwrap_err();
    assert!(
        err.to_string().ends_with(&format!(
            "{}: ENOENT: No such file or directory",
            path.display()
        )),
        "{err}"
    );

    // The directory handed to another user while we serve.
    share_as(dir.path(), NOBODY);
    assert!(
        matches!(server.check(), Err(Error::DirOwner { owner: NOBODY, .. })),
        "{:?}",
        server.check()
    );
    share_as(dir.path(), 0);
    server.stop().unwrap();
}

fn spare_dir(dir: &Path) -> std::path::PathBuf {
    dir.join(pipe_writer::spare_dir_name(nix::unistd::geteuid().as_raw()))
}

#[test]
fn spares_live_in_a_private_directory_and_the_listing_shows_only_the_pipe() {
    let dir = TempDir::new("spare-dir");
    let server = start_in(dir.path()).unwrap();
    for _ in 0..20 {
        complete_body(&read_once(server.path(), std::time::Duration::from_secs(1)).unwrap());
    }
    let shown: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // The traces FIFOs' subdirectory (issue 16) is the one other entry.
        .filter(|name| !name.starts_with('.') && name != pipe_writer::TRACES_DIR)
        .collect();
    assert_eq!(shown, [format!("{}.stats", std::process::id())]);
    let spares = spare_dir(dir.path());
    let meta = std::fs::symlink_metadata(&spares).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o700);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    let held = std::fs::read_dir(&spares).unwrap().count();
    assert!(held >= 3, "{held} spares");
    server.stop().unwrap();
    assert_eq!(std::fs::read_dir(&spares).unwrap().count(), 0);
}

#[test]
fn a_spare_directory_others_could_enter_or_another_user_owns_or_a_link_is_refused() {
    // Open to others: refused, left as it is.
    let dir = TempDir::new("spare-open");
    let spares = spare_dir(dir.path());
    std::fs::create_dir(&spares).unwrap();
    std::fs::set_permissions(&spares, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = start_in(dir.path()).unwrap_err();
    assert!(matches!(err, Error::SpareDir { mode: 0o755, .. }), "{err}");
    assert!(
        err.to_string().contains(&spares.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::symlink_metadata(&spares).unwrap().mode() & 0o7777,
        0o755
    );
    assert!(!our_path(dir.path()).exists());

    // Another user's, mode 0700: refused too.
    let dir = TempDir::new("spare-owner");
    let spares = spare_dir(dir.path());
    std::fs::create_dir(&spares).unwrap();
    std::fs::set_permissions(&spares, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(
        &spares,
        Some(Uid::from_raw(OTHER_USER)),
        Some(Gid::from_raw(OTHER_USER)),
    )
    .unwrap();
    let err = start_in(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SpareDir {
                owner: OTHER_USER,
                ..
            }
        ),
        "{err}"
    );

    // A symlink to a directory of ours: never followed.
    let dir = TempDir::new("spare-link");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, spare_dir(dir.path())).unwrap();
    let err = start_in(dir.path()).unwrap_err();
    assert!(matches!(err, Error::DirIsSymlink { .. }), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_spare_directory_made_under_a_strict_umask_still_gets_mode_0700() {
    let dir = TempDir::new("spare-umask");
    // A child process, so the umask does not leak into other tests' threads.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 277; echo 'x: 1' | \"$0\" --dir \"$1\" & sleep 0.5; kill $!; wait")
        .arg(env!("CARGO_BIN_EXE_pipe-writer"))
        .arg(dir.path())
        .output()
        .unwrap();
    let meta = std::fs::symlink_metadata(spare_dir(dir.path()))
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(meta.mode() & 0o7777, 0o700);
}
