//! The Python package `stats_pipe` and the C library under test: a venv
//! (`scripts/python-venv.sh`: maturin, gunicorn, prometheus_client) with
//! the package built into it by maturin once per test process, and
//! `libstats_pipe.a` built by cargo with the header beside it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
}

/// The target directory of this test binary (`target/<profile>/deps/..`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test binary");
    exe.ancestors()
        .nth(3)
        .expect("test binary inside target/<profile>/deps")
        .to_path_buf()
}

/// The venv's `python` with `stats_pipe` built from this worktree
/// (`maturin develop --release`), made once per test process.
///
/// # Panics
/// If the venv cannot be made or the build fails.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = std::env::var_os("STATS_PIPE_TEST_VENV")
                .map_or_else(|| target_dir().join("py-test"), PathBuf::from);
            let status = Command::new(workspace().join("scripts/python-venv.sh"))
                .arg(&venv)
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run scripts/python-venv.sh");
            assert!(
                status.success(),
                "scripts/python-venv.sh {} failed",
                venv.display()
            );
            let python = venv.join("bin/python");
            let status = Command::new(&python)
                .args(["-m", "maturin", "develop", "--release", "--quiet", "-m"])
                .arg(workspace().join("pipe-writer/python/Cargo.toml"))
                .env("VIRTUAL_ENV", &venv)
                .env("CARGO_TARGET_DIR", target_dir())
                .status()
                .expect("run maturin develop");
            assert!(
                status.success(),
                "maturin develop of pipe-writer/python failed"
            );
            python
        })
        .clone()
}

/// `(include dir, static library)` of the C ABI, built once per test
/// process with the tests' profile.
///
/// # Panics
/// If the build fails.
pub fn c_library() -> (PathBuf, PathBuf) {
    static LIBRARY: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current test binary");
            let profile_dir = exe
                .ancestors()
                .nth(2)
                .expect("target/<profile>")
                .to_path_buf();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--quiet", "-p", "stats-pipe-capi", "--lib"])
                .current_dir(workspace())
                .env("CARGO_TARGET_DIR", target_dir());
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build -p stats-pipe-capi");
            assert!(status.success(), "cargo build -p stats-pipe-capi failed");
            (
                workspace().join("pipe-writer/capi/include"),
                profile_dir.join("libstats_pipe.a"),
            )
        })
        .clone()
}

/// The `name: value` lines of one whole read of the pipe at `path`
/// (metadata lines left out). A read that raced another reader (an
/// aggregator) may come back empty or torn (FORMAT.md, "What a reader can
/// rely on"): it is retried until it holds the whole envelope.
pub fn read_pipe(path: &Path) -> Vec<(String, String)> {
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if text.starts_with("#stats-pipe:") && text.contains("\n#end: ") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}
