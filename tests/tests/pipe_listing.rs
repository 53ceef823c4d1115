//! Only pipes in the pipe directory (issue 15, point 1): a listing shows one
//! `<pid>.stats` per live writer; the writers' spare FIFOs live in a private
//! per-user directory (`.spares-<uid>`, mode 0700) that no reader of the
//! directory opens as a pipe. A reader that opens every entry the way
//! pipestatic does (`tests/fixtures/pipestatic_reader.py`) sums exactly
//! over real `pipe-writer` processes, pass after pass. Before, it also
//! opened the spares and over-counted (or waited seconds for the orphan
//! sweeper to serve them).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use stats_pipe_tests::hostile::fixture;
use stats_pipe_tests::live::{Feeder, TempDir, wait_for};

const WRITERS: usize = 12;
const PASSES: usize = 15;

/// Runs the pipestatic-style reader over `dir` for `passes` passes.
fn read_like_pipestatic(dir: &std::path::Path, passes: usize) -> Vec<Value> {
    let out = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(fixture("pipestatic_reader.py"))
        .arg(dir)
        .arg(passes.to_string())
        .output()
        .expect("run pipestatic_reader.py");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[test]
fn a_reader_that_opens_every_entry_sums_exactly_and_a_listing_shows_only_pipes() {
    let dir = TempDir::new("pipe-listing");
    let mut writers: Vec<Feeder> = (0..WRITERS).map(|_| Feeder::start(dir.path())).collect();
    for writer in &mut writers {
        writer.send("requests: 5");
        writer.send("load: 0.25");
    }
    let mut pipes: Vec<String> = writers
        .iter()
        .map(|w| format!("{}.stats", w.pid()))
        .collect();
    pipes.sort();
    let want = i64::try_from(5 * WRITERS).expect("small");

    // The writers take their input in the background.
    wait_for("every writer's input", Duration::from_secs(20), || {
        let pass = read_like_pipestatic(dir.path(), 1).remove(0);
        match pass["sums"]["requests"].as_i64() {
            Some(got) if got == want => Ok(()),
            got => Err(format!("requests {got:?}")),
        }
    });

    // What `ls` shows: exactly the pipes, and the `traces` subdirectory of
    // the trace FIFOs (issue 16). With dot-files: one directory more, the
    // writers' (our user's) private spare directory.
    let listed = |all: bool| {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list the pipe directory")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| all || !name.starts_with('.'))
            .collect();
        names.sort();
        names
    };
    let traces_dir = pipe_writer::TRACES_DIR.to_owned();
    let mut shown = pipes.clone();
    shown.push(traces_dir.clone());
    assert_eq!(listed(false), shown);
    let spare_dir = pipe_writer::spare_dir_name(nix::unistd::geteuid().as_raw());
    let mut everything = shown.clone();
    everything.insert(0, spare_dir.clone());
    assert_eq!(listed(true), everything);
    let spares = std::fs::read_dir(dir.path().join(&spare_dir))
        .expect("list the spare directory")
        .count();
    assert!(
        spares >= 3 * WRITERS,
        "{spares} spares for {WRITERS} writers"
    );

    let passes = read_like_pipestatic(dir.path(), PASSES);
    assert_eq!(passes.len(), PASSES);
    for (n, pass) in passes.iter().enumerate() {
        let opened: Vec<String> = serde_json::from_value(pass["opened"].clone()).expect("names");
        assert_eq!(opened, pipes, "pass {n}");
        assert_eq!(
            pass["skipped"],
            serde_json::json!([spare_dir, traces_dir]),
            "pass {n}"
        );
        assert_eq!(
            pass["sums"]["requests"].as_i64(),
            Some(want),
            "pass {n}: {pass}"
        );
        assert_eq!(
            pass["sums"]["load"].as_f64(),
            Some(0.25 * WRITERS as f64),
            "pass {n}: {pass}"
        );
        // One envelope per writer: one snapshot each, no more.
        assert_eq!(
            pass["sums"]["#stats-pipe"].as_i64(),
            Some(i64::try_from(WRITERS).expect("small")),
            "pass {n}: {pass}"
        );
    }
}
