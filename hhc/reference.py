"""`hhc reference`'s work: load an experiment, integrate a sample of its neurons with the SciPy
reference (hhc.backends.reference.compute_reference) and write them as an hhc result.

The result has the original neuron indices, so `hhc compare` can read it next to any run of the same
experiment; meta.json records the solver, its tolerances and the sampled neurons (``sample_neurons``).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import sys
from pathlib import Path

import numpy as np

from hhc.api import prepare
from hhc.backends.reference import DEFAULT_METHOD, DEFAULT_RTOL, compute_reference, sample_indices
from hhc.backends.results import write_results
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import RunOverrides
from hhc.compiler.version import __version__


def reference_run(experiment, *, sample=10, neurons=None, out=None, method=DEFAULT_METHOD,
                  rtol=DEFAULT_RTOL, duration=None, variables=("v",), interval=None, quiet=False) -> Path:
    """Load an experiment, compute the reference for a sample and write it as an hhc result."""
    exp, cell, _ = prepare(experiment, RunOverrides(duration=duration), choose_auto=False)
    if neurons is None:
        neurons = sample_indices(exp.size, sample)
    neurons = np.asarray(sorted(set(int(n) for n in neurons)), dtype=np.int64)
    if len(neurons) == 0 or neurons.min() < 0 or neurons.max() >= exp.size:
        raise HHCError(f"sample neurons must lie in 0..{exp.size - 1}")
    out_dir = Path(out) if out is not None else Path("runs") / (
        f"{Path(exp.path).stem}-reference-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}")
    tty = sys.stderr.isatty()

    def progress(done, total):
        if not quiet and (tty or done == total):
            print(f"\rreference: {done}/{total} neurons", end="" if done < total else "\n", file=sys.stderr)
    result = compute_reference(exp, cell, neurons, method=method, rtol=rtol, variables=tuple(variables),
                               interval=interval, progress=progress)
    meta = {"hhc_version": __version__, "experiment": str(Path(exp.path).resolve()),
            "model": str(exp.model_file), "cell": cell.name, "n_neurons": exp.size,
            "duration": exp.duration, "seed": exp.seed,
            "protocol": [dataclasses.asdict(p) for p in exp.protocol], "warnings": list(exp.warnings),
            "python": platform.python_version(), "machine": platform.machine(),
            "created": _dt.datetime.now().isoformat(timespec="seconds")}
    meta.update(result["meta"])
    write_results(out_dir, spike_i=result["spike_i"], spike_t=result["spike_t"], traces=result["traces"],
                  meta=_jsonable(meta), crossings=result["crossings"])
    return out_dir


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
