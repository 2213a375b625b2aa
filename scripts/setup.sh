#!/usr/bin/env bash
# Installs hhc and what it needs into ./.venv: `scripts/setup.sh` for running, `scripts/setup.sh test`
# for the test suite as well. Safe to run again (pip only installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: a C++ compiler for Brian2's Cython and cpp_standalone code, Python headers.
need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
if [ "${1:-}" = "test" ]; then
  # the tests exercise every backend, so they need every simulator
  .venv/bin/python -m pip install -q -e ".[test,neuroml,nest,compare]"
  # further set-up steps, one file per backend (heavy builds cache under ~/.cache/hhc)
  for step in scripts/setup.d/*.sh; do
    [ -e "$step" ] || continue
    echo "setup: $step"
    bash "$step"
  done
else
  .venv/bin/python -m pip install -q -e .
fi
.venv/bin/hhc --version
