#!/usr/bin/env bash
# The demo: records stats with the library and prints what a pipe serves.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p stats-core --example record
