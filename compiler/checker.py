"""Syntax tree → IR, checking names, units, dimensions, cycles and ranges on the way.

Every problem is raised as one HHCError pointing at the offending text. The checking is done on
the syntax tree (which knows where things are written); the IR it produces is already valid.
"""
from __future__ import annotations

import difflib
import keyword
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy

from .errors import HHCError

from . import ast, ir, units
from .parser import error_at, parse, parse_file
from .rhs import NUMERIC_MODULES, inline
from .singularities import remove_singularities
from .units import Dimension

# Functions the language knows: name → (number of arguments, dimension rule)
_FUNCTIONS = {
    "exp": sympy.exp, "log": sympy.log, "tanh": sympy.tanh, "sinh": sympy.sinh, "cosh": sympy.cosh,
    "exprel": ir.exprel, "sqrt": sympy.sqrt, "abs": sympy.Abs,
}
_NEEDS_DIMENSIONLESS = {"exp", "log", "tanh", "sinh", "cosh", "exprel"}

GATE_KEYS = {"inf": units.DIMENSIONLESS, "tau": units.TIME, "alpha": units.RATE, "beta": units.RATE}
INPUT_KINDS = {"current": units.CURRENT}
CELL_SETTINGS = {"C": "membrane capacitance", "area": "membrane area"}

# Names an input (used as it is written in every target's code) cannot have, with the reason.
_BRIAN2_NAMES = {"t": "the simulation time", "dt": "the time step", "i": "the neuron index",
                 "N": "the number of neurons", "xi": "white noise", "lastspike": "the last spike time",
                 "not_refractory": "the refractory flag", "t_in_timesteps": "the time in steps",
                 "timestep": "a function"}
_CPP_KEYWORDS = {"auto", "bool", "break", "case", "char", "const", "continue", "default", "delete", "do",
                 "double", "enum", "extern", "float", "goto", "inline", "int", "long", "namespace", "new",
                 "operator", "private", "public", "register", "short", "signed", "sizeof", "static", "struct",
                 "switch", "template", "this", "throw", "typedef", "union", "unsigned", "virtual", "void",
                 "volatile"}
_FUNCTION_NAMES = set(_FUNCTIONS) | {"sin", "cos", "tan", "clip", "floor", "ceil", "rand", "randn", "sign", "int",
                                     "log10", "arcsin", "arccos", "arctan", "exprel", "poisson", "float"}
MAX_NAME_LENGTH = 64


def reserved_reason(name: str) -> str | None:
    """Why `name` cannot name an input (None: it can)."""
    if name in _BRIAN2_NAMES:
        return f"Brian2 uses it for {_BRIAN2_NAMES[name]}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "it is a Python keyword (generated Brian2 and PyNN code is Python)"
    if name in _CPP_KEYWORDS:
        return "it is a C++ keyword (cpp_standalone and NEST compile generated C++)"
    if name in _FUNCTION_NAMES:
        return "it is a function name"
    if name in units.UNITS:
        return "it is a unit name"
    if name.startswith("_"):
        return "names starting with '_' are reserved for generated code"
    return None


def _check_length(name: str, loc, what: str):
    if len(name) > MAX_NAME_LENGTH:
        raise error_at(loc, f"{what} name is {len(name)} characters long (at most {MAX_NAME_LENGTH}): it names "
                            f"generated files and identifiers")


@dataclass
class _Binding:
    """What a name means in a scope: its IR symbol (or value) and dimension."""
    expr: sympy.Expr
    dimension: Dimension
    kind: str                  # 'state', 'parameter', 'expression', 'potential'
    loc: ast.Loc | None = None


class _Scope:
    """Names visible in an expression; resolving a name may trigger checking its definition
    (so helpers can be written in any order), with cycle detection."""

    def __init__(self, parent: "_Scope | None" = None):
        self.parent = parent
        self.bindings: dict[str, _Binding] = {}
        self.pending: dict[str, ast.Assignment] = {}   # defined but not yet checked
        self.resolver = None                           # callable(name) -> _Binding
        self.in_progress: list[str] = []

    def lookup(self, name: str) -> _Binding | None:
        if name in self.bindings:
            return self.bindings[name]
        if name in self.pending:
            return self.resolver(name)
        return self.parent.lookup(name) if self.parent else None

    def all_names(self) -> set[str]:
        names = set(self.bindings) | set(self.pending)
        return names | (self.parent.all_names() if self.parent else set())


def _describe(dim: Dimension) -> str:
    unit = units.PREFERRED_UNIT.get(dim)
    return f"{dim.name} ({unit})" if unit else dim.name


def _a(dim: Dimension) -> str:
    """The dimension with its article, for messages: 'a voltage (mV)', 'a dimensionless number'."""
    if dim.is_dimensionless:
        return "a dimensionless number"
    text = _describe(dim)
    return f"{'an' if text[0] in 'aeiou' else 'a'} {text}"


class _ExpressionChecker:
    """Computes (SymPy expression, dimension) of an AST expression in a scope."""

    def __init__(self, scope: _Scope):
        self.scope = scope

    def check(self, node) -> tuple[sympy.Expr, Dimension]:
        method = getattr(self, "_" + type(node).__name__.lower())
        expr, dim = method(node)
        _check_finite(expr, node)
        return expr, dim

    def _number(self, node: ast.Number):
        return _rational(node.text, node.loc), units.DIMENSIONLESS

    def _quantity(self, node: ast.Quantity):
        unit = units.UNITS.get(node.unit)
        if unit is None:
            suggestion = units.suggest_unit(node.unit)
            hint = f"did you mean '{suggestion}'?" if suggestion else None
            raise error_at(node.unit_loc, f"unknown unit '{node.unit}'", hint)
        return _rational(node.number, node.loc) * unit.symbol, unit.dimension

    def _name(self, node: ast.Name):
        binding = self.scope.lookup(node.id)
        if binding is not None:
            return binding.expr, binding.dimension
        unit = units.UNITS.get(node.id)
        if unit is not None:        # a bare unit, as in `120 mS / cm2`
            return unit.symbol, unit.dimension
        close = difflib.get_close_matches(node.id, sorted(self.scope.all_names()), n=1)
        hint = f"did you mean '{close[0]}'?" if close else None
        raise error_at(node.loc, f"undefined name '{node.id}'", hint)

    def _binop(self, node: ast.BinOp):
        left, ldim = self.check(node.left)
        right, rdim = self.check(node.right)
        if node.op in "+-":
            if ldim != rdim:
                verb = "add" if node.op == "+" else "subtract"
                prep = "to" if node.op == "+" else "from"
                raise error_at(_start(node.right),
                               f"cannot {verb} {_a(rdim)} {prep} {_a(ldim)}")
            return (left + right if node.op == "+" else left - right), ldim
        if node.op == "*":
            return left * right, ldim * rdim
        return left / right, ldim / rdim

    def _neg(self, node: ast.Neg):
        expr, dim = self.check(node.operand)
        return -expr, dim

    def _pow(self, node: ast.Pow):
        base, bdim = self.check(node.base)
        exponent, edim = self.check(node.exponent)
        if not edim.is_dimensionless:
            raise error_at(_start(node.exponent), f"an exponent must be dimensionless, not {_a(edim)}")
        if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
            raise error_at(_start(node.exponent), f"exponent {exponent} is too large "
                                                  f"(at most {MAX_EXPONENT} in absolute value)")
        if base.is_Rational and exponent.is_Number:
            # exact arithmetic: b ^ e has about bits(b)·e bits; refuse before computing it
            bits = max(abs(base.p).bit_length(), base.q.bit_length()) * abs(exponent)
            if bits > MAX_BITS:
                raise error_at(_start(node.base), "this power is too large a number")
        if bdim.is_dimensionless:
            return base ** exponent, bdim
        if not exponent.is_Rational:
            raise error_at(_start(node.exponent),
                           f"{_a(bdim)} can only be raised to a constant number")
        return base ** exponent, bdim ** Fraction(int(exponent.p), int(exponent.q))

    def _call(self, node: ast.Call):
        func = _FUNCTIONS.get(node.function)
        if func is None:
            close = difflib.get_close_matches(node.function, _FUNCTIONS, n=1)
            raise error_at(node.loc, f"unknown function '{node.function}'",
                           f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(_FUNCTIONS))}")
        if len(node.args) != 1:
            raise error_at(node.loc, f"{node.function}() takes 1 argument, got {len(node.args)}")
        arg, dim = self.check(node.args[0])
        if node.function in _NEEDS_DIMENSIONLESS:
            if not dim.is_dimensionless:
                raise error_at(_start(node.args[0]),
                               f"the argument of {node.function}() must be dimensionless, "
                               f"but it is {_a(dim)}",
                               "divide by a quantity of the same unit, e.g. (v + 30 mV) / (6.6 mV)")
            return func(arg), dim
        if node.function == "sqrt":
            return func(arg), dim ** Fraction(1, 2)
        return func(arg), dim


# Limits that keep exact (SymPy) arithmetic on constants cheap. A double holds up to ~1.8e308,
# so numbers beyond ~1e308 (about 1024 bits) could not be simulated anyway.
MAX_EXPONENT = 1000
MAX_BITS = 4096
_MAX_DECIMAL_EXPONENT = 330


def _rational(text: str, loc: ast.Loc) -> sympy.Rational:
    """A number literal, exactly. Refuses 1e999999999, which SymPy would try to expand."""
    import decimal
    if abs(decimal.Decimal(text).adjusted()) > _MAX_DECIMAL_EXPONENT:
        raise error_at(loc, f"number {text} is out of range")
    return sympy.Rational(text)


def _check_finite(expr: sympy.Expr, node):
    """A constant part of an expression must be a finite real number: 0/0, 1/(0 mV), log(0),
    sqrt(-1) all produce SymPy's nan/zoo/oo/I, which no simulator can use."""
    if expr.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        raise error_at(_start(node), "this expression is undefined or infinite (a division by zero?)")
    if expr.has(sympy.I):
        raise error_at(_start(node), "this expression is not a real number")
    if expr.is_Rational and max(abs(expr.p).bit_length(), expr.q.bit_length()) > MAX_BITS:
        raise error_at(_start(node), "this number is too large")


def _start(node) -> ast.Loc:
    """Where an expression begins in the text (for the caret)."""
    while isinstance(node, (ast.BinOp, ast.Pow)):
        node = node.left if isinstance(node, ast.BinOp) else node.base
    return node.loc


def _references(node) -> list[ast.Name]:
    if isinstance(node, ast.Name):
        return [node]
    if isinstance(node, ast.BinOp):
        return _references(node.left) + _references(node.right)
    if isinstance(node, ast.Pow):
        return _references(node.base) + _references(node.exponent)
    if isinstance(node, ast.Neg):
        return _references(node.operand)
    if isinstance(node, ast.Call):
        return [n for a in node.args for n in _references(a)]
    return []


def _constant(node, what: str) -> tuple[sympy.Expr, Dimension]:
    """A value that must not depend on anything but numbers and units."""
    scope = _Scope()
    refs = [r for r in _references(node) if r.id not in units.UNITS]
    if refs:
        raise error_at(refs[0].loc, f"{what} must be a constant (a number with a unit), "
                                    f"but it uses '{refs[0].id}'")
    expr, dim = _ExpressionChecker(scope).check(node)
    try:
        number = float(units.to_si(expr))
    except (TypeError, ValueError, OverflowError):
        number = float("inf")
    if not math.isfinite(number):
        raise error_at(_start(node), f"{what} is not a finite number (too large for a double?)")
    return expr, dim


def _unit_syms(expr):
    return {s for s in expr.free_symbols if units.unit_of_symbol(s)}


def _expect(node, dim: Dimension, actual: Dimension, what: str):
    if dim != actual:
        raise error_at(_start(node), f"{what} must be {_a(dim)}, but it is {_a(actual)}")


# ---- channels ------------------------------------------------------------------------------

def _check_duplicates(items, what: str):
    """items: (name, loc) pairs; the second of two equal names is the error."""
    seen: dict[str, ast.Loc] = {}
    for name, loc in items:
        if name in seen:
            first = seen[name]
            raise error_at(loc, f"duplicate {what} '{name}'",
                           f"first defined at {first.source.path}:{first.line}:{first.column}")
        seen[name] = loc


def _define_lazily(scope: _Scope, assignments, qualify, owner: str, collect: list):
    """Put assignments in scope; each is checked on first use (or at the end), in dependency
    order, so a cycle is found where it closes."""
    for a in assignments:
        scope.pending[a.name] = a

    def resolve(name: str) -> _Binding:
        if name in scope.in_progress:
            cycle = scope.in_progress[scope.in_progress.index(name):] + [name]
            node = scope.pending[scope.in_progress[-1]]
            raise error_at(node.loc, f"circular definition in {owner}: {' → '.join(cycle)}")
        node = scope.pending[name]
        scope.in_progress.append(name)
        expr, dim = _ExpressionChecker(scope).check(node.expr)
        scope.in_progress.pop()
        del scope.pending[name]
        is_constant = not (expr.free_symbols - _unit_syms(expr))
        qualified = qualify(name)
        if is_constant:
            binding = _Binding(sympy.Symbol(qualified), dim, "parameter", node.loc)
            collect.append(ir.Parameter(qualified, expr, dim))
        else:
            binding = _Binding(sympy.Symbol(qualified), dim, "expression", node.loc)
            collect.append(ir.NamedExpression(qualified, expr, dim))
        scope.bindings[name] = binding
        return binding

    scope.resolver = resolve
    return resolve


def _no_unit_names(assignments):
    """A parameter called `ms` would silently change what `1 / ms` means in the channel. (Gates
    may be called m: `m` for metre is rare in rate expressions and gate m is universal.)"""
    for a in assignments:
        if a.name in units.UNITS:
            raise error_at(a.loc, f"'{a.name}' is a unit name; choose another name for this parameter",
                           f"e.g. {a.name}_value")


def check_channel(ch: ast.Channel) -> ir.Channel:
    _check_duplicates([(a.name, a.loc) for a in ch.assignments] + [(g.name, g.loc) for g in ch.gates],
                      f"name in channel {ch.name}")
    for a in list(ch.assignments) + list(ch.gates):
        if a.name == "v":
            raise error_at(a.loc, "'v' is the membrane potential and cannot be redefined")
    _no_unit_names(ch.assignments)

    scope = _Scope()
    scope.bindings["v"] = _Binding(ir.V, units.VOLTAGE, "potential")
    gate_symbols = {}
    for g in ch.gates:
        gate_symbols[g.name] = sympy.Symbol(f"{g.name}_{ch.name}")
        scope.bindings[g.name] = _Binding(gate_symbols[g.name], units.DIMENSIONLESS, "state", g.loc)

    defined: list = []   # Parameters and NamedExpressions in dependency order
    resolve = _define_lazily(scope, ch.assignments, lambda n: f"{n}_{ch.name}", f"channel {ch.name}", defined)

    gates = tuple(_check_gate(g, ch, scope, defined) for g in ch.gates)

    for name in list(scope.pending):   # helpers nobody used are still checked
        if name in scope.pending:
            resolve(name)

    if ch.current is not None:
        current, dim = _ExpressionChecker(scope).check(ch.current.expr)
        if dim not in (units.CURRENT, units.CURRENT / units.AREA):
            raise error_at(_start(ch.current.expr), f"the current of channel {ch.name} must be a "
                           f"{_describe(units.CURRENT)} or a current density, but it is {_a(dim)}")
    else:
        current, dim = _default_current(ch, scope, gates)

    parameters = tuple(d for d in defined if isinstance(d, ir.Parameter))
    for p in parameters:
        try:
            finite = math.isfinite(float(units.to_si(p.value)))
        except (TypeError, ValueError, OverflowError):
            finite = False
        if not finite:
            node = next(a for a in ch.assignments if f"{a.name}_{ch.name}" == p.name)
            raise error_at(_start(node.expr), f"{node.name} of channel {ch.name} is not a finite number (too large "
                                              f"for a double)")
        if p.dimension in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA) and p.si_value < 0:
            node = next(a for a in ch.assignments if f"{a.name}_{ch.name}" == p.name)
            raise error_at(_start(node.expr), f"conductance {node.name} of channel {ch.name} is negative")
    channel = ir.Channel(
        name=ch.name, ion=ch.ion, parameters=parameters,
        expressions=tuple(d for d in defined if isinstance(d, ir.NamedExpression)),
        gates=gates, current=current, current_is_density=(dim == units.CURRENT / units.AREA))
    _check_gate_ranges(channel, {g.name: g for g in ch.gates}, ch.loc)
    return channel


# The membrane potentials a cell can reach (mV): gate functions are checked on this grid.
_V_GRID_MV = (-200.0, 100.0, 0.5)
MAX_GATE_POWER = 16


def _check_gate_ranges(channel: ir.Channel, ast_gates: dict, fallback_loc, because: str = ""):
    """Gate functions must be meaningful wherever v can be: inf in [0, 1], tau > 0, alpha and beta
    >= 0, all finite (a singularity that is not one of the 0/0 forms hhc rewrites fails here, not
    at run time). Checked on v from -200 to +100 mV in 0.5 mV steps, parameters in."""
    lo, hi, step = _V_GRID_MV
    v_mv = np.arange(lo, hi + step / 2, step)
    for gate in channel.gates:
        node = ast_gates.get(gate.name)
        forms = ({"alpha": gate.alpha, "beta": gate.beta} if gate.alpha is not None else
                 {"inf": gate.steady_state, "tau": gate.time_constant})
        for key, expr in forms.items():
            where = next((a for a in node.assignments if a.name == key), None) if node is not None else None
            loc = _start(where.expr) if where is not None else fallback_loc
            si = units.to_si(inline(expr, channel=channel, parameters=True))
            if si.free_symbols - {ir.V}:
                continue                     # depends on something other than v: judged at run time
            owner = f"{key} of gate {gate.name} of channel {channel.name}{because}"
            try:
                with np.errstate(all="ignore"):
                    values = np.broadcast_to(np.asarray(
                        sympy.lambdify(ir.V, si, NUMERIC_MODULES)(v_mv * 1e-3), dtype=float), v_mv.shape)
            except (OverflowError, ZeroDivisionError, ValueError, TypeError):
                raise error_at(loc, f"{owner} holds numbers too large for a double") from None
            bad = ~np.isfinite(values)
            if bad.any():
                raise error_at(loc, f"{owner} is not finite at v = {v_mv[bad][0]:g} mV",
                               "a rate singular at some v (other than the 0/0 forms hhc rewrites with exprel) "
                               "cannot be integrated there")
            if key == "inf":
                out = (values < -1e-12) | (values > 1 + 1e-12)
                rule = "must lie between 0 and 1"
            elif key == "tau":
                out = values <= 0
                rule = "must be positive"
            else:
                out = values < 0
                rule = "must not be negative"
            if out.any():
                k = int(np.argmax(out))
                unit = "" if key == "inf" else (" ms" if key == "tau" else " /ms")
                scale = 1.0 if key == "inf" else (1e3 if key == "tau" else 1e-3)
                raise error_at(loc, f"{owner} {rule}, but it is {values[k] * scale:.6g}{unit} at v = {v_mv[k]:g} mV")


def _default_current(ch: ast.Channel, scope: _Scope, gates) -> tuple[sympy.Expr, Dimension]:
    gbar, e = scope.lookup("gbar"), scope.lookup("E")
    if gbar is None or e is None:
        missing = " and ".join(n for n, b in (("gbar", gbar), ("E", e)) if b is None)
        raise error_at(ch.loc, f"channel {ch.name} has no 'current = ...' and no {missing} for the "
                               f"default current gbar * gates * (v - E)")
    if gbar.dimension not in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA):
        raise error_at(gbar.loc, f"gbar of channel {ch.name} must be {_a(units.CONDUCTANCE)} or a "
                                 f"conductance density, but it is {_a(gbar.dimension)}")
    if e.dimension != units.VOLTAGE:
        raise error_at(e.loc, f"E of channel {ch.name} must be {_a(units.VOLTAGE)}, "
                              f"but it is {_a(e.dimension)}")
    product = sympy.Mul(*(g.symbol ** g.power for g in gates))
    dim = units.CURRENT if gbar.dimension == units.CONDUCTANCE else units.CURRENT / units.AREA
    return gbar.expr * product * (ir.V - e.expr), dim


def _check_gate(g: ast.Gate, ch: ast.Channel, channel_scope: _Scope, defined: list) -> ir.Gate:
    owner = f"gate {g.name} of channel {ch.name}"
    if g.power < 1:
        raise error_at(g.power_loc, f"the power of {owner} must be a positive integer, got {g.power}")
    if g.power > MAX_GATE_POWER:
        raise error_at(g.power_loc, f"the power of {owner} is {g.power}; hhc takes powers up to {MAX_GATE_POWER}",
                       "published gates use powers of 1 to 8")
    _check_duplicates([(a.name, a.loc) for a in g.assignments], f"name in {owner}")
    keys = {a.name: a for a in g.assignments if a.name in GATE_KEYS}
    has_inf_tau = "inf" in keys or "tau" in keys
    has_rates = "alpha" in keys or "beta" in keys
    if has_inf_tau and has_rates:
        node = keys.get("alpha") or keys.get("beta")
        raise error_at(node.loc, f"{owner} mixes inf/tau with alpha/beta; use one form")
    needed = ("inf", "tau") if has_inf_tau or not has_rates else ("alpha", "beta")
    for key in needed:
        if key not in keys:
            raise error_at(g.loc, f"{owner} has no '{key}'",
                           "a gate needs inf and tau, or alpha and beta")

    scope = _Scope(channel_scope)
    helpers = [a for a in g.assignments if a.name not in GATE_KEYS]
    _no_unit_names(helpers)
    for a in helpers:
        if a.name == "v":
            raise error_at(a.loc, "'v' is the membrane potential and cannot be redefined")
    local_defined: list = []
    resolve = _define_lazily(scope, helpers, lambda n: f"{n}_{g.name}_{ch.name}", owner, local_defined)
    values = {}
    for key in needed:
        node = keys[key]
        expr, dim = _ExpressionChecker(scope).check(node.expr)
        _expect(node.expr, GATE_KEYS[key], dim, f"{key} of {owner}")
        values[key] = expr
    for name in list(scope.pending):
        if name in scope.pending:
            resolve(name)
    defined.extend(local_defined)

    if "alpha" in values:
        alpha = remove_singularities(values["alpha"], ir.V)
        beta = remove_singularities(values["beta"], ir.V)
        return ir.Gate(g.name, ch.name, g.power, steady_state=alpha / (alpha + beta),
                       time_constant=1 / (alpha + beta), alpha=alpha, beta=beta)
    return ir.Gate(g.name, ch.name, g.power, steady_state=remove_singularities(values["inf"], ir.V),
                   time_constant=remove_singularities(values["tau"], ir.V))


# ---- cells ---------------------------------------------------------------------------------

def check_cell(cell: ast.Cell, channels: dict[str, tuple[ast.Channel, ir.Channel]],
               source: str, sources: tuple[str, ...]) -> ir.Cell:
    settings = {}
    _check_duplicates([(a.name, a.loc) for a in cell.assignments], f"setting in cell {cell.name}")
    for a in cell.assignments:
        if a.name not in CELL_SETTINGS:
            raise error_at(a.loc, f"unknown cell setting '{a.name}'",
                           "a cell sets C (capacitance) and optionally area; channel parameters are "
                           "overridden in the channels list: channels NaF(gbar = 150 nS)")
        settings[a.name] = (_constant(a.expr, f"{CELL_SETTINGS[a.name]} {a.name}"), a)

    if "C" not in settings:
        raise error_at(cell.loc, f"cell {cell.name} has no membrane capacitance C")
    (c_value, c_dim), c_node = settings["C"]
    if c_dim not in (units.CAPACITANCE, units.CAPACITANCE / units.AREA):
        raise error_at(_start(c_node.expr), f"C of cell {cell.name} must be {_a(units.CAPACITANCE)} "
                                            f"or a capacitance density, but it is {_a(c_dim)}")
    if float(units.to_si(c_value)) <= 0:
        raise error_at(_start(c_node.expr), f"C of cell {cell.name} must be positive")
    capacitance = ir.Parameter("C", c_value, c_dim, "membrane capacitance")
    area = None
    if "area" in settings:
        (a_value, a_dim), a_node = settings["area"]
        _expect(a_node.expr, units.AREA, a_dim, f"area of cell {cell.name}")
        if float(units.to_si(a_value)) <= 0:
            raise error_at(_start(a_node.expr), f"area of cell {cell.name} must be positive")
        area = ir.Parameter("area", a_value, a_dim, "membrane area")

    # channels, with per-cell parameter overrides
    _check_duplicates([(u.name, u.loc) for u in cell.channels], f"channel in cell {cell.name}")
    used: list[ir.Channel] = []
    for use in cell.channels:
        if use.name not in channels:
            close = difflib.get_close_matches(use.name, channels, n=1)
            raise error_at(use.loc, f"unknown channel '{use.name}'",
                           f"did you mean '{close[0]}'?" if close else
                           "define it in this file or import the file that defines it")
        used.append(_apply_overrides(channels[use.name][1], use))

    needs_area = [f"channel {ch.name}" for ch in used if ch.current_is_density]
    if c_dim != units.CAPACITANCE:
        needs_area.append("C")

    leak = None
    if cell.leak is not None:
        _check_duplicates([(a.name, a.loc) for a in cell.leak], "leak setting")
        given = {a.name: a for a in cell.leak}
        for a in cell.leak:
            if a.name not in ("g", "E"):
                raise error_at(a.loc, f"unknown leak setting '{a.name}'", "a leak sets g and E")
        for key in ("g", "E"):
            if key not in given:
                raise error_at(cell.leak_loc, f"the leak of cell {cell.name} has no {key}")
        g_value, g_dim = _constant(given["g"].expr, "leak g")
        if g_dim not in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA):
            raise error_at(_start(given["g"].expr), f"leak g must be {_a(units.CONDUCTANCE)} or a "
                                                    f"conductance density, but it is {_a(g_dim)}")
        if float(units.to_si(g_value)) < 0:
            raise error_at(_start(given["g"].expr), "leak g is negative")
        if g_dim != units.CONDUCTANCE:
            needs_area.append("leak g")
        e_value, e_dim = _constant(given["E"].expr, "leak E")
        _expect(given["E"].expr, units.VOLTAGE, e_dim, "leak E")
        leak = (ir.Parameter("g_leak", g_value, g_dim, "leak conductance"),
                ir.Parameter("E_leak", e_value, e_dim, "leak reversal potential"))
    if needs_area and area is None:
        raise error_at(cell.loc, f"cell {cell.name} uses densities ({', '.join(needs_area)}) but has no area",
                       "add e.g. `area = 1000 um2`, or write absolute values (nS, pF)")

    # inputs
    _check_duplicates([(i.name, i.loc) for i in cell.inputs], f"input of cell {cell.name}")
    taken = {"v", "C", "area", "g_leak", "E_leak", "I_leak"} | {p.name for ch in used for p in ch.parameters}
    taken |= {g.state for ch in used for g in ch.gates} | {ch.current_name for ch in used}
    inputs = []
    for i in cell.inputs:
        if i.kind not in INPUT_KINDS:
            raise error_at(i.kind_loc, f"unknown input kind '{i.kind}'", f"known: {', '.join(INPUT_KINDS)}")
        if i.name in taken:
            raise error_at(i.loc, f"input name '{i.name}' is already used in cell {cell.name}")
        reason = reserved_reason(i.name)
        if reason:
            raise error_at(i.loc, f"input name '{i.name}' is reserved: {reason}", f"e.g. I_{i.name.lstrip('_')}")
        _check_length(i.name, i.loc, "input")
        inputs.append(ir.Input(i.name, i.kind, INPUT_KINDS[i.kind]))

    initial = _check_initial(cell, used, leak)

    threshold = None
    if cell.spike is not None:
        if cell.spike.variable != "v":
            raise error_at(cell.spike.loc, f"spikes are detected on the membrane potential v, "
                                           f"not '{cell.spike.variable}'")
        threshold, t_dim = _constant(cell.spike.threshold, "the spike threshold")
        _expect(cell.spike.threshold, units.VOLTAGE, t_dim, "the spike threshold")

    return ir.Cell(cell.name, source, capacitance, area, tuple(used), leak, tuple(inputs),
                   initial, threshold, sources)


def _apply_overrides(channel: ir.Channel, use: ast.ChannelUse) -> ir.Channel:
    if not use.overrides:
        return channel
    _check_duplicates([(o.name, o.loc) for o in use.overrides], f"override of channel {channel.name}")
    params = {p.name: p for p in channel.parameters}
    for o in use.overrides:
        qualified = f"{o.name}_{channel.name}"
        if qualified not in params:
            names = ", ".join(p.name[: -len(channel.name) - 1] for p in channel.parameters)
            raise error_at(o.loc, f"channel {channel.name} has no parameter '{o.name}'", f"parameters: {names}")
        value, dim = _constant(o.expr, f"the override of {o.name}")
        old = params[qualified]
        if dim != old.dimension:
            raise error_at(_start(o.expr), f"{o.name} of channel {channel.name} is {_a(old.dimension)}, "
                                           f"but the override is {_a(dim)}")
        if dim in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA) and float(units.to_si(value)) < 0:
            raise error_at(_start(o.expr), f"conductance {o.name} of channel {channel.name} is negative")
        params[qualified] = ir.Parameter(qualified, value, dim, old.doc)
    changed = ir.Channel(channel.name, channel.ion, tuple(params[p.name] for p in channel.parameters),
                         channel.expressions, channel.gates, channel.current, channel.current_is_density)
    _check_gate_ranges(changed, {}, use.loc, because=f" (with the overrides in {use.name}(...))")
    return changed


def _check_initial(cell: ast.Cell, channels: list[ir.Channel], leak) -> tuple[ir.InitialValue, ...]:
    gates = {(ch.name, g.name): g for ch in channels for g in ch.gates}
    values: dict[str, ir.InitialValue] = {}
    _check_duplicates([(".".join(iv.target), iv.loc) for iv in cell.initial], "initial value")
    for iv in cell.initial:
        target = iv.target
        if target == ("v",):
            if iv.expr is None:
                raise error_at(iv.loc, "v has no steady state here; give a voltage, e.g. v = -65 mV")
            value, dim = _constant(iv.expr, "the initial v")
            _expect(iv.expr, units.VOLTAGE, dim, "the initial v")
            values["v"] = ir.InitialValue("v", value)
        elif target == ("gates",):
            if iv.expr is not None:
                raise error_at(iv.loc, "'gates' can only be set to steady_state; set single gates as "
                                       "Channel.gate = value")
        elif len(target) == 2 and tuple(target) in gates:
            gate = gates[tuple(target)]
            if iv.expr is None:
                values[gate.state] = ir.InitialValue(gate.state, None)
                continue
            value, dim = _constant(iv.expr, f"the initial value of {'.'.join(target)}")
            _expect(iv.expr, units.DIMENSIONLESS, dim, f"the initial value of {'.'.join(target)}")
            if not 0 <= float(value) <= 1:
                raise error_at(_start(iv.expr), f"a gate is a fraction between 0 and 1; "
                                                f"{'.'.join(target)} = {float(value):g} is out of range")
            values[gate.state] = ir.InitialValue(gate.state, value)
        else:
            known = ["v", "gates"] + [f"{c}.{g}" for c, g in gates]
            close = difflib.get_close_matches(".".join(target), known, n=1)
            raise error_at(iv.loc, f"unknown initial value target '{'.'.join(target)}'",
                           f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}")
    if "v" not in values:
        if leak is None:
            raise error_at(cell.loc, f"cell {cell.name} has no initial v (and no leak E to start from)")
        values["v"] = ir.InitialValue("v", leak[1].value)
    for gate in gates.values():
        values.setdefault(gate.state, ir.InitialValue(gate.state, None))   # default: steady state
    order = ["v"] + [g.state for g in gates.values()]
    return tuple(values[s] for s in order)


# ---- files and imports ---------------------------------------------------------------------

def _collect(module: ast.Module, seen_files: dict, chain: tuple, out_channels: dict, out_cells: dict):
    for channel in module.channels:
        _check_length(channel.name, channel.loc, "channel")
        if channel.name in out_channels:
            first = out_channels[channel.name][0].loc
            raise error_at(channel.loc, f"duplicate channel '{channel.name}'",
                           f"first defined at {first.source.path}:{first.line}:{first.column}")
        out_channels[channel.name] = (channel, None)
    for cell in module.cells:
        _check_length(cell.name, cell.loc, "cell")
        if cell.name in out_cells:
            first = out_cells[cell.name].loc
            raise error_at(cell.loc, f"duplicate cell '{cell.name}'",
                           f"first defined at {first.source.path}:{first.line}:{first.column}")
        out_cells[cell.name] = cell
    base = Path(module.source.path).parent
    for imp in module.imports:
        try:
            target = (base / imp.path).resolve()
        except (ValueError, OSError) as exc:
            raise error_at(imp.loc, f"cannot import {imp.path!r}: not a usable path ({exc})") from None
        if str(target) in chain:
            raise error_at(imp.loc, f"circular import of {imp.path}")
        if str(target) in seen_files:
            continue
        if not target.is_file():
            raise error_at(imp.loc, f"cannot import {imp.path}: no such file ({target})")
        sub = parse_file(target)
        seen_files[str(target)] = sub
        _collect(sub, seen_files, chain + (str(target),), out_channels, out_cells)


def compile_module(module: ast.Module) -> ir.Model:
    seen_files: dict = {}
    raw_channels: dict = {}
    raw_cells: dict = {}
    main = str(Path(module.source.path).resolve()) if module.source.path != "<string>" else "<string>"
    _collect(module, seen_files, (main,), raw_channels, raw_cells)
    sources = (module.source.path,) + tuple(seen_files)
    checked = {name: (node, check_channel(node)) for name, (node, _) in raw_channels.items()}
    cells = tuple(check_cell(c, checked, module.source.path, sources) for c in raw_cells.values())
    return ir.Model(module.source.path, tuple(ch for _, ch in checked.values()), cells)


def compile_text(text: str, path: str = "<string>") -> ir.Model:
    """Check .chan text (imports resolved relative to path) and return its IR."""
    return compile_module(parse(text, path))


def load_model(path: str | Path) -> ir.Model:
    """Read, parse and check a .chan file and everything it imports."""
    return compile_module(parse_file(path))
