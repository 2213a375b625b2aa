"""High-precision reference solutions: the IR's right-hand side (hhc.compiler.rhs, in SI) integrated
by SciPy, one neuron at a time.

``scipy.integrate.solve_ivp`` (DOP853 by default) runs at a tight relative tolerance, neuron by
neuron so that the step control follows each neuron alone. Spikes are upward crossings of the cell's
threshold located by the solver's event root-finding on its dense output (not rounded to a grid).
The same events find each spike's peak (its overshoot above the threshold) and the peaks that come
within NEAR_MISS_RECORDED below the threshold without crossing it (near misses): the results'
Crossings, which `hhc compare` uses to recognise crossings no integrator can decide.
Neurons whose initial state and inputs are identical follow identical trajectories: they are
integrated once (``distinct_trajectories`` in the meta).

Two ways in: the ``reference`` backend (``hhc run --backend reference``: every neuron of a small
experiment, its traces and spikes as recorded by any backend), and compute_reference (a sample of
neurons, for `hhc reference`, the accuracy advisor and `hhc validate`).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import sympy

from hhc.compiler import ir, rhs as ir_rhs, units
from hhc.compiler.errors import HHCError

from .base import Backend, Capabilities, EmitOptions
from .reference_network import run_network_reference
from .results import NEAR_MISS_RECORDED, Crossings, RunResult, TraceGroup

DEFAULT_METHOD = "DOP853"
DEFAULT_RTOL = 1e-9
METHODS = ("DOP853", "RK45", "Radau", "LSODA", "BDF")
IMPLICIT = ("Radau", "BDF", "LSODA")       # take the Jacobian
# absolute tolerance = rtol x a typical magnitude of the state: 100 mV for v, 1 for gates
V_SCALE = ir_rhs.V_SCALE
# one neuron at a time, each for about a second of wall time per second of biological time
MAX_NEURONS = 1000


# ---------------------------------------------------------------------------------------------
# The right-hand side


@dataclass
class RHS:
    """The cell's ODE system in SI units: y = (v, gate states...), inputs as numbers."""
    cell: ir.Cell
    states: tuple[str, ...]
    inputs: tuple[str, ...]
    exprs: list                   # SymPy expressions of the derivatives, in SI, over states + inputs
    f_scalar: Callable            # f(*y, *inputs) -> list of derivatives (math module, fast on scalars)
    f_vector: Callable            # same on numpy arrays
    jac: Callable | None          # jac(*y, *inputs) -> matrix
    threshold: float | None       # V
    steady: dict                  # gate state -> f(v) of its steady state (numpy)

    def fun(self, inputs):
        f, fv = self.f_scalar, self.f_vector
        args = tuple(inputs)

        def fun(t, y):
            try:
                return f(*y, *args)
            except (OverflowError, ValueError, ZeroDivisionError):
                # a rejected trial step far outside the physiological range: let numpy give
                # inf/nan so the solver shrinks the step
                with np.errstate(all="ignore"):
                    return [float(x) for x in fv(*y, *args)]
        return fun

    def jacobian(self, inputs):
        if self.jac is None:
            return None
        j = self.jac
        args = tuple(inputs)

        def jac(t, y):
            return np.asarray(j(*y, *args), dtype=float)
        return jac


def build_rhs(cell: ir.Cell, jacobian: bool = True) -> RHS:
    """The IR's right-hand side (hhc.compiler.rhs.derivatives_si: parameters, named expressions
    and currents substituted, units in SI) as numeric functions."""
    states = cell.states
    derivs = ir_rhs.derivatives_si(cell)
    exprs = [derivs[s] for s in states]
    inputs = tuple(i.name for i in cell.inputs)
    syms = [sympy.Symbol(s) for s in states] + [sympy.Symbol(i) for i in inputs]
    f_scalar = sympy.lambdify(syms, exprs, modules=ir_rhs.SCALAR_MODULES, cse=True)
    f_vector = sympy.lambdify(syms, exprs, modules=ir_rhs.NUMERIC_MODULES, cse=True)
    jac = None
    if jacobian:
        matrix = sympy.Matrix(exprs).jacobian(syms[: len(states)])
        jac = sympy.lambdify(syms, matrix.tolist(), modules=ir_rhs.SCALAR_MODULES, cse=True)
    steady = {g.state: sympy.lambdify([ir.V], ir_rhs.steady_state_si(cell, g), modules=ir_rhs.NUMERIC_MODULES)
              for g in cell.gates}
    threshold = float(units.to_si(cell.threshold)) if cell.threshold is not None else None
    return RHS(cell, states, inputs, exprs, f_scalar, f_vector, jac, threshold, steady)


# ---------------------------------------------------------------------------------------------
# Sampling an experiment


def sample_indices(n: int, k: int) -> np.ndarray:
    """k neurons spread evenly over 0..n-1 (first and last included)."""
    k = max(1, min(int(k), n))
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def initial_matrix(exp, rhs: RHS) -> np.ndarray:
    """(size, n_states) initial values of a resolved experiment; gates left at their steady state
    follow the initial v."""
    n = exp.size
    v0 = np.broadcast_to(np.asarray(exp.initial_arrays["v"], dtype=float), (n,))
    cols = [v0]
    for s in rhs.states[1:]:
        values = exp.initial_arrays.get(s)
        if values is None:
            cols.append(np.broadcast_to(np.asarray(rhs.steady[s](v0), dtype=float), (n,)))
        else:
            cols.append(np.broadcast_to(np.asarray(values, dtype=float), (n,)))
    return np.stack(cols, axis=1)


def sample_experiment(exp, neurons):
    """A resolved experiment reduced to the given neurons (indices into the original population):
    their own initial values, spikes of all, traces of the sampled neurons that were traced.
    Returns (experiment, neurons); neuron k of the new experiment is neurons[k] of the old."""
    neurons = np.asarray(neurons, dtype=np.int64)
    arrays = {}
    for state, values in exp.initial_arrays.items():
        arrays[state] = None if values is None else np.asarray(
            np.broadcast_to(np.asarray(values, dtype=float), (exp.size,))[neurons])
    position = {int(n): k for k, n in enumerate(neurons)}
    traces = []
    for tr in exp.traces:
        keep = tuple(position[n] for n in tr.neurons if n in position)
        if keep:
            traces.append(dataclasses.replace(tr, neurons=keep))
    return dataclasses.replace(exp, size=len(neurons), initial_arrays=arrays, record_spikes=True,
                               traces=tuple(traces)), neurons


def _phase_inputs(phase, rhs: RHS, neuron: int, size: int):
    values = []
    for name in rhs.inputs:
        value = phase.inputs.get(name, 0.0)
        arr = np.asarray(value, dtype=float)
        values.append(float(arr) if arr.ndim == 0 else float(np.broadcast_to(arr, (size,))[neuron]))
    return values


# ---------------------------------------------------------------------------------------------
# Integration


def trace_times(exp, duration: float, interval: float | None) -> np.ndarray:
    """Sample times on the grid k*interval, inside the experiment's trace windows (all of the run
    when it has no windows)."""
    groups = list(exp.traces)
    if interval is None:
        interval = groups[0].interval if groups else 1e-4
    n = int(math.floor(duration / interval + 1e-9))
    grid = np.arange(n) * interval
    windows = [w for g in groups if g.windows for w in g.windows]
    if groups and all(g.windows for g in groups):
        keep = np.zeros(len(grid), bool)
        for a, b in windows:
            keep |= (grid >= a - 1e-12) & (grid < b - 1e-12)
        grid = grid[keep]
    return grid


def integrate(rhs: RHS, y0, protocol, inputs_of, *, method=DEFAULT_METHOD, rtol=DEFAULT_RTOL,
              t_eval=None, max_step=None):
    """One neuron through the protocol phases. Returns (spike_times, samples (len(t_eval), n_states),
    info): info holds the solver's nfev and, when the cell has a threshold, what is known about it
    (see Crossings): ``overshoot`` (V, each spike's peak - threshold, in the order of the spikes),
    ``near_t`` and ``near_peak`` (s, V: the maxima of v less than NEAR_MISS_RECORDED below the
    threshold that did not cross it).

    solve_ivp's events find the upward crossings (spikes), the downward crossings (the end of each
    spike's excursion) and the maxima of v (dv/dt = 0, falling) in the band where a peak is recorded;
    a spike's peak is the highest v between its upward crossing and the next downward one (or the end
    of the run), across protocol phases (the state at each phase boundary counts too)."""
    from scipy.integrate import solve_ivp
    y = np.asarray(y0, dtype=float).copy()
    atol = rtol * np.asarray(ir_rhs.state_scales(rhs.cell))
    spikes: list[float] = []
    t_eval = np.zeros(0) if t_eval is None else np.asarray(t_eval, dtype=float)
    samples = np.full((len(t_eval), len(y)), np.nan)
    th = rhs.threshold
    band = None if th is None else th - NEAR_MISS_RECORDED     # maxima above this are located
    overshoot: list[float] = []
    near_t: list[float] = []
    near_peak: list[float] = []
    # the excursion above the threshold the neuron is in: None (below), -1 (above since the start:
    # no spike), else the index of its spike; peak: the highest v of that excursion so far
    excursion = -1 if th is not None and y[0] > th else None
    peak = -math.inf
    t = 0.0
    nfev = 0

    def close():
        if excursion is not None and excursion >= 0:
            overshoot[excursion] = max(peak - th, 0.0)

    for k, phase in enumerate(protocol):
        t_end = t + phase.duration
        inputs = inputs_of(phase)
        fun = rhs.fun(inputs)
        events = None
        if th is not None:
            def up(t_, y_, _th=th):
                return y_[0] - _th
            up.direction = 1.0

            def down(t_, y_, _th=th):
                return y_[0] - _th
            down.direction = -1.0

            def top(t_, y_, _band=band, _fun=fun):
                # dv/dt where a peak is recorded, a positive constant below that band: only the
                # maxima inside it are located (no root-finding on every ripple of a resting v)
                return _fun(t_, y_)[0] if y_[0] > _band else 1.0
            top.direction = -1.0
            events = [up, top, down]          # at equal times: a crossing up, its peak, down
        last = k == len(protocol) - 1
        in_phase = (t_eval >= t - 1e-15) & ((t_eval < t_end - 1e-15) | (last & (t_eval <= t_end + 1e-15)))
        idx = np.flatnonzero(in_phase)
        extra = {}
        if method in ("Radau", "BDF", "LSODA") and rhs.jac is not None:
            extra["jac"] = rhs.jacobian(inputs)
        if max_step is not None:
            extra["max_step"] = max_step
        if method != "LSODA":
            extra["first_step"] = min(1e-6, phase.duration)
        ts = np.clip(t_eval[idx], t, t_end)
        with_end = not (len(ts) and ts[-1] >= t_end - 1e-15)
        if with_end:
            ts = np.append(ts, t_end)
        sol = solve_ivp(fun, (t, t_end), y, method=method, rtol=rtol, atol=atol,
                        events=events, t_eval=ts, **extra)
        if sol.status < 0:
            raise HHCError(f"the reference solver {method} failed at t = {sol.t[-1]:.6g} s: {sol.message}")
        nfev += sol.nfev
        if len(idx):
            samples[idx] = sol.y[:, :len(idx)].T
        y = sol.y[:, -1].copy()
        if events is not None:
            # an event exactly at a phase start was already handled at the end of the last phase
            found = sorted((float(te), kind, float(ye[0]))
                           for kind in range(3) for te, ye in zip(sol.t_events[kind], sol.y_events[kind])
                           if te > t + 1e-12 or k == 0)
            for te, kind, v in found:
                if kind == 0:                          # upward crossing: a spike
                    close()
                    spikes.append(te)
                    overshoot.append(0.0)
                    excursion, peak = len(spikes) - 1, th
                elif kind == 1:                        # a maximum of v in the band
                    if excursion is not None:
                        peak = max(peak, v)
                    elif v < th:
                        near_t.append(te)
                        near_peak.append(v)
                else:                                  # downward crossing: the excursion ends
                    close()
                    excursion, peak = None, -math.inf
            v_end = float(y[0])
            if excursion is not None:                  # the excursion goes on into the next phase
                peak = max(peak, v_end)
            elif not last and band < v_end < th:
                # a maximum at the phase boundary itself: rising before it, falling after it
                after = rhs.fun(inputs_of(protocol[k + 1]))(t_end, y)[0]
                if after < 0 < fun(t_end, y)[0]:
                    near_t.append(t_end)
                    near_peak.append(v_end)
        t = t_end
    close()
    info = {"nfev": int(nfev)}
    if th is not None:
        info.update(overshoot=np.asarray(overshoot, dtype=float), near_t=np.asarray(near_t, dtype=float),
                    near_peak=np.asarray(near_peak, dtype=float))
    return np.asarray(spikes), samples, info


def _check(method: str, rtol: float) -> None:
    if method not in METHODS:
        raise HHCError(f"unknown reference method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 < rtol < 1e-2:
        raise HHCError(f"reference tolerance {rtol!r} out of range (0 < rtol < 0.01)")


def _solve(exp, rhs: RHS, neurons, traced, t_eval, *, method, rtol, progress=None):
    """Integrate the given neurons of a resolved experiment, each once per distinct (initial state,
    inputs). Traced neurons are sampled at t_eval. Returns ({neuron: (spike times, samples, info)},
    stats); info is integrate's (overshoots and near misses)."""
    y0_all = initial_matrix(exp, rhs)
    no_samples = np.zeros(0)
    cache: dict = {}              # (initial state, inputs) -> (spike times, samples, info, sampled)
    out, nfev, runs = {}, 0, 0
    for k, n in enumerate(neurons):
        n = int(n)
        y0 = y0_all[n]
        sampled = n in traced
        per_neuron_inputs = [tuple(_phase_inputs(p, rhs, n, exp.size)) for p in exp.protocol]
        key = (tuple(np.round(y0, 15)), tuple(per_neuron_inputs))
        if key not in cache or sampled and not cache[key][3]:
            phase_inputs = dict(zip(map(id, exp.protocol), per_neuron_inputs))
            times, samples, info = integrate(rhs, y0, exp.protocol, lambda p: phase_inputs[id(p)], method=method,
                                             rtol=rtol, t_eval=t_eval if sampled else no_samples)
            cache[key] = (times, samples, info, sampled)
            nfev += info["nfev"]
            runs += 1
        out[n] = cache[key][:3]
        if progress is not None:
            progress(k + 1, len(neurons))
    return out, {"distinct_trajectories": runs, "nfev": nfev}


def _crossings(rhs: RHS, solved, neurons) -> Crossings | None:
    """The crossings of `neurons` (overshoots in the order of their spikes: neuron by neuron, each in
    time order, as their spikes are concatenated), or None when the cell has no threshold."""
    if rhs.threshold is None:
        return None
    infos = [solved[int(n)][2] for n in neurons]
    empty = [np.zeros(0)]
    return Crossings(rhs.threshold,
                     np.concatenate([i["overshoot"] for i in infos] or empty),
                     np.concatenate([np.full(len(i["near_t"]), int(n), np.int64) for n, i in zip(neurons, infos)]
                                    or [np.zeros(0, np.int64)]),
                     np.concatenate([i["near_t"] for i in infos] or empty),
                     np.concatenate([i["near_peak"] for i in infos] or empty))


def _meta(method, rtol, stats, wall) -> dict:
    import scipy
    return {"backend": "reference", "device": "scipy", "method": f"scipy.solve_ivp/{method}",
            "solver": method, "rtol": rtol, "atol_v": rtol * V_SCALE, "atol_gates": rtol,
            "spike_detection": "upward threshold crossing located by solve_ivp events",
            "peak_detection": "maxima of v (dv/dt = 0) and downward crossings located by solve_ivp events",
            "distinct_trajectories": stats["distinct_trajectories"], "nfev": stats["nfev"],
            "wall_time_s": wall, "scipy_version": scipy.__version__, "dt": None}


def compute_reference(exp, cell, neurons, *, method=DEFAULT_METHOD, rtol=DEFAULT_RTOL,
                      variables=("v",), interval=None, progress=None):
    """Reference spikes and traces for some neurons of a resolved experiment: a dict with spike_i
    (original indices), spike_t, traces (one TraceGroup of `variables` for all the neurons, at
    `interval` inside the experiment's trace windows), crossings (Crossings: each spike's overshoot,
    in the order of spike_i/spike_t, and the near misses; None for a cell without threshold) and meta
    (with sample_neurons)."""
    _check(method, rtol)
    rhs = build_rhs(cell, jacobian=method in IMPLICIT)
    for var in variables:
        if var not in rhs.states:
            raise HHCError(f"the reference records states only; {var!r} is not one of {', '.join(rhs.states)}")
    neurons = np.asarray(neurons, dtype=np.int64)
    t_eval = trace_times(exp, exp.duration, interval) if variables else np.zeros(0)
    started = time.perf_counter()
    solved, stats = _solve(exp, rhs, neurons, set(neurons.tolist()) if variables else set(), t_eval,
                           method=method, rtol=rtol, progress=progress)
    wall = time.perf_counter() - started
    spike_i, spike_t = [], []
    for n in neurons:
        times = solved[int(n)][0]
        spike_i.extend([int(n)] * len(times))
        spike_t.extend(times.tolist())
    groups = []
    if len(t_eval) and variables:
        cols = [rhs.states.index(v) for v in variables]
        groups.append(TraceGroup(t_eval, neurons, {
            v: np.stack([solved[int(n)][1][:, c] for n in neurons], axis=1) for v, c in zip(variables, cols)}))
    meta = _meta(method, rtol, stats, wall)
    meta["sample_neurons"] = neurons.tolist()
    return {"spike_i": np.asarray(spike_i, dtype=np.int64), "spike_t": np.asarray(spike_t, dtype=float),
            "traces": groups, "crossings": _crossings(rhs, solved, neurons), "meta": meta}


def run_reference(cell, exp, progress=None) -> RunResult:
    """Every neuron of a resolved experiment that records anything: spikes as recorded
    (exp.record_spikes), each trace group at its own interval and windows."""
    method = DEFAULT_METHOD if exp.method == "auto" else exp.method
    _check(method, DEFAULT_RTOL)
    if exp.drawn is not None:
        for tr in exp.traces:
            for var in tr.variables:
                if var not in cell.states:
                    ReferenceBackend.unsupported(f"recording {var!r}",
                                                 hint=f"the reference records states only: {', '.join(cell.states)}")
        return run_network_reference(cell, exp, method, DEFAULT_RTOL,
                                     progress=(lambda t: progress(t)) if progress is not None else None)
    rhs = build_rhs(cell, jacobian=method in IMPLICIT)
    for tr in exp.traces:
        for var in tr.variables:
            if var not in rhs.states:
                ReferenceBackend.unsupported(f"recording {var!r}",
                                             hint=f"the reference records states only: {', '.join(rhs.states)}")
    spiking = (range(exp.size) if exp.record_spikes is True else
               () if exp.record_spikes is None else exp.record_spikes)
    traced = {int(n) for tr in exp.traces for n in tr.neurons}
    neurons = sorted({int(n) for n in spiking} | traced)
    grids = [trace_times(dataclasses.replace(exp, traces=(tr,)), exp.duration, tr.interval or exp.dt)
             for tr in exp.traces]
    t_all = np.unique(np.concatenate(grids)) if grids else np.zeros(0)

    def report(done, total):
        if progress is not None:
            progress(exp.duration * done / total)
    started = time.perf_counter()
    solved, stats = _solve(exp, rhs, neurons, traced, t_all, method=method, rtol=DEFAULT_RTOL, progress=report)
    wall = time.perf_counter() - started
    spike_i = np.concatenate([np.full(len(solved[int(n)][0]), int(n), np.int64) for n in spiking] or
                             [np.zeros(0, np.int64)])
    spike_t = np.concatenate([solved[int(n)][0] for n in spiking] or [np.zeros(0)])
    order = np.lexsort((spike_i, spike_t))
    crossings = _crossings(rhs, solved, spiking)
    groups = []
    for tr, grid in zip(exp.traces, grids):
        rows = np.searchsorted(t_all, grid)
        groups.append(TraceGroup(grid, np.asarray(tr.neurons, dtype=np.int64), {
            var: np.stack([solved[int(n)][1][rows, rhs.states.index(var)] for n in tr.neurons], axis=1)
            for var in tr.variables}))
    return RunResult(spike_i[order], spike_t[order], groups, _meta(method, DEFAULT_RTOL, stats, wall),
                     crossings=None if crossings is None else crossings.reordered(order))


class ReferenceBackend(Backend):
    name = "reference"
    description = ("SciPy solve_ivp at rtol 1e-9, neuron by neuron, spikes located by root-finding: "
                   "what the other backends are validated against (small populations)")
    capabilities = Capabilities(methods=METHODS, default_method=DEFAULT_METHOD, max_neurons=MAX_NEURONS,
                                records=("spikes", "states"), networks=True)

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        self.unsupported("generating code", hint="the reference integrates the IR with SciPy directly: "
                                                 "`hhc run --backend reference` or `hhc reference`")

    def run(self, cell, experiment, out_dir: Path, progress=None) -> RunResult:
        return run_reference(cell, experiment, progress)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("scipy") is None:
            return "SciPy is not installed (pip install scipy)"
        return None
