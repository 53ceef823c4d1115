//! Whether readers of `<dir>/<pid>.stats` still reach the FIFO a server
//! serves: the check behind [`crate::Server::check`], and the same check
//! made by the serving thread itself after a serve (issue 15), so a
//! program that keeps its pipe published needs no timer of its own while
//! the pipe is read ([`crate::Builder::on_unreachable`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::AtFlags;
use nix::sys::stat::{SFlag, fstatat, lstat};

use crate::dir::{PipeDir, check_dir_for, check_fifo_of};
use crate::error::Error;
use crate::fifo::{Fifo, FileId};

/// How often at most the serving thread checks its path after a serve:
/// read once a second, about once a second; read faster, no more often.
pub const CHECK_AFTER_SERVES: Duration = Duration::from_secs(1);

/// Told from the serving thread when a check after a serve finds the path
/// no longer reaches the FIFO being served. Called on the serving thread:
/// it must return at once (hand the error on, say to the thread that will
/// serve afresh).
#[derive(Clone)]
pub(crate) struct OnUnreachable(pub(crate) Arc<dyn Fn(&Error) + Send + Sync>);

impl std::fmt::Debug for OnUnreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnUnreachable(..)")
    }
}

/// Checks that the directory at `dir`'s path may still be trusted and
/// that `path` (`name` in it) names `current`, the FIFO served now: an
/// `lstat` of the directory's path and a look-up of `name` in the
/// directory we hold (by path if another directory took its place). A
/// FIFO of another user there is a squat, never taken for ours.
pub(crate) fn check_reach(
    dir: &PipeDir,
    name: &str,
    path: &Path,
    current: Option<&Fifo>,
) -> Result<(), Error> {
    let dir_path = dir.path();
    let stat = lstat(dir_path).map_err(|errno| Error::Dir {
        path: dir_path.to_path_buf(),
        op: "look up",
        errno,
    })?;
    match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => check_dir_for(dir_path, stat.st_uid, stat.st_mode, dir.uid())?,
        SFlag::S_IFLNK => {
            return Err(Error::DirIsSymlink {
                path: dir_path.to_path_buf(),
            });
        }
        _ => {
            return Err(Error::NotADirectory {
                path: dir_path.to_path_buf(),
            });
        }
    }
    // Our name looked up in the directory we hold, with no walk of the
    // path, while the path still leads to it; else through the path, which
    // then tells what readers find there (nothing, or another FIFO).
    let stat = if FileId::of(&stat) == dir.id() {
        fstatat(dir.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
    } else {
        lstat(path)
    }
    .map_err(|errno| Error::Fifo {
        path: path.to_path_buf(),
        op: "look up",
        errno,
    })?;
    check_fifo_of(path, &stat, dir.uid())?;
    match current {
        Some(fifo) if fifo.id() == FileId::of(&stat) => Ok(()),
        _ => Err(Error::Replaced {
            path: path.to_path_buf(),
        }),
    }
}
