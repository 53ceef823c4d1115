//! The committed C header is what the ABI's table (`src/ffi/mod.rs`) makes
//! now. `STATS_PIPE_BLESS=1 cargo test -p stats-pipe-capi --test header`
//! rewrites it after a change to the ABI.

use std::path::Path;

#[test]
fn committed_header_matches_the_abi() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/stats_pipe.h");
    let generated = stats_pipe::ffi::c_header();
    if std::env::var_os("STATS_PIPE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing include/stats_pipe.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with STATS_PIPE_BLESS=1 cargo test -p stats-pipe-capi --test header\n--- generated:\n{generated}",
        path.display(),
    );
}
