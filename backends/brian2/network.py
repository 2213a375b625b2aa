"""The Brian2 network of an experiment, shared by every device (runtime, cpp_standalone and the
cuda_standalone driver): the neuron group with its initial values, monitors, the protocol cut into
segments, and the results read back.
"""
from __future__ import annotations

import re

import numpy as np

from hhc.compiler.errors import HHCError

from ..results import TraceGroup


def set_initial(group, module, experiment):
    """The experiment's initial values: v and the other values given first, since gates left at their
    steady state are computed from them. Those gates see ion concentrations at the cell's own initial
    values (the pool's `initial`, else its resting value), as the reference computes them."""
    set_population_initial(group, module, experiment.initial_arrays)


def build_network(module, experiment, method, modules=None):
    """(network, neuron group, spike monitor or None, trace monitors) of the experiment. A network
    experiment (experiment.drawn; `modules`: each population's generated module) gives
    (network, {population: group}, [(spike monitor, global offset, population)], trace monitors)."""
    import brian2 as b2
    # float32 state (Brian2's own preference, honoured by every device); float64 otherwise
    b2.prefs.core.default_float_dtype = np.float32 if experiment.precision == "float32" else np.float64
    if experiment.drawn is not None:
        return build_drawn_network(modules or {experiment.drawn.spec.main: module}, experiment, method)
    dt = experiment.dt * b2.second
    group = module.build_neurons(experiment.size, method=method, dt=dt)
    set_initial(group, module, experiment)
    objects = [group]
    spikes = None
    if experiment.record_spikes is not None:
        spikes = b2.SpikeMonitor(group, record=True, name="spikes")
        objects.append(spikes)
    monitors = trace_monitors(group, experiment)
    net = b2.Network(*objects, *monitors)
    return net, group, spikes, monitors


def trace_monitors(group, experiment) -> list:
    """One StateMonitor per trace group of the experiment, on `group` (the main population)."""
    import brian2 as b2
    return [b2.StateMonitor(group, list(tr.variables), record=list(tr.neurons), dt=tr.interval * b2.second,
                            name=f"traces_{k}") for k, tr in enumerate(experiment.traces)]


def run_protocol(net, groups, monitors, experiment) -> None:
    """net.run over the whole protocol, segment by segment: each segment's inputs set and trace monitors
    switched on or off first (one piece of code for the standalone devices, which record the runs)."""
    import brian2 as b2
    for _start, duration, inputs, active in protocol_segments(experiment):
        set_inputs(groups, inputs)
        for mon, on in zip(monitors, active):
            mon.active = on
        net.run(duration * b2.second)


def protocol_segments(experiment):
    """Protocol phases cut at trace window edges: (start, duration, inputs, active monitor flags)."""
    edges = {0.0}
    t = 0.0
    phase_starts = []
    for phase in experiment.protocol:
        phase_starts.append((t, phase))
        t += phase.duration
        edges.add(t)
    total = t
    for tr in experiment.traces:
        for start, stop in tr.windows or ():
            edges.update(x for x in (start, stop) if 0 < x < total)
    edges = sorted(edges)
    segments = []
    for a, b in zip(edges, edges[1:]):
        if b - a <= 0:
            continue
        phase = next(p for s, p in reversed(phase_starts) if s <= a + 1e-15)
        active = [tr.windows is None or any(s <= a + 1e-15 and b <= e + 1e-15 for s, e in tr.windows)
                  for tr in experiment.traces]
        segments.append((a, b - a, phase.inputs, active))
    return segments


def collect(experiment, spikes, monitors) -> tuple[np.ndarray, np.ndarray, list[TraceGroup]]:
    """Spikes (of the recorded neurons) and trace groups read back from the monitors; a network's
    spikes (a list of monitors) with global indices, population after population, in time order."""
    if isinstance(spikes, list):
        spike_i, spike_t = collect_network_spikes(experiment, spikes)
    else:
        spike_i = np.asarray(spikes.i[:], dtype=np.int64) if spikes is not None else np.zeros(0, np.int64)
        spike_t = np.asarray(spikes.t_[:], dtype=float) if spikes is not None else np.zeros(0)
    if spikes is not None and not isinstance(spikes, list) and experiment.record_spikes is not True:
        keep = np.isin(spike_i, np.asarray(experiment.record_spikes))
        spike_i, spike_t = spike_i[keep], spike_t[keep]
    groups = []
    for tr, mon in zip(experiment.traces, monitors):
        variables = {var: np.asarray(getattr(mon, var + "_")).T.copy() for var in tr.variables}
        groups.append(TraceGroup(np.asarray(mon.t_[:], dtype=float), np.asarray(tr.neurons), variables))
    return spike_i, spike_t, groups


def check_finite(v, when: str = ""):
    """Stop with a clear message when v (volts, one per neuron) is NaN or infinite anywhere:
    with finite math the compiled code does not notice by itself."""
    bad = ~np.isfinite(np.asarray(v))
    if bad.any():
        raise HHCError(f"the simulation blew up{when}: v is NaN or infinite in {int(bad.sum())} neurons "
                       f"(first: neuron {int(np.argmax(bad))}); try a smaller dt or another method")


def initial_state(module, experiment) -> dict[str, np.ndarray]:
    """State arrays at t = 0 from the experiment's initial values, computed by Brian2's runtime
    (the same expressions the module's INITIAL_VALUES give, steady states from the initial v)."""
    import brian2 as b2
    b2.set_device("runtime")
    b2.prefs.codegen.target = "numpy"       # a few expressions, once: not worth a Cython build
    b2.start_scope()
    group = module.build_neurons(experiment.size, method="euler", name="hhc_initial")
    group._network = "hhc-initial-values"   # never run by design: no "unused object" warning
    set_initial(group, module, experiment)
    out = {name: np.array(getattr(group, name + "_")[:]) for name in module.STATES}
    b2.prefs.codegen.target = "auto"
    out["not_refractory"] = np.ones(experiment.size, dtype=bool)
    return out


# ---- networks -----------------------------------------------------------------------------------
#
# One NeuronGroup per population (its own cell's equations; per-neuron parameters become per-neuron
# variables), one SpikeGeneratorGroup per spike source (hhc's drawn trains), one Synapses per
# projection connected with the drawn i, j arrays, weights and delays. Semantics, as in the network
# reference: a spike is an upward threshold crossing; each connection adds its jump (SYNAPSES'
# on_pre) when the spike arrives, `delay` after it. Brian2 works in steps: a spike is detected at the
# end of the step in which v crosses (and stamped with that step's start) and a jump arriving in a
# step is applied at its end, so a neuron's spike arrives up to one step after the reference's; a
# source spike at time t is emitted so that it arrives on the step boundary nearest t + delay.

def group_name(population: str) -> str:
    return "pop_" + re.sub(r"\W", "_", population).lower()


def network_equations(module, cell, per_neuron=(), noise=None) -> str:
    """The population's equations: the module's, with per-neuron parameters as variables and, with
    noise, the OU current I_noise added to its input in dv/dt."""
    from .generate import brian_unit
    dims = {p.name: p.dimension for p in cell.parameters}
    eqs = module.EQUATIONS
    if noise is not None:
        first, rest = eqs.lstrip("\n").split("\n", 1)
        if not first.startswith("dv/dt"):
            raise HHCError("cannot add noise: the generated equations do not start with dv/dt")
        first = re.sub(rf"\b{re.escape(noise['input'])}\b", f"({noise['input']} + I_noise)", first)
        eqs = "\n" + first + "\n" + rest
        eqs += "I_noise : amp  # Ornstein-Uhlenbeck current (updated once per step, exactly)\n"
    for name in per_neuron:
        eqs += f"{name} : {brian_unit(dims[name])}  # per neuron (drawn by hhc)\n"
    return eqs


def _noise_of(experiment, population):
    spec = experiment.drawn.spec
    if population == spec.main:
        return spec.main_noise
    return next(p.noise for p in spec.populations if p.name == population)


def shifted_source_times(indices, times, dt):
    """A SpikeGeneratorGroup emits a neuron at most once per step: a second spike of one source neuron
    in the same step (a drawn Poisson train can have them; rare at small dt) moves to the next free step. Returns
    (indices, step numbers, how many moved)."""
    # emitted in the step before the one nearest t: Brian2 applies an arrival at the end of its step,
    # so the jump lands on the step boundary nearest t + delay (within half a step of the reference's)
    steps = np.maximum(np.rint(np.asarray(times) / dt).astype(np.int64) - 1, 0)
    idx = np.asarray(indices, dtype=np.int64)
    order = np.lexsort((steps, idx))
    idx, steps = idx[order], steps[order]
    if len(idx):
        # within one neuron's sorted steps, step k becomes max(step k, new step k-1 + 1)
        start = np.r_[0, np.nonzero(np.diff(idx))[0] + 1]
        rank = np.arange(len(idx)) - np.repeat(start, np.diff(np.r_[start, len(idx)]))
        big = int(steps.max()) + len(idx) + 2
        lifted = np.maximum.accumulate(steps - rank + idx * big) - idx * big + rank
        moved = int(np.count_nonzero(lifted != steps))
        steps = lifted
    else:
        moved = 0
    order = np.lexsort((idx, steps))
    return idx[order], steps[order], moved


def build_drawn_network(modules, experiment, method):
    import brian2 as b2
    net = experiment.drawn
    spec = net.spec
    dt = experiment.dt * b2.second
    # every group, source and synapse on Brian2's defaultclock: brian2cuda's synapse code reads
    # `defaultclock`, which it only defines when something runs on it
    b2.defaultclock.dt = dt
    groups, objects = {}, []
    for pop in net.populations:
        module = modules[pop]
        params = net.parameters.get(pop, {})
        noise = _noise_of(experiment, pop)
        ns = {k: v for k, v in module.NAMESPACE.items() if k not in params}
        eqs = network_equations(module, net.cells[pop], tuple(params), noise)
        group = b2.NeuronGroup(net.sizes[pop], eqs, threshold=module.THRESHOLD, refractory=module.REFRACTORY,
                               method=method, namespace=ns, name=group_name(pop))
        for name, values in params.items():          # before the steady states, which may read them
            dim = group.variables[name].dim
            setattr(group, name, np.asarray(values) if dim.is_dimensionless else b2.Quantity(values, dim=dim))
        arrays = experiment.initial_arrays if pop == spec.main else net.initial[pop]
        set_population_initial(group, module, arrays)
        if noise is not None:
            mean, sigma, tau = noise["mean"], noise["sigma"], noise["tau"]
            decay = float(np.exp(-experiment.dt / tau))
            kick = float(sigma * np.sqrt(1 - decay ** 2))
            group.I_noise = f"{mean!r}*amp + {float(sigma)!r}*amp*randn()"      # stationary start
            # the exact transition of dI/dt = (mean - I)/tau + sigma sqrt(2/tau) xi over one step
            group.run_regularly(f"I_noise = {mean!r}*amp + (I_noise - {mean!r}*amp)*{decay!r} + {kick!r}*amp*randn()",
                                when="start", name=group_name(pop) + "_noise")
        groups[pop] = group
        objects.append(group)
    sources, shifted = {}, 0
    for src in spec.sources:
        idx, steps, moved = shifted_source_times(*net.source_spikes[src.name], experiment.dt)
        shifted += moved
        sources[src.name] = b2.SpikeGeneratorGroup(src.size, idx, steps * dt, sorted=True,
                                                   name="src_" + re.sub(r"\W", "_", src.name).lower())
        objects.append(sources[src.name])
    for proj, edges in zip(spec.projections, net.edges):
        if not len(edges):
            continue
        unit, on_pre = modules[proj.target].SYNAPSES[proj.synapse]
        pre = sources[proj.source] if proj.source in sources else groups[proj.source]
        name = f"proj_{proj.index}_" + re.sub(r"\W", "_", proj.synapse).lower()
        syn = b2.Synapses(pre, groups[proj.target], model=f"w : {unit}", on_pre=on_pre, name=name)
        syn.connect(i=np.asarray(edges.pre, dtype=np.int32), j=np.asarray(edges.post, dtype=np.int32))
        dim = syn.variables["w"].dim
        syn.w = b2.Quantity(np.asarray(edges.weight, float), dim=dim)
        syn.delay = np.asarray(edges.delay, float) * b2.second
        objects.append(syn)
    spikes = None
    if experiment.record_spikes is not None:
        spikes = []
        for pop, offset in net.offsets().items():
            if net.cells[pop].threshold is None:
                continue
            mon = b2.SpikeMonitor(groups[pop], record=True, name="spikes_" + group_name(pop)[4:])
            spikes.append((mon, offset, pop))
            objects.append(mon)
    monitors = trace_monitors(groups[spec.main], experiment)
    network = b2.Network(*objects, *monitors)
    network.hhc_shifted_source_spikes = shifted
    return network, groups, spikes, monitors


def set_population_initial(group, module, arrays):
    """Initial values of one population (state -> array, or None for a gate at its steady state): v
    first, the cell's own concentrations, gates without a value at their steady state at those, then
    the given states."""
    import brian2 as b2
    group.v = np.asarray(arrays["v"]) * b2.volt
    given, steady = {}, []
    for state in module.STATES[1:]:
        if state in arrays:                    # the experiment's word: None means "at its steady state"
            if arrays[state] is None:
                steady.append(state)
            else:
                given[state] = arrays[state]
        elif module.INITIAL_VALUES.get(state, "").endswith("_inf") or state not in module.INITIAL_VALUES:
            steady.append(state)
    for state, value in module.INITIAL_VALUES.items():
        if state != "v" and not value.endswith("_inf") and state not in given and state not in steady:
            setattr(group, state, value)
    for state in steady:
        setattr(group, state, f"{state}_inf")
    for state, values in given.items():
        dim = group.variables[state].dim
        setattr(group, state, np.asarray(values) if dim.is_dimensionless else b2.Quantity(values, dim=dim))


def set_inputs(group, inputs: dict):
    """A protocol phase's inputs: the main population's by name, another's as "POP.input" (SI)."""
    import brian2 as b2
    if not isinstance(group, dict):
        for name, value in inputs.items():
            var = group.variables[name]
            setattr(group, name, value if var.dim.is_dimensionless else b2.Quantity(value, dim=var.dim))
        return
    main = next(iter(group))
    for key, value in inputs.items():
        pop, name = key.split(".", 1) if "." in key else (main, key)
        g = group[pop]
        var = g.variables[name]
        setattr(g, name, value if var.dim.is_dimensionless else b2.Quantity(value, dim=var.dim))


def collect_network_spikes(experiment, spikes) -> tuple[np.ndarray, np.ndarray]:
    """Every population's spikes, indices global (offset + local); the main population's filtered to
    the recorded neurons; sorted by time, then index."""
    main = experiment.drawn.spec.main
    parts_i, parts_t = [], []
    for mon, offset, pop in spikes:
        i = np.asarray(mon.i[:], dtype=np.int64)
        t = np.asarray(mon.t_[:], dtype=float)
        if pop == main and experiment.record_spikes is not True:
            keep = np.isin(i, np.asarray(experiment.record_spikes))
            i, t = i[keep], t[keep]
        parts_i.append(i + offset)
        parts_t.append(t)
    if not parts_i:
        return np.zeros(0, np.int64), np.zeros(0)
    i, t = np.concatenate(parts_i), np.concatenate(parts_t)
    order = np.lexsort((i, t))
    return i[order], t[order]


def population_modules(drawn, main_module, out_dir, cell_module_text, module_filename, import_generated):
    """Each population's generated module (the main one given), written beside it in out_dir."""
    from pathlib import Path
    modules = {drawn.spec.main: main_module}
    for pop in drawn.populations[1:]:
        cell = drawn.cells[pop]
        path = Path(out_dir) / module_filename(cell)
        text = cell_module_text(cell)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        modules[pop] = import_generated(path)
    return modules
