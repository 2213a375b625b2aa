#!/usr/bin/env bash
# MPI-enabled NEST for `hhc run --backend nest --mpi P`.
#
# How the two NEST installations coexist:
#   * ./.venv holds the PyPI nest-simulator wheel (no MPI, old C++ ABI): hhc's 1-process runs, PyNN, NESTML.
#   * ~/.cache/hhc/nest-mpi-venv holds NEST 3.10.0 built here from its sdist with MPI on (new C++ ABI) plus
#     numpy; nothing else. hhc runs `mpirun -np P <that venv>/bin/python <generated rank script>` and builds
#     NESTML modules separately against each NEST (the module cache key includes the NEST build).
#   * The built wheel is cached in ~/.cache/hhc/wheels/nest-mpi/ so a machine compiles NEST once (~24 min on
#     2 cores); the venv is recreated from it in seconds.
# Override the locations with HHC_NEST_MPI_VENV / HHC_CACHE. Safe to run again: skips finished work.
set -euo pipefail
NEST_VERSION=3.10.0
CACHE="${HHC_CACHE:-$HOME/.cache/hhc}"
WHEELS="$CACHE/wheels/nest-mpi"
VENV="${HHC_NEST_MPI_VENV:-$CACHE/nest-mpi-venv}"
PY="${HHC_PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import nest, sys; sys.exit(nest.build_info["have_mpi"] is not True)' >/dev/null 2>&1; then
  echo "nest_mpi: MPI NEST already installed in $VENV"; exit 0
fi

need=()
for p in openmpi-bin libopenmpi-dev libgsl-dev libltdl-dev libboost-dev cmake g++ make pkg-config; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "nest_mpi: installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

mkdir -p "$WHEELS"
wheel="$(ls "$WHEELS"/nest_simulator-"$NEST_VERSION"-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
  echo "nest_mpi: building NEST $NEST_VERSION with MPI from source (about 24 min on 2 cores)"
  tmp="$(mktemp -d "$WHEELS/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m venv "$tmp/buildenv"
  "$tmp/buildenv/bin/python" -m pip install -q --upgrade pip wheel
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  "$tmp/buildenv/bin/python" -m pip wheel --no-deps --no-binary nest-simulator \
      -C cmake.define.with-mpi=ON -C cmake.define.with-gsl=ON -C cmake.define.with-ltdl=ON \
      -w "$tmp/out" "nest-simulator==$NEST_VERSION"
  built="$(ls "$tmp"/out/nest_simulator-*.whl | head -1)"
  mv "$built" "$WHEELS/"               # same filesystem: atomic
  wheel="$WHEELS/$(basename "$built")"
fi
echo "nest_mpi: installing $wheel into $VENV"
rm -rf "$VENV.tmp"
"$PY" -m venv "$VENV.tmp"
"$VENV.tmp/bin/python" -m pip install -q --upgrade pip
"$VENV.tmp/bin/python" -m pip install -q "numpy>=1.26,<2.4" "$wheel"
rm -rf "$VENV"; mv "$VENV.tmp" "$VENV"
# venv scripts hard-code their path; re-point them after the move
grep -rl "$VENV.tmp" "$VENV/bin" 2>/dev/null | xargs -r sed -i "s|$VENV.tmp|$VENV|g"
"$VENV/bin/python" -c 'import nest; print("nest_mpi: have_mpi =", nest.build_info["have_mpi"])'
