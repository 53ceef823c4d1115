#!/usr/bin/env bash
# Recording from Python, side by side in one run: stats_pipe's counter
# handle and by-name incr (release build) against prometheus_client's
# multiprocess Counter.inc() and a pipestatic-style pure-Python incr.
# Figures: BENCHMARKS.md, "Python: recording". Usage: scripts/bench-python.sh
# (CALLS=200000 ROUNDS=15 by default).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(scripts/python-venv.sh)
VIRTUAL_ENV="$(cd "$venv" && pwd)" "$venv/bin/python" -m maturin develop --release --quiet -m pipe-writer/python/Cargo.toml
STATS_PIPE_AUTOSTART=1 "$venv/bin/python" scripts/bench/python_record.py
