#!/usr/bin/env bash
# The demo: a few example writers serve live stats through FIFOs in a temp
# pipe directory, and `host-aggregator serve` sums them over HTTP on
# 127.0.0.1:7828 (or the next free port). Prints the URLs to try, then runs
# until Ctrl-C (or for --seconds N) and cleans up everything it started.
#
# It builds only what it runs (the demo-worker binary instead of an example,
# so none of the dev-dependencies), in the `demo` profile (release without
# optimisation). A first build compiles about 130 crates: FIRST_BUILD below,
# measured in BENCHMARKS.md, "First build". Later runs start at once.
# scripts/test.sh runs it and fails if it compiles a dev-dependency.
#
# Usage: scripts/demo.sh [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=""
case "${1:-}" in
  --seconds) seconds=${2:?--seconds needs a number} ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--seconds N]" >&2; exit 2 ;;
esac
target=${CARGO_TARGET_DIR:-target}
bin=$target/demo
FIRST_BUILD="about 2 minutes on 2 cores"

build=(cargo build --profile demo -p host-aggregator -p pipe-writer --features pipe-writer/demo
  --bin host-aggregator --bin pipe-writer --bin demo-worker)
if [ -x "$bin/host-aggregator" ] && [ -x "$bin/pipe-writer" ] && [ -x "$bin/demo-worker" ]; then
  echo "== building (profile demo): already built, rebuilding what changed"
else
  echo "== first build (profile demo): ~130 crates, $FIRST_BUILD; cargo's progress follows"
fi
"${build[@]}"

dir=$(mktemp -d /tmp/stats-pipe-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
  echo "== stopped; removed $dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

echo "== writers in $dir"
# The first worker prints its FIFO's path once it is served.
"$bin/demo-worker" --dir "$dir" --print-path >"$dir/.worker.path" &
pids+=($!)
"$bin/demo-worker" --dir "$dir" >/dev/null &
pids+=($!)
# A shell script publishing through the pipe-writer binary: one line per
# update on its stdin. ($! of a pipeline is its last command, pipe-writer;
# the loop ends on SIGPIPE when pipe-writer is stopped.)
while true; do
  echo "shell.ticks += 1"
  echo "shell.load avg: $((RANDOM % 100)).$((RANDOM % 10))"
  echo "http.requests[code=200,method=GET] += $((RANDOM % 5))"
  sleep 0.5
done | "$bin/pipe-writer" --dir "$dir" &
pids+=($!)

echo "== aggregator"
port=7828
addr=""
for _ in $(seq 1 20); do
  out="$dir/.serve-$port.out"
  "$bin/host-aggregator" serve --listen "127.0.0.1:$port" --pipe-dir "$dir" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do
    addr=$(sed -n 's|^listening on http://||p' "$out" | head -1)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$addr" ]; then
    pids+=("$pid")
    break
  fi
  wait "$pid" 2>/dev/null || true
  port=$((port + 1))
done
[ -n "$addr" ] || { echo "demo: no free port from 7828 up" >&2; exit 1; }
sleep 1

pipe=""
for _ in $(seq 1 50); do
  pipe=$(head -1 "$dir/.worker.path")
  [ -n "$pipe" ] && break
  sleep 0.1
done
[ -n "$pipe" ] || { echo "demo: the worker did not start serving" >&2; exit 1; }
echo "== one process's stats, as its pipe serves them: cat $pipe"
timeout 5 cat "$pipe"

cat <<EOF

  Open http://$addr/ in a browser: the live dashboard (one line per process;
  its Calls and Traces views show the workers' call graph and recent traces).
  Or run: $bin/host-aggregator top --pipe-dir $dir

  Try:
    curl $addr/stats          # host-wide sums: {"stats": {...}, "timestamp": ...}
    curl $addr/metrics        # Prometheus text exposition
    curl $addr/processes      # every pipe with its status
    curl $addr/stats/<pid>    # one process
    curl $addr/funcs          # the host's call graph (demo.request -> demo.cache, demo.db query)
    curl '$addr/traces?limit=5'  # recent traces across processes (the dashboard's Traces view)
    cat $dir/<pid>.stats      # one pipe, as a process serves it
    $bin/host-aggregator dump --pipe-dir $dir --format text

  Now, the workers' stats summed (text lines; the task histograms left out):
EOF
"$bin/host-aggregator" dump --pipe-dir "$dir" --format text | grep -v -e '\.duration\.' -e '\.calls\[' -e '^#'
echo "  and their call graph (curl $addr/funcs):"
curl -s "http://$addr/funcs"
ls "$dir"/*.stats

if [ -n "$seconds" ]; then
  echo "== running for $seconds s"
  sleep "$seconds"
else
  echo "== running; Ctrl-C to stop"
  while true; do sleep 3600; done
fi
