#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs every check
# and every test (format, lints, docs, unit, doc and end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace --quiet
echo "== cargo test"
cargo test --workspace
