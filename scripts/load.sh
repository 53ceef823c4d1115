#!/usr/bin/env bash
# Load test of `host-aggregator serve` (loopback only, bounded in time, stops
# itself): for 100 and 1,000 writers (`pipe-writer --linger`, 50 stats each),
# wrk drives /stats and /metrics for SECONDS each and the script reports
# requests/s, p99 latency and errors. Then the slowloris check: while wrk
# drives /stats again, SLOW clients hold connections open the slow way (a
# third connect and send nothing, a third send a request header one byte a
# second, a third send whole /processes requests and never read the
# answers), and a probe asks /healthz with curl every 0.5 s: other clients
# must still be served (probe failures and its worst latency are reported).
#
# Usage: scripts/load.sh [--seconds S] [--writers "100 1000"] [--connections C] [--slow N]
#   defaults: 15 s per run, 100 and 1000 writers, 50 wrk connections, 60 slow clients.
#   Quick run: scripts/load.sh --seconds 3 --writers 20
# Needs wrk (scripts/install-test-deps.sh), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=15 writer_counts="100 1000" connections=50 slow=60
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --writers) writer_counts=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --slow) slow=$2; shift 2 ;;
    *) echo "load: unknown argument $1" >&2; exit 2 ;;
  esac
done
source scripts/lib/aggregator.sh
aggregator_setup load

# 50 stats: 30 counters, 10 gauges, 10 tagged counters.
for i in $(seq 1 30); do echo "load.requests.$i += $i"; done >"$dir/input"
for i in $(seq 1 10); do echo "load.temperature.$i: 2$i.5"; echo "load.http[code=$((200 + i)),route=r$i] += 1"; done >>"$dir/input"

wrk_run() { # path label → one result line
  local out
  out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency "http://$addr$1" 2>&1)
  local rps p99 errors non2xx
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-8s %-9s %-22s %12s %10s %8s\n' "$writers" "$1" "$2" "${rps:-?}" "${p99:-?}" "$(( ${errors:-0} + ${non2xx:-0} ))"
}

slow_clients() { # n seconds → holds n slow connections for that long, then prints what it held
  python3 - "$addr" "$1" "$2" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n, seconds = int(sys.argv[2]), float(sys.argv[3])
idle, dribble, unread = [], [], []
for i in range(n):
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    kind = i % 3
    if kind == 0:
        idle.append(s)
    elif kind == 1:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n")
        dribble.append(s)
    else:
        s.sendall(b"GET /processes HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
        unread.append(s)
end = time.time() + seconds
while time.time() < end:
    for s in dribble:
        try:
            s.send(b"X")
        except OSError:
            pass
    time.sleep(1)
print(f"held {len(idle)} idle, {len(dribble)} dribbling, {len(unread)} not reading")
PY
}

probe() { # seconds → "failures worst_ms"
  local end=$((SECONDS + $1)) fails=0 worst=0 t
  while [ $SECONDS -lt $end ]; do
    if t=$(curl -s -o /dev/null -m 5 -w '%{time_total}' "http://$addr/healthz"); then
      t=$(awk -v t="$t" 'BEGIN {printf "%d", t * 1000}')
      [ "$t" -gt "$worst" ] && worst=$t
    else
      fails=$((fails + 1))
    fi
    sleep 0.5
  done
  echo "$fails $worst"
}

printf '%-8s %-9s %-22s %12s %10s %8s\n' writers path condition requests/s p99 errors
for writers in $writer_counts; do
  rm -rf "$dir/pipes"; mkdir "$dir/pipes"
  start_writers "$writers" "$dir/pipes" "$dir/input"
  start_aggregator "$dir/pipes"
  wait_for_writers "$writers"

  wrk_run /stats "plain"
  wrk_run /metrics "plain"
  slow_clients "$slow" $((seconds + 4)) >"$dir/slow.out" &
  slow_pid=$!
  sleep 2
  probe "$seconds" >"$dir/probe.out" &
  probe_pid=$!
  wrk_run /stats "$slow slow clients"
  wait "$probe_pid"
  wait "$slow_pid" || true
  read -r fails worst <"$dir/probe.out"
  echo "         slowloris: $(cat "$dir/slow.out"); /healthz probe: $fails failed, worst ${worst} ms; aggregator threads at the end: $(ls /proc/$serve_pid/task | wc -l); $(curl -s "http://$addr/healthz" | python3 -c 'import json,sys; h=json.load(sys.stdin); c=h.get("connections", {}); print("connections open", c.get("open", "?"), "evicted", c.get("evicted", "?"), "refused", c.get("refused", "?"), "write timeouts", c.get("write_timeouts", "?"))')"

  kill "$serve_pid" "${writer_pids[@]}" 2>/dev/null || true
  wait "$serve_pid" "${writer_pids[@]}" 2>/dev/null || true
done
