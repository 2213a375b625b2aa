"""Printing helpers shared by the code generators."""
from __future__ import annotations

import sympy
from sympy.printing.str import StrPrinter

from hhc.compiler.errors import HHCError


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


# ---- conditions and `a if cond else b` (sympy.Piecewise) -----------------------------------------

def piecewise_branches(expr: sympy.Piecewise) -> tuple[list[tuple[sympy.Expr, sympy.Basic]], sympy.Expr]:
    """The branches of `a if c1 else b if c2 else d` as ([(a, c1), (b, c2)], d). A Piecewise without a
    final `True` branch (the .chan language always writes one) has no value everywhere: refused."""
    pairs = [(p.expr, p.cond) for p in expr.args]
    if not pairs or pairs[-1][1] is not sympy.true:
        raise HHCError(f"a conditional expression without an 'else' branch: {expr}")
    return pairs[:-1], pairs[-1][0]


class ConditionPrinter(DoublePrinter):
    """DoublePrinter with conditions: relationals (`v < -80*mV`), and/or/not with the target's words
    (LOGICAL: C's by default; Python's for Brian2 and NumPy), and Piecewise as C's conditional
    expression `((c) ? (a) : (b))`, nested for more branches. Only the chosen branch is evaluated."""

    LOGICAL = {"and": "&&", "or": "||", "not": "!", "true": "true", "false": "false"}

    def _print_Relational(self, expr):
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _logical(self, expr, word):
        return f" {self.LOGICAL[word]} ".join(f"({self._print(a)})" for a in expr.args)

    def _print_And(self, expr):
        return self._logical(expr, "and")

    def _print_Or(self, expr):
        return self._logical(expr, "or")

    def _print_Not(self, expr):
        not_ = self.LOGICAL["not"]
        return f"{not_}{'' if not_ == '!' else ' '}({self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr):
        return self.LOGICAL["true"]

    def _print_BooleanFalse(self, expr):
        return self.LOGICAL["false"]

    def _print_Piecewise(self, expr):
        branches, otherwise = piecewise_branches(expr)
        text = self._print(otherwise)
        for value, cond in reversed(branches):
            text = f"(({self._print(cond)}) ? ({self._print(value)}) : ({text}))"
        return text


PYTHON_LOGICAL = {"and": "and", "or": "or", "not": "not", "true": "True", "false": "False"}
