//! The traces FIFO against real processes: `cat` of
//! `<dir>/traces/<pid>.traces` prints one framed answer of JSON lines, the
//! spans nest, and the `.stats` pipe beside it still holds only
//! `name: value` lines (the call edges among them).

mod util;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pipe_writer::{Builder, TracesRead, verify_traces};
use stats_core::Registry;
use stats_core::envelope::{Verdict, verify};
use util::{TempDir, output_within};

#[test]
fn cat_reads_traces_beside_the_stats_and_the_stats_stay_name_value_lines() {
    let dir = TempDir::new("traces");
    let registry = Arc::new(Registry::new());
    registry.tracer().set_sample_every(1);
    let server = Builder::new()
        .dir(dir.path())
        .registry(Arc::clone(&registry))
        .start()
        .unwrap();
    let pid = std::process::id();
    let traces_path = dir.path().join("traces").join(format!("{pid}.traces"));
    assert_eq!(server.traces_path(), Some(traces_path.as_path()));
    let (request, db) = (registry.task("request"), registry.task("db.query"));
    for i in 0..3 {
        let _ = request.run(|| db.run(|| if i == 1 { Err(()) } else { Ok(()) }));
    }

    let cat = output_within(
        Command::new("cat").arg(&traces_path),
        Duration::from_secs(5),
    );
    assert!(cat.status.success());
    let TracesRead::Complete {
        pid: read_pid,
        body,
    } = verify_traces(&cat.stdout)
    else {
        panic!("{}", String::from_utf8_lossy(&cat.stdout));
    };
    assert_eq!(read_pid, pid);
    let body = std::str::from_utf8(&cat.stdout[body]).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(lines[0].contains("\"root\":\"request\""));
    assert!(
        lines[1].contains(r#"{"id":1,"name":"db.query","parent":0,"#),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(r#""outcome":"error"}]"#), "{}", lines[1]);

    let stats = output_within(
        Command::new("cat").arg(server.path()),
        Duration::from_secs(5),
    );
    let Verdict::Complete { body, .. } = verify(&stats.stdout) else {
        panic!("{}", String::from_utf8_lossy(&stats.stdout));
    };
    let text = std::str::from_utf8(&stats.stdout[body]).unwrap();
    for line in text.lines() {
        let (name, value) = line.rsplit_once(':').expect(line);
        assert!(
            !name.trim().is_empty() && value.trim().parse::<f64>().is_ok(),
            "{line}"
        );
    }
    assert!(text.contains("\ndb.query.calls[caller=request,outcome=success]: 2\n"));
    assert!(text.contains("\ndb.query.calls[caller=request,outcome=error]: 1\n"));

    // The pipe directory lists only `<pid>.stats` besides directories.
    let listing: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listing, [format!("{pid}.stats")]);

    server.stop().unwrap();
    assert!(!traces_path.exists());
    assert!(dir.list().is_empty(), "left behind: {:?}", dir.list());
}
