"""Printing helpers shared by the code generators."""
from __future__ import annotations

import sympy
from sympy.printing.str import StrPrinter


def decimal_form(expr: sympy.Expr) -> sympy.Expr:
    """Exact fractions → floats (beyond double precision), so 93/1000*ms prints as 0.093*ms."""
    fractions = {r: sympy.Float(r, 20) for r in expr.atoms(sympy.Rational) if not r.is_Integer}
    return expr.xreplace(fractions) if fractions else expr


class DoublePrinter(StrPrinter):
    """A SymPy printer that writes every number as the double it stands for (C-like targets)."""

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Exp1(self, expr):        # e, as a number: no target is sure to know a name for it
        return repr(float(expr))

    def _print_Pi(self, expr):
        return repr(float(expr))
