"""High-precision reference solutions: the IR's right-hand side, in SI, integrated by SciPy.

`hhc reference EXP.toml --sample K` integrates K neurons of an experiment with an adaptive solver
(``scipy.integrate.solve_ivp``, DOP853 by default) at a tight relative tolerance, one neuron at a
time so that the step control follows each neuron alone. Spikes are upward crossings of the cell's
threshold located by the solver's event root-finding on its dense output (not rounded to a grid).
The result is written in hhc's result format (spikes.npz, traces.npz, meta.json) with the original
neuron indices, so `hhc compare` can read it next to any run of the same experiment; meta.json
records the solver, its tolerances and the sampled neurons (``sample_neurons``).

Neurons whose initial state and inputs are identical follow identical trajectories: they are
integrated once (``distinct_trajectories`` in meta.json).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import sympy

from hhc.compiler.version import __version__
from hhc.compiler import ir, units
from hhc.compiler.errors import HHCError

DEFAULT_METHOD = "DOP853"
DEFAULT_RTOL = 1e-9
METHODS = ("DOP853", "RK45", "Radau", "LSODA", "BDF")
# absolute tolerance = rtol x a typical magnitude of the state: 100 mV for v, 1 for gates
V_SCALE = 0.1


# ---------------------------------------------------------------------------------------------
# The right-hand side


def _exprel(x):
    return 1.0 if x == 0 else math.expm1(x) / x


def _exprel_np(x):
    x = np.asarray(x, dtype=float)
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, np.expm1(safe) / safe)


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


def _substitute_all(expr: sympy.Expr, table: dict) -> sympy.Expr:
    for _ in range(50):  # named expressions may refer to one another (dependency order, short chains)
        new = expr.xreplace(table)
        if new == expr:
            return new
        expr = new
    raise HHCError("named expressions refer to each other in a cycle")


def build_rhs(cell: ir.Cell, jacobian: bool = True) -> RHS:
    """Turn the IR into numeric functions: every parameter, named expression and channel current
    substituted, units replaced by their SI scales (units.to_si)."""
    table: dict = {p.symbol: p.value for p in cell.parameters}
    for e in cell.expressions:
        table[e.symbol] = e.expr
    for ch in cell.channels:
        table[sympy.Symbol(ch.current_name)] = cell.channel_current(ch)
    table[sympy.Symbol("I_leak")] = cell.leak_current
    states = cell.states
    derivs = [cell.dv_dt] + [g.derivative for g in cell.gates]
    exprs = [units.to_si(_substitute_all(d, table)) for d in derivs]
    inputs = tuple(i.name for i in cell.inputs)
    syms = [sympy.Symbol(s) for s in states] + [sympy.Symbol(i) for i in inputs]
    unknown = set().union(*(e.free_symbols for e in exprs)) - set(syms)
    if unknown:
        raise HHCError(f"cannot evaluate cell {cell.name}: unresolved names {sorted(map(str, unknown))}")
    f_scalar = sympy.lambdify(syms, exprs, modules=[{"exprel": _exprel}, "math"], cse=True)
    f_vector = sympy.lambdify(syms, exprs, modules=[{"exprel": _exprel_np}, "numpy"], cse=True)
    jac = None
    if jacobian:
        matrix = sympy.Matrix(exprs).jacobian(syms[: len(states)])
        jac = sympy.lambdify(syms, matrix.tolist(), modules=[{"exprel": _exprel}, "math"], cse=True)
    steady = {}
    v = sympy.Symbol("v")
    for g in cell.gates:
        ss = units.to_si(_substitute_all(g.steady_state, table))
        steady[g.state] = sympy.lambdify([v], ss, modules=[{"exprel": _exprel_np}, "numpy"])
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
    stats)."""
    from scipy.integrate import solve_ivp
    y = np.asarray(y0, dtype=float).copy()
    atol = rtol * np.array([V_SCALE] + [1.0] * (len(y) - 1))
    spikes: list[float] = []
    t_eval = np.zeros(0) if t_eval is None else np.asarray(t_eval, dtype=float)
    samples = np.full((len(t_eval), len(y)), np.nan)
    t = 0.0
    nfev = 0
    for k, phase in enumerate(protocol):
        t_end = t + phase.duration
        inputs = inputs_of(phase)
        events = None
        if rhs.threshold is not None:
            th = rhs.threshold

            def crossing(t_, y_, _th=th):
                return y_[0] - _th
            crossing.direction = 1.0
            events = crossing
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
        sol = solve_ivp(rhs.fun(inputs), (t, t_end), y, method=method, rtol=rtol, atol=atol,
                        events=events, t_eval=ts, **extra)
        if sol.status < 0:
            raise HHCError(f"the reference solver {method} failed at t = {sol.t[-1]:.6g} s: {sol.message}")
        nfev += sol.nfev
        if events is not None:
            # a crossing exactly at a phase start was already counted at the end of the last phase
            spikes.extend(float(s) for s in sol.t_events[0] if s > t + 1e-12 or k == 0)
        if len(idx):
            samples[idx] = sol.y[:, :len(idx)].T
        y = sol.y[:, -1].copy()
        t = t_end
    return np.asarray(spikes), samples, {"nfev": int(nfev)}


def compute_reference(exp, cell, neurons, *, method=DEFAULT_METHOD, rtol=DEFAULT_RTOL,
                      variables=("v",), interval=None, progress=None):
    """Reference spikes and traces for some neurons of a resolved experiment.
    Returns a dict in the backends' run() shape (spike_i in original indices)."""
    if method not in METHODS:
        raise HHCError(f"unknown reference method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 < rtol < 1e-2:
        raise HHCError(f"reference tolerance {rtol!r} out of range (0 < rtol < 0.01)")
    rhs = build_rhs(cell, jacobian=method in ("Radau", "BDF", "LSODA"))
    for var in variables:
        if var not in rhs.states:
            raise HHCError(f"the reference records states only; {var!r} is not one of {', '.join(rhs.states)}")
    y0_all = initial_matrix(exp, rhs)
    neurons = np.asarray(neurons, dtype=np.int64)
    t_eval = trace_times(exp, exp.duration, interval)
    cols = [rhs.states.index(v) for v in variables]
    started = time.perf_counter()
    cache: dict = {}
    spike_i, spike_t, samples, nfev = [], [], [], 0
    for k, n in enumerate(neurons):
        y0 = y0_all[n]
        per_neuron_inputs = [tuple(_phase_inputs(p, rhs, int(n), exp.size)) for p in exp.protocol]
        key = (tuple(np.round(y0, 15)), tuple(per_neuron_inputs))
        if key not in cache:
            phase_inputs = dict(zip(map(id, exp.protocol), per_neuron_inputs))
            cache[key] = integrate(rhs, y0, exp.protocol, lambda p: phase_inputs[id(p)], method=method,
                                   rtol=rtol, t_eval=t_eval)
            nfev += cache[key][2]["nfev"]
        times, traj, _ = cache[key]
        spike_i.extend([int(n)] * len(times))
        spike_t.extend(times.tolist())
        samples.append(traj[:, cols])
        if progress is not None:
            progress(k + 1, len(neurons))
    wall = time.perf_counter() - started
    groups = []
    if len(t_eval) and variables:
        stacked = np.stack(samples, axis=2) if samples else np.zeros((len(t_eval), len(cols), 0))
        groups.append({"t": t_eval, "neurons": neurons,
                       "variables": {v: stacked[:, j, :] for j, v in enumerate(variables)}})
    import scipy
    return {"spike_i": np.asarray(spike_i, dtype=np.int64), "spike_t": np.asarray(spike_t, dtype=float),
            "traces": groups,
            "meta": {"backend": "reference", "device": "scipy", "method": f"scipy.solve_ivp/{method}",
                     "solver": method, "rtol": rtol, "atol_v": rtol * V_SCALE, "atol_gates": rtol,
                     "spike_detection": "upward threshold crossing located by solve_ivp events",
                     "sample_neurons": neurons.tolist(), "distinct_trajectories": len(cache),
                     "nfev": nfev, "wall_time_s": wall, "scipy_version": scipy.__version__,
                     "dt": None}}


def reference_run(experiment, *, sample=10, neurons=None, out=None, method=DEFAULT_METHOD,
                  rtol=DEFAULT_RTOL, duration=None, variables=("v",), interval=None, quiet=False) -> Path:
    """Load an experiment, compute the reference for a sample and write it as an hhc result."""
    from hhc.api import prepare
    from hhc.backends.results import write_results
    exp, cell, _ = prepare(experiment, duration=duration, choose_auto=False)
    if neurons is None:
        neurons = sample_indices(exp.size, sample)
    neurons = np.asarray(sorted(set(int(n) for n in neurons)), dtype=np.int64)
    if len(neurons) == 0 or neurons.min() < 0 or neurons.max() >= exp.size:
        raise HHCError(f"sample neurons must lie in 0..{exp.size - 1}")
    out_dir = Path(out) if out is not None else Path("runs") / (
        f"{Path(exp.path).stem}-reference-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}")

    import sys
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
                  meta=_jsonable(meta))
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
