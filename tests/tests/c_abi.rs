//! The C ABI (issue 17): a C program compiled with `cc` against
//! `include/stats_pipe.h` and `libstats_pipe.a` publishes stats that a real
//! `host-aggregator serve` sums, and forks a child that publishes its own
//! through the same handles.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use stats_pipe_tests::archive::wait_until;
use stats_pipe_tests::bindings::{c_library, read_pipe};
use stats_pipe_tests::hostile::{TempDir, fixture};
use stats_pipe_tests::serve::Aggregator;

/// Every warning an error, and the POSIX the fixtures use.
const STRICT: [&str; 4] = ["-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L"];

/// Compiles `tests/fixtures/c/fork_publish.c` into `dir`.
fn compile(dir: &Path) -> PathBuf {
    let (include, library) = c_library();
    let exe = dir.join("fork_publish");
    let output = Command::new("cc")
        .arg("-std=c11")
        .args(STRICT)
        .arg("-I")
        .arg(&include)
        .arg(fixture("c/fork_publish.c"))
        .arg(&library)
        // What a Rust staticlib needs from the system.
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s", "-o"])
        .arg(&exe)
        .output()
        .expect("run cc (scripts/install-test-deps.sh installs it)");
    assert!(
        output.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Checks that `source` compiles against the header with every warning an
/// error, as `language` (`c` or `c++`).
fn check_compiles(compiler: &str, language: &str, standard: &str, source: &Path) {
    let (include, _) = c_library();
    let output = Command::new(compiler)
        .args(["-x", language, standard])
        .args(STRICT)
        .args(["-fsyntax-only", "-I"])
        .arg(&include)
        .arg(source)
        .output()
        .unwrap_or_else(|e| {
            panic!("run {compiler} (scripts/install-test-deps.sh installs it): {e}")
        });
    assert!(
        output.status.success(),
        "{compiler} -x {language} {standard} failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_header_serves_c99_and_cpp_and_the_bench_builds() {
    let bench =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipe-writer/capi/benches/hot_path.c");
    check_compiles("cc", "c", "-std=c99", &bench);
    check_compiles("c++", "c++", "-std=c++11", &bench);
}

#[test]
fn a_c_program_and_its_forked_child_publish_their_own_stats() {
    let build = TempDir::new("c-abi-build");
    let exe = compile(build.path());
    let pipes = TempDir::new("c-abi");
    let aggregator = Aggregator::serve(pipes.path(), &["--interval", "200ms", "--max-age", "0s"]);
    let mut program = Command::new(&exe)
        .env("STATS_PIPE_DIR", pipes.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run fork_publish");
    let mut lines = BufReader::new(program.stdout.take().expect("piped stdout")).lines();
    let mut paths = HashMap::new();
    for _ in 0..2 {
        let line = lines
            .next()
            .and_then(Result::ok)
            .expect("fork_publish reports parent and child");
        let mut words = line.split(' ');
        let (Some(role), Some(pid), Some(path)) = (words.next(), words.next(), words.next()) else {
            panic!("unexpected line {line:?}");
        };
        assert_eq!(
            Path::new(path),
            pipes.join(format!("{pid}.stats")),
            "{role} serves its own <pid>.stats"
        );
        paths.insert(role.to_owned(), PathBuf::from(path));
    }

    let parent: HashMap<String, String> = read_pipe(&paths["parent"]).into_iter().collect();
    let child: HashMap<String, String> = read_pipe(&paths["child"]).into_iter().collect();
    let get = |stats: &HashMap<String, String>, name: &str| stats.get(name).cloned();
    for (name, value) in [
        ("c.requests", "5"),
        ("c.by_name", "2"),
        ("c.parent_only", "1.5"),
        ("c.queue", "2"),
        ("c.latency.count", "2"),
        ("c.load", "0.75"),
        ("c.sizes.count", "2"),
        ("c.sizes.sum", "42"),
        ("c.sizes.max", "40"),
        ("c.seconds", "0.5"),
        ("c.workers", "8"),
        ("c.wait.count", "1"),
        ("c.job.success", "1"),
        ("c.job.errors", "1"),
    ] {
        assert_eq!(
            get(&parent, name).as_deref(),
            Some(value),
            "parent {name}: {parent:?}"
        );
    }
    assert_eq!(get(&parent, "c.child_only"), None);
    for (name, value) in [
        ("c.requests", "7"),
        ("c.child_only", "1"),
        ("c.queue", "1"),
        ("c.latency.count", "1"),
    ] {
        assert_eq!(
            get(&child, name).as_deref(),
            Some(value),
            "child {name}: {child:?}"
        );
    }
    // Nothing of the parent's in the child's pipe.
    for name in ["c.by_name", "c.parent_only", "c.job.success"] {
        assert_eq!(
            get(&child, name),
            None,
            "child shows the parent's {name}: {child:?}"
        );
    }

    // The aggregator sums the two processes.
    let answer = wait_until(Duration::from_secs(10), "c.requests summed", || {
        let stats = aggregator.get("/stats").json()["stats"].clone();
        (stats["c.requests"] == 12).then_some(stats)
    });
    assert_eq!(answer["c.latency.count"], 3);
    assert_eq!(answer["c.queue"], 3);
    assert_eq!(answer["c.child_only"], 1);

    // Closing stdin ends both; each removes its own FIFO.
    drop(program.stdin.take());
    let status = program.wait().expect("wait for fork_publish");
    assert!(status.success(), "fork_publish: {status}");
    assert!(!paths["parent"].exists() && !paths["child"].exists());
}
