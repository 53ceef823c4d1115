#!/usr/bin/env bash
# Makes (or completes) the Python virtual environment the Python package's
# tests and benchmark use: maturin (builds stats_pipe), gunicorn and
# prometheus_client from PyPI. Safe to run again: installs only what is
# missing. Usage: scripts/python-venv.sh [DIR]   (default target/py-test)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${STATS_PIPE_TEST_VENV:-target/py-test}}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian's python3 needs the venv module as a package.
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv python3-dev >/dev/null
    "$python" -m venv "$venv"
  fi
fi
missing=()
"$venv/bin/python" -c 'import maturin' 2>/dev/null || missing+=(maturin)
"$venv/bin/python" -c 'import gunicorn' 2>/dev/null || missing+=(gunicorn)
"$venv/bin/python" -c 'import prometheus_client' 2>/dev/null || missing+=(prometheus_client)
if ((${#missing[@]})); then
  echo "python-venv: installing ${missing[*]} into $venv" >&2
  "$venv/bin/python" -m pip install -q "${missing[@]}"
fi
echo "$venv"
