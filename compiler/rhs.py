"""The right-hand side of a cell's ODE system, derived once from the IR for every target that needs
it whole (the SciPy reference, NEST's update block, NeuroML's rate functions): each state's
derivative as one expression of the states, parameters and inputs, with named expressions and
channel currents substituted; optionally with shared subexpressions pulled out, or with parameter
values and SI scales put in for numeric evaluation.

`exprel_np` is the one numeric (exp(x) - 1)/x of the project: exact 1 at 0, and the series
1 + x/2 + x²/6 where expm1(x)/x would lose digits (|x| < 1e-5, relative error below 1e-16).
"""
from __future__ import annotations

import math

import numpy as np
import sympy

from . import ir, units
from .errors import HHCError

_SERIES_BELOW = 1e-5


def exprel_np(x):
    """(exp(x) - 1)/x on floats or numpy arrays, accurate near and at 0. A float (the SciPy
    reference's scalar right-hand side) takes a fast path through math; past the float range it is
    inf, as on arrays."""
    if isinstance(x, float):           # also numpy.float64
        if abs(x) < _SERIES_BELOW:
            return 1.0 + x / 2.0 + x * x / 6.0
        try:
            return math.expm1(x) / x
        except OverflowError:
            return math.inf
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < _SERIES_BELOW
    safe = np.where(small, 1.0, x)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.where(small, 1.0 + x / 2.0 + x * x / 6.0, np.expm1(safe) / safe)
    return out if out.ndim else float(out)


# sympy.lambdify modules: on numpy arrays (and scalars), and on floats only (math: faster per call)
NUMERIC_MODULES = [{"exprel": exprel_np}, "numpy"]
SCALAR_MODULES = [{"exprel": exprel_np}, "math"]


def _substitute_all(expr: sympy.Expr, table: dict) -> sympy.Expr:
    for _ in range(len(table) + 2):   # named expressions may refer to one another (dependency order)
        new = expr.xreplace(table)
        if new == expr:
            return new
        expr = new
    raise HHCError("named expressions refer to each other in a cycle")


def named_table(cell: ir.Cell | None = None, channel: ir.Channel | None = None) -> dict:
    """Symbol → definition of every named expression (of the cell, or of one channel)."""
    exprs = cell.expressions if cell is not None else (channel.expressions if channel is not None else ())
    return {e.symbol: e.expr for e in exprs}


def inline(expr: sympy.Expr, cell: ir.Cell | None = None, channel: ir.Channel | None = None,
           parameters: bool = False) -> sympy.Expr:
    """expr with the named expressions (of the cell, or of one channel) replaced by their definitions,
    and with parameters=True also the parameters by their values (with units)."""
    table = named_table(cell, channel)
    if parameters:
        params = cell.parameters if cell is not None else (channel.parameters if channel is not None else ())
        table.update({p.symbol: p.value for p in params})
    return _substitute_all(expr, table) if table else expr


def derivatives(cell: ir.Cell) -> dict[str, sympy.Expr]:
    """Every state's derivative as one expression of states, parameters and inputs (named
    expressions, steady states, time constants and currents substituted), in the cell's units."""
    table = named_table(cell)
    for ch in cell.channels:
        table[sympy.Symbol(ch.current_name)] = cell.channel_current(ch)
    for syn in cell.synapses:
        table[sympy.Symbol(syn.current_name)] = syn.current
    table[sympy.Symbol("I_leak")] = cell.leak_current
    out = {"v": _substitute_all(cell.dv_dt, table)}
    for g in cell.gates:
        out[g.state] = _substitute_all(g.derivative, table)
    for pool in cell.dynamic_pools:
        out[pool.state] = _substitute_all(cell.pool_derivative(pool), table)
    for syn in cell.synapses:
        out.update(syn.derivatives)
    return out


def in_si(cell: ir.Cell, expr: sympy.Expr, keep=()) -> sympy.Expr:
    """An expression of the cell with its parameter values put in and every unit replaced by its SI
    scale: numbers, states and inputs only (and the parameters named in `keep`, as symbols whose
    values the caller gives in SI: per-neuron parameters)."""
    return units.to_si(_substitute_all(expr, {p.symbol: p.value for p in cell.parameters if p.name not in keep}))


def steady_state_si(cell: ir.Cell, gate: ir.Gate) -> sympy.Expr:
    """A gate's steady state as an expression of v alone (volts), parameter values in, in SI: what
    a gate left at its steady state starts at. A gate that reads a concentration starts at its
    steady state for the pool's initial concentration."""
    pools = {p.symbol: p.initial if p.initial is not None else p.resting.value for p in cell.dynamic_pools}
    return in_si(cell, inline(gate.steady_state, cell).xreplace(pools))


# The size of each kind of state in SI, for absolute tolerances: 100 mV for v, 1 for a gate, and a
# pool's resting concentration (at least 1 nM) for an ion concentration.
V_SCALE = 0.1


def state_scales(cell: ir.Cell) -> list[float]:
    """One typical magnitude per state of cell.states (SI): an integrator's atol is rtol times it."""
    scales = {p.state: max(float(units.to_si(p.resting.value)), 1e-6) for p in cell.dynamic_pools}
    for syn in cell.synapses:   # 1 nS or 1 pA
        scales.update({s: 1e-9 if syn.conductance_based else 1e-12 for s in syn.states})
    return [V_SCALE if s == "v" else scales.get(s, 1.0) for s in cell.states]


def derivatives_si(cell: ir.Cell, keep=()) -> dict[str, sympy.Expr]:
    """derivatives() with parameter values in and units in SI: ready for numeric evaluation (the
    parameters named in `keep` stay symbols)."""
    out = {s: in_si(cell, e, keep) for s, e in derivatives(cell).items()}
    allowed = {sympy.Symbol(s) for s in cell.states} | {sympy.Symbol(i.name) for i in cell.inputs}
    allowed |= {sympy.Symbol(k) for k in keep}
    unknown = set().union(*(e.free_symbols for e in out.values())) - allowed
    if unknown:
        raise HHCError(f"cannot evaluate cell {cell.name}: unresolved names {sorted(map(str, unknown))}")
    return out


def shared(exprs: list[sympy.Expr], prefix: str = "c") -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], list]:
    """Common subexpressions of `exprs` computed once: (temporaries in order, reduced expressions)."""
    return sympy.cse(list(exprs), symbols=sympy.numbered_symbols(prefix), optimizations="basic")
