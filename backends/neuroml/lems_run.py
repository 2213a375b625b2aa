"""What the jneuroml and neuron runners share: the LEMS files of a run, the tools they call, and
reading their output back in hhc's result shape."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from hhc.compiler.errors import HHCError

from ..base import EmitOptions, unsupported
from ..results import RunResult, TraceGroup
from .generate import CellLayout, _trace_quantity, initial_gate_warnings, lems_filename
from .network import experiment_documents, network_cells, network_gate_warnings, network_size

# the jLEMS interpreter is a reference, not a workhorse; both write one explicitInput and one event
# selection per neuron
MAX_NEURONS = 300


def tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise HHCError(f"{name} not found; install hhc with the neuroml extra: pip install -e '.[neuroml]'")
    return found


def run_tool(cmd, cwd: Path, what: str, timeout=3600):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    log = (cwd / f"{what}.log")
    log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise HHCError(f"{what} failed (exit {proc.returncode}); log in {log}\n{tail}")
    return proc


def read_spikes(path: Path):
    if not path.exists() or path.stat().st_size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    data = np.loadtxt(path, ndmin=2)
    order = np.argsort(data[:, 0], kind="stable")
    return data[order, 1].astype(np.int64), data[order, 0].astype(float)


def read_traces(cell, experiment, out_dir: Path) -> list[TraceGroup]:
    layout = CellLayout(cell)
    groups = []
    for k, tr in enumerate(experiment.traces):
        data = np.loadtxt(out_dir / f"traces_{k}.dat", ndmin=2)
        t = data[:, 0]
        step = max(1, int(round(tr.interval / experiment.dt)))
        keep = np.zeros(len(t), bool)
        keep[::step] = True
        keep &= t < experiment.duration - experiment.dt / 2     # as Brian2: no sample at the end time
        if tr.windows is not None:
            keep &= np.any([(t >= a - 1e-12) & (t < b - 1e-12) for a, b in tr.windows], axis=0)
        variables = {}
        col = 1
        for var in tr.variables:
            _, factor = _trace_quantity(cell, layout, var, "pop[0]")
            n = len(tr.neurons)
            variables[var] = data[keep, col:col + n] * factor
            col += n
        groups.append(TraceGroup(t[keep], np.asarray(tr.neurons), variables))
    return groups


def run_cells(cell, experiment) -> list:
    """The cells a run simulates: the experiment's, or every population's of a network."""
    return [cell] if experiment.drawn is None else network_cells(experiment)


def check_size(target: str, experiment) -> None:
    """Refuse a network with more neurons than the runners take (one population is checked before
    the run by Capabilities.max_neurons)."""
    if experiment.drawn is not None and network_size(experiment) > MAX_NEURONS:
        unsupported(target, f"a network of {network_size(experiment):,} neurons (at most {MAX_NEURONS:,})")


def write_lems(cell, experiment, out_dir: Path) -> Path:
    """The run's NeuroML and LEMS files in out_dir; returns the LEMS file."""
    warnings = (initial_gate_warnings(cell, experiment) if experiment.drawn is None
                else network_gate_warnings(experiment))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in experiment_documents(cell, EmitOptions(experiment=experiment, out_dir=out_dir)).items():
        (out_dir / name).write_text(text)
    return out_dir / lems_filename(cell)


def read_results(simulator: str, cell, experiment, out_dir, wall, meta) -> RunResult:
    import pyneuroml
    if experiment.record_spikes is not None and not (out_dir / "spikes.dat").exists():
        raise HHCError(f"{simulator} wrote no spikes.dat; see the logs in {out_dir}")
    spike_i, spike_t = read_spikes(out_dir / "spikes.dat")
    groups = read_traces(cell, experiment, out_dir)
    for g in groups:
        for name, values in g.variables.items():
            if not np.all(np.isfinite(values)):
                raise HHCError(f"the simulation blew up: {name} is NaN or infinite; use a smaller dt")
    meta = dict(meta, wall_time_s=wall, pyneuroml_version=pyneuroml.__version__,
                initial_gates="steady state (NeuroML)")
    return RunResult(spike_i, spike_t, groups, meta)


def pyneuroml_missing() -> str | None:
    """Why jNeuroML cannot run here, or None."""
    try:
        import pyneuroml  # noqa: F401
    except Exception as exc:
        return f"pyNeuroML cannot be imported ({exc}); pip install -e '.[neuroml]'"
    if shutil.which("java") is None:
        return "java is not installed (jNeuroML is a Java program); apt-get install default-jre-headless"
    return None
