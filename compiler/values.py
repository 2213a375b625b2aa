"""Numbers with units outside .chan files: values in experiment files such as "18 pA",
"uniform(-70 mV, -60 mV)" or "-80 mV * rand() * i", evaluated to SI numbers (or per-neuron arrays).

The text is parsed with the .chan expression grammar, so units and dimensions are checked the
same way and errors point into the experiment file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import HHCError, SourceLocation

from . import ast, units
from .parser import parse
from .units import Dimension


@dataclass(frozen=True)
class Where:
    """Where the value text sits in its file, so error carets land on it."""
    path: str
    line: int = 0
    column: int = 0          # column of the first character of the value text
    line_text: str = ""


def _error(where: Where | None, node_loc: ast.Loc | None, message: str, hint=None) -> HHCError:
    if where is None or not where.line:
        path = where.path if where else "<value>"
        return HHCError(f"{path}: {message}", hint=hint)
    col = where.column + (node_loc.column - 1 if node_loc else 0)
    return HHCError(message, SourceLocation(where.path, where.line, col, where.line_text), hint)


def _describe(dim: Dimension) -> str:
    unit = units.PREFERRED_UNIT.get(dim)
    return f"{dim.name} ({unit})" if unit else dim.name


class _Evaluator:
    def __init__(self, names, functions, where):
        self.names = names
        self.functions = functions
        self.where = where

    def eval(self, node):
        if isinstance(node, ast.Number):
            return float(node.text), units.DIMENSIONLESS
        if isinstance(node, ast.Quantity):
            unit = units.UNITS.get(node.unit)
            if unit is None:
                s = units.suggest_unit(node.unit)
                raise _error(self.where, node.unit_loc, f"unknown unit '{node.unit}'",
                             f"did you mean '{s}'?" if s else None)
            return float(node.number) * float(unit.scale), unit.dimension
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            unit = units.UNITS.get(node.id)
            if unit is not None:
                return float(unit.scale), unit.dimension
            known = ", ".join(sorted(self.names)) or "none"
            raise _error(self.where, node.loc, f"undefined name '{node.id}' (names here: {known})")
        if isinstance(node, ast.Neg):
            value, dim = self.eval(node.operand)
            return -value, dim
        if isinstance(node, ast.BinOp):
            a, da = self.eval(node.left)
            b, db = self.eval(node.right)
            if node.op in "+-":
                if da != db:
                    raise _error(self.where, node.right.loc if hasattr(node.right, "loc") else None,
                                 f"cannot combine a {_describe(da)} with a {_describe(db)}")
                return (a + b if node.op == "+" else a - b), da
            if node.op == "*":
                return a * b, da * db
            if np.any(np.asarray(b) == 0):
                raise _error(self.where, node.right.loc if hasattr(node.right, "loc") else None,
                             "division by zero")
            return a / b, da / db
        if isinstance(node, ast.Pow):
            a, da = self.eval(node.base)
            b, db = self.eval(node.exponent)
            if not db.is_dimensionless or (not da.is_dimensionless and np.ndim(b)):
                raise _error(self.where, node.loc, "bad exponent")
            return a ** b, da ** float(b) if not da.is_dimensionless else da
        if isinstance(node, ast.Call):
            func = self.functions.get(node.function)
            if func is None:
                raise _error(self.where, node.loc, f"unknown function '{node.function}'",
                             f"known: {', '.join(sorted(self.functions))}")
            args = [self.eval(a) for a in node.args]
            return func(self, node, args)
        if isinstance(node, ast.Conditional):
            condition = self._condition(node.condition)
            a, da = self.eval(node.then)
            b, db = self.eval(node.otherwise)
            if da != db:
                raise _error(self.where, None, f"both branches of 'if ... else' must have the same dimension "
                                               f"(a {_describe(da)} and a {_describe(db)})")
            return np.where(condition, a, b), da
        raise _error(self.where, None, "cannot evaluate this value")

    def _condition(self, node):
        if isinstance(node, ast.Logic):
            a, b = self._condition(node.left), self._condition(node.right)
            return np.logical_and(a, b) if node.op == "and" else np.logical_or(a, b)
        a, da = self.eval(node.left)
        b, db = self.eval(node.right)
        if da != db:
            raise _error(self.where, None, f"cannot compare a {_describe(da)} with a {_describe(db)}")
        return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[node.op](a, b)


def _exp_like(np_func):
    def call(ev, node, args):
        if len(args) != 1:
            raise _error(ev.where, node.loc, f"{node.function}() takes 1 argument")
        (value, dim), = args
        if not dim.is_dimensionless:
            raise _error(ev.where, node.loc, f"the argument of {node.function}() must be dimensionless")
        return np_func(value), dim
    return call


BASE_FUNCTIONS: dict[str, Callable] = {"exp": _exp_like(np.exp), "log": _exp_like(np.log),
                                       "tanh": _exp_like(np.tanh)}


def evaluate(text: str, where: Where | None = None, names: dict | None = None,
             functions: dict | None = None) -> tuple[object, Dimension]:
    """Evaluate value text to (SI value — a float or a numpy array —, dimension)."""
    text = str(text)
    try:
        node = parse(text, where.path if where else "<value>", start="expr")
    except HHCError as exc:
        loc = exc.location
        raise _error(where, ast.Loc(None, 1, loc.column) if loc else None,
                     f"cannot read the value {text!r}: {exc.message}") from None
    with np.errstate(over="ignore", invalid="ignore"):
        value, dim = _Evaluator(names or {}, {**BASE_FUNCTIONS, **(functions or {})}, where).eval(node)
    if not np.all(np.isfinite(value)):
        raise _error(where, None, f"the value {text!r} is not a finite number")
    return value, dim


def expect(value_dim, dimension: Dimension, what: str, where: Where | None = None):
    value, dim = value_dim
    if dim != dimension:
        raise _error(where, None, f"{what} must be a {_describe(dimension)}, but it is a {_describe(dim)}")
    return value


def random_functions(rng, n):
    """The random draws values may use (rand(), randn(), uniform(low, high)): n values each, from rng."""
    def rand(ev, node, args):
        return rng.random(n), units.DIMENSIONLESS

    def randn(ev, node, args):
        return rng.standard_normal(n), units.DIMENSIONLESS

    def uniform(ev, node, args):
        if len(args) != 2:
            raise _error(ev.where, node.loc, "uniform(low, high) takes two values")
        (a, da), (b, db) = args
        if da != db:
            raise _error(ev.where, node.loc, f"uniform(low, high): low is a {da.name} but high is a {db.name}")
        if np.any(np.asarray(b) < np.asarray(a)):
            raise _error(ev.where, node.loc, "uniform(low, high): high is below low")
        return rng.uniform(a, b, n), da

    return {"rand": rand, "randn": randn, "uniform": uniform}
