"""The Brian2 network of an experiment, shared by every device (runtime, cpp_standalone and the
cuda_standalone driver): the neuron group with its initial values, monitors, the protocol cut into
segments, and the results read back.
"""
from __future__ import annotations

import numpy as np

from hhc.compiler.errors import HHCError

from ..results import TraceGroup


def set_initial(group, module, experiment):
    """The experiment's initial values: v and the other values given first, since gates left at their
    steady state are computed from them. Those gates see ion concentrations at the cell's own initial
    values (the pool's `initial`, else its resting value), as the reference computes them."""
    import brian2 as b2
    group.v = np.asarray(experiment.initial_arrays["v"]) * b2.volt
    given, steady = {}, []
    for state in module.STATES[1:]:
        values = experiment.initial_arrays.get(state)
        if values is not None:
            given[state] = values
        elif module.INITIAL_VALUES.get(state, "").endswith("_inf") or state not in module.INITIAL_VALUES:
            steady.append(state)
    for state, value in module.INITIAL_VALUES.items():      # concentrations at the cell's values
        if state != "v" and not value.endswith("_inf"):
            setattr(group, state, value)
    for state in steady:
        setattr(group, state, f"{state}_inf")
    for state, values in given.items():
        dim = group.variables[state].dim
        setattr(group, state, np.asarray(values) if dim.is_dimensionless else b2.Quantity(values, dim=dim))


def build_network(module, experiment, method):
    """(network, neuron group, spike monitor or None, trace monitors) of the experiment."""
    import brian2 as b2
    # float32 state (Brian2's own preference, honoured by every device); float64 otherwise
    b2.prefs.core.default_float_dtype = np.float32 if experiment.precision == "float32" else np.float64
    dt = experiment.dt * b2.second
    group = module.build_neurons(experiment.size, method=method, dt=dt)
    set_initial(group, module, experiment)
    objects = [group]
    spikes = None
    if experiment.record_spikes is not None:
        spikes = b2.SpikeMonitor(group, record=True, name="spikes")
        objects.append(spikes)
    monitors = []
    for k, tr in enumerate(experiment.traces):
        mon = b2.StateMonitor(group, list(tr.variables), record=list(tr.neurons),
                              dt=tr.interval * b2.second, name=f"traces_{k}")
        monitors.append(mon)
        objects.append(mon)
    net = b2.Network(*objects)
    return net, group, spikes, monitors


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
    """Spikes (of the recorded neurons) and trace groups read back from the monitors."""
    spike_i = np.asarray(spikes.i[:], dtype=np.int64) if spikes is not None else np.zeros(0, np.int64)
    spike_t = np.asarray(spikes.t_[:], dtype=float) if spikes is not None else np.zeros(0)
    if spikes is not None and experiment.record_spikes is not True:
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
