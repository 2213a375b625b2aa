"""Removable 0/0 singularities in rate expressions, rewritten into a safe form.

Classic HH rates are written like  a·(v − v0) / (1 − exp(−(v − v0)/k)), which is 0/0 at v = v0
(the limit is a·k). Evaluated naively at or near v0 they lose all precision or give NaN. Any
quotient  L(v) / (b·(exp(u(v)) − 1))  with u linear in v and L linear with the same root is
rewritten as  (L/u) / (b · exprel(u)),  where exprel(u) = (exp(u) − 1)/u is finite and accurate
everywhere and L/u is a constant.
"""
from __future__ import annotations

import sympy

from .ir import exprel


def _linear_in(expr: sympy.Expr, v: sympy.Symbol):
    """(slope, root) if expr is linear in v with a nonzero slope, else None."""
    if v not in expr.free_symbols:
        return None
    try:
        poly = sympy.Poly(sympy.expand(expr), v)
    except sympy.PolynomialError:
        return None
    if poly.degree() != 1:
        return None
    slope, offset = poly.all_coeffs()
    if slope.free_symbols & {v} or offset.free_symbols & {v} or slope == 0:
        return None
    return slope, -offset / slope


def _exp_minus_one(denominator: sympy.Expr, v: sympy.Symbol):
    """If denominator == b·(exp(u) − 1) with u linear in v, return (b, u)."""
    denominator = sympy.expand(denominator, deep=False, power_exp=False)
    if not isinstance(denominator, sympy.Add) or len(denominator.args) != 2:
        return None
    exp_term = [t for t in denominator.args if t.has(sympy.exp)]
    constant = [t for t in denominator.args if not t.has(v)]
    if len(exp_term) != 1 or len(constant) != 1:
        return None
    coeff, exp_part = exp_term[0].as_independent(v, as_Add=False)
    if not isinstance(exp_part, sympy.exp):
        return None
    # coeff·exp(u) + c  ==  coeff·(exp(u) − 1)  requires c == −coeff
    if sympy.simplify(constant[0] + coeff) != 0:
        return None
    u = exp_part.args[0]
    if _linear_in(u, v) is None:
        return None
    return coeff, u


def _rewrite_quotient(term: sympy.Expr, v: sympy.Symbol) -> sympy.Expr:
    if not isinstance(term, sympy.Mul):
        return term
    factors = list(term.args)
    for i, factor in enumerate(factors):
        if not (isinstance(factor, sympy.Pow) and factor.exp == -1):
            continue
        found = _exp_minus_one(factor.base, v)
        if found is None:
            continue
        b, u = found
        _, root = _linear_in(u, v)
        for j, numerator in enumerate(factors):
            if j == i:
                continue
            lin = _linear_in(numerator, v)
            if lin is None or sympy.simplify(lin[1] - root) != 0:
                continue
            ratio = sympy.simplify(numerator / u)          # a constant: both are linear, same root
            rest = [f for k, f in enumerate(factors) if k not in (i, j)]
            return sympy.Mul(*rest) * ratio / (b * exprel(u))
    return term


def remove_singularities(expr: sympy.Expr, v: sympy.Symbol) -> sympy.Expr:
    """expr with every removable x/(exp(x)−1)-type quotient in it put in exprel form."""
    if not expr.has(sympy.exp):
        return expr
    if isinstance(expr, sympy.Mul):
        expr = _rewrite_quotient(expr, v)
    if isinstance(expr, sympy.Basic) and expr.args:
        return expr.func(*(remove_singularities(a, v) for a in expr.args))
    return expr


def has_removable_singularity(expr: sympy.Expr, v: sympy.Symbol) -> bool:
    return remove_singularities(expr, v) != expr
