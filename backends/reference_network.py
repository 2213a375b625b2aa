"""The SciPy reference for small networks: every neuron of every population integrated together at a
tight tolerance, spikes located by root-finding, synaptic events applied exactly when they arrive.

Time advances in segments no longer than the network's shortest delay (and ending at every arrival
and phase boundary), so a spike found inside a segment can only be delivered after it: within a
segment the neurons are independent ODEs, coupled only through the jumps applied between segments.
What the other backends' network runs are checked against, spike by spike, on small deterministic
networks (sources with given spike times or hhc's drawn Poisson trains; no noise).
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np
import sympy

from hhc.compiler import ir, units
from hhc.compiler import rhs as ir_rhs
from hhc.compiler.errors import HHCError

from .base import UnsupportedError
from .results import RunResult, TraceGroup

MAX_NETWORK_NEURONS = 500


@dataclass
class _Group:
    """One population's part of the joint state vector."""
    name: str
    cell: ir.Cell
    size: int
    offset: int                    # first index in the flat state vector
    f: object                      # f(*states, *inputs, *kept parameters) -> derivatives (numpy)
    kept: list                     # per-neuron parameter arrays, in f's order
    inputs: list                   # input names
    v_row: int = 0

    @property
    def n_states(self) -> int:
        return len(self.cell.states)

    def view(self, y: np.ndarray) -> np.ndarray:
        return y[self.offset:self.offset + self.n_states * self.size].reshape(self.n_states, self.size)


def _group(name, cell, size, offset, parameters) -> _Group:
    keep = tuple(parameters)
    derivs = ir_rhs.derivatives_si(cell, keep=keep)
    syms = ([sympy.Symbol(s) for s in cell.states] + [sympy.Symbol(i.name) for i in cell.inputs]
            + [sympy.Symbol(k) for k in keep])
    f = sympy.lambdify(syms, [derivs[s] for s in cell.states], modules=ir_rhs.NUMERIC_MODULES, cse=True)
    return _Group(name, cell, size, offset, f, [np.asarray(parameters[k], float) for k in keep],
                  [i.name for i in cell.inputs])


def _initial(group: _Group, arrays: dict, steady_after_v: bool = True) -> np.ndarray:
    """(n_states, size) initial values; gates without one start at their steady state at v."""
    cell, n = group.cell, group.size
    v0 = np.broadcast_to(np.asarray(arrays["v"], float), (n,))
    rows = [v0]
    for s in cell.states[1:]:
        values = arrays.get(s)
        if values is None:
            gate = next(g for g in cell.gates if g.state == s)
            steady = sympy.lambdify([ir.V], ir_rhs.steady_state_si(cell, gate), modules=ir_rhs.NUMERIC_MODULES)
            values = steady(v0)
        rows.append(np.broadcast_to(np.asarray(values, float), (n,)))
    return np.array(rows, dtype=float)


def run_network_reference(cell: ir.Cell, exp, method: str, rtol: float, progress=None,
                          record_population: str | None = None) -> RunResult:
    """Spikes of every population (global indices: population after population); the experiment's
    traces for the main population, or for `record_population`."""
    from scipy.integrate import solve_ivp
    net = exp.drawn
    if any(n is not None for n in [net.spec.main_noise] + [p.noise for p in net.spec.populations]):
        raise UnsupportedError("reference", "noise (an Ornstein-Uhlenbeck current)",
                               hint="the reference integrates ODEs; run noisy networks on brian2 or nest")
    total = sum(net.sizes[p] for p in net.populations)
    if total > MAX_NETWORK_NEURONS:
        raise UnsupportedError("reference", f"a network of {total:,} neurons (at most {MAX_NETWORK_NEURONS})")

    groups, offset = {}, 0
    for name in net.populations:
        g = _group(name, net.cells[name], net.sizes[name], offset, net.parameters.get(name, {}))
        groups[name] = g
        offset += g.n_states * g.size
    y = np.zeros(offset)
    for name, g in groups.items():
        arrays = exp.initial_arrays if name == net.spec.main else net.initial[name]
        g.view(y)[:] = _initial(g, arrays)

    # outgoing connections by presynaptic neuron, per projection; and the jump each arrival makes
    outgoing = []
    for proj, e in zip(net.spec.projections, net.edges):
        target = groups[proj.target]
        syn = next(s for s in target.cell.synapses if s.name == proj.synapse)
        jumps = [(target.cell.states.index(state), float(ir_rhs.in_si(target.cell, factor)))
                 for state, factor in syn.jumps.items()]
        order = np.argsort(e.pre, kind="stable")
        starts = np.searchsorted(e.pre[order], np.arange(net.sizes[proj.source] + 1))
        outgoing.append((proj, order, starts, e, jumps))
    min_delay = min((float(e.delay.min()) for e in net.edges if len(e)), default=np.inf)

    queue: list = []          # (arrival time, sequence, projection k, connection indices)
    seq = 0

    def schedule(source: str, neuron: int, t_spike: float):
        nonlocal seq
        for k, (proj, order, starts, e, _) in enumerate(outgoing):
            if proj.source != source:
                continue
            idx = order[starts[neuron]:starts[neuron + 1]]
            for arrival in np.unique(t_spike + e.delay[idx]):
                heapq.heappush(queue, (float(arrival), seq, k, idx[t_spike + e.delay[idx] == arrival]))
                seq += 1

    for s in net.spec.sources:
        for i, t in zip(*net.source_spikes[s.name]):
            schedule(s.name, int(i), float(t))

    spikes = {name: ([], []) for name in net.populations}
    thresholds = {name: float(units.to_si(g.cell.threshold)) for name, g in groups.items()
                  if g.cell.threshold is not None}
    boundaries = np.cumsum([p.duration for p in exp.protocol])
    t_end = float(boundaries[-1])
    started = time.perf_counter()
    t, phase = 0.0, 0
    inputs = {}

    def phase_inputs(k):
        values = exp.protocol[k].inputs
        for name, g in groups.items():
            for inp in g.inputs:
                key = inp if name == net.spec.main else f"{name}.{inp}"
                if key in values:
                    inputs[(name, inp)] = float(values[key])
                else:
                    inputs.setdefault((name, inp), 0.0)
    phase_inputs(0)

    def fun(_t, flat):
        out = np.empty_like(flat)
        for name, g in groups.items():
            st = flat[g.offset:g.offset + g.n_states * g.size].reshape(g.n_states, g.size)
            d = g.f(*st, *[inputs[(name, i)] for i in g.inputs], *g.kept)
            out[g.offset:g.offset + g.n_states * g.size] = np.array(
                [np.broadcast_to(np.asarray(x, float), (g.size,)) for x in d]).ravel()
        return out

    # the v of every neuron that has a threshold: (flat index, population, neuron, threshold)
    watched = [(g.offset + j, name, j, thresholds[name]) for name, g in groups.items() if name in thresholds
               for j in range(g.size)]
    v_index = np.array([w[0] for w in watched], dtype=np.int64)
    v_threshold = np.array([w[3] for w in watched])

    scales = np.concatenate([np.repeat(ir_rhs.state_scales(g.cell), g.size) for g in groups.values()])
    atol = rtol * scales
    trace_t = _trace_times(exp)
    traced = groups[record_population or net.spec.main]
    samples = np.full((len(trace_t), traced.n_states, traced.size), np.nan)
    while t < t_end - 1e-15:
        stop = min(t + min_delay, float(boundaries[phase]))
        if queue:
            stop = min(stop, queue[0][0])
        stop = max(stop, t)
        if stop > t:
            inside = (trace_t >= t) & (trace_t < stop) if len(trace_t) else np.zeros(0, bool)
            sol = solve_ivp(fun, (t, stop), y, method=method, rtol=rtol, atol=atol, dense_output=True)
            if sol.status < 0:
                raise HHCError(f"the network reference failed at t = {t * 1e3:.4g} ms: {sol.message}")
            if inside.any():
                dense = sol.sol(trace_t[inside])
                samples[inside] = dense[traced.offset:traced.offset + traced.n_states * traced.size].T.reshape(
                    -1, traced.n_states, traced.size)
            for k, tc in _crossings(sol, v_index, v_threshold):
                _, name, j, _ = watched[k]
                spikes[name][0].append(j)
                spikes[name][1].append(tc)
                schedule(name, j, tc)
            y = sol.y[:, -1].copy()
            t = stop
        while queue and queue[0][0] <= t + 1e-15:
            _, _, k, idx = heapq.heappop(queue)
            proj, _, _, e, jumps = outgoing[k]
            g = groups[proj.target]
            st = g.view(y)
            for row, factor in jumps:
                np.add.at(st[row], e.post[idx], factor * e.weight[idx])
        if t >= boundaries[phase] - 1e-15 and phase + 1 < len(boundaries):
            phase += 1
            phase_inputs(phase)
        if progress is not None:
            progress(t)
    wall = time.perf_counter() - started

    offsets = net.offsets()
    spike_i = np.concatenate([np.asarray(spikes[n][0], np.int64) + offsets[n] for n in net.populations])
    spike_t = np.concatenate([np.asarray(spikes[n][1], float) for n in net.populations])
    order = np.lexsort((spike_i, spike_t))
    traces = []
    for tr in exp.traces:
        grid_rows = np.searchsorted(trace_t, _trace_times(exp, tr))
        cols = np.asarray(tr.neurons, dtype=np.int64)
        traces.append(TraceGroup(trace_t[grid_rows], cols, {
            var: samples[grid_rows][:, traced.cell.states.index(var), :][:, cols] for var in tr.variables}))
    meta = {"solver": method, "rtol": rtol, "wall_time_s": wall, "network_segments_max_s": min_delay}
    return RunResult(spike_i[order], spike_t[order], traces, meta)


def _trace_times(exp, only=None) -> np.ndarray:
    """The sample times of the experiment's trace groups (or of one), each at its interval."""
    groups = [only] if only is not None else exp.traces
    out = []
    for tr in groups:
        step = tr.interval or exp.dt
        n = int(round(exp.duration / step))
        grid = np.arange(n) * step
        if tr.windows:
            keep = np.zeros(len(grid), bool)
            for a, b in tr.windows:
                keep |= (grid >= a - 1e-12) & (grid < b - 1e-12)
            grid = grid[keep]
        out.append(grid)
    return np.unique(np.concatenate(out)) if out else np.zeros(0)


def _crossings(sol, v_index: np.ndarray, threshold: np.ndarray) -> list[tuple[int, float]]:
    """Upward threshold crossings in a solve_ivp solution: each step where v goes from below to at or
    above the threshold, the time located on the dense output by Brent's method (to 1e-13 s). The
    tight tolerance keeps steps short through a spike, so none rises and falls inside one step."""
    from scipy.optimize import brentq
    if len(v_index) == 0:
        return []
    v = sol.y[v_index]                                  # (neurons, steps)
    rising = (v[:, :-1] < threshold[:, None]) & (v[:, 1:] >= threshold[:, None])
    out = []
    for k, step in zip(*np.nonzero(rising)):
        a, b = sol.t[step], sol.t[step + 1]
        tc = brentq(lambda x: sol.sol(x)[v_index[k]] - threshold[k], a, b, xtol=1e-13)
        out.append((int(k), float(tc)))
    return sorted(out, key=lambda kt: kt[1])
