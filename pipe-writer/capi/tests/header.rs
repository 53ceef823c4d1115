//! The committed C header is what cbindgen makes of `src/ffi.rs` now.
//! `STATS_PIPE_BLESS=1 cargo test -p stats-pipe-capi --test header`
//! rewrites it after a change to the ABI.

use std::path::Path;

#[test]
fn committed_header_matches_the_abi() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("reading pipe-writer/capi/cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header from src/ffi.rs")
        .write(&mut generated);
    let path = crate_dir.join("include/stats_pipe.h");
    if std::env::var_os("STATS_PIPE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing include/stats_pipe.h");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with STATS_PIPE_BLESS=1 cargo test -p stats-pipe-capi --test header\n--- generated:\n{}",
        path.display(),
        String::from_utf8_lossy(&generated)
    );
}
