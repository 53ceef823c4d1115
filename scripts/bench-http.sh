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
source scripts/lib/aggregator.sh
aggregator_setup bench-http

# 180 stats: counters, floats and tagged names, like a busy service.
for i in $(seq 1 60); do
  echo "requests.$i += $i"
  echo "latency.$i: 0.$i"
  echo "http.hits[code=$((200 + i % 5)),route=r$i] += 1"
done >"$dir/input"
start_writers "$writers" "$dir" "$dir/input"

serve() { start_aggregator "$dir" --max-age "$1"; }

serve 1s
wait_for_writers "$writers"
stats=$(curl -s "http://$addr/stats" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["stats"]))')
echo "bench-http: $writers writers x 180 stats ($stats distinct), ${seconds}s per case, $(nproc) cores"

printf '%-9s %-8s %12s %9s %9s %9s %8s\n' path max_age requests/s p50_ms p99_ms max_ms passes
for max_age in $cases; do
  kill "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" 2>/dev/null || true
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
