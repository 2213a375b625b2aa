"""Syntax tree → IR, checking names, units, dimensions, cycles and ranges on the way.

Every problem is raised as one HHCError pointing at the offending text. The checking is done on
the syntax tree (which knows where things are written); the IR it produces is already valid.
"""
from __future__ import annotations

import dataclasses
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
CELL_SETTINGS = {"C": "membrane capacitance", "area": "membrane area", "temperature": "temperature"}
POOL_SETTINGS = {"resting": units.CONCENTRATION, "outside": units.CONCENTRATION, "initial": units.CONCENTRATION,
                 "decay": units.TIME, "depth": units.LENGTH,
                 "rho": units.CONCENTRATION / (units.CHARGE / units.AREA)}

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

    def _conditional(self, node: ast.Conditional):
        condition = self._condition(node.condition)
        then, tdim = self.check(node.then)
        otherwise, odim = self.check(node.otherwise)
        if tdim != odim:
            raise error_at(_start(node.otherwise), f"both branches of 'if ... else' must have the same dimension: "
                                                   f"{_a(tdim)} if the condition holds, {_a(odim)} otherwise")
        if condition == sympy.true:
            return then, tdim
        if condition == sympy.false:
            return otherwise, tdim
        return sympy.Piecewise((then, condition), (otherwise, True)), tdim

    def _condition(self, node):
        if isinstance(node, ast.Logic):
            left, right = self._condition(node.left), self._condition(node.right)
            return sympy.And(left, right) if node.op == "and" else sympy.Or(left, right)
        left, ldim = self.check(node.left)
        right, rdim = self.check(node.right)
        if ldim != rdim:
            raise error_at(_start(node.right), f"cannot compare {_a(ldim)} with {_a(rdim)}")
        relation = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge}[node.op]
        try:
            return relation(left, right)
        except TypeError:          # SymPy cannot order e.g. a unit against a number it cannot sign
            raise error_at(node.loc, "this comparison cannot be evaluated") from None

    def _nernst(self, node: ast.Call):
        ions = ", ".join(ir.ION_VALENCE)
        if len(node.args) != 1 or not isinstance(node.args[0], ast.Name) or node.args[0].id not in ir.ION_VALENCE:
            raise error_at(node.loc, "nernst() takes the name of an ion, e.g. nernst(ca)", f"ions: {ions}")
        ion = node.args[0].id
        for name in (f"{ion}i", f"{ion}o", "temperature"):
            self.check(ast.Name(name, node.loc))        # the scope must know them (it does in channels)
        return ir.nernst(ion), units.VOLTAGE

    def _call(self, node: ast.Call):
        if node.function == "nernst":
            return self._nernst(node)
        func = _FUNCTIONS.get(node.function)
        if func is None:
            close = difflib.get_close_matches(node.function, _FUNCTIONS, n=1)
            raise error_at(node.loc, f"unknown function '{node.function}'",
                           f"did you mean '{close[0]}'?" if close else
                           f"known: {', '.join(sorted(_FUNCTIONS))}, nernst(ion)")
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
    while isinstance(node, (ast.BinOp, ast.Pow, ast.Conditional, ast.Comparison, ast.Logic)):
        if isinstance(node, ast.Conditional):
            node = node.then
        else:
            node = node.base if isinstance(node, ast.Pow) else node.left
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
        if node.function == "nernst":
            return [ast.Name("temperature", node.loc)]
        return [n for a in node.args for n in _references(a)]
    if isinstance(node, (ast.Comparison, ast.Logic)):
        return _references(node.left) + _references(node.right)
    if isinstance(node, ast.Conditional):
        return _references(node.then) + _references(node.condition) + _references(node.otherwise)
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


# Names every channel can read from the cell it is used in: its temperature and the ions'
# concentrations inside (`cai`, a pool's state) and outside (`cao`).
CELL_QUANTITIES = {"temperature": ("the cell's temperature", units.TEMPERATURE)}
for _ion in ir.ION_VALENCE:
    CELL_QUANTITIES[f"{_ion}i"] = (f"the {_ion} concentration inside the cell", units.CONCENTRATION)
    CELL_QUANTITIES[f"{_ion}o"] = (f"the {_ion} concentration outside the cell", units.CONCENTRATION)
Q10_KEYS = {"q10": units.DIMENSIONLESS, "q10_temperature": units.TEMPERATURE, "rate_factor": units.DIMENSIONLESS}


def _no_cell_quantities(assignments, owner: str):
    for a in assignments:
        if a.name in CELL_QUANTITIES:
            raise error_at(a.loc, f"'{a.name}' is {CELL_QUANTITIES[a.name][0]}; {owner} cannot redefine it",
                           "set it in the cell (temperature = ...; pool ca { ... })" if a.name == "temperature"
                           else "a cell's pool sets it: pool ca { resting = ...; outside = ... }")


def check_channel(ch: ast.Channel) -> ir.Channel:
    _check_duplicates([(a.name, a.loc) for a in ch.assignments] + [(g.name, g.loc) for g in ch.gates],
                      f"name in channel {ch.name}")
    for a in list(ch.assignments) + list(ch.gates):
        if a.name == "v":
            raise error_at(a.loc, "'v' is the membrane potential and cannot be redefined")
    _no_unit_names(ch.assignments)
    _no_cell_quantities(list(ch.assignments) + list(ch.gates), f"channel {ch.name}")

    scope = _Scope()
    scope.bindings["v"] = _Binding(ir.V, units.VOLTAGE, "potential")
    for name, (_, dim) in CELL_QUANTITIES.items():
        scope.bindings[name] = _Binding(sympy.Symbol(name), dim, "cell")
    gate_symbols = {}
    for g in ch.gates:
        gate_symbols[g.name] = sympy.Symbol(f"{g.name}_{ch.name}")
        scope.bindings[g.name] = _Binding(gate_symbols[g.name], units.DIMENSIONLESS, "state", g.loc)

    defined: list = []   # Parameters and NamedExpressions in dependency order
    resolve = _define_lazily(scope, ch.assignments, lambda n: f"{n}_{ch.name}", f"channel {ch.name}", defined)

    checked_gates = [_check_gate(g, ch, scope, defined) for g in ch.gates]
    gates = tuple(g for g in checked_gates if not g.instantaneous)
    instantaneous = tuple(g for g in checked_gates if g.instantaneous)
    defined.extend(ir.NamedExpression(g.state, g.steady_state, units.DIMENSIONLESS) for g in instantaneous)

    for name in list(scope.pending):   # helpers nobody used are still checked
        if name in scope.pending:
            resolve(name)

    if ch.current is not None:
        current, dim = _ExpressionChecker(scope).check(ch.current.expr)
        if dim not in (units.CURRENT, units.CURRENT / units.AREA):
            raise error_at(_start(ch.current.expr), f"the current of channel {ch.name} must be a "
                           f"{_describe(units.CURRENT)} or a current density, but it is {_a(dim)}")
    else:
        current, dim = _default_current(ch, scope, checked_gates)

    nernst_ion = _nernst_ion(ch)
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
        gates=gates, current=current, current_is_density=(dim == units.CURRENT / units.AREA), nernst=nernst_ion,
        instantaneous=instantaneous)
    _check_gate_ranges(channel, {g.name: g for g in ch.gates}, ch.loc)
    return channel


def _nernst_ion(ch: ast.Channel) -> str | None:
    """The ion when the channel's reversal E is exactly nernst(ion) (NeuroML writes that as
    channelDensityNernst); a declared ion must be the one nernst() is taken of."""
    e = next((a for a in ch.assignments if a.name == "E"), None)
    if e is None or not (isinstance(e.expr, ast.Call) and e.expr.function == "nernst"):
        return None
    ion = e.expr.args[0].id
    if ch.ion is not None and ch.ion != ion:
        raise error_at(e.expr.loc, f"channel {ch.name} carries {ch.ion} but its reversal is nernst({ion})")
    return ion


# The membrane potentials a cell can reach (mV): gate functions are checked on this grid.
_V_GRID_MV = (-200.0, 100.0, 0.5)
MAX_GATE_POWER = 16


def _check_gate_ranges(channel: ir.Channel, ast_gates: dict, fallback_loc, because: str = "",
                       cell: ir.Cell | None = None):
    """Gate functions must be meaningful wherever v can be: inf in [0, 1], tau > 0, alpha and beta
    >= 0, all finite (a singularity that is not one of the 0/0 forms hhc rewrites fails here, not
    at run time). Checked on v from -200 to +100 mV in 0.5 mV steps, parameters in, and for rates that
    read a concentration on 1 nM to 10 mM as well. Rates that read the temperature are checked once
    the cell gives it (cell=...)."""
    lo, hi, step = _V_GRID_MV
    v_mv = np.arange(lo, hi + step / 2, step)
    cell_values = {}
    if cell is not None:
        cell_values = {p.symbol: p.value for p in cell.parameters if p.name in CELL_QUANTITIES}
    for gate in channel.gates + channel.instantaneous:
        node = ast_gates.get(gate.name)
        forms = ({"alpha": gate.alpha, "beta": gate.beta} if gate.alpha is not None else
                 {"inf": gate.steady_state} if gate.instantaneous else
                 {"inf": gate.steady_state, "tau": gate.time_constant})
        for key, expr in forms.items():
            where = next((a for a in node.assignments if a.name == key), None) if node is not None else None
            loc = _start(where.expr) if where is not None else fallback_loc
            si = units.to_si(inline(expr, channel=channel, parameters=True).xreplace(cell_values))
            if cell is not None and channel.vshift is not None:
                si = units.to_si(si.xreplace({channel.vshift.symbol: channel.vshift.value}))
            concentrations = sorted((s for s in si.free_symbols if s.name in CELL_QUANTITIES and s.name != "temperature"),
                                    key=str)
            if si.free_symbols - {ir.V} - set(concentrations) or len(concentrations) > 1:
                continue                     # depends on what the cell gives: judged there, or at run time
            owner = f"{key} of gate {gate.name} of channel {channel.name}{because}"
            grid = {"": (v_mv, np.array([np.nan]))}
            if concentrations:
                grid = {f" and {concentrations[0]} = {c:g} mM": (v_mv, np.array([c])) for c in _CONC_GRID_MM}
            for at_conc, (vs, conc) in grid.items():
                try:
                    with np.errstate(all="ignore"):
                        args = [vs * 1e-3] + ([np.full_like(vs, conc[0])] if concentrations else [])
                        f = sympy.lambdify([ir.V] + concentrations, si, NUMERIC_MODULES)
                        values = np.broadcast_to(np.asarray(f(*args), dtype=float), vs.shape)
                except (OverflowError, ZeroDivisionError, ValueError, TypeError):
                    raise error_at(loc, f"{owner} holds numbers too large for a double") from None
                _judge_gate_values(key, values, v_mv, loc, owner, at_conc)


# Concentrations (mM) a pool can reach: rates that read one are checked on these.
_CONC_GRID_MM = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0)


def _judge_gate_values(key: str, values, v_mv, loc, owner: str, at_conc: str):
    bad = ~np.isfinite(values)
    if bad.any():
        raise error_at(loc, f"{owner} is not finite at v = {v_mv[bad][0]:g} mV{at_conc}",
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
        raise error_at(loc, f"{owner} {rule}, but it is {values[k] * scale:.6g}{unit} at v = {v_mv[k]:g} mV{at_conc}")


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
    if set(keys) == {"inf"}:
        needed = ("inf",)          # an instantaneous gate: always at its steady state
    for key in needed:
        if key not in keys:
            raise error_at(g.loc, f"{owner} has no '{key}'",
                           "a gate needs inf and tau, or alpha and beta (or only inf: an instantaneous gate)")

    scope = _Scope(channel_scope)
    helpers = [a for a in g.assignments if a.name not in GATE_KEYS]
    _no_unit_names(helpers)
    _no_cell_quantities(helpers, owner)
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

    if needed == ("inf",):
        if {a.name for a in g.assignments} & set(Q10_KEYS):
            node = next(a for a in g.assignments if a.name in Q10_KEYS)
            raise error_at(node.loc, f"{owner} is instantaneous (it has no tau): a Q10 has nothing to scale")
        steady = remove_singularities(values["inf"], ir.V)
        return ir.Gate(g.name, ch.name, g.power, steady_state=steady, time_constant=sympy.Integer(0),
                       instantaneous=True)
    q10 = _q10(g, ch, scope, owner)
    phi = q10.factor if q10 is not None else sympy.Integer(1)
    if "alpha" in values:
        alpha = remove_singularities(values["alpha"], ir.V)
        beta = remove_singularities(values["beta"], ir.V)
        return ir.Gate(g.name, ch.name, g.power, steady_state=alpha / (alpha + beta),
                       time_constant=1 / (phi * (alpha + beta)), alpha=phi * alpha, beta=phi * beta, q10=q10)
    return ir.Gate(g.name, ch.name, g.power, steady_state=remove_singularities(values["inf"], ir.V),
                   time_constant=remove_singularities(values["tau"], ir.V) / phi, q10=q10)


def _q10(g: ast.Gate, ch: ast.Channel, scope: _Scope, owner: str) -> ir.Q10 | None:
    """The gate's temperature scaling: its own q10 / q10_temperature / rate_factor, else the channel's
    (a gate that sets any of them does not take the others from its channel)."""
    found = {}
    own = {a.name for a in g.assignments} & set(Q10_KEYS)
    for key, dim in Q10_KEYS.items():
        if own and key not in own:
            continue
        binding = scope.lookup(key)
        if binding is None:
            continue
        node = next((a for a in g.assignments if a.name == key), None) or \
            next((a for a in ch.assignments if a.name == key), None)
        if binding.kind != "parameter":
            raise error_at(_start(node.expr), f"{key} of {owner} must be a constant")
        _expect(node.expr, dim, binding.dimension, key)
        found[key] = (binding.expr, node)
    if not found:
        return None
    if "rate_factor" in found:
        if "q10" in found:
            raise error_at(found["q10"][1].loc, f"{owner} has both q10 and rate_factor; use one",
                           "q10 with q10_temperature scales with temperature; rate_factor is a fixed factor")
        return ir.Q10(factor=found["rate_factor"][0], fixed=found["rate_factor"][0])
    for key, other in (("q10", "q10_temperature"), ("q10_temperature", "q10")):
        if key in found and other not in found:
            raise error_at(found[key][1].loc, f"{owner} has {key} but no {other}",
                           "a Q10 needs the temperature its rates were measured at: q10 = 3; q10_temperature = 22 degC")
    q10, reference = found["q10"][0], found["q10_temperature"][0]
    factor = q10 ** ((ir.TEMPERATURE - reference) / (10 * units.unit_symbol("degC")))
    return ir.Q10(factor=factor, q10=q10, reference_temperature=reference)


# ---- synapses ------------------------------------------------------------------------------

def check_synapse(syn: ast.Synapse) -> ir.Synapse:
    owner = f"synapse {syn.name}"
    if syn.kind not in ir.SYNAPSE_KINDS:
        close = difflib.get_close_matches(syn.kind, ir.SYNAPSE_KINDS, n=1, cutoff=0.4)
        raise error_at(syn.kind_loc, f"unknown synapse kind '{syn.kind}'",
                       f"did you mean '{close[0]}'?" if close else f"kinds: {', '.join(ir.SYNAPSE_KINDS)}")
    needed = ir.SYNAPSE_KINDS[syn.kind]
    _check_duplicates([(a.name, a.loc) for a in syn.assignments], f"setting of {owner}")
    given = {}
    for a in syn.assignments:
        if a.name not in needed + ("E",):
            raise error_at(a.loc, f"unknown setting '{a.name}' of {owner} ({syn.kind})",
                           f"a {syn.kind} synapse sets {', '.join(needed)} and, if conductance-based, E")
        value, dim = _constant(a.expr, f"{a.name} of {owner}")
        want = units.VOLTAGE if a.name == "E" else units.TIME
        _expect(a.expr, want, dim, f"{a.name} of {owner}")
        if want == units.TIME and float(units.to_si(value)) <= 0:
            raise error_at(_start(a.expr), f"{a.name} of {owner} must be positive")
        given[a.name] = (value, a)
    for key in needed:
        if key not in given:
            raise error_at(syn.loc, f"{owner} ({syn.kind}) has no '{key}'")
    if syn.kind == "double_exponential":
        rise, decay = (float(units.to_si(given[k][0])) for k in needed)
        if not decay > rise:
            raise error_at(_start(given["tau_decay"][1].expr), f"tau_decay of {owner} must be longer than its "
                                                                f"tau_rise ({rise * 1e3:g} ms)")
    taus = tuple(ir.Parameter(f"{k}_{syn.name}", given[k][0], units.TIME, f"{k} of synapse {syn.name}")
                 for k in needed)
    reversal = (ir.Parameter(f"E_{syn.name}", given["E"][0], units.VOLTAGE, f"reversal of synapse {syn.name}")
                if "E" in given else None)
    return ir.Synapse(syn.name, syn.kind, taus, reversal)


def _cell_synapses(cell: ast.Cell, synapses: dict, channels: list[ir.Channel]) -> tuple[ir.Synapse, ...]:
    _check_duplicates([(u.name, u.loc) for u in cell.synapses], f"synapse in cell {cell.name}")
    out = []
    for use in cell.synapses:
        if use.name not in synapses:
            close = difflib.get_close_matches(use.name, synapses, n=1)
            raise error_at(use.loc, f"unknown synapse '{use.name}'",
                           f"did you mean '{close[0]}'?" if close else
                           "define it with `synapse NAME exponential { tau = ...; E = ... }`")
        if any(ch.name == use.name for ch in channels):
            raise error_at(use.loc, f"cell {cell.name} uses '{use.name}' as a channel and as a synapse",
                           "their currents would both be called I_" + use.name)
        out.append(synapses[use.name])
    return tuple(out)


# ---- cells ---------------------------------------------------------------------------------

def check_cell(cell: ast.Cell, channels: dict[str, tuple[ast.Channel, ir.Channel]],
               source: str, sources: tuple[str, ...], synapses: dict | None = None) -> ir.Cell:
    settings = {}
    _check_duplicates([(a.name, a.loc) for a in cell.assignments], f"setting in cell {cell.name}")
    for a in cell.assignments:
        if a.name not in CELL_SETTINGS:
            raise error_at(a.loc, f"unknown cell setting '{a.name}'",
                           "a cell sets C (capacitance) and optionally area and temperature; channel parameters "
                           "are overridden in the channels list: channels NaF(gbar = 150 nS)")
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
    temperature = None
    if "temperature" in settings:
        (t_value, t_dim), t_node = settings["temperature"]
        _expect(t_node.expr, units.TEMPERATURE, t_dim, f"temperature of cell {cell.name}")
        if not -50 <= float(units.to_si(t_value)) <= 100:
            raise error_at(_start(t_node.expr), f"temperature of cell {cell.name} is "
                                                f"{float(units.to_si(t_value)):g} degC; expected -50 to 100 degC",
                           "temperatures are written in degrees Celsius: temperature = 36 degC")
        temperature = ir.Parameter("temperature", t_value, t_dim, "temperature")

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

    pools = tuple(_check_pool(p, cell) for p in _unique_pools(cell))
    cell_synapses = _cell_synapses(cell, synapses or {}, used)
    needs_area = [f"channel {ch.name}" for ch in used if ch.current_is_density]
    needs_area += [f"pool {p.ion}" for p in pools if p.is_dynamic]
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
    taken |= set(CELL_QUANTITIES) | {p.name for pool in pools for p in pool.parameters}
    taken |= {x for syn in cell_synapses for x in syn.states + (syn.current_name,)}
    taken |= {p.name for syn in cell_synapses for p in syn.parameters}
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

    _check_cell_quantities(cell, used, temperature, pools)
    initial = _check_initial(cell, used, leak) + tuple(
        ir.InitialValue(p.state, p.initial if p.initial is not None else p.resting.value) for p in pools if p.is_dynamic
    ) + tuple(ir.InitialValue(state, sympy.Integer(0)) for syn in cell_synapses for state in syn.states)

    threshold = None
    if cell.spike is not None:
        if cell.spike.variable != "v":
            raise error_at(cell.spike.loc, f"spikes are detected on the membrane potential v, "
                                           f"not '{cell.spike.variable}'")
        threshold, t_dim = _constant(cell.spike.threshold, "the spike threshold")
        _expect(cell.spike.threshold, units.VOLTAGE, t_dim, "the spike threshold")

    checked = ir.Cell(cell.name, source, capacitance, area, tuple(used), leak, tuple(inputs),
                      initial, threshold, sources, temperature=temperature, pools=pools, synapses=cell_synapses)
    if temperature is not None or pools:
        for ch in used:   # rates that depend on temperature or a concentration, now that both are known
            _check_gate_ranges(ch, {}, cell.loc, because=f" (in cell {cell.name})", cell=checked)
    return checked


def _unique_pools(cell: ast.Cell):
    _check_duplicates([(p.ion, p.loc) for p in cell.pools], f"pool in cell {cell.name}")
    return cell.pools


def _check_pool(node: ast.Pool, cell: ast.Cell) -> ir.Pool:
    owner = f"pool {node.ion} of cell {cell.name}"
    if node.ion not in ir.ION_VALENCE:
        raise error_at(node.loc, f"unknown ion '{node.ion}'", f"ions with concentrations: {', '.join(ir.ION_VALENCE)}")
    _check_duplicates([(a.name, a.loc) for a in node.assignments], f"setting of {owner}")
    given = {}
    for a in node.assignments:
        if a.name not in POOL_SETTINGS:
            raise error_at(a.loc, f"unknown setting '{a.name}' of {owner}", f"known: {', '.join(POOL_SETTINGS)}")
        value, dim = _constant(a.expr, f"{a.name} of {owner}")
        _expect(a.expr, POOL_SETTINGS[a.name], dim, f"{a.name} of {owner}")
        if float(units.to_si(value)) < 0 or (a.name in ("decay", "depth", "rho") and float(units.to_si(value)) == 0):
            raise error_at(_start(a.expr), f"{a.name} of {owner} must be positive")
        given[a.name] = value
    for key in ("resting", "outside"):
        if key not in given:
            raise error_at(node.loc, f"{owner} has no '{key}'",
                           "a pool sets resting and outside concentrations, and for dynamics decay with depth or rho")
    ion = node.ion
    kinds = [k for k in ("depth", "rho") if k in given]
    if len(kinds) == 2:
        raise error_at(node.loc, f"{owner} has both depth (a decaying pool) and rho (a fixed-factor pool); use one")
    if kinds and "decay" not in given:
        raise error_at(node.loc, f"{owner} has {kinds[0]} but no decay time constant")
    if "decay" in given and not kinds:
        raise error_at(node.loc, f"{owner} has a decay but neither depth (the shell the current fills) nor rho")

    def param(key, name, doc):
        return ir.Parameter(name, given[key], POOL_SETTINGS[key], doc) if key in given else None

    if not kinds:   # a constant concentration: cai is a parameter
        return ir.Pool(ion, "fixed", param("resting", f"{ion}i", f"{ion} concentration inside"),
                       param("outside", f"{ion}o", f"{ion} concentration outside"))
    return ir.Pool(ion, "decaying" if kinds == ["depth"] else "fixed_factor",
                   resting=param("resting", f"resting_{ion}", f"resting {ion} concentration"),
                   outside=param("outside", f"{ion}o", f"{ion} concentration outside"),
                   decay=param("decay", f"decay_{ion}", f"{ion} pool decay time constant"),
                   depth=param("depth", f"depth_{ion}", f"{ion} pool shell depth"),
                   rho=param("rho", f"rho_{ion}", f"{ion} pool current-to-concentration factor"),
                   initial=given.get("initial"))


def _check_cell_quantities(cell: ast.Cell, channels: list[ir.Channel], temperature, pools):
    """Every temperature or concentration a channel reads must be given by the cell."""
    have = {"temperature"} if temperature is not None else set()
    for p in pools:
        have |= {f"{p.ion}i", f"{p.ion}o"}
    for ch in channels:
        exprs = [ch.current] + [e.expr for e in ch.expressions] + \
            [x for g in ch.gates for x in (g.steady_state, g.time_constant)]
        needed = {s.name for e in exprs for s in e.free_symbols} & set(CELL_QUANTITIES)
        for name in sorted(needed - have):
            if name == "temperature":
                raise error_at(cell.loc, f"channel {ch.name} depends on temperature (a Q10 or nernst), but cell "
                                         f"{cell.name} sets none", "add e.g. `temperature = 36 degC` to the cell")
            raise error_at(cell.loc, f"channel {ch.name} reads {name} ({CELL_QUANTITIES[name][0]}), but cell "
                                     f"{cell.name} has no pool for {name[:-1]}",
                           f"add e.g. pool {name[:-1]} {{ resting = 50 nM; outside = 2 mM }}")


def _apply_overrides(channel: ir.Channel, use: ast.ChannelUse) -> ir.Channel:
    if not use.overrides:
        return channel
    _check_duplicates([(o.name, o.loc) for o in use.overrides], f"override of channel {channel.name}")
    params = {p.name: p for p in channel.parameters}
    vshift = None
    for o in use.overrides:
        if o.name == "vshift":
            value, dim = _constant(o.expr, "the voltage shift vshift")
            _expect(o.expr, units.VOLTAGE, dim, f"vshift of channel {channel.name}")
            vshift = ir.Parameter(f"vshift_{channel.name}", value, dim, "voltage shift of the gates")
            continue
        qualified = f"{o.name}_{channel.name}"
        if qualified not in params:
            names = ", ".join([p.name[: -len(channel.name) - 1] for p in channel.parameters] + ["vshift"])
            raise error_at(o.loc, f"channel {channel.name} has no parameter '{o.name}'", f"parameters: {names}")
        value, dim = _constant(o.expr, f"the override of {o.name}")
        old = params[qualified]
        if dim != old.dimension:
            raise error_at(_start(o.expr), f"{o.name} of channel {channel.name} is {_a(old.dimension)}, "
                                           f"but the override is {_a(dim)}")
        if dim in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA) and float(units.to_si(value)) < 0:
            raise error_at(_start(o.expr), f"conductance {o.name} of channel {channel.name} is negative")
        params[qualified] = ir.Parameter(qualified, value, dim, old.doc)
    changed = dataclasses.replace(channel, parameters=tuple(params[p.name] for p in channel.parameters))
    if vshift is not None:
        instantaneous = tuple(_shifted(g, channel, vshift) for g in channel.instantaneous)
        steady = {g.state: g.steady_state for g in instantaneous}
        expressions = tuple(dataclasses.replace(e, expr=steady[e.name]) if e.name in steady else e
                            for e in channel.expressions)
        changed = dataclasses.replace(changed, gates=tuple(_shifted(g, channel, vshift) for g in channel.gates),
                                      instantaneous=instantaneous, expressions=expressions, vshift=vshift)
    _check_gate_ranges(changed, {}, use.loc, because=f" (with the overrides in {use.name}(...))")
    return changed


def _shifted(gate: ir.Gate, channel: ir.Channel, vshift: ir.Parameter) -> ir.Gate:
    """The gate's rates evaluated at v - vshift (its curves moved by +vshift). The channel's named
    expressions are put in first, since the current may use them at the unshifted v."""
    def shift(expr):
        return None if expr is None else inline(expr, channel=channel).xreplace({ir.V: ir.V - vshift.symbol})
    return dataclasses.replace(gate, steady_state=shift(gate.steady_state), time_constant=shift(gate.time_constant),
                               alpha=shift(gate.alpha), beta=shift(gate.beta))


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

def _register(table: dict, node, what: str):
    """A named definition (channel, synapse, cell) into its table; a second one of the name is an error."""
    _check_length(node.name, node.loc, what)
    if node.name in table:
        first = table[node.name].loc
        raise error_at(node.loc, f"duplicate {what} '{node.name}'",
                       f"first defined at {first.source.path}:{first.line}:{first.column}")
    table[node.name] = node


def _collect(module: ast.Module, seen_files: dict, chain: tuple, out_channels: dict, out_cells: dict,
             out_synapses: dict):
    for table, nodes, what in ((out_synapses, module.synapses, "synapse"), (out_channels, module.channels, "channel"),
                               (out_cells, module.cells, "cell")):
        for node in nodes:
            _register(table, node, what)
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
        _collect(sub, seen_files, chain + (str(target),), out_channels, out_cells, out_synapses)


def compile_module(module: ast.Module) -> ir.Model:
    seen_files: dict = {}
    raw_channels: dict = {}
    raw_cells: dict = {}
    raw_synapses: dict = {}
    main = str(Path(module.source.path).resolve()) if module.source.path != "<string>" else "<string>"
    _collect(module, seen_files, (main,), raw_channels, raw_cells, raw_synapses)
    sources = (module.source.path,) + tuple(seen_files)
    checked = {name: (node, check_channel(node)) for name, node in raw_channels.items()}
    synapses = {name: check_synapse(node) for name, node in raw_synapses.items()}
    cells = tuple(check_cell(c, checked, module.source.path, sources, synapses) for c in raw_cells.values())
    return ir.Model(module.source.path, tuple(ch for _, ch in checked.values()), cells, tuple(synapses.values()))


def compile_text(text: str, path: str = "<string>") -> ir.Model:
    """Check .chan text (imports resolved relative to path) and return its IR."""
    return compile_module(parse(text, path))


def load_model(path: str | Path) -> ir.Model:
    """Read, parse and check a .chan file and everything it imports."""
    return compile_module(parse_file(path))
