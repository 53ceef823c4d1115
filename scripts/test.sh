#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check
# and every test (format, lints, docs, unit, doc and end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== structure (no import cycle, no source file over 800 lines)"
python3 scripts/check-structure.py
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== host-aggregator without its optional parts (no database engine, no CLI)"
cargo clippy -p host-aggregator --no-default-features --all-targets -- -D warnings
cargo build -p host-aggregator --no-default-features
cargo clippy -p pipe-writer --no-default-features -- -D warnings
echo "== the fuzz targets compile (they run under scripts/fuzz.sh; a change of API broke one unseen)"
cargo clippy --manifest-path fuzz/Cargo.toml --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace --quiet
echo "== cargo test"
cargo test --workspace
echo "== scripts/demo.sh (issue 13: builds only what it runs, shows its URLs)"
demo_out=$(scripts/demo.sh --seconds 1 2>&1) || { echo "$demo_out"; echo "demo.sh failed" >&2; exit 1; }
if grep -E "Compiling (criterion|proptest|metrics|metrics-util|prometheus-client) " <<<"$demo_out"; then
  echo "demo.sh compiled a dev-dependency" >&2
  exit 1
fi
grep -q "Open http://127.0.0.1:" <<<"$demo_out" || { echo "$demo_out"; echo "demo.sh printed no URL" >&2; exit 1; }
