"""Running an experiment on NEST: one script (scripts/rank.py, needing only nest and numpy) run by
`python` (one process) or under mpirun/srun (P processes); every rank writes its own neurons'
spikes and samples, gathered here into hhc's result."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import sympy

from hhc.compiler import ir, rhs as ir_rhs, units
from hhc.compiler.errors import HHCError

from ..base import unsupported
from ..results import RunResult
from .build import SCRIPTS, build_module, mpi_python
from .nestml import FIXED_STEP, _variant, nest_name, nest_scale

RANK_SCRIPT = SCRIPTS / "rank.py"


def _steady_state(cell: ir.Cell, gate: ir.Gate, v: np.ndarray) -> np.ndarray:
    f = sympy.lambdify(ir.V, ir_rhs.steady_state_si(cell, gate), modules=ir_rhs.NUMERIC_MODULES)
    return np.broadcast_to(np.asarray(f(v), dtype=float), v.shape).copy()


def initial_state(cell: ir.Cell, experiment) -> dict[str, np.ndarray]:
    """Every state of every neuron, in NEST units, from the experiment's arrays (drawn once by
    hhc.compiler.experiment.resolve, so the same for any number of processes or threads)."""
    return initial_values(cell, experiment.initial_arrays, experiment.size)


def initial_values(cell: ir.Cell, arrays: dict, n: int) -> dict[str, np.ndarray]:
    """Every state of n neurons in NEST units from hhc's initial arrays (state -> SI array or None: a
    gate's steady state at v; a synapse state without one starts at 0)."""
    v = arrays.get("v")
    v = np.full(n, -0.065) if v is None else np.broadcast_to(np.asarray(v, dtype=float), (n,))
    out = {"V_m": v / float(nest_scale(units.VOLTAGE))}
    for g in cell.gates:
        value = arrays.get(g.state)
        out[nest_name(g.state)] = _steady_state(cell, g, v) if value is None else \
            np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
    for pool in cell.dynamic_pools:         # ion concentrations: SI mol/m3 = mM, NEST's unit (mmol/l)
        value = arrays.get(pool.state)
        if value is None:
            start = pool.initial if pool.initial is not None else pool.resting.value
            value = np.full(n, float(units.to_si(start)))
        out[nest_name(pool.state)] = np.broadcast_to(np.asarray(value, dtype=float), (n,)) / float(
            nest_scale(units.CONCENTRATION))
    for syn in cell.synapses:
        for state in syn.states:
            value = arrays.get(state)
            value = np.zeros(n) if value is None else np.broadcast_to(np.asarray(value, dtype=float), (n,))
            out[nest_name(state)] = value / float(nest_scale(syn.weight_dimension))
    return out


def _launch_command(experiment, python: str, script: Path, spec: Path) -> list[str]:
    procs = experiment.backend.mpi
    launcher = experiment.backend.launcher
    if launcher:
        return shlex.split(launcher) + [python, str(script), str(spec)]
    if not procs or procs == 1 and not launcher:
        return [python, str(script), str(spec)]
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise HHCError("--mpi needs mpirun, which is not installed: run scripts/setup.d/nest_mpi.sh "
                       "(Debian openmpi-bin) or pass --launcher, e.g. --launcher 'srun -n 64'")
    cmd = [mpirun, "-np", str(procs)]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += ["--oversubscribe", "--bind-to", "none"]
    return cmd + [python, str(script), str(spec)]


def _mpi_nest_python(experiment) -> str:
    """The Python of the MPI-enabled NEST (its own venv; see scripts/setup.d/nest_mpi.sh)."""
    py = Path(os.environ.get("HHC_NEST_MPI_PYTHON", mpi_python()))
    if not py.exists():
        raise HHCError(f"--mpi needs NEST built with MPI, expected in {py.parent.parent} (not found): run "
                       f"scripts/setup.d/nest_mpi.sh once (builds NEST 3.10 from source, ~25 min), or set "
                       f"HHC_NEST_MPI_PYTHON to the python of an MPI-enabled NEST")
    check = subprocess.run([str(py), "-c", "import nest; print(nest.build_info['have_mpi'])"],
                           capture_output=True, text=True)
    if check.returncode != 0 or check.stdout.strip().splitlines()[-1:] != ["True"]:
        raise HHCError(f"the NEST of {py} has no MPI support (have_mpi: "
                       f"{(check.stdout.strip().splitlines() or ['?'])[-1]}); run scripts/setup.d/nest_mpi.sh")
    return str(py)


def run_nest(cell: ir.Cell, experiment, out_dir: Path, progress=None) -> RunResult:
    variant = _variant(experiment.method)
    use_mpi = bool(experiment.backend.mpi and experiment.backend.mpi > 1) or bool(experiment.backend.launcher)
    python = _mpi_nest_python(experiment) if use_mpi else sys.executable
    t_build = time.perf_counter()
    built = build_module(cell, variant, python=python)
    build_time = time.perf_counter() - t_build

    work = (out_dir / "nest").resolve()     # the script runs in work: every path it is given is absolute
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dt_ms = experiment.dt * 1e3
    init = initial_state(cell, experiment)
    np.savez(work / "init.npz", **init)
    phases = []
    for p in experiment.protocol:
        steps = int(round(p.duration / experiment.dt))
        inputs = {nest_name(k): v / float(nest_scale(_input_dim(cell, k))) for k, v in p.inputs.items()}
        phases.append({"steps": steps, "inputs": inputs})
    total_steps = sum(p["steps"] for p in phases)
    traces, var_scale = trace_specs(cell, variant, experiment)
    spikes = None if experiment.record_spikes is None else \
        "all" if experiment.record_spikes is True else sorted(experiment.record_spikes)
    spec = {"lib_dir": str(built.lib_dir), "module": built.module, "model": built.model, "n": experiment.size,
            "dt_ms": dt_ms, "threads": int(experiment.backend.threads or 1), "init": str(work / "init.npz"),
            "parameters": {}, "phases": phases, "spikes": spikes, "traces": traces, "out": str(work),
            "chunk_steps": max(100, min(10000, total_steps // 200 or 1)), "check_finite": variant in FIXED_STEP}
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    script = work / "rank.py"
    shutil.copyfile(RANK_SCRIPT, script)
    cmd, launch_wall = launch(experiment, python, script, work, [built.lib_dir], spec["threads"], progress)
    return _gather(cell, experiment, work, traces, var_scale, dt_ms,
                   {"method": variant, "integrator": f"hhc {variant} (update block)" if variant in FIXED_STEP
                    else "NESTML default: GSL rkf45", "nest_module": built.module,
                    "nest_module_dir": str(built.directory), "nest_python": python,
                    "module_build_time_s": build_time, "launch": cmd[:-2], "launch_wall_time_s": launch_wall})


def trace_specs(cell: ir.Cell, variant: str, experiment):
    """The experiment's trace groups as the rank script's multimeters (NEST names) and each recorded
    variable's SI value of one NEST unit."""
    traces = []
    var_scale = {}
    for tr in experiment.traces:
        names = []
        for var in tr.variables:
            name = nest_name(var)
            if var in cell.states:
                var_scale[name] = float(nest_scale(cell.state_dimension(var)))
            else:
                var_scale[name] = float(nest_scale(units.CURRENT))
                if variant in FIXED_STEP:
                    unsupported("nest", f"recording '{var}' with method {variant}",
                                hint=f"use method = \"rkf45\"; hhc's {variant} model records states only "
                                     f"({', '.join(cell.states)})")
            names.append(name)
        windows = [(a * 1e3, b * 1e3) for a, b in tr.windows] if tr.windows else [(0.0, None)]
        traces.append({"variables": names, "neurons": list(tr.neurons), "interval_ms": tr.interval * 1e3,
                       "windows": windows})
    return traces, var_scale


def launch(experiment, python: str, script: Path, work: Path, lib_dirs, threads: int, progress=None):
    """Run `script` on `work/spec.json` with python (one process) or the MPI launcher; progress lines
    go to `progress`; output is kept in work/output.log. Returns (command, wall time)."""
    cmd = _launch_command(experiment, python, script, work / "spec.json")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([str(d) for d in lib_dirs] + [env.get("LD_LIBRARY_PATH", "")])
    env.setdefault("OMP_NUM_THREADS", str(threads))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work)
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
    reader.start()
    out_lines = []
    for line in proc.stdout:
        if line.startswith("HHC-PROGRESS"):
            if progress is not None:
                progress(float(line.split()[1]))
        else:
            out_lines.append(line)
    proc.wait()
    reader.join(timeout=5)
    launch_wall = time.perf_counter() - t0
    (work / "output.log").write_text("".join(out_lines) + "\n--- stderr ---\n" + "".join(err_lines))
    if proc.returncode != 0:
        tail = "".join((out_lines + err_lines)[-15:])
        raise HHCError(f"the NEST simulation failed ({' '.join(cmd[:4])} ... exit {proc.returncode}); "
                       f"log: {work / 'output.log'}\n{tail}")
    return cmd, launch_wall


def _input_dim(cell: ir.Cell, name: str) -> units.Dimension:
    for i in cell.inputs:
        if i.name == name:
            return i.dimension
    raise HHCError(f"cell {cell.name} has no input {name}")


def _gather(cell, experiment, work: Path, traces, var_scale, dt_ms, meta) -> RunResult:
    ranks = sorted(work.glob("rank*.json"))
    if not ranks:
        raise HHCError(f"the NEST run wrote no results in {work}")
    infos = [json.loads(p.read_text()) for p in ranks]
    nproc = infos[0]["num_processes"]
    if len(infos) != nproc:
        raise HHCError(f"{len(infos)} of {nproc} NEST processes wrote results in {work}")
    bad = sorted((b for i in infos for b in i.get("nonfinite_first", [])), key=lambda b: b[1])
    if bad:
        count = sum(i.get("nonfinite", 0) for i in infos)
        first = ", ".join(f"neuron {n} at {t:g} ms" for n, t in bad[:5])
        raise HHCError(f"the simulation blew up: v of {count} neuron(s) stopped being a finite number ({first}); "
                       f"try a smaller dt or method = \"rk4\"")
    data = [np.load(work / f"rank{r}.npz") for r in range(nproc)]
    spike_i = np.zeros(0, np.int64)
    spike_t = np.zeros(0)
    if experiment.record_spikes is not None:
        spike_i = np.concatenate([d["spike_i"] for d in data])
        # NEST stamps the end of the step in which v crossed; hhc (like Brian2) its start
        spike_t = (np.concatenate([d["spike_t"] for d in data]) - dt_ms) * 1e-3
        order = np.lexsort((spike_i, spike_t))
        spike_i, spike_t = spike_i[order], spike_t[order]
    groups = []
    for g, tr in enumerate(traces):
        neurons = np.asarray(tr["neurons"], dtype=np.int64)
        col = {int(n): k for k, n in enumerate(neurons)}
        times_all, values_all = [], {v: [] for v in tr["variables"]}
        for w in range(len(tr["windows"])):
            ii = np.concatenate([d[f"g{g}w{w}_i"] for d in data])
            tt = np.concatenate([d[f"g{g}w{w}_t"] for d in data])
            times = np.unique(tt)
            row = np.searchsorted(times, tt)
            cols = np.array([col[int(i)] for i in ii], dtype=np.int64)
            times_all.append(times)
            for var in tr["variables"]:
                vals = np.concatenate([d[f"g{g}w{w}_{var}"] for d in data])
                m = np.full((len(times), len(neurons)), np.nan)
                m[row, cols] = vals * var_scale[var]
                values_all[var].append(m)
        names = {nest_name(v): v for v in (list(cell.states) + [ch.current_name for ch in cell.channels] + ["I_leak"])}
        groups.append({"t": np.concatenate(times_all) * 1e-3, "neurons": neurons,
                       "variables": {names.get(v, v): np.concatenate(values_all[v]) for v in tr["variables"]}})
    for g in groups:
        for name, arr in g["variables"].items():
            if arr.size and not np.isfinite(arr).all():
                raise HHCError(f"the simulation blew up: {name} is NaN or infinite in a recorded trace; "
                               f"try a smaller dt")
    wall = max(i["wall_time_s"] for i in infos)
    meta = dict(meta)
    meta.update({"device": "cpu", "wall_time_s": wall, "cpu_time_s": max(i.get("cpu_time_s", 0.0) for i in infos),
                 "nest_version": infos[0]["nest_version"],
                 "mpi_processes": nproc, "have_mpi": infos[0]["have_mpi"], "threads": infos[0]["threads"],
                 "local_neurons_per_rank": [i["local_neurons"] for i in infos],
                 "setup_time_s": max(i["setup_time_s"] for i in infos),
                 "spike_time_convention": "start of the step in which v crossed the threshold (NEST time - dt)"})
    return RunResult(spike_i, spike_t, groups, meta)
