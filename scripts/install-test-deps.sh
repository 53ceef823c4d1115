#!/usr/bin/env bash
# Installs what the test suite needs when it is missing: system packages via
# apt-get (promtool, Chromium, PostgreSQL, SQLite, InfluxDB, wrk, openssl,
# Graphviz, xmllint) and the
# Python peer used by the benchmarks. Safe to run again: it installs only
# what is absent.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have promtool || need+=(prometheus)
have chromium || need+=(chromium)
have chromedriver || need+=(chromium-driver)
have sqlite3 || need+=(sqlite3)
have influxd || need+=(influxdb)
have influx || need+=(influxdb-client)
have wrk || need+=(wrk)
have python3 || need+=(python3)
# The archive TLS tests make their CA and server certificate with it.
have openssl || need+=(openssl)
# The trace tests (issue 16) check /funcs.dot with Graphviz's dot and the
# timeline SVG with xmllint.
have dot || need+=(graphviz)
have xmllint || need+=(libxml2-utils)
# initdb/pg_ctl: Debian keeps them under /usr/lib/postgresql/<v>/bin.
if ! have initdb && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi

if ((${#need[@]})); then
  echo "install-test-deps: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Packages such as prometheus and influxdb try to start their services on
  # install; the tests start their own, so forbid that.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus_client

# The Python package's tests and benchmark: a venv with maturin, gunicorn and
# prometheus_client (target/py-test); a C and a C++ compiler for the C ABI
# tests (the header is checked from both).
have cc && have c++ || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"; $sudo apt-get install -y -qq --no-install-recommends gcc g++ libc6-dev >/dev/null; }
scripts/python-venv.sh >/dev/null
