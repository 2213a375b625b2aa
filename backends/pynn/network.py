"""A `[network]` experiment as one PyNN script for pyNN.nest and pyNN.brian2 (issue 15).

`hhc compile MODEL.chan --target pynn --experiment NET.toml -o OUT/` writes, beside the cell-type
modules (celltype.py), OUT/<experiment>_network.py and the arrays hhc drew in OUT/<experiment>_network.npz:

* one Population per hhc population, its cell type from the module of its cell, per-neuron parameters
  and every state's initial value set from hhc's arrays (gates at their steady state computed by hhc,
  as the nest backend does), so neither simulator draws or computes a start of its own;
* one SpikeSourceArray Population per source, holding hhc's drawn trains (Poisson rate phases are
  drawn into them), the times placed on each simulator's grid as hhc's brian2 and nest backends place
  them (so arrivals land where the network reference puts them);
* one Projection per hhc projection: FromListConnector with hhc's drawn edge list (weights in uS or nA,
  delays in ms on the grid), StaticSynapse, receptor_type = the synapse's name;
* the protocol's inputs set phase by phase (Population.set), spikes recorded per population and
  written to an .npz (population, index in it, hhc's global index, time in s at the start of the
  step in which v crossed, hhc's convention).

What PyNN cannot express is refused: noise (PyNN's current sources have no Ornstein-Uhlenbeck process,
and their noise is drawn by the simulator, not by hhc).
"""
from __future__ import annotations

import pprint
from pathlib import Path

import numpy as np

from hhc.compiler import ir, network as network_
from hhc.compiler.errors import HHCError
from hhc.compiler.version import __version__

from ..base import unsupported
from ..brian2.network import shifted_source_times
from ..nest.nestml import nest_name, nest_scale
from ..nest.run import initial_values
from .celltype import pynn_scale


def module_name(cell: ir.Cell) -> str:
    """The cell-type module's name (file <name>.py), one per cell."""
    return f"{cell.name.lower()}_pynn"


def script_name(experiment) -> str:
    return f"{Path(experiment.path).stem}_network"


def check_network(experiment) -> None:
    """Refuse, with the one error, what a PyNN script cannot express."""
    net = experiment.drawn
    noisy = [name for name, noise in [(net.spec.main, net.spec.main_noise)] +
             [(p.name, p.noise) for p in net.spec.populations] if noise is not None]
    if noisy:
        unsupported("pynn", f"noise (the Ornstein-Uhlenbeck current of population {noisy[0]})",
                    hint="PyNN's current sources have no Ornstein-Uhlenbeck process (NoisyCurrentSource is "
                         "white noise redrawn every dt), and the simulator would draw it, not hhc; run noisy "
                         "networks on brian2")
    if experiment.dt_auto or not experiment.dt:
        raise HHCError("a PyNN network script needs a fixed dt: give [simulation] dt (dt = \"auto\" is chosen "
                       "by hhc run's accuracy advisor, which does not run PyNN)")
    names = {}
    for pop in net.populations:
        c = net.cells[pop]
        if names.setdefault(c.name, c) != c:
            unsupported("pynn", f"two different cells named {c.name} in one network",
                        hint="rename one of them: the cell-type modules are named after the cell")


def network_cells(experiment) -> list[ir.Cell]:
    """The network's cells, each once, in population order."""
    out = []
    for pop in experiment.drawn.populations:
        c = experiment.drawn.cells[pop]
        if all(c.name != o.name for o in out):
            out.append(c)
    return out


def _pynn_initial(cell: ir.Cell, arrays: dict, n: int, population: str) -> dict[str, np.ndarray]:
    """Every state of n neurons in PyNN units (mV, 1, mM, uS or nA) from hhc's initial arrays, gates
    without a value at their steady state at v (computed by hhc: the same numbers on both simulators)."""
    nest_values = initial_values(cell, arrays, n)
    out = {}
    for state in cell.states:
        dim = cell.state_dimension(state)
        out[state] = np.asarray(nest_values[nest_name(state)], dtype=float) * (float(nest_scale(dim)) / pynn_scale(dim))
    for syn in cell.synapses:
        for state in syn.states:
            if np.any(out[state] != 0):
                # PyNN hands NEST initial values unconverted (NEST keeps synapse states in nS or pA)
                unsupported("pynn", f"a synapse state starting at other than 0 ({state} of population {population})")
    return out


def network_data(experiment) -> tuple[dict, dict]:
    """(the script's description of the network: populations, sources, projections, phases; the arrays
    for its .npz). Weights in uS or nA, delays and times in ms, everything in PyNN units."""
    net = experiment.drawn
    dt = experiment.dt
    dt_ms = dt * 1e3
    arrays: dict[str, np.ndarray] = {}
    offsets = net.offsets()
    populations = []
    for k, name in enumerate(net.populations):
        c, n = net.cells[name], net.sizes[name]
        key = f"pop{k}"
        dims = {p.name: p.dimension for p in c.parameters}
        for pname, values in (net.parameters.get(name) or {}).items():
            arrays[f"{key}_p_{pname}"] = np.broadcast_to(np.asarray(values, float), (n,)) / pynn_scale(dims[pname])
        initial = experiment.initial_arrays if name == net.spec.main else net.initial[name]
        for state, values in _pynn_initial(c, initial, n, name).items():
            arrays[f"{key}_s_{state}"] = values
        record = None
        if c.threshold is not None and experiment.record_spikes is not None:
            record = True if name != net.spec.main or experiment.record_spikes is True else \
                sorted(int(i) for i in experiment.record_spikes)
        populations.append({"name": name, "cell": c.name, "module": module_name(c), "size": n, "offset": offsets[name],
                            "key": key, "parameters": sorted(net.parameters.get(name) or {}),
                            "states": list(c.states), "record": record})
    sources = []
    for k, src in enumerate(net.spec.sources):
        i, t = net.source_spikes[src.name]
        key = f"src{k}"
        # NEST: the nest backend's spike_generator times (the nearest step k). pyNN.nest's SpikeSourceArray
        # is a spike_generator min_delay (here dt) earlier, relayed by a parrot neuron whose spike acts as
        # the generator's would. PyNN makes it take precise times, stamped at the end of the step holding
        # them, so k dt - dt would land a step late when rounding puts it a hair above the grid: half a
        # step earlier, (k - 1/2) dt, is in the right step either way. NEST takes no generator spike at 0,
        # so a spike in the first two steps moves to the second (counted: nest_moved)
        nearest = np.rint(np.asarray(t, float) / dt).astype(np.int64)
        steps = np.maximum(nearest, 2)
        order = np.lexsort((steps, i))
        arrays[f"{key}_nest_i"] = np.asarray(i, np.int64)[order]
        arrays[f"{key}_nest_t"] = (steps[order] - 0.5) * dt_ms
        # Brian2: the brian2 backend's SpikeGeneratorGroup steps (one before the nearest step, a
        # neuron's second spike in one step moved to the next free one)
        idx, b2steps, moved = shifted_source_times(i, t, dt)
        order = np.lexsort((b2steps, idx))
        arrays[f"{key}_brian2_i"] = idx[order]
        arrays[f"{key}_brian2_t"] = b2steps[order] * dt_ms
        sources.append({"name": src.name, "kind": src.kind, "size": src.size, "key": key, "spikes": int(len(t)),
                        "nest_moved": int(np.count_nonzero(nearest < 2)), "brian2_moved": moved})
    projections, delays = [], []
    for k, (proj, e) in enumerate(zip(net.spec.projections, net.edges)):
        syn = next(s for s in net.cells[proj.target].synapses if s.name == proj.synapse)
        key = f"proj{k}"
        delay_steps = np.rint(np.asarray(e.delay, float) / dt)
        delays.append(delay_steps)
        arrays[key] = np.column_stack([e.pre, e.post, np.asarray(e.weight, float) / pynn_scale(syn.weight_dimension),
                                       delay_steps * dt_ms]).astype(float).reshape(-1, 4)
        projections.append({"source": proj.source, "target": proj.target, "receptor": proj.synapse,
                            "rule": proj.rule, "key": key, "connections": int(len(e)),
                            "weight_unit": "uS" if syn.conductance_based else "nA"})
    steps = np.concatenate(delays) if delays else np.zeros(0)
    max_delay = float(max(steps.max() if len(steps) else 1, 1)) * dt_ms
    phases = []
    for p in experiment.protocol:
        inputs: dict = {}
        for key, value in p.inputs.items():
            pop, inp = key.split(".", 1) if "." in key else (net.spec.main, key)
            dim = next(i.dimension for i in net.cells[pop].inputs if i.name == inp)
            inputs.setdefault(pop, {})[inp] = float(value) / pynn_scale(dim)
        phases.append({"duration_ms": p.duration * 1e3, "inputs": inputs})
    spec = {"dt_ms": dt_ms, "max_delay_ms": max_delay, "seed": experiment.seed,
            "network_digest": network_.edge_digest(net), "populations": populations, "sources": sources,
            "projections": projections, "phases": phases}
    return spec, arrays


def script_text(experiment, spec: dict, variant: str, brian2_method: str) -> str:
    name = script_name(experiment)
    cells = sorted({(p["cell"], p["module"]) for p in spec["populations"]})
    sources = sorted({str(s) for c in network_cells(experiment) for s in c.sources})
    return f'''"""hhc network {Path(experiment.path).name} as one PyNN script, for pyNN.nest and pyNN.brian2.

Generated by hhc {__version__} from {experiment.path} (model: {", ".join(sources)}).
Do not edit: change the experiment or the .chan files and run
`hhc compile MODEL.chan --target pynn --experiment {Path(experiment.path).name} -o DIR` again.

    python {name}.py --simulator nest      # or brian2; writes {Path(experiment.path).stem}_spikes_<simulator>.npz

Everything random was drawn once by hhc (seed {spec["seed"]}, network digest {spec["network_digest"]}) and is
in {name}.npz beside this script: per-neuron parameters and initial values (PyNN units), the
sources' spike trains (ms, on each simulator's grid), each projection's edges (pre, post, weight in
uS or nA, delay in ms rounded to the step). Cell types: {", ".join(f"{c} ({m}.py)" for c, m in cells)};
NEST runs hhc's {variant} NESTML models, Brian2 the cells' equations ({brian2_method}).

Timing, as hhc's nest and brian2 backends: a neuron's spike (the start of the step in which v crossed)
acts on its targets at the end of the step ending at its time + dt + delay; a source spike on the
step boundary nearest its time + delay. pyNN.nest always runs one min_delay (here dt) past the time
asked for, so the first phase runs one step shorter there and each phase's inputs change at its start.
Spikes are written with hhc's time convention (NEST stamps a spike at the end of its step: minus dt).
"""
import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "{name}.npz"
NETWORK = {pprint.pformat(spec, width=110, sort_dicts=False)}


def build(sim, simulator, data):
    """The network in PyNN: {{population or source: Population}}, [(projection description, Projection)]."""
    groups = {{}}
    for p in NETWORK["populations"]:
        cell_type = importlib.import_module(p["module"]).cell_type(sim)
        parameters = {{name: data[p["key"] + "_p_" + name] for name in p["parameters"]}}
        pop = sim.Population(p["size"], cell_type(**parameters), label=p["name"])
        pop.initialize(**{{state: data[p["key"] + "_s_" + state] for state in p["states"]}})
        if p["record"] is not None:
            pop.record("spikes")
        groups[p["name"]] = pop
    from pyNN.parameters import Sequence
    for s in NETWORK["sources"]:
        i, t = data[s["key"] + "_" + simulator + "_i"], data[s["key"] + "_" + simulator + "_t"]
        starts = np.searchsorted(i, np.arange(s["size"] + 1))      # sorted by neuron, then time
        trains = [Sequence(t[starts[k]:starts[k + 1]]) for k in range(s["size"])]
        groups[s["name"]] = sim.Population(s["size"], sim.SpikeSourceArray(spike_times=trains), label=s["name"])
    projections = []
    for pr in NETWORK["projections"]:
        edges = data[pr["key"]]                   # rows: pre, post, weight (uS or nA), delay (ms)
        if not len(edges):
            continue
        connector = sim.FromListConnector(edges, column_names=["weight", "delay"])
        projections.append((pr, sim.Projection(groups[pr["source"]], groups[pr["target"]], connector,
                                                sim.StaticSynapse(), receptor_type=pr["receptor"],
                                                label=pr["source"] + "->" + pr["target"] + " " + pr["receptor"])))
    return groups, projections


def run(sim, simulator, groups):
    """The protocol: each phase's inputs (PyNN units), then its duration."""
    dt = NETWORK["dt_ms"]
    for k, phase in enumerate(NETWORK["phases"]):
        for pop, values in phase["inputs"].items():
            groups[pop].set(**values)
        # pyNN.nest runs one min_delay past what it is asked on the first run: keep the phases aligned
        sim.run(phase["duration_ms"] - (dt if simulator == "nest" and k == 0 else 0.0))


def spikes(simulator, groups):
    """Every recorded population's spikes: (population names, index in it, hhc's global index, time in s)."""
    dt = NETWORK["dt_ms"]
    end = sum(p["duration_ms"] for p in NETWORK["phases"])
    shift = dt if simulator == "nest" else 0.0    # NEST stamps the end of the step, hhc its start
    names, local, glob, times = [], [], [], []
    for p in NETWORK["populations"]:
        if p["record"] is None:
            continue
        keep = None if p["record"] is True else set(p["record"])
        for k, train in enumerate(groups[p["name"]].get_data("spikes").segments[0].spiketrains):
            index = int(train.annotations.get("source_index", k))
            if keep is not None and index not in keep:
                continue
            t = np.asarray(train.rescale("ms").magnitude, float) - shift
            t = t[t < end - 1e-9]
            names += [p["name"]] * len(t)
            local += [index] * len(t)
            glob += [p["offset"] + index] * len(t)
            times += list(t * 1e-3)
    order = np.lexsort((np.asarray(glob, np.int64), np.asarray(times, float)))
    return (np.asarray(names, dtype=str)[order], np.asarray(local, np.int64)[order], np.asarray(glob, np.int64)[order],
            np.asarray(times, float)[order])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\\n")[0])
    parser.add_argument("--simulator", choices=("nest", "brian2"), default="nest")
    parser.add_argument("--out", help="the spikes file (default: beside this script)")
    parser.add_argument("--edges", action="store_true",
                        help="also write each projection's connections as PyNN holds them (pre, post, weight, delay)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))              # the cell-type modules
    sim = importlib.import_module("pyNN." + args.simulator)
    extra = {{"spike_precision": "on_grid", "verbosity": "error"}} if args.simulator == "nest" else {{}}
    sim.setup(timestep=NETWORK["dt_ms"], min_delay=NETWORK["dt_ms"], max_delay=NETWORK["max_delay_ms"], **extra)
    if args.simulator == "brian2":
        # pyNN.brian2 0.13 puts a SpikeSourceArray's SpikeGeneratorGroup on Brian2's default clock (0.1 ms)
        import brian2
        brian2.defaultclock.dt = NETWORK["dt_ms"] * brian2.ms
    data = np.load(DATA)
    groups, projections = build(sim, args.simulator, data)
    run(sim, args.simulator, groups)
    population, index, i, t = spikes(args.simulator, groups)
    out = {{"population": population, "index": index, "i": i, "t": t, "simulator": np.asarray(args.simulator),
           "network_digest": np.asarray(NETWORK["network_digest"])}}
    if args.edges:
        for pr, projection in projections:
            out["edges_" + pr["key"]] = np.asarray(projection.get(["weight", "delay"], format="list"),
                                                   float).reshape(-1, 4)
    sim.end()
    path = Path(args.out) if args.out else HERE / ("{Path(experiment.path).stem}_spikes_" + args.simulator + ".npz")
    np.savez(path, **out)
    counts = {{p["name"]: int(np.sum(population == p["name"])) for p in NETWORK["populations"]}}
    print(f"{{args.simulator}}: spikes per population {{counts}} -> {{path}}")


if __name__ == "__main__":
    main()
'''
