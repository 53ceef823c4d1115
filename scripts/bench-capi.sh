#!/usr/bin/env bash
# The C ABI's recording calls from C (pipe-writer/capi/benches/hot_path.c):
# median ns per call of a counter, a gauge, a histogram through handles, an
# incr by name and a task's begin + end, against this checkout's
# libstats_pipe.a (release build).
#
# SECOND_LIB=path/to/another/libstats_pipe.a times another build in the same
# run, the two alternating RUNS times (default 5), and prints each case's
# median over the runs for both: "case ours other ratio".
# Usage: scripts/bench-capi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
cargo build --quiet --release -p stats-pipe-capi --lib
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build() { # build <lib> <out>
    cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Ipipe-writer/capi/include \
        pipe-writer/capi/benches/hot_path.c "$1" -lpthread -ldl -lm -lrt -lgcc_s -o "$2"
}
build "$target/release/libstats_pipe.a" "$work/ours"
sets=(ours)
if [[ -n "${SECOND_LIB:-}" ]]; then
    build "$SECOND_LIB" "$work/other"
    sets+=(other)
fi
for ((run = 0; run < RUNS; run++)); do
    for set in "${sets[@]}"; do
        STATS_PIPE_AUTOSTART=0 "$work/$set" | sed "s/^/$set /" >>"$work/results"
    done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    build, case, ns = line.split()
    rows.setdefault(case, {}).setdefault(build, []).append(float(ns))
print("case ns/call(ours)" + (" ns/call(other) ours/other" if any("other" in r for r in rows.values()) else ""))
for case, builds in rows.items():
    ours = statistics.median(builds["ours"])
    if "other" in builds:
        other = statistics.median(builds["other"])
        print(f"{case} {ours:.2f} {other:.2f} {ours / other:.3f}")
    else:
        print(f"{case} {ours:.2f}")
PY
