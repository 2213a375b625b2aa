"""Networks on NEST (issue 15): hhc's drawn network (hhc.compiler.network.DrawnNetwork) as NEST nodes
and connections, run by scripts/network_rank.py in one process or under MPI.

* one NESTML model per cell (backends/nest/nestml.py: a spike input port per synapse of the cell,
  whose onReceive block makes the synapse states jump by the weight times ir.Synapse.jumps; the
  synapse ODEs and currents are part of the cell's right-hand side), one NEST population per hhc
  population (nest.Create), per-neuron parameters and initial states set node by node;
* one spike_generator per source neuron, holding hhc's drawn trains (Poisson trains are drawn by hhc,
  never by NEST's poisson_generator), the times on NEST's grid (nearest step, at least one step);
* hhc's drawn edge lists connected one-to-one (arrays of node ids, weights in nS or pA, delays
  rounded to whole steps, the synapse's receptor port), so every rank and thread count simulates
  the same network; NEST's min_delay/max_delay are set from the delays.

Timing: a neuron's spike (hhc time t: the start of the step in which v crossed) reaches its targets
at the end of the step that ends at t + dt + delay (NEST's rule, and Brian2's); a source spike at time
T (on the grid) at the end of the step ending at T + delay, as in the reference.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from hhc.compiler import ir, units
from hhc.compiler.errors import HHCError

from ..base import unsupported
from ..results import RunResult
from .build import SCRIPTS, build_module
from .nestml import FIXED_STEP, NOISE_STATE, _variant, nest_name, nest_scale, nestml_text, spike_port
from .run import _gather, _mpi_nest_python, initial_values, launch, trace_specs

NETWORK_SCRIPT = SCRIPTS / "network_rank.py"


def _si_to_nest(dim: units.Dimension) -> float:
    return 1.0 / float(nest_scale(dim))


def _input_dimension(cell: ir.Cell, name: str) -> units.Dimension:
    for i in cell.inputs:
        if i.name == name:
            return i.dimension
    raise HHCError(f"cell {cell.name} has no input {name}")


def network_spec(cell: ir.Cell, experiment, work: Path, variant: str, modules: dict) -> tuple[dict, dict, dict]:
    """The rank script's spec and its arrays (written to work/network.npz): populations with their
    per-neuron parameters and initial states, sources, projections, phases, recording."""
    net = experiment.drawn
    dt = experiment.dt
    dt_ms = dt * 1e3
    arrays: dict[str, np.ndarray] = {}
    offsets = net.offsets()
    populations, models = [], {}
    for k, name in enumerate(net.populations):
        c = net.cells[name]
        n = net.sizes[name]
        initial = experiment.initial_arrays if name == net.spec.main else net.initial[name]
        states = {}
        for state, values in initial_values(c, initial, n).items():
            key = f"p{k}_s_{state}"
            arrays[key] = np.asarray(values, dtype=float)
            states[state] = key
        params = {}
        by_name = {p.name: p for p in c.parameters}
        for pname, values in (net.parameters.get(name) or {}).items():
            if pname not in by_name:
                raise HHCError(f"population {name}: cell {c.name} has no parameter {pname}")
            key = f"p{k}_p_{pname}"
            arrays[key] = np.broadcast_to(np.asarray(values, dtype=float), (n,)) * _si_to_nest(by_name[pname].dimension)
            params[nest_name(pname)] = key
        noise = _noise(net, name)
        if noise is not None:
            # the noise's settings (NEST units: pA, ms) and a stationary start drawn by hhc from the seed
            for pname, value in (("hhc_noise_mean", noise["mean"] * 1e12), ("hhc_noise_sigma", noise["sigma"] * 1e12),
                                 ("hhc_noise_tau", noise["tau"] * 1e3)):
                arrays[f"p{k}_p_{pname}"] = np.full(n, float(value))
                params[pname] = f"p{k}_p_{pname}"
            start = np.random.default_rng([experiment.seed, 7, k]).standard_normal(n)
            arrays[f"p{k}_s_{NOISE_STATE}"] = (noise["mean"] + noise["sigma"] * start) * 1e12
            states[NOISE_STATE] = f"p{k}_s_{NOISE_STATE}"
        models[name] = modules[_key(c, variant, _noise_input(net, name))].model
        populations.append({"name": name, "model": models[name], "n": n, "offset": offsets[name],
                            "states": states, "parameters": params})
    sources = []
    for k, src in enumerate(net.spec.sources):
        i, t = net.source_spikes[src.name]
        steps = np.maximum(np.rint(np.asarray(t, float) / dt), 1).astype(np.int64)
        arrays[f"src{k}_i"] = np.asarray(i, dtype=np.int64)
        arrays[f"src{k}_t"] = steps * dt_ms
        sources.append({"name": src.name, "n": net.sizes[src.name], "key": f"src{k}"})
    projections, delay_steps = [], []
    for k, (proj, e) in enumerate(zip(net.spec.projections, net.edges)):
        target = net.cells[proj.target]
        syn = next(s for s in target.synapses if s.name == proj.synapse)
        d = np.rint(np.asarray(e.delay, float) / dt).astype(np.int64)
        if len(d) and d.min() < 1:
            raise HHCError(f"projection {proj.source} → {proj.target}: a delay below dt ({e.delay.min() * 1e3:g} ms)")
        delay_steps.append(d)
        arrays[f"e{k}_pre"] = np.asarray(e.pre, dtype=np.int64)
        arrays[f"e{k}_post"] = np.asarray(e.post, dtype=np.int64)
        arrays[f"e{k}_w"] = np.asarray(e.weight, dtype=float) * _si_to_nest(syn.weight_dimension)
        arrays[f"e{k}_d"] = d * dt_ms
        projections.append({"source": proj.source, "target": proj.target, "port": spike_port(syn), "key": f"e{k}"})
    steps = np.concatenate(delay_steps) if delay_steps else np.zeros(0, np.int64)
    delays = [float(steps.min()) * dt_ms, float(steps.max()) * dt_ms] if len(steps) else None
    phases = []
    for p in experiment.protocol:
        inputs = {name: {} for name in net.populations}
        for key, value in p.inputs.items():
            pop, inp = key.split(".", 1) if "." in key else (net.spec.main, key)
            c = net.cells[pop]
            inputs[pop][nest_name(inp)] = float(value) * _si_to_nest(_input_dimension(c, inp))
        phases.append({"steps": int(round(p.duration / dt)), "inputs": inputs})
    total_steps = sum(p["steps"] for p in phases)
    traces, var_scale = trace_specs(cell, variant, experiment)
    spikes = None if experiment.record_spikes is None else \
        "all" if experiment.record_spikes is True else sorted(experiment.record_spikes)
    spec = {"lib_dirs": sorted({str(m.lib_dir) for m in modules.values()}),
            "modules": sorted({m.module for m in modules.values()}), "models": models,
            "dt_ms": dt_ms, "threads": int(experiment.backend.threads or 1), "delays_ms": delays,
            "data": str(work / "network.npz"), "main": net.spec.main, "populations": populations,
            "sources": sources, "projections": projections, "phases": phases, "spikes": spikes,
            "traces": traces, "out": str(work), "seed": int(experiment.seed), "chunk_steps": max(100, min(10000, total_steps // 200 or 1)),
            "check_finite": variant in FIXED_STEP,
            "dump_edges": os.environ.get("HHC_NEST_EDGES") == "1"}
    return spec, arrays, var_scale


def _key(cell: ir.Cell, variant: str, noise_input: str | None = None) -> str:
    return nestml_text(cell, variant, noise_input)


def _noise(net, population: str) -> dict | None:
    if population == net.spec.main:
        return net.spec.main_noise
    return next(p.noise for p in net.spec.populations if p.name == population)


def _noise_input(net, population: str) -> str | None:
    noise = _noise(net, population)
    return None if noise is None else noise["input"]


def run_nest_network(cell: ir.Cell, experiment, out_dir: Path, progress=None) -> RunResult:
    net = experiment.drawn
    variant = _variant(experiment.method)
    use_mpi = bool(experiment.backend.mpi and experiment.backend.mpi > 1) or bool(experiment.backend.launcher)
    python = _mpi_nest_python(experiment) if use_mpi else sys.executable
    t_build = time.perf_counter()
    modules, names = {}, {}
    for name in net.populations:
        c = net.cells[name]
        key = _key(c, variant, _noise_input(net, name))
        if key not in modules:
            other = names.get(c.name)
            if other is not None:
                unsupported("nest", f"two different cells named {c.name} in one network",
                            hint="rename one of them: NEST models are named after the cell")
            names[c.name] = key
            modules[key] = build_module(c, variant, python=python, noise_input=_noise_input(net, name))
    build_time = time.perf_counter() - t_build

    work = (out_dir / "nest").resolve()     # the script runs in work: every path it is given is absolute
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spec, arrays, var_scale = network_spec(cell, experiment, work, variant, modules)
    np.savez(work / "network.npz", **arrays)
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    script = work / "network_rank.py"
    shutil.copyfile(NETWORK_SCRIPT, script)
    cmd, launch_wall = launch(experiment, python, script, work, spec["lib_dirs"], spec["threads"], progress)
    result = _gather(cell, experiment, work, spec["traces"], var_scale, spec["dt_ms"],
                     {"method": variant, "integrator": f"hhc {variant} (update block)" if variant in FIXED_STEP
                      else "NESTML default: GSL rkf45", "nest_modules": spec["modules"],
                      "nest_python": python, "module_build_time_s": build_time, "launch": cmd[:-2],
                      "launch_wall_time_s": launch_wall, "network_delays_ms": spec["delays_ms"],
                      "synaptic_timing": "a neuron's spike at t (start of its step) acts at t + dt + delay; "
                                         "a source spike at T (nearest step) at T + delay"})
    infos = [json.loads(p.read_text()) for p in sorted(work.glob("rank*.json"))]
    result.meta["nest_connections"] = sum(i.get("connections", 0) for i in infos)
    return result


def nest_edges(run_dir: Path) -> dict:
    """The connections NEST held in a run made with HHC_NEST_EDGES=1, gathered over ranks, as hhc
    indices: {(source group, target group): array of rows (pre, post, weight, delay ms, receptor)}
    with weights in NEST units (nS or pA) and NEST's port index (receptor type - 1 for a cell with
    several synapses: the synapse's place in the cell's `synapses` line)."""
    work = Path(run_dir) / "nest"
    out: dict = {}
    for f in sorted(work.glob("rank*.npz")):
        d = np.load(f)
        if "edges_groups" not in d.files:
            raise HHCError(f"{f} holds no connections: run with HHC_NEST_EDGES=1")
        groups = list(d["edges_groups"])
        sg, tg = d["edges_source_group"], d["edges_target_group"]
        for a in set(sg.tolist()):
            for b in set(tg[sg == a].tolist()):
                m = (sg == a) & (tg == b)
                rows = np.column_stack([d["edges_source_index"][m], d["edges_target_index"][m], d["edges_weight"][m],
                                        d["edges_delay"][m], d["edges_receptor"][m]])
                key = (str(groups[a]), str(groups[b]))
                out[key] = np.vstack([out[key], rows]) if key in out else rows
    return out
