//! The path check riding on serves (issue 15, `Builder::on_unreachable`):
//! the serving thread checks that readers still reach it right after a
//! serve, at most once a second, and reports a lost path from there, so a
//! writer read regularly needs no timer of its own.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipe_writer::{Builder, CHECK_AFTER_SERVES, Error};
use util::{TempDir, complete_body, eventually, read_once, registry_with};

const READ_DEADLINE: Duration = Duration::from_secs(2);

#[test]
fn a_lost_path_is_reported_after_a_serve_at_most_once_a_second() {
    let dir = TempDir::new("reach");
    let reports: Arc<Mutex<Vec<Error>>> = Arc::default();
    let server = {
        let reports = Arc::clone(&reports);
        Builder::new()
            .dir(dir.path())
            .registry(registry_with(10, 0))
            .on_unreachable(move |error| reports.lock().unwrap().push(error.clone()))
            .start()
            .unwrap()
    };
    // Reads of a path that still reaches us, over more than a check's gap:
    // checked, nothing to report.
    for _ in 0..6 {
        complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
        std::thread::sleep(CHECK_AFTER_SERVES / 4);
    }
    assert!(reports.lock().unwrap().is_empty(), "{:?}", reports.lock());

    // The directory becomes one nobody may trust (others may write in it,
    // no sticky bit): readers still reach the FIFO, and the first serve a
    // check's gap after the last check reports it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::thread::sleep(CHECK_AFTER_SERVES);
    complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
    assert!(eventually(Duration::from_secs(2), || !reports
        .lock()
        .unwrap()
        .is_empty()));
    assert!(
        matches!(reports.lock().unwrap()[0], Error::UnsafeDir { .. }),
        "{:?}",
        reports.lock()
    );
    // Reads right after: no second check within the gap.
    for _ in 0..5 {
        complete_body(&read_once(server.path(), READ_DEADLINE).unwrap());
    }
    assert_eq!(reports.lock().unwrap().len(), 1, "{:?}", reports.lock());
    // And the server's own check agrees.
    assert!(matches!(server.check(), Err(Error::UnsafeDir { .. })));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(server.check().is_ok());
    server.stop().unwrap();
}

/// The check looks our name up in the directory it holds while the path
/// still leads there; a directory put in its place is looked at through
/// the path, as readers see it: our FIFO moved away with the old one is no
/// longer reached.
#[test]
fn a_directory_put_in_place_of_ours_is_looked_at_through_the_path() {
    let parent = TempDir::new("reach-moved");
    let dir = parent.path().join("pipes");
    std::fs::create_dir(&dir).unwrap();
    let server = Builder::new()
        .dir(&dir)
        .registry(registry_with(3, 0))
        .start()
        .unwrap();
    assert_eq!(server.check(), Ok(()));
    let name = server.path().file_name().unwrap().to_owned();

    // Ours moved aside (our FIFO still in it), an empty one in its place.
    std::fs::rename(&dir, parent.path().join("moved")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    match server.check() {
        Err(Error::Fifo { path, op, errno }) => {
            assert_eq!(path, server.path());
            assert_eq!((op, errno), ("look up", nix::errno::Errno::ENOENT));
        }
        other => panic!("{other:?}"),
    }

    // A FIFO of ours under our name there: not the one we serve.
    nix::unistd::mkfifo(
        &dir.join(&name),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert_eq!(
        server.check(),
        Err(Error::Replaced {
            path: server.path().to_path_buf()
        })
    );
    drop(server);
}
