# Shared by scripts/bench-http.sh and scripts/load.sh (sourced, not run):
# build the release binaries, a temp dir removed on exit with every process
# started, start writers and `host-aggregator serve` on a free loopback port,
# and wait until every writer is read. AGGREGATOR=PATH serves with another
# build of host-aggregator (to compare two builds side by side).
#
# After sourcing: $target, $dir (the temp dir) and the array pids; call
# start_writers, start_aggregator, wait_for_writers; the EXIT trap kills
# everything in pids and removes $dir.

aggregator_setup() { # name → builds, makes $dir, installs the cleanup trap
  command -v wrk >/dev/null || { echo "$1: wrk is not installed (scripts/install-test-deps.sh)" >&2; exit 1; }
  target=${CARGO_TARGET_DIR:-target}
  cargo build --release --quiet -p host-aggregator -p pipe-writer --bin host-aggregator --bin pipe-writer
  dir=$(mktemp -d "/tmp/stats-pipe-$1.XXXXXX")
  script_name=$1
  pids=()
  trap aggregator_cleanup EXIT
  trap 'exit 130' INT TERM
}

aggregator_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}

start_writers() { # count pipe-dir input → starts `pipe-writer --linger`s; sets writer_pids
  writer_pids=()
  for _ in $(seq 1 "$1"); do
    "$target/release/pipe-writer" --dir "$2" --linger <"$3" >/dev/null &
    writer_pids+=($!)
  done
  pids+=("${writer_pids[@]}")
}

start_aggregator() { # pipe-dir [serve flags...] → sets $addr and $serve_pid
  local pipes=$1 out="$dir/serve.out"
  shift
  "${AGGREGATOR:-$target/release/host-aggregator}" serve --listen 127.0.0.1:0 --pipe-dir "$pipes" "$@" >"$out" 2>"$dir/serve.err" &
  serve_pid=$!
  pids+=("$serve_pid")
  addr=
  for _ in $(seq 1 100); do
    addr=$(sed -n 's|^listening on http://||p' "$out" | head -1)
    [ -n "$addr" ] && return
    sleep 0.1
  done
  echo "$script_name: the aggregator did not start" >&2
  exit 1
}

wait_for_writers() { # count → waits (up to 30 s) until /stats reads every writer
  local ok=0
  for _ in $(seq 1 150); do
    ok=$(curl -s "http://$addr/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"]["ok"])' 2>/dev/null || echo 0)
    [ "$ok" = "$1" ] && return
    sleep 0.2
  done
  echo "$script_name: only $ok of $1 writers read" >&2
  exit 1
}
