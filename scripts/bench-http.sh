#!/usr/bin/env bash
# HTTP throughput of `host-aggregator serve`: starts N writers (the
# pipe-writer binary, 180 stats each) in a temp pipe directory and the
# aggregator on a free loopback port, then runs wrk against /stats (and
# /metrics) for a few seconds per case and prints requests/s and latency
# percentiles. Cleans up everything it started, also on Ctrl-C or error.
#
# Usage: scripts/bench-http.sh [SECONDS] [WRITERS]   (default: 10 100)
#   CASES="1s 0s" to choose the --max-age values measured (default: 1s 0s).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
writers=${2:-100}
cases=${CASES:-1s 0s}
target=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "bench-http: wrk is not installed (scripts/install-test-deps.sh)" >&2; exit 1; }

cargo build --release --quiet -p host-aggregator -p pipe-writer --bin host-aggregator --bin pipe-writer
dir=$(mktemp -d /tmp/stats-pipe-bench-http.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 180 stats: counters, floats and tagged names, like a busy service.
for i in $(seq 1 60); do
  echo "requests.$i += $i"
  echo "latency.$i: 0.$i"
  echo "http.hits[code=$((200 + i % 5)),route=r$i] += 1"
done >"$dir/input"
for _ in $(seq 1 "$writers"); do
  "$target/release/pipe-writer" --dir "$dir" --linger <"$dir/input" >/dev/null &
  pids+=($!)
done

serve() { # max-age → sets $addr, appends to pids
  local out="$dir/serve.out"
  "$target/release/host-aggregator" serve --listen 127.0.0.1:0 --pipe-dir "$dir" --max-age "$1" >"$out" &
  pids+=($!)
  for _ in $(seq 1 100); do
    addr=$(sed -n 's|^listening on http://||p' "$out" | head -1)
    [ -n "$addr" ] && return
    sleep 0.1
  done
  echo "bench-http: the aggregator did not start" >&2
  exit 1
}

serve 1s
# Wait until every writer is being read.
for _ in $(seq 1 100); do
  ok=$(curl -s "http://$addr/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"]["ok"])' 2>/dev/null || echo 0)
  [ "$ok" = "$writers" ] && break
  sleep 0.2
done
[ "$ok" = "$writers" ] || { echo "bench-http: only $ok of $writers writers read" >&2; exit 1; }
stats=$(curl -s "http://$addr/stats" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["stats"]))')
echo "bench-http: $writers writers x 180 stats ($stats distinct), ${seconds}s per case, $(nproc) cores"

printf '%-9s %-8s %12s %9s %9s %9s %8s\n' path max_age requests/s p50_ms p99_ms max_ms passes
for max_age in $cases; do
  kill "${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
  serve "$max_age"
  for path in /stats /metrics; do
    before=$(curl -s "http://$addr/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["passes"])')
    report=$(wrk -t2 -c32 -d"${seconds}s" --latency "http://$addr$path")
    after=$(curl -s "http://$addr/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["passes"])')
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$report")
    ms() { # wrk latency like 1.23ms, 850.00us, 1.02s → ms
      awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
    }
    p50=$(ms "$(awk '$1 == "50%" {print $2}' <<<"$report")")
    p99=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$report")")
    max=$(ms "$(awk '$1 == "Latency" {print $4; exit}' <<<"$report")")
    errors=$(grep -E 'Non-2xx|Socket errors' <<<"$report" || true)
    printf '%-9s %-8s %12s %9s %9s %9s %8s\n' "$path" "$max_age" "$rps" "$p50" "$p99" "$max" $((after - before))
    [ -z "$errors" ] || echo "  $errors"
  done
done
