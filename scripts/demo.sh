#!/usr/bin/env bash
# The demo: a few example writers serve live stats through FIFOs in a temp
# pipe directory, and `host-aggregator serve` sums them over HTTP on
# 127.0.0.1:7828 (or the next free port). Prints the URLs to try, then runs
# until Ctrl-C (or for --seconds N) and cleans up everything it started.
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

echo "== building (release)"
cargo build --quiet --release -p host-aggregator -p pipe-writer --bin host-aggregator --bin pipe-writer --example worker

echo "== the library: record stats and render what a pipe serves"
cargo run --quiet --release -p stats-core --example record

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
for _ in 1 2; do
  "$target/release/examples/worker" --dir "$dir" >/dev/null &
  pids+=($!)
done
# A shell script publishing through the pipe-writer binary: one line per
# update on its stdin. ($! of a pipeline is its last command, pipe-writer;
# the loop ends on SIGPIPE when pipe-writer is stopped.)
while true; do
  echo "shell.ticks += 1"
  echo "shell.load avg: $((RANDOM % 100)).$((RANDOM % 10))"
  echo "http.requests[code=200,method=GET] += $((RANDOM % 5))"
  sleep 0.5
done | "$target/release/pipe-writer" --dir "$dir" &
pids+=($!)

echo "== aggregator"
port=7828
addr=""
for _ in $(seq 1 20); do
  out="$dir/.serve-$port.out"
  "$target/release/host-aggregator" serve --listen "127.0.0.1:$port" --pipe-dir "$dir" >"$out" 2>&1 &
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

cat <<EOF

  Open http://$addr/ in a browser: the live dashboard (one line per process).
  Or run: $target/release/host-aggregator top --pipe-dir $dir

  Try:
    curl $addr/stats          # host-wide sums: {"stats": {...}, "timestamp": ...}
    curl $addr/metrics        # Prometheus text exposition
    curl $addr/processes      # every pipe with its status
    curl $addr/stats/<pid>    # one process
    cat $dir/<pid>.stats      # one pipe, as a process serves it
    $target/release/host-aggregator dump --pipe-dir $dir --format text

  Now:
EOF
curl -s "http://$addr/stats" && echo
ls "$dir"/*.stats

if [ -n "$seconds" ]; then
  echo "== running for $seconds s"
  sleep "$seconds"
else
  echo "== running; Ctrl-C to stop"
  while true; do sleep 3600; done
fi
