//! Issue 12, point 5, end to end: a pipe directory another user made
//! (mode `1777`, before any root writer started) is refused by the
//! `pipe-writer` binary and by every reading command of the aggregator, so
//! that user cannot delete root's FIFOs and plant their own. Tests run as
//! root; "another user" is uid 65534 (`nobody`), made with `chown`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use host_aggregator::{Collector, Error, ReadOptions, RefuseReason, Status};
use nix::unistd::{Gid, Uid, chown};
use stats_pipe_tests::hostile::{Processes, TempDir, make_fifo};
use stats_pipe_tests::serve::{Aggregator, workspace_binary};

const NOBODY: u32 = 65_534;
const OWNER: &str = "owned by user 65534 (nobody)";

fn share_as(dir: &Path, owner: u32) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    chown(dir, Some(Uid::from_raw(owner)), Some(Gid::from_raw(owner))).expect("chown");
}

fn aggregator(dir: &Path, args: &[&str]) -> Output {
    Command::new(workspace_binary("host-aggregator", "host-aggregator"))
        .arg("--pipe-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run host-aggregator")
}

/// Exit status 1 and a stderr line naming the directory and its owner.
fn assert_refused(what: &str, out: &Output, dir: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
    for part in [&format!("stats pipe directory {} ", dir.display()), OWNER] {
        assert!(stderr.contains(part), "{what}: {part:?} not in {stderr}");
    }
    assert!(out.stdout.is_empty(), "{what} printed {:?}", out.stdout);
}

#[test]
fn a_directory_made_by_another_user_is_refused_by_writer_and_aggregator() {
    let dir = TempDir::new("takeover");
    share_as(dir.path(), NOBODY);
    // The squatter's FIFO, named for a live root process.
    let mut processes = Processes::new();
    let root_pid = processes.sleeper();
    let planted = dir.join(format!("{root_pid}.stats"));
    make_fifo(&planted);
    chown(&planted, Some(Uid::from_raw(NOBODY)), None).expect("chown FIFO");

    // The writer will not publish there: exit 1 naming the owner.
    let out = Command::new(workspace_binary("pipe-writer", "pipe-writer"))
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run pipe-writer");
    assert_refused("pipe-writer", &out, dir.path());

    // The aggregator reads nothing from it: a pass is an error naming the
    // owner, and so is every command that reads the directory.
    let err = Collector::new(ReadOptions::new(dir.path()))
        .collect()
        .expect_err("a pass over another user's directory");
    assert!(matches!(err, Error::UntrustedDir { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(OWNER) && message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert_refused("dump", &aggregator(dir.path(), &["dump"]), dir.path());
    let pid = root_pid.to_string();
    assert_refused("show", &aggregator(dir.path(), &["show", &pid]), dir.path());
    assert_refused("gc", &aggregator(dir.path(), &["gc"]), dir.path());
    assert_eq!(std::fs::symlink_metadata(&planted).unwrap().uid(), NOBODY);

    // serve: every pass fails, so /stats is an error naming the owner.
    let server = Aggregator::serve(dir.path(), &[]);
    let response = server.get("/stats");
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.text().contains(OWNER), "{}", response.text());
    drop(server);

    // The same directory owned by root: read, and the planted FIFO is
    // refused on its own as before (wrong owner for that PID).
    share_as(dir.path(), 0);
    let pass = Collector::new(ReadOptions::new(dir.path()))
        .collect()
        .expect("a pass over root's directory");
    assert_eq!(pass.sources.len(), 1);
    assert!(
        matches!(
            pass.sources[0].status,
            Status::Refused(RefuseReason::WrongOwner { .. })
        ),
        "{:?}",
        pass.sources[0].status
    );
}

#[test]
fn a_root_owned_shared_directory_keeps_working() {
    let dir = TempDir::new("root-shared");
    share_as(dir.path(), 0);
    let mut child = Command::new(workspace_binary("pipe-writer", "pipe-writer"))
        .arg("--dir")
        .arg(dir.path())
        .arg("--print-path")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn pipe-writer");
    let mut processes = Processes::new();
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"jobs += 5\n").expect("feed");
    let line = stats_pipe_tests::serve::first_stdout_line(&mut child, "pipe-writer");
    let pid = processes.adopt(child);
    assert_eq!(line, dir.join(format!("{pid}.stats")).display().to_string());
    let out = stats_pipe_tests::live::wait_for(
        "dump to see the writer's stats",
        std::time::Duration::from_secs(20),
        || {
            let out = aggregator(dir.path(), &["dump", "--format", "text"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && text.contains("jobs: 5\n") {
                Ok(text)
            } else {
                Err(format!("{out:?}"))
            }
        },
    );
    assert!(out.contains("jobs: 5\n"), "{out}");
    drop(stdin);
}
