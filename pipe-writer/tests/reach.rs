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
