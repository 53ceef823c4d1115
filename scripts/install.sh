#!/usr/bin/env bash
# Installs stats-pipe on this host: builds the release binaries and puts
# `host-aggregator` and `pipe-writer` in PREFIX/bin, the cron wrapper
# (stats-archive-cron.sh) beside them, README.md and docs/ARCHIVE.md in
# PREFIX/share/doc/stats-pipe, and the systemd units
# (host-aggregator.service, stats-archive.service and .timer) in the systemd
# unit directory, their ExecStart pointing at PREFIX/bin/host-aggregator.
# It enables nothing: it prints the commands that do.
#
# Usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--systemd-dir DIR]
#                           [--no-systemd] [--from DIR]
#
#   --prefix DIR       where the programs go, in DIR/bin (default /usr/local)
#   --destdir DIR      stage everything under DIR (DIR/PREFIX/bin, ...), for
#                      packaging and tests; the units still name PREFIX/bin
#   --systemd-dir DIR  the unit directory (default /etc/systemd/system)
#   --no-systemd       leave the systemd units out
#   --from DIR         install the binaries already built in DIR (for
#                      example target/release) instead of building them
#
# Without --from it runs `cargo build --release` (cargo shows its progress; a
# first build takes several minutes, see BENCHMARKS.md, "First build"), as
# the user running the script. Run it with sudo only after building, or use
# --from: `cargo build --release && sudo scripts/install.sh --from target/release`.
#
# Exit codes: 0 installed, 1 a build or copy failed, 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--systemd-dir DIR] [--no-systemd] [--from DIR]" >&2
  exit 2
}

prefix=/usr/local
destdir=""
systemd_dir=/etc/systemd/system
systemd=1
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --systemd-dir) systemd_dir=${2:?--systemd-dir needs a directory}; shift 2 ;;
    --no-systemd) systemd=0; shift ;;
    --from) from=${2:?--from needs a directory}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage ;;
  esac
done
case "$prefix" in
  *[\|\&\\]* | *$'\n'*) echo "install.sh: --prefix holds a character the units cannot name: $prefix" >&2; exit 2 ;;
  /*) ;;
  *) echo "install.sh: --prefix must be an absolute path (the units name it): $prefix" >&2; exit 2 ;;
esac
prefix=${prefix%/}
bins=(host-aggregator pipe-writer)

if [ -z "$from" ]; then
  echo "== building release binaries (cargo build --release)"
  cargo build --release -p host-aggregator -p pipe-writer --bin host-aggregator --bin pipe-writer
  from=${CARGO_TARGET_DIR:-target}/release
fi
for bin in "${bins[@]}"; do
  if [ ! -x "$from/$bin" ]; then
    echo "install.sh: no built $bin in $from (build it, or drop --from to build)" >&2
    exit 1
  fi
done

bindir=$destdir$prefix/bin
echo "== programs into $bindir"
install -d "$bindir"
for bin in "${bins[@]}"; do
  install -m 0755 "$from/$bin" "$bindir/$bin"
  echo "   $bindir/$bin"
done
install -m 0755 scripts/stats-archive-cron.sh "$bindir/stats-archive-cron.sh"
echo "   $bindir/stats-archive-cron.sh"
# The units' Documentation= lines point here.
docdir=$destdir$prefix/share/doc/stats-pipe
install -d "$docdir"
install -m 0644 README.md docs/ARCHIVE.md "$docdir/"
echo "   $docdir/{README.md,ARCHIVE.md}"

if [ "$systemd" = 1 ]; then
  unitdir=$destdir$systemd_dir
  echo "== systemd units into $unitdir"
  install -d "$unitdir"
  for unit in host-aggregator.service stats-archive.service stats-archive.timer; do
    # The units ship naming /usr/local/bin and /usr/share/doc; point them
    # at this prefix.
    sed -e "s|/usr/local/bin/host-aggregator|$prefix/bin/host-aggregator|g" \
      -e "s|file:///usr/share/doc/stats-pipe/|file://$prefix/share/doc/stats-pipe/|g" \
      "scripts/systemd/$unit" >"$unitdir/$unit.tmp"
    chmod 0644 "$unitdir/$unit.tmp"
    mv -f "$unitdir/$unit.tmp" "$unitdir/$unit"
    echo "   $unitdir/$unit"
  done
fi

cat <<EOF
== installed. Next, as root:
   systemctl daemon-reload && systemctl enable --now host-aggregator stats-archive.timer
 or, with cron instead of the timer (crontab -e):
   * * * * * $prefix/bin/stats-archive-cron.sh >>/var/log/stats-archive.log 2>&1
EOF
