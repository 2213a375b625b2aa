#!/usr/bin/env bash
# NeuroML backends: jNeuroML (inside pyNeuroML) needs Java; NEURON's nrnivmodl needs a C/C++ compiler
# and make (installed by setup.sh). The Python packages come from the `neuroml` extra.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v java >/dev/null 2>&1; then
  echo "installing Java for jNeuroML"
  apt-get update -qq && apt-get install -y -qq default-jre-headless
fi
java -version 2>&1 | head -1
.venv/bin/python - <<'PY'
import neuroml, pyneuroml, neuron, lxml  # noqa: F401
print(f"neuroml ok: pyNeuroML {pyneuroml.__version__}, libNeuroML {neuroml.__version__}, NEURON {neuron.__version__}")
PY
