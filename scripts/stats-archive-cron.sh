#!/usr/bin/env bash
# stats-archive-cron.sh: archives one pass of this host's stats into a
# database (host-aggregator archive), safe to run from cron every minute.
#
# Crontab line to copy (root's crontab, `crontab -e`; every minute):
#
#   * * * * * /usr/local/bin/stats-archive-cron.sh >>/var/log/stats-archive.log 2>&1
#
# Overlap: runs hold an flock; a run that finds the previous one still going
# (a slow or unreachable database) logs "skipped" and exits 75 instead of
# piling up. Each run is also bounded by a timeout; a run killed by it, by
# the lock timeout, or by anything else writes nothing (the archive is one
# transaction), and the next minute's run archives afresh.
#
# Settings (environment, all optional):
#   STATS_ARCHIVE_DB       database URL; default: host-aggregator's default
#                          (sqlite:/var/lib/stats-pipe/archive.db as root)
#   STATS_ARCHIVE_FROM     read a running aggregator (http://127.0.0.1:7828)
#                          instead of the pipes
#   STATS_ARCHIVE_ARGS     extra archive flags, e.g. "--per-process --host web1"
#   STATS_ARCHIVE_LOCK     lock file; default /run/lock/stats-archive.lock
#                          (root) or ${XDG_RUNTIME_DIR:-/tmp}/stats-archive.lock
#   STATS_ARCHIVE_TIMEOUT  seconds a run may take; default 50
#   HOST_AGGREGATOR        the binary; default: the first of host-aggregator
#                          beside this script, on PATH, in /usr/local/bin
#
# Exit codes: 0 archived (or that second was already archived), 1 the
# archive failed (message logged), 2 bad usage or setup, 75 skipped because
# a previous run still holds the lock, 124 the run timed out.
set -uo pipefail

log() { printf '%s stats-archive[%d]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*"; }

# The binary: HOST_AGGREGATOR if set; else the one installed beside this
# script (scripts/install.sh puts both in PREFIX/bin), then PATH, then
# /usr/local/bin: cron's PATH is only /usr/bin:/bin.
here=$(cd "$(dirname "$0")" 2>/dev/null && pwd -P) || here=$(dirname "$0")
if [ -n "${HOST_AGGREGATOR:-}" ]; then
  bin=$HOST_AGGREGATOR
  if ! command -v "$bin" >/dev/null 2>&1; then
    log "error: HOST_AGGREGATOR=$bin: no such program"
    exit 2
  fi
else
  bin=""
  tried=()
  for candidate in "$here/host-aggregator" PATH /usr/local/bin/host-aggregator; do
    if [ "$candidate" = PATH ]; then
      tried+=("host-aggregator on PATH ($PATH)")
      found=$(command -v host-aggregator 2>/dev/null) && { bin=$found; break; }
    else
      tried+=("$candidate")
      [ -x "$candidate" ] && [ ! -d "$candidate" ] && { bin=$candidate; break; }
    fi
  done
  if [ -z "$bin" ]; then
    log "error: host-aggregator not found; tried $(printf '%s, ' "${tried[@]}" | sed 's/, $//'). Install it (scripts/install.sh) or set HOST_AGGREGATOR=/path/to/host-aggregator"
    exit 2
  fi
fi
if [ "$(id -u)" -eq 0 ]; then
  default_lock=/run/lock/stats-archive.lock
else
  default_lock=${XDG_RUNTIME_DIR:-/tmp}/stats-archive.lock
fi
lock=${STATS_ARCHIVE_LOCK:-$default_lock}
timeout_s=${STATS_ARCHIVE_TIMEOUT:-50}

args=(archive)
[ -n "${STATS_ARCHIVE_DB:-}" ] && args+=(--db "$STATS_ARCHIVE_DB")
[ -n "${STATS_ARCHIVE_FROM:-}" ] && args+=(--from "$STATS_ARCHIVE_FROM")
# Word splitting of the extra flags is intended.
# shellcheck disable=SC2206
[ -n "${STATS_ARCHIVE_ARGS:-}" ] && args+=(${STATS_ARCHIVE_ARGS})

if ! exec 9>>"$lock"; then
  log "error: cannot open lock file $lock"
  exit 2
fi
if ! flock -n 9; then
  log "skipped: a previous run still holds $lock"
  exit 75
fi

output=$(timeout --kill-after=5 "$timeout_s" "$bin" "${args[@]}" 2>&1)
status=$?
case $status in
  0) log "$output" ;;
  124 | 137) log "error: timed out after ${timeout_s}s (nothing of this run was written): $output"; status=124 ;;
  *) log "error (exit $status): $output" ;;
esac
exit "$status"
