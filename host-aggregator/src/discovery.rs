//! Finding the stats pipes: every `*.stats` entry directly under the pipe
//! directory, once the directory itself is one to trust.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The pipe directory: `$STATS_PIPE_DIR` if set and not empty, else
/// `/tmp/stats-pipe`: the writer's own rule ([`pipe_writer::default_dir`]).
pub fn default_dir() -> PathBuf {
    pipe_writer::default_dir()
}

/// Refuses a pipe directory another user could take over, by the writer's
/// rule ([`pipe_writer::check_dir`]): it must be owned by root or by us,
/// and sticky if group or others may write to it. Its owner could delete
/// any pipe in it and plant their own under a PID of their choosing.
/// `dir` is followed if it is a symbolic link (as it is listed).
///
/// # Errors
/// [`Error::Dir`] if `dir` cannot be looked up; [`Error::UntrustedDir`]
/// naming the directory and its owner (uid and user name).
pub fn check_dir(dir: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(dir).map_err(|source| Error::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    pipe_writer::check_dir(dir, meta.uid(), meta.mode())
        .map_err(|source| Error::UntrustedDir { source })
}

/// Every entry named `*.stats` directly in `dir`, sorted by path, whatever
/// its type: the reader decides what to do with symlinks, regular files or
/// directories (and says so in their status). Links are never followed.
/// Dotfiles are skipped, which covers the writer's temporary FIFOs
/// (`.<pid>.stats.<n>.tmp`).
///
/// # Errors
/// [`Error::Dir`] if `dir` cannot be listed; [`Error::UntrustedDir`] if
/// another user could take it over ([`check_dir`]). Entries that vanish
/// while listing are skipped.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = list(dir)?;
    found.retain(|path| {
        path.file_name()
            .is_some_and(|name| is_pipe_name(name.as_encoded_bytes()))
    });
    Ok(found)
}

/// Every entry directly in `dir`, sorted by path; links are not followed.
/// (walkdir did this before: for one level with no recursion it earned
/// nothing over `read_dir`.)
///
/// # Errors
/// [`Error::Dir`] if `dir` cannot be listed; [`Error::UntrustedDir`] if
/// another user could take it over ([`check_dir`]). Entries that vanish
/// while listing are skipped.
pub(crate) fn list(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    check_dir(dir)?;
    let mut found = Vec::new();
    let dir_error = |source| Error::Dir {
        path: dir.to_path_buf(),
        source,
    };
    // One level, so std's `read_dir` does it: it follows `dir` itself if it
    // is a link (checked above) and never an entry.
    // An entry that cannot be read (it vanished) is skipped.
    found.extend(
        std::fs::read_dir(dir)
            .map_err(dir_error)?
            .filter_map(Result::ok)
            .map(|entry| entry.path()),
    );
    found.sort_unstable_by(|a, b| by_bytes(a, b));
    Ok(found)
}

/// The order of paths that all name entries of one directory: the byte
/// order of the paths, which for them is [`Path`]'s own order (only the
/// last component differs), at the cost of one `memcmp` rather than a walk
/// of every component (a pass compares paths thousands of times).
pub(crate) fn by_bytes(a: &Path, b: &Path) -> std::cmp::Ordering {
    a.as_os_str().cmp(b.as_os_str())
}

/// `*.stats`, not hidden, something before the suffix.
fn is_pipe_name(name: &[u8]) -> bool {
    name.len() > ".stats".len() && name.ends_with(b".stats") && !name.starts_with(b".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_names() {
        assert!(is_pipe_name(b"42.stats"));
        assert!(is_pipe_name(b"x.stats"));
        assert!(!is_pipe_name(b".stats"));
        assert!(!is_pipe_name(b".42.stats.1.tmp"));
        assert!(!is_pipe_name(b".42.stats"));
        assert!(!is_pipe_name(b"42.stats.tmp"));
        assert!(!is_pipe_name(b"42.txt"));
    }

    #[test]
    fn missing_dir_is_an_error_naming_it() {
        let err = discover(Path::new("/nonexistent/stats-pipe-dir")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/stats-pipe-dir"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_another_user_could_take_over_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("discovery-owner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        // Root-owned (tests run as root), shared and sticky: read.
        assert_eq!(discover(&dir).unwrap(), Vec::<PathBuf>::new());

        // Owned by nobody (uid 65534): refused, naming the owner.
        let nobody = nix::unistd::Uid::from_raw(65534);
        nix::unistd::chown(&dir, Some(nobody), None).unwrap();
        let err = discover(&dir).unwrap_err();
        assert!(matches!(err, Error::UntrustedDir { .. }), "{err:?}");
        let message = err.to_string();
        for part in [&dir.display().to_string(), "owned by user 65534 (nobody)"] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
        assert!(crate::gc(&dir, true).is_err());

        // Ours again but world-writable without the sticky bit: refused.
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let message = discover(&dir).unwrap_err().to_string();
        assert!(message.contains("not sticky"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lists_only_stats_entries_sorted_without_following_links() {
        let dir = std::env::temp_dir().join(format!("discovery-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.stats")).unwrap();
        std::fs::write(dir.join("2.stats"), "a: 1\n").unwrap();
        std::fs::write(dir.join("1.stats"), "a: 1\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "").unwrap();
        std::fs::write(dir.join(".3.stats.0.tmp"), "").unwrap();
        std::fs::write(dir.join("sub.stats/9.stats"), "").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("link.stats")).unwrap();
        let names: Vec<String> = discover(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.stats", "2.stats", "link.stats", "sub.stats"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
