#!/usr/bin/env bash
# brian2cuda for `hhc ... --backend brian2 --device cuda_standalone` (docs/cuda.md).
#
# How the two Brian2 installations coexist:
#   * ./.venv holds brian2 2.9.0 (the newest for Python 3.11): runtime and cpp_standalone, all of hhc.
#   * ~/.cache/hhc/cuda-venv holds brian2 2.8.0 + brian2cuda 1.0a7 (which pins brian2 2.8.0) + cuRAND
#     (the nvidia-curand wheel: the CUDA toolkit here has no cuRAND), and hhc itself, editable, with its
#     [cuda] extra. hhc in ./.venv runs `<cuda-venv>/bin/python` as a subprocess to generate and compile
#     the CUDA project (backends/brian2/cuda.py); nothing of brian2cuda is imported into ./.venv.
# Skipped (exit 0, with a message) when there is no nvcc. Override the location with HHC_CUDA_VENV /
# HHC_CACHE. Safe to run again: finishes in about a second when the venv is complete.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${HHC_CACHE:-$HOME/.cache/hhc}"
VENV="${HHC_CUDA_VENV:-$CACHE/cuda-venv}"
PY="${HHC_PYTHON:-python3}"
REPO="$(pwd -P)"

nvcc="$(command -v nvcc || true)"
[ -n "$nvcc" ] || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc; } || true
if [ -z "$nvcc" ]; then
  echo "cuda: nvcc not found (not on PATH, no /usr/local/cuda/bin/nvcc): skipping the brian2cuda venv;"
  echo "cuda: --device cuda_standalone needs the CUDA toolkit: install it, then run scripts/setup.d/40-cuda.sh"
  exit 0
fi
echo "cuda: $("$nvcc" --version | grep -m1 release) ($nvcc)"

deps='
import glob, os, sys, brian2, brian2cuda
assert brian2.__version__ == "2.8.0", brian2.__version__
assert any(glob.glob(os.path.join(p, "nvidia", "*", "include", "curand.h")) for p in sys.path), "no cuRAND"
'
where='import os, hhc; print(os.path.dirname(os.path.dirname(os.path.realpath(hhc.__file__))))'
if [ -x "$VENV/bin/python" ] && [ -e "$VENV/.hhc-cuda-complete" ] && "$VENV/bin/python" -P -c "$deps" >/dev/null 2>&1; then
  now="$("$VENV/bin/python" -P -c "$where" 2>/dev/null || true)"
  if [ "$now" != "$REPO" ]; then
    # the venv's editable hhc points at another (or a deleted) checkout: point it here, in seconds
    echo "cuda: pointing the venv's hhc at $REPO (was ${now:-a checkout that is gone})"
    out="$("$VENV/bin/python" -m pip install -q --no-deps -e . 2>&1)" || { echo "$out"; exit 1; }
  fi
  echo "cuda: brian2cuda venv already installed in $VENV"
  exit 0
fi

echo "cuda: installing brian2 2.8.0 + brian2cuda 1.0a7 + cuRAND and hhc[cuda] into $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
"$VENV/bin/python" -m pip install -q -e ".[cuda]"
"$VENV/bin/python" -P -c "$deps"
[ "$("$VENV/bin/python" -P -c "$where")" = "$REPO" ]
touch "$VENV/.hhc-cuda-complete"
"$VENV/bin/python" -c 'import brian2, brian2cuda, numpy; print(f"cuda: ok: brian2 {brian2.__version__}, brian2cuda {brian2cuda.__version__}, numpy {numpy.__version__}")'
