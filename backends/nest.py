"""NEST backend: the IR as a NESTML model, built into a NEST extension module with NESTML's
toolchain, run with threads (`--threads`) and MPI processes (`--mpi P`, `--launcher`).

Integrators (the experiment's `method`):
  * "euler", "exponential_euler", "rk2", "rk4" — hhc writes one step of the fixed-step method of
    that name (Brian2's methods: the same spikes as Brian2 to rounding) into the NESTML `update`
    block, over plain numbers, with the right-hand side made cheap (see _RhsProgram: one quotient
    per state, parameter-only terms once per step, common subexpressions and shared exponentials
    once per evaluation). NESTML 9's only numeric ODE solvers are GSL rkf45 and forward Euler, so
    this is how NEST gets fixed-step 2nd/4th-order methods. A neuron whose v stops being a finite
    number is reported after the run (the state `hhc_bad_t`).
  * "auto" — the accuracy advisor (hhc.advise.choose, before the run: NestBackend.advise_device)
    runs exponential Euler, rk2 and rk4 on a sample on NEST and takes the cheapest that meets the
    experiment's tolerance against the reference (for the Kenyon cell at dt 0.01 ms: rk2, about 8x
    cheaper per neuron-step than NESTML's default). Where nothing resolves it (PyNN cell types,
    `hhc compile`), "auto" is rk4.
  * "rkf45" — NESTML's default: the ODEs go to `equations:` and NESTML/GSL integrate them with the
    adaptive Runge–Kutta–Fehlberg 4(5) stepper (tolerances `gsl_abs_error_tol`, `gsl_rel_error_tol`).

Spike times follow hhc's convention (Brian2's): a spike is stamped with the start of the time step
in which v crossed the threshold upwards. NEST stamps the end of that step; `run` subtracts dt.

The build and the run happen in child processes (NESTML's odetoolbox patches SymPy globally and
NEST prints to stdout on import): modules are built by `python -c <build script>` and simulations
run a small generated script that needs only `nest` and `numpy` — the same script under `mpirun`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy

from hhc import __version__
from hhc.compiler import ir, units
from hhc.errors import HHCError

from . import Backend, DoublePrinter, EmitOptions, cache_root, decimal_form, file_lock

NEST_VERSION_TAG = "v3.10.0"
FIXED_STEP = ("euler", "exponential_euler", "rk2", "rk4")      # hhc writes the step into `update`
VARIANTS = FIXED_STEP + ("rkf45",)
# "auto" is resolved by the accuracy advisor before a run (NestBackend.advise_device); where it is
# not (PyNN cell types, hhc compile), it means rk4, the most accurate fixed-step method.
METHODS = {"auto": "rk4", "euler": "euler", "exponential_euler": "exponential_euler", "rk2": "rk2",
           "midpoint": "rk2", "rk4": "rk4", "rkf45": "rkf45", "rk45": "rkf45", "gsl": "rkf45"}
_DESCRIPTION = {"euler": "forward Euler",
                "exponential_euler": "exponential Euler (each state exact for its linearisation)",
                "rk2": "explicit midpoint Runge-Kutta (RK2)", "rk4": "classic Runge-Kutta (RK4)"}

# NEST's unit system: every quantity is a double in these units.
_NEST_BASE = {"length": Fraction(1, 10**6), "time": Fraction(1, 10**3), "current": Fraction(1, 10**12),
              "mass": Fraction(1, 10**12)}   # um, ms, pA; mass such that voltage comes out in mV
# How a dimension is written in NESTML (as a declared type / a unit factor).
_NESTML_UNIT = {units.DIMENSIONLESS: "real", units.VOLTAGE: "mV", units.CURRENT: "pA",
                units.CONDUCTANCE: "nS", units.CAPACITANCE: "pF", units.TIME: "ms", units.RATE: "1/ms",
                units.LENGTH: "um", units.AREA: "um**2", units.RESISTANCE: "GOhm",
                units.CONDUCTANCE / units.AREA: "nS/um**2", units.CURRENT / units.AREA: "pA/um**2",
                units.CAPACITANCE / units.AREA: "pF/um**2"}
# Names NESTML or NEST claim; a .chan name equal to one of these gets a trailing underscore.
_RESERVED = {"e", "t", "inf", "and", "or", "not", "if", "elif", "else", "for", "while", "in", "step",
             "function", "return", "recordable", "inline", "model", "state", "parameters", "internals",
             "equations", "input", "output", "update", "spike", "continuous", "kernel", "real", "integer",
             "boolean", "string", "void", "true", "false", "pi", "exp", "log", "ln", "abs", "max", "min",
             "resolution", "steps", "emit_spike", "integrate_odes", "V_m_old", "V_th", "h",
             "global_id", "local", "model_id", "thread", "vp", "frozen", "element_type", "recordables",
             "node_uid", "t_spike", "synaptic_elements", "gsl_abs_error_tol", "gsl_rel_error_tol"}


def nest_scale(dim: units.Dimension) -> Fraction:
    """The SI value of one NEST unit of this dimension (mV → 1/1000, nS → 1/10**9, ...), exact."""
    L, M, T, I = (int(x) for x in dim._vec())
    return (_NEST_BASE["length"] ** L * _NEST_BASE["mass"] ** M * _NEST_BASE["time"] ** T
            * _NEST_BASE["current"] ** I)


def nestml_unit(dim: units.Dimension) -> str:
    try:
        return _NESTML_UNIT[dim]
    except KeyError:
        raise HHCError(f"the nest target cannot declare a quantity of dimension {dim.name} "
                       f"({dim.si_expression})") from None


def nest_name(name: str) -> str:
    if name == "v":
        return "V_m"
    return name + "_" if name in _RESERVED or units.UNITS.get(name) else name


def _exact(x: float) -> str:
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


# NESTML allows units only in literals ("30 mV"), not free-standing: one unit of each dimension.
_ONE = {units.RATE: "(1 / (1 ms))", units.AREA: "(1 um)**2",
        units.CONDUCTANCE / units.AREA: "((1 nS) / (1 um)**2)", units.CURRENT / units.AREA: "((1 pA) / (1 um)**2)",
        units.CAPACITANCE / units.AREA: "((1 pF) / (1 um)**2)"}


def one_unit(dim: units.Dimension) -> str:
    """NESTML text for 1 NEST unit of a dimension: (1 mV), (1 / (1 ms)), 1 for dimensionless."""
    text = nestml_unit(dim)
    if text == "real":
        return "1"
    return _ONE.get(dim, f"(1 {text})")


class NestmlPrinter(DoublePrinter):
    """SymPy → NESTML expression text with physical units (the rkf45 model)."""

    def _print_Symbol(self, expr):
        unit = units.unit_of_symbol(expr)
        if unit is None:
            return nest_name(expr.name)
        factor = float(Fraction(unit.scale) / nest_scale(unit.dimension))
        one = one_unit(unit.dimension)
        if one == "1":
            return _exact(factor)
        return one if abs(factor - 1) < 1e-12 else f"({_exact(factor)} * {one})"

    def _print_Mul(self, expr):
        coeff, rest = expr.as_coeff_Mul()
        unit = units.unit_of_symbol(rest) if isinstance(rest, sympy.Symbol) else None
        if unit is not None and coeff.is_Number:
            text = nestml_unit(unit.dimension)
            factor = float(Fraction(unit.scale) / nest_scale(unit.dimension))
            if text != "real" and text.isalnum():
                return f"{_exact(float(coeff) * factor)} {text}"
        return super()._print_Mul(expr)

    def _print_exprel(self, expr):
        # NESTML has expm1 but no exprel; exact 0/0 only when the argument is exactly 0.0
        arg = self._print(expr.args[0])
        return f"(expm1({arg}) / ({arg}))"


class PlainPrinter(NestmlPrinter):
    """SymPy → NESTML expression text over plain numbers in NEST units (the rk4 update block):
    unit symbols have already been replaced by numbers; integer powers become products."""

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and 1 < int(exp) <= 4:
            b = self.parenthesize(base, 100)
            return " * ".join([b] * int(exp))
        if exp.is_Integer and -4 <= int(exp) < 0:
            b = self.parenthesize(base, 100)
            return "1.0 / (" + " * ".join([b] * -int(exp)) + ")"
        return super()._print_Pow(expr, rational)

    def _print_exprel(self, expr):
        arg = self._print(expr.args[0])
        return f"(abs({arg}) < 1e-9 ? 1 + ({arg}) / 2 : expm1({arg}) / ({arg}))"


def nestml_expr(expr: sympy.Expr) -> str:
    return NestmlPrinter().doprint(decimal_form(expr))


def quantity(value: sympy.Expr, dim: units.Dimension) -> str:
    """A constant as NESTML text in the declared unit of its dimension: 140 nS, 4 pF, 0.5."""
    si = sympy.Rational(units.to_si(value))
    unit = nestml_unit(dim)
    scale = nest_scale(dim)
    number = _exact(float(si / sympy.Rational(scale.numerator, scale.denominator)))
    return number if unit == "real" else f"{number} {unit}" if unit.isalnum() else f"{number} * {one_unit(dim)}"


def model_name(cell: ir.Cell, variant: str) -> str:
    return f"{cell.name.lower()}_{variant}"


# ---------------------------------------------------------------------------------------------
# NESTML text
# ---------------------------------------------------------------------------------------------
def _to_nest_numbers(expr: sympy.Expr) -> sympy.Expr:
    """Unit symbols → their value in NEST units (unit_mV → 1, unit_V → 1000, unit_nS → 1)."""
    subs = {}
    for s in expr.free_symbols:
        unit = units.unit_of_symbol(s)
        if unit is not None:
            subs[s] = sympy.Float(float(Fraction(unit.scale) / nest_scale(unit.dimension)), 20)
    return expr.xreplace(subs)


def _rhs(cell: ir.Cell) -> dict[str, sympy.Expr]:
    """Every state's derivative as one expression of states, parameters and inputs (named
    expressions, steady states, time constants and currents substituted)."""
    named = {}
    for e in cell.expressions:
        named[e.symbol] = e.expr.xreplace(named)
    currents = {sympy.Symbol(ch.current_name): cell.channel_current(ch).xreplace(named) for ch in cell.channels}
    currents[sympy.Symbol("I_leak")] = cell.leak_current
    out = {"v": cell.dv_dt.xreplace(currents).xreplace(named)}
    for g in cell.gates:
        out[g.state] = g.derivative.xreplace(named)
    return out


def _header(cell: ir.Cell, variant: str) -> list[str]:
    sources = ", ".join(Path(s).name for s in cell.sources) or Path(cell.source).name
    how = (f"hhc's own fixed-step {_DESCRIPTION[variant]} in the update block (step = NEST's resolution)"
           if variant in FIXED_STEP
           else "NESTML's default: GSL rkf45, adaptive (tolerances gsl_abs_error_tol, gsl_rel_error_tol)")
    return [f"# NESTML model of cell {cell.name}.",
            f"# Generated by hhc {__version__} from {cell.source} (reads: {sources}).",
            "# Do not edit: change the .chan file and run `hhc compile --target nest` again.",
            f"# Integrator: {how}.",
            "# Units inside NEST: mV, ms, pA, nS, pF. v is V_m."]


def nestml_text(cell: ir.Cell, variant: str = "rk4") -> str:
    if variant not in VARIANTS:
        raise HHCError(f"unknown NEST integrator '{variant}' (known: {', '.join(VARIANTS)})")
    name = model_name(cell, variant)
    v0 = cell.initial_value("v")
    v0_value = v0.value if v0 is not None and v0.value is not None else sympy.Integer(-65) * units.unit_symbol("mV")
    out = _header(cell, variant) + [f"model {name}:", "    state:"]
    out.append(f"        V_m mV = {quantity(v0_value, units.VOLTAGE)}")
    out.append(f"        V_m_old mV = {quantity(v0_value, units.VOLTAGE)}    # v one step ago (spike detection)")
    for g in cell.gates:
        iv = cell.initial_value(g.state)
        if iv is None or iv.value is None:
            value = float(units.to_si(g.steady_state.xreplace({ir.V: v0_value})))
            out.append(f"        {nest_name(g.state)} real = {_exact(value)}    # steady state at initial v")
        else:
            out.append(f"        {nest_name(g.state)} real = {quantity(iv.value, units.DIMENSIONLESS)}")
    if variant in FIXED_STEP:
        out.append("        hhc_bad_t ms = -1 ms    # time at which v stopped being a finite number (-1: never)")
    out.append("")

    if variant == "rkf45":
        out.append("    equations:")
        for ch in cell.channels:
            out.append(f"        # channel {ch.name}" + (f" ({ch.ion})" if ch.ion else ""))
            for e in ch.expressions:
                out.append(f"        inline {nest_name(e.name)} {nestml_unit(e.dimension)} = {nestml_expr(e.expr)}")
            for g in ch.gates:
                x = nest_name(g.state)
                if g.form == "alpha_beta":
                    out.append(f"        inline {x}_alpha 1/ms = {nestml_expr(g.alpha)}")
                    out.append(f"        inline {x}_beta 1/ms = {nestml_expr(g.beta)}")
                    out.append(f"        {x}' = {x}_alpha * (1 - {x}) - {x}_beta * {x}")
                else:
                    out.append(f"        inline {x}_inf real = {nestml_expr(g.steady_state)}")
                    out.append(f"        inline {x}_tau ms = {nestml_expr(g.time_constant)}")
                    out.append(f"        {x}' = ({x}_inf - {x}) / {x}_tau")
            cur_dim = units.CURRENT
            out.append(f"        recordable inline {ch.current_name} {nestml_unit(cur_dim)} = "
                       f"{nestml_expr(cell.channel_current(ch))}")
        out.append(f"        recordable inline I_leak pA = {nestml_expr(cell.leak_current)}")
        out.append(f"        V_m' = {nestml_expr(cell.dv_dt)}")
        out.append("")

    out.append("    parameters:")
    for p in cell.parameters:
        doc = f"    # {p.doc}" if p.doc else ""
        out.append(f"        {nest_name(p.name)} {nestml_unit(p.dimension)} = {quantity(p.value, p.dimension)}{doc}")
    for inp in cell.inputs:
        zero = quantity(sympy.Integer(0), inp.dimension)
        out.append(f"        {nest_name(inp.name)} {nestml_unit(inp.dimension)} = {zero}    # input, set by the protocol")
    th = cell.threshold if cell.threshold is not None else sympy.Integer(10 ** 6) * units.unit_symbol("mV")
    out.append(f"        V_th mV = {quantity(th, units.VOLTAGE)}    # spike: v rises above V_th")
    out.append("")
    out.append("    output:")
    out.append("        spike")
    out.append("")
    out.append("    update:")
    out.append("        V_m_old = V_m")
    if variant == "rkf45":
        out.append("        integrate_odes()")
    else:
        out += ["        " + line for line in _update_lines(cell, variant)]
    out.append("")
    out.append("    onCondition(V_m_old <= V_th and V_m > V_th):")
    out.append("        emit_spike()")
    return "\n".join(out) + "\n"


# The explicit Runge-Kutta methods hhc writes into the update block (Brian2's methods of the same
# names): the Butcher tableau's rows a (stage k + 2 starts at y + h * sum_j a[k][j] * k_(j+1)) and
# the step y + h * sum_i b_i k_i as text.
_STAGES = {"euler": (), "rk2": ((0.5,),), "rk4": ((0.5,), (0, 0.5), (0, 0, 1))}
_FINAL = {"euler": "h * k1_{n}", "rk2": "h * k2_{n}",                  # rk2: explicit midpoint
          "rk4": "h / 6 * (k1_{n} + 2 * k2_{n} + 2 * k3_{n} + k4_{n})"}


def _is_invariant(expr: sympy.Expr, params: set) -> bool:
    """Depends on parameters and numbers only (not on the state): computed once per step."""
    return expr.free_symbols <= params


class _RhsProgram:
    """The right-hand side as straight-line code over plain numbers in NEST units.

    Each state's derivative is put over one denominator (sympy.together: the inf/tau or alpha/beta
    quotients of a gate become one division instead of three to five), terms that depend on
    parameters only are computed once per step (e.g. 1/C), common subexpressions are computed
    once per evaluation (the Kenyon cell's nine gates need 13 distinct exponentials), denominators
    shared by several states are inverted once, and integer powers are products. With
    `rates`, each state's derivative is also written as f = A*y + B and A is kept (exponential Euler).
    """

    def __init__(self, cell: ir.Cell, rates: bool = False):
        rhs = _rhs(cell)
        self.states = list(cell.states)
        self.y = {s: sympy.Symbol(f"y_{nest_name(s)}") for s in self.states}
        params = {p.symbol: sympy.Symbol(f"p_{nest_name(p.name)}") for p in cell.parameters}
        params.update({sympy.Symbol(i.name): sympy.Symbol(f"p_{nest_name(i.name)}") for i in cell.inputs})
        self.param_symbols = set(params.values())
        generic = {sympy.Symbol(s) if s != "v" else ir.V: self.y[s] for s in self.states}
        exprs = [decimal_form(_to_nest_numbers(rhs[s])).xreplace(generic).xreplace(params) for s in self.states]
        nums, dens = [], []
        self.invariant: list[tuple[sympy.Symbol, sympy.Expr]] = []
        inv_of: dict = {}
        for e in exprs:
            n, d = sympy.fraction(sympy.together(e))
            if d != 1 and _is_invariant(d, self.param_symbols):     # e.g. 1/C: once per step
                if d not in inv_of:
                    inv_of[d] = sympy.Symbol(f"q{len(self.invariant)}")
                    self.invariant.append((inv_of[d], 1 / d))
                n, d = n * inv_of[d], sympy.Integer(1)
            nums.append(n)
            dens.append(d)
        slopes = []
        if rates:
            for s, n, d in zip(self.states, nums, dens):
                a_num = sympy.diff(n, self.y[s])
                if self.y[s] in a_num.free_symbols or self.y[s] in d.free_symbols:
                    raise HHCError(f"exponential_euler needs each derivative linear in its own state; "
                                   f"d{s}/dt is not linear in {s}")
                slopes.append(a_num)
        temps = sympy.numbered_symbols("c")
        replacements, reduced = sympy.cse(list(nums) + dens + slopes, symbols=temps, optimizations="basic")
        n = len(self.states)
        r_nums, r_dens, r_slopes = reduced[:n], reduced[n:2 * n], reduced[2 * n:]
        # a denominator shared by several states is inverted once
        count: dict = {}
        for d in r_dens:
            count[d] = count.get(d, 0) + 1
        recip = {d: sympy.Symbol(f"r{k}") for k, d in enumerate(x for x in count if count[x] > 1 and x != 1)}
        self.temps = list(replacements) + [(sym, 1 / d) for d, sym in recip.items()]
        self.derivs, self.slopes = {}, {}
        for k, s in enumerate(self.states):
            d = r_dens[k]
            self.derivs[s] = r_nums[k] * recip[d] if d in recip else r_nums[k] / d
            if rates:
                self.slopes[s] = r_slopes[k] * recip[d] if d in recip else r_slopes[k] / d
        self._share_exponentials()

    def _share_exponentials(self, max_power: int = 32, max_denominator: int = 12):
        """exp(k1*v), exp(k2*v), ... whose rates are small integer multiples of one rate b are
        computed from a single exp(b*v) by multiplication (a binary ladder of squares): for the
        Kenyon cell, the rates 1/20, 1/15, 1/12, 1/16 and 1/8 per mV are 12, 16, 20, 15 and 30 times
        1/240 per mV, so five exponentials become one and 12 multiplications. Relative rounding
        error grows to about n ulp for the n-th power (n <= 32): ~1e-14."""
        from math import gcd
        exprs = [e for _, e in self.temps] + list(self.derivs.values()) + list(self.slopes.values())
        terms = {}                        # exp atom -> (variable, rate k, constant c): exp(k*x + c)
        for atom in {a for e in exprs for a in e.atoms(sympy.exp)}:
            c, rest = atom.args[0].as_coeff_add()
            if len(rest) != 1:
                continue
            k, x = rest[0].as_coeff_Mul()
            if isinstance(x, sympy.Symbol) and k.is_Number and k != 0:
                terms[atom] = (x, float(k), float(c))

        def powers(group):
            """(base rate, integer multiples) of a group, or None beyond max_power."""
            k0 = terms[group[0]][1]
            ratios = [Fraction(terms[a][1] / k0).limit_denominator(max_denominator) for a in group]
            if any(abs(float(r) - terms[a][1] / k0) > 1e-12 * abs(terms[a][1] / k0) for r, a in zip(ratios, group)):
                return None
            lcm = 1
            for r in ratios:
                lcm = lcm * r.denominator // gcd(lcm, r.denominator)
            ns = [int(r * lcm) for r in ratios]
            common = 0
            for n in ns:
                common = gcd(common, n)
            ns = [n // common for n in ns]
            return (k0 * common / lcm, ns) if max(ns) <= max_power else None

        groups: list[list] = []
        for atom in sorted(terms, key=lambda a: (terms[a][0].name, abs(terms[a][1]))):
            x, k, _ = terms[atom]
            for g in groups:
                x0, k0, _ = terms[g[0]]
                if x0 == x and (k > 0) == (k0 > 0) and powers(g + [atom]) is not None:
                    g.append(atom)
                    break
            else:
                groups.append([atom])
        front, subs = [], {}
        for gi, group in enumerate(g for g in groups if len(g) > 1):
            x = terms[group[0]][0]
            rate, ns = powers(group)
            multiplications = max(ns).bit_length() - 1 + sum(bin(n).count("1") - 1 for n in ns)
            if multiplications > 4 * (len(group) - 1):      # an exp costs about as much as 4 of them
                continue
            base = sympy.Float(rate, 17)
            ladder = {1: sympy.Symbol(f"e{gi}")}
            front.append((ladder[1], sympy.exp(base * x)))
            p = 1
            while 2 * p <= max(ns):
                ladder[2 * p] = sympy.Symbol(f"e{gi}p{2 * p}")
                front.append((ladder[2 * p], ladder[p] * ladder[p]))
                p *= 2
            for atom, n in zip(group, ns):
                bits = [ladder[1 << b] for b in range(n.bit_length()) if n >> b & 1]
                value = sympy.Mul(*bits, evaluate=False) if len(bits) > 1 else bits[0]
                c = terms[atom][2]
                if n not in ladder:
                    sym = sympy.Symbol(f"e{gi}p{n}")
                    front.append((sym, value))
                    value = sym
                subs[atom] = value * sympy.Float(math.exp(c), 17) if c else ladder.get(n, value)
        if not subs:
            return
        self.temps = front + [(sym, e.xreplace(subs)) for sym, e in self.temps]
        self.derivs = {s: e.xreplace(subs) for s, e in self.derivs.items()}
        self.slopes = {s: e.xreplace(subs) for s, e in self.slopes.items()}

    def exp_count(self) -> int:
        exprs = [e for _, e in self.temps] + list(self.derivs.values()) + list(self.slopes.values())
        return len({a for e in exprs for a in e.atoms(sympy.exp)})

    def stage(self, tag: str, at: dict[str, str], printer) -> list[str]:
        """Lines evaluating the right-hand side at the states named in `at` (state -> local name):
        k<tag>_<state> (and a<tag>_<state> with rates)."""
        rename = {self.y[s]: sympy.Symbol(at[s]) for s in self.states}
        lines = []
        for sym, value in self.temps:
            new = sympy.Symbol(f"{sym.name}_{tag}")
            lines.append(f"{new.name} real = {printer.doprint(value.xreplace(rename))}")
            rename[sym] = new
        for s in self.states:
            lines.append(f"k{tag}_{nest_name(s)} real = {printer.doprint(self.derivs[s].xreplace(rename))}")
        for s in self.slopes:
            lines.append(f"a{tag}_{nest_name(s)} real = {printer.doprint(self.slopes[s].xreplace(rename))}")
        return lines


def _update_lines(cell: ir.Cell, method: str) -> list[str]:
    """One step of a fixed-step method over plain numbers in NEST units (the NESTML update block)."""
    program = _RhsProgram(cell, rates=method == "exponential_euler")
    printer = PlainPrinter()
    states = program.states
    names = {s: nest_name(s) for s in states}
    lines = [f"# hhc: one {_DESCRIPTION[method]} step of length h = resolution(), over plain numbers in NEST units;",
             "# every evaluation of the right-hand side computes shared terms once.",
             "h real = resolution() / (1 ms)"]
    for p in cell.parameters:
        lines.append(f"p_{nest_name(p.name)} real = {nest_name(p.name)} / {_unit_divisor(p.dimension)}")
    for i in cell.inputs:
        lines.append(f"p_{nest_name(i.name)} real = {nest_name(i.name)} / {_unit_divisor(i.dimension)}")
    lines.append("y_V_m real = V_m / (1 mV)")
    for g in cell.gates:
        lines.append(f"y_{names[g.state]} real = {names[g.state]}")
    for sym, value in program.invariant:
        lines.append(f"{sym.name} real = {printer.doprint(value)}")
    new = {}
    if method == "exponential_euler":
        lines.append("# the right-hand side f = a * y + b of every state at the start of the step")
        lines += program.stage("1", {s: f"y_{names[s]}" for s in states}, printer)
        lines.append("# y(t + h) = y + h * f * (exp(a * h) - 1) / (a * h)")
        for s in states:
            z = f"a1_{names[s]} * h"
            new[s] = f"y_{names[s]} + h * k1_{names[s]} * (abs({z}) < 1e-9 ? 1 + 0.5 * {z} : expm1({z}) / ({z}))"
    else:
        rows = _STAGES[method]
        for k in range(1, len(rows) + 2):
            lines.append(f"# stage {k}")
            at = {s: f"y_{names[s]}" for s in states}
            if k > 1:
                for s in states:
                    terms = [f"{_coef(a)}h * k{j + 1}_{names[s]}" for j, a in enumerate(rows[k - 2]) if a]
                    at[s] = f"s{k}_{names[s]}"
                    lines.append(f"{at[s]} real = y_{names[s]} + " + " + ".join(terms))
            lines += program.stage(str(k), at, printer)
        for s in states:
            new[s] = f"y_{names[s]} + " + _FINAL[method].format(n=names[s])
    lines.append("# y(t + h)")
    for s in states:
        lines.append(f"V_m = ({new[s]}) * (1 mV)" if s == "v" else f"{names[s]} = {new[s]}")
    lines.append("# a state that is no longer a finite number is reported after the run (hhc_bad_t: its time)")
    lines.append("if hhc_bad_t < 0 ms and not (abs(V_m) < 1e9 mV):")
    lines.append("    hhc_bad_t = t")
    return lines


def _coef(a: float) -> str:
    return "" if a == 1 else f"{a!r} * "


def _unit_divisor(dim: units.Dimension) -> str:
    return one_unit(dim)


# ---------------------------------------------------------------------------------------------
# Building modules
# ---------------------------------------------------------------------------------------------
def mpi_python() -> Path:
    venv = Path(os.environ.get("HHC_NEST_MPI_VENV", cache_root() / "nest-mpi-venv"))
    return venv / "bin" / "python"


_SHIM = r'''#!/bin/bash
# nest-config for NESTML, written by hhc: the pip-installed NEST's own nest-config reports the
# temporary paths and compiler of the machine that built the wheel. This one reports the installed
# package's include dir, the local g++, and the C++ ABI that nestkernel_api.so was built with.
PY="__PY__"
REAL="$(dirname "$PY")/nest-config"
NESTPKG="$("$PY" -c 'import importlib.util,os;print(os.path.dirname(importlib.util.find_spec("nest").origin))' 2>/dev/null)"
BOGUS="$("$REAL" --prefix)"
keep_existing() { for w in $1; do p="${w#-I}"; p="${p#-L}"; case "$w" in -I*|-L*|/*) [ -e "$p" ] && printf '%s ' "$w";; *) printf '%s ' "$w";; esac; done; echo; }
case "$1" in
  --prefix|--exec-prefix) echo "$NESTPKG" ;;
  --includes) keep_existing "$("$REAL" --includes | sed "s|$BOGUS|$NESTPKG|g") -I$NESTPKG/include/nest" ;;
  --libs) keep_existing "$("$REAL" --libs | sed "s|$BOGUS|$NESTPKG|g")" ;;
  --cflags)
     f="$("$REAL" --cflags)"
     if nm -D --defined-only "$NESTPKG/nestkernel_api.so" 2>/dev/null | grep -q 'StructuralPlasticityNode24connect_synaptic_elementESsi'; then f="$f -D_GLIBCXX_USE_CXX11_ABI=0"; fi
     echo "$f" ;;
  --compiler) c="$("$REAL" --compiler)"; [ -x "$c" ] && echo "$c" || command -v g++ ;;
  --static-libraries) echo "OFF" ;;
  --libdir) echo "lib" ;;
  *) exec "$REAL" "$@" ;;
esac
'''

_BUILD_SCRIPT = r'''
import json, sys
import odetoolbox
odetoolbox.PLOT_DEPENDENCY_GRAPH = False   # graphviz `dot` is usually absent
# NESTML writes floating-point literals into C++ with 9 significant digits (0.15503876 for
# 1/6.45): 17 keep every double hhc wrote exactly
from pynestml.codegeneration.printers.constant_printer import ConstantPrinter
ConstantPrinter.n_float_digits = 17
from pynestml.frontend.pynestml_frontend import generate_nest_target
a = json.loads(sys.argv[1])
generate_nest_target(input_path=a["model"], target_path=a["target"], install_path=a["install"],
                     module_name=a["module"], logging_level="ERROR",
                     codegen_opts={"nest_path": a["nest_path"], "nest_version": a["nest_version"]})
'''

_LOAD_CHECK = r'''
import ctypes, json, os, sys
a = json.loads(sys.argv[1])
os.environ["LD_LIBRARY_PATH"] = a["lib"] + ":" + os.environ.get("LD_LIBRARY_PATH", "")
import nest
nest.set_verbosity("M_ERROR")
try:
    nest.Install(a["module"])
except Exception as exc:
    try:
        ctypes.CDLL(os.path.join(a["lib"], a["module"] + ".so"))
        print("nest.Install failed:", exc)
    except OSError as err:
        print("the module does not load:", err)
    sys.exit(1)
n = nest.Create(a["model"], 1)
print(json.dumps(sorted(n.get().keys())))
'''


def nest_identity(python: str) -> dict:
    """What a module build depends on in a NEST installation (without importing nest)."""
    code = ("import importlib.util, importlib.metadata, json, os\n"
            "s = importlib.util.find_spec('nest')\n"
            "d = os.path.dirname(s.origin) if s else None\n"
            "k = os.path.join(d, 'nestkernel_api.so') if d else None\n"
            "st = os.stat(k) if k and os.path.exists(k) else None\n"
            "print(json.dumps({'dir': d, 'version': importlib.metadata.version('nest-simulator') if s else None,"
            " 'kernel': [st.st_size, int(st.st_mtime)] if st else None}))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        ident = json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:
        raise HHCError(f"cannot inspect the NEST installation of {python}: {exc}") from None
    if not ident["dir"]:
        raise HHCError(f"NEST is not installed for {python} (pip install nest-simulator==3.10.0, "
                       f"or scripts/setup.sh test)")
    return ident


class BuiltModule:
    def __init__(self, directory: Path, module: str, model: str, python: str):
        self.directory = directory
        self.module = module
        self.model = model
        self.python = python

    @property
    def lib_dir(self) -> Path:
        return self.directory / "lib"

    @property
    def so(self) -> Path:
        return self.lib_dir / f"{self.module}.so"


def build_module(cell: ir.Cell, variant: str = "rk4", python: str | None = None, log=None) -> BuiltModule:
    """Generate the NESTML model and build it for the NEST of `python` (default: this venv's),
    cached under ~/.cache/hhc/nest-modules/<hash> (written atomically: built in a temporary
    directory, renamed into place; concurrent builds of one key wait on a lock)."""
    python = python or sys.executable
    text = nestml_text(cell, variant)
    ident = nest_identity(python)
    try:
        import importlib.metadata as md
        nestml_version = md.version("nestml")
    except Exception:
        raise HHCError("NESTML is not installed (pip install nestml==9.0.0, or scripts/setup.sh test)") from None
    key = hashlib.sha256(json.dumps({"model": text, "nest": ident, "nestml": nestml_version,
                                     "shim": _SHIM, "build": _BUILD_SCRIPT}, sort_keys=True).encode()).hexdigest()[:16]
    model = model_name(cell, variant)
    module = f"hhc_{model}_{key[:8]}_module"
    root = cache_root() / "nest-modules"
    final = root / key
    built = BuiltModule(final, module, model, python)
    if (final / "hhc-module.json").exists():
        return built
    with file_lock(root / f".{key}.lock"):
        if (final / "hhc-module.json").exists():
            return built
        tmp = root / f".{key}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "nest_path" / "bin").mkdir(parents=True)
        shim = tmp / "nest_path" / "bin" / "nest-config"
        shim.write_text(_SHIM.replace("__PY__", python))
        shim.chmod(0o755)
        (tmp / f"{model}.nestml").write_text(text)
        args = {"model": str(tmp / f"{model}.nestml"), "target": str(tmp / "build"),
                "install": str(tmp / "lib"), "module": module, "nest_path": str(tmp / "nest_path"),
                "nest_version": NEST_VERSION_TAG}
        if log:
            log(f"building NEST module {module} with NESTML (about a minute, once per model and NEST)")
        t0 = time.perf_counter()
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        proc = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, json.dumps(args)], capture_output=True,
                              text=True, env=env, cwd=tmp)
        (tmp / "build.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        so = tmp / "lib" / f"{module}.so"
        if proc.returncode != 0 or not so.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            failed = root / f"{key}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(tmp, failed)          # kept for inspection; the next build starts afresh
            raise HHCError(f"NESTML could not build the NEST module for {cell.name} "
                           f"(model and log: {failed}):\n{tail}")
        check = subprocess.run([python, "-c", _LOAD_CHECK, json.dumps({"lib": str(tmp / "lib"), "module": module,
                                                                        "model": model})],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise HHCError(f"the built NEST module {so} does not load into NEST ({python}): "
                           f"{(check.stdout + check.stderr).strip().splitlines()[-1:]}")
        shutil.rmtree(tmp / "build" / "CMakeFiles", ignore_errors=True)
        (tmp / "hhc-module.json").write_text(json.dumps({
            "module": module, "model": model, "cell": cell.name, "variant": variant, "source": cell.source,
            "nest": ident, "nest_python": python, "nestml": nestml_version, "hhc": __version__,
            "build_time_s": time.perf_counter() - t0}, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:                 # someone else finished first (no lock on another filesystem)
            shutil.rmtree(tmp, ignore_errors=True)
    return built


class NestBackend(Backend):
    name = "nest"
    description = "NEST 3.10 through NESTML 9: threads, and MPI processes with --mpi"
    # method/dt = "auto": the accuracy advisor chooses among hhc's fixed-step methods on a sample
    # run on NEST itself (one process, one thread)
    advise_device = "cpu"

    @classmethod
    def unavailable_reason(cls):
        import importlib.util
        if importlib.util.find_spec("nest") is None:
            return "NEST is not installed (pip install nest-simulator==3.10.0, or scripts/setup.sh test)"
        if importlib.util.find_spec("pynestml") is None:
            return "NESTML is not installed (pip install nestml==9.0.0, or scripts/setup.sh test)"
        if shutil.which("g++") is None and shutil.which("c++") is None:
            return "no C++ compiler (apt-get install g++)"
        return None

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        # the experiment's method (--experiment), if any; "auto" is rk4 here (no advisor at compile time)
        method = options.method or getattr(options.experiment, "method", None) or "auto"
        variant = _variant(method)
        files = {f"{model_name(cell, variant)}.nestml": nestml_text(cell, variant)}
        if options.out_dir is not None or options.build_only:
            reason = self.unavailable_reason()
            if reason:
                raise HHCError(f"cannot build the NEST module: {reason}")
            python = options.extra.get("nest_python")
            built = build_module(cell, variant, python=python, log=options.extra.get("log"))
            if options.out_dir is not None:
                out = Path(options.out_dir)
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy2(built.so, out / built.so.name)
            files[f"{model_name(cell, variant)}_module.json"] = json.dumps({
                "module": built.module, "model": built.model, "library": f"{built.so.name}",
                "cached_at": str(built.directory),
                "load": f"import os; os.environ['LD_LIBRARY_PATH'] = '<dir of {built.so.name}>'; "
                        f"import nest; nest.Install('{built.module}'); nest.Create('{built.model}')"}, indent=1) + "\n"
        return files

    def run(self, cell: ir.Cell, experiment, out_dir: Path, progress=None) -> dict:
        reason = self.unavailable_reason()
        if reason:
            raise HHCError(reason)
        return run_nest(cell, experiment, Path(out_dir), progress)


def _variant(method: str) -> str:
    if method not in METHODS:
        raise HHCError(f"unknown integration method '{method}' for nest; known: {', '.join(METHODS)} "
                       f"(auto: the accuracy advisor's choice among hhc's fixed-step methods; rkf45: NESTML's "
                       f"default GSL integrator)")
    return METHODS[method]


# ---------------------------------------------------------------------------------------------
# Running: one script, run by `python` (1 process) or under mpirun/srun (P processes)
# ---------------------------------------------------------------------------------------------
RANK_SCRIPT = r"""# hhc NEST run script (generated): needs only nest and numpy. Every rank creates the whole
# population; NEST places neurons on ranks/threads; each rank writes the spikes and samples of its
# own neurons to rank<R>.npz; hhc gathers them.
import json, os, sys, time
import numpy as np
spec = json.load(open(sys.argv[1]))
os.environ["LD_LIBRARY_PATH"] = spec["lib_dir"] + ":" + os.environ.get("LD_LIBRARY_PATH", "")
import nest
nest.set_verbosity("M_ERROR")
nest.ResetKernel()
nest.SetKernelStatus({"resolution": spec["dt_ms"], "local_num_threads": spec["threads"], "print_time": False})
nest.Install(spec["module"])
rank, nproc = nest.Rank(), nest.NumProcesses()
t_setup = time.perf_counter()
pop = nest.Create(spec["model"], spec["n"])
first = pop[0].global_id
flags = pop.local
flags = [flags] if isinstance(flags, bool) else list(flags)
ids = [g for g, here in zip(pop.tolist(), flags) if here]
idx = np.asarray(ids, dtype=np.int64) - first
init = np.load(spec["init"])
if len(idx):
    local = nest.NodeCollection(ids)
    local.set({name: init[name][idx].tolist() for name in init.files})
    local.set({"V_m_old": init["V_m"][idx].tolist()})
for name, value in spec["parameters"].items():
    pop.set({name: value})
sr = None
if spec["spikes"] is not None:
    sr = nest.Create("spike_recorder")
    nest.Connect(pop if spec["spikes"] == "all" else pop[spec["spikes"]], sr)
meters = []
for g, tr in enumerate(spec["traces"]):
    for w, (a, b) in enumerate(tr["windows"]):
        params = {"interval": tr["interval_ms"], "record_from": tr["variables"], "start": a}
        if b is not None:
            params["stop"] = b
        mm = nest.Create("multimeter", params=params)
        nest.Connect(mm, pop[tr["neurons"]])
        meters.append((g, w, mm))
setup = time.perf_counter() - t_setup
dt = spec["dt_ms"]
total = sum(p["steps"] for p in spec["phases"])
chunk = max(1, min(spec["chunk_steps"], total))
done = 0
t0, c0 = time.perf_counter(), time.process_time()
nest.Prepare()
for phase in spec["phases"]:
    for name, value in phase["inputs"].items():
        pop.set({name: value})
    left = phase["steps"]
    while left > 0:
        k = min(chunk, left)
        nest.Run(k * dt)
        left -= k
        done += k
        if rank == 0:
            print("HHC-PROGRESS", done * dt * 1e-3, flush=True)
# A multimeter's samples of the last min_delay interval are only delivered by a later step:
# run one min_delay past the end and keep only what lies within the protocol.
end = total * dt
if meters:
    nest.Run(nest.GetKernelStatus("min_delay"))
nest.Cleanup()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
out = {}
if sr is not None:
    ev = sr.get("events")
    keep = np.asarray(ev["times"], dtype=float) <= end + 1e-9
    out["spike_i"] = np.asarray(ev["senders"], dtype=np.int64)[keep] - first
    out["spike_t"] = np.asarray(ev["times"], dtype=float)[keep]
for g, w, mm in meters:
    ev = mm.get("events")
    keep = np.asarray(ev["times"], dtype=float) <= end + 1e-9
    out[f"g{g}w{w}_i"] = np.asarray(ev["senders"], dtype=np.int64)[keep] - first
    out[f"g{g}w{w}_t"] = np.asarray(ev["times"], dtype=float)[keep]
    for var in spec["traces"][g]["variables"]:
        out[f"g{g}w{w}_{var}"] = np.asarray(ev[var], dtype=float)[keep]
np.savez(os.path.join(spec["out"], f"rank{rank}.npz"), **out)
# hhc's fixed-step models note when v stopped being a finite number (hhc_bad_t >= 0)
bad = []
if spec["check_finite"] and len(idx):
    when = np.asarray(nest.NodeCollection(ids).get("hhc_bad_t"), dtype=float).reshape(-1)
    bad = [[int(i), float(w)] for i, w in zip(idx, when) if w >= 0]
with open(os.path.join(spec["out"], f"rank{rank}.json"), "w") as f:
    json.dump({"rank": rank, "num_processes": nproc, "threads": spec["threads"], "wall_time_s": wall,
               "cpu_time_s": cpu, "setup_time_s": setup, "local_neurons": int(len(idx)), "nest_version": nest.__version__,
               "have_mpi": bool(nest.build_info["have_mpi"]), "nonfinite": len(bad), "nonfinite_first": bad[:20]}, f)
"""


def _steady_state(cell: ir.Cell, gate: ir.Gate, v: np.ndarray) -> np.ndarray:
    params = {p.symbol: p.si_value for p in cell.parameters}
    named = {}
    for e in cell.expressions:
        named[e.symbol] = e.expr.xreplace(named)
    expr = units.to_si(gate.steady_state.xreplace(named)).xreplace(params)
    from hhc.compiler.ir import exprel
    f = sympy.lambdify(ir.V, expr, modules=[{"exprel": lambda x: np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1, x))}, "numpy"])
    return np.broadcast_to(np.asarray(f(v), dtype=float), v.shape).copy()


def initial_state(cell: ir.Cell, experiment) -> dict[str, np.ndarray]:
    """Every state of every neuron, in NEST units, from the experiment's arrays (drawn once by
    hhc.experiment.resolve, so the same for any number of processes or threads)."""
    n = experiment.size
    arrays = experiment.initial_arrays
    v = arrays.get("v")
    v = np.full(n, -0.065) if v is None else np.asarray(v, dtype=float)
    out = {"V_m": v / float(nest_scale(units.VOLTAGE))}
    for g in cell.gates:
        value = arrays.get(g.state)
        out[nest_name(g.state)] = _steady_state(cell, g, v) if value is None else np.asarray(value, dtype=float)
    return out


def _launch_command(experiment, python: str, script: Path, spec: Path) -> list[str]:
    procs = experiment.backend.mpi
    launcher = experiment.backend.launcher
    if launcher:
        import shlex
        return shlex.split(launcher) + [python, str(script), str(spec)]
    if not procs or procs == 1 and not launcher:
        return [python, str(script), str(spec)]
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise HHCError("--mpi needs mpirun, which is not installed: run scripts/setup.d/nest_mpi.sh "
                       "(Debian openmpi-bin) or pass --launcher, e.g. --launcher 'srun -n 64'")
    cmd = [mpirun, "-np", str(procs)]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += ["--oversubscribe", "--bind-to", "none"]
    return cmd + [python, str(script), str(spec)]


def _mpi_nest_python(experiment) -> str:
    """The Python of the MPI-enabled NEST (its own venv; see scripts/setup.d/nest_mpi.sh)."""
    py = Path(os.environ.get("HHC_NEST_MPI_PYTHON", mpi_python()))
    if not py.exists():
        raise HHCError(f"--mpi needs NEST built with MPI, expected in {py.parent.parent} (not found): run "
                       f"scripts/setup.d/nest_mpi.sh once (builds NEST 3.10 from source, ~25 min), or set "
                       f"HHC_NEST_MPI_PYTHON to the python of an MPI-enabled NEST")
    check = subprocess.run([str(py), "-c", "import nest; print(nest.build_info['have_mpi'])"],
                           capture_output=True, text=True)
    if check.returncode != 0 or check.stdout.strip().splitlines()[-1:] != ["True"]:
        raise HHCError(f"the NEST of {py} has no MPI support (have_mpi: "
                       f"{(check.stdout.strip().splitlines() or ['?'])[-1]}); run scripts/setup.d/nest_mpi.sh")
    return str(py)


def run_nest(cell: ir.Cell, experiment, out_dir: Path, progress=None) -> dict:
    variant = _variant(experiment.method)
    use_mpi = bool(experiment.backend.mpi and experiment.backend.mpi > 1) or bool(experiment.backend.launcher)
    python = _mpi_nest_python(experiment) if use_mpi else sys.executable
    if experiment.backend.device not in (None, "cpu", "runtime"):
        raise HHCError(f"device '{experiment.backend.device}' is not supported by the nest backend")
    t_build = time.perf_counter()
    built = build_module(cell, variant, python=python)
    build_time = time.perf_counter() - t_build

    work = out_dir / "nest"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dt_ms = experiment.dt * 1e3
    init = initial_state(cell, experiment)
    np.savez(work / "init.npz", **init)
    phases = []
    for p in experiment.protocol:
        steps = int(round(p.duration / experiment.dt))
        inputs = {nest_name(k): v / float(nest_scale(_input_dim(cell, k))) for k, v in p.inputs.items()}
        phases.append({"steps": steps, "inputs": inputs})
    total_steps = sum(p["steps"] for p in phases)
    traces = []
    var_scale = {}
    for tr in experiment.traces:
        names = []
        for var in tr.variables:
            name = nest_name(var)
            if var in cell.states:
                var_scale[name] = float(nest_scale(cell.state_dimension(var)))
            else:
                var_scale[name] = float(nest_scale(units.CURRENT))
                if variant in FIXED_STEP:
                    raise HHCError(f"recording '{var}' on nest needs method = \"rkf45\" for now; hhc's {variant} "
                                   f"model records states only ({', '.join(cell.states)})")
            names.append(name)
        windows = [(a * 1e3, b * 1e3) for a, b in tr.windows] if tr.windows else [(0.0, None)]
        traces.append({"variables": names, "neurons": list(tr.neurons), "interval_ms": tr.interval * 1e3,
                       "windows": windows})
    spikes = None if experiment.record_spikes is None else \
        "all" if experiment.record_spikes is True else sorted(experiment.record_spikes)
    spec = {"lib_dir": str(built.lib_dir), "module": built.module, "model": built.model, "n": experiment.size,
            "dt_ms": dt_ms, "threads": int(experiment.backend.threads or 1), "init": str(work / "init.npz"),
            "parameters": {}, "phases": phases, "spikes": spikes, "traces": traces, "out": str(work),
            "chunk_steps": max(100, min(10000, total_steps // 200 or 1)), "check_finite": variant in FIXED_STEP}
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    script = work / "rank.py"
    script.write_text(RANK_SCRIPT)
    cmd = _launch_command(experiment, python, script, work / "spec.json")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{built.lib_dir}:{env.get('LD_LIBRARY_PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", str(spec["threads"]))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work)
    import threading
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
    reader.start()
    out_lines = []
    for line in proc.stdout:
        if line.startswith("HHC-PROGRESS"):
            if progress is not None:
                progress(float(line.split()[1]))
        else:
            out_lines.append(line)
    proc.wait()
    reader.join(timeout=5)
    launch_wall = time.perf_counter() - t0
    (work / "output.log").write_text("".join(out_lines) + "\n--- stderr ---\n" + "".join(err_lines))
    if proc.returncode != 0:
        tail = "".join((out_lines + err_lines)[-15:])
        raise HHCError(f"the NEST simulation failed ({' '.join(cmd[:4])} ... exit {proc.returncode}); "
                       f"log: {work / 'output.log'}\n{tail}")
    return _gather(cell, experiment, work, traces, var_scale, dt_ms,
                   {"method": variant, "integrator": f"hhc {variant} (update block)" if variant in FIXED_STEP
                    else "NESTML default: GSL rkf45", "nest_module": built.module,
                    "nest_module_dir": str(built.directory), "nest_python": python,
                    "module_build_time_s": build_time, "launch": cmd[:-2], "launch_wall_time_s": launch_wall})


def _input_dim(cell: ir.Cell, name: str) -> units.Dimension:
    for i in cell.inputs:
        if i.name == name:
            return i.dimension
    raise HHCError(f"cell {cell.name} has no input {name}")


def _gather(cell, experiment, work: Path, traces, var_scale, dt_ms, meta) -> dict:
    ranks = sorted(work.glob("rank*.json"))
    if not ranks:
        raise HHCError(f"the NEST run wrote no results in {work}")
    infos = [json.loads(p.read_text()) for p in ranks]
    nproc = infos[0]["num_processes"]
    if len(infos) != nproc:
        raise HHCError(f"{len(infos)} of {nproc} NEST processes wrote results in {work}")
    bad = sorted((b for i in infos for b in i.get("nonfinite_first", [])), key=lambda b: b[1])
    if bad:
        count = sum(i.get("nonfinite", 0) for i in infos)
        first = ", ".join(f"neuron {n} at {t:g} ms" for n, t in bad[:5])
        raise HHCError(f"the simulation blew up: v of {count} neuron(s) stopped being a finite number ({first}); "
                       f"try a smaller dt or method = \"rk4\"")
    data = [np.load(work / f"rank{r}.npz") for r in range(nproc)]
    spike_i = np.zeros(0, np.int64)
    spike_t = np.zeros(0)
    if experiment.record_spikes is not None:
        spike_i = np.concatenate([d["spike_i"] for d in data])
        # NEST stamps the end of the step in which v crossed; hhc (like Brian2) its start
        spike_t = (np.concatenate([d["spike_t"] for d in data]) - dt_ms) * 1e-3
        order = np.lexsort((spike_i, spike_t))
        spike_i, spike_t = spike_i[order], spike_t[order]
    groups = []
    for g, tr in enumerate(traces):
        neurons = np.asarray(tr["neurons"], dtype=np.int64)
        col = {int(n): k for k, n in enumerate(neurons)}
        times_all, values_all = [], {v: [] for v in tr["variables"]}
        for w in range(len(tr["windows"])):
            ii = np.concatenate([d[f"g{g}w{w}_i"] for d in data])
            tt = np.concatenate([d[f"g{g}w{w}_t"] for d in data])
            times = np.unique(tt)
            row = np.searchsorted(times, tt)
            cols = np.array([col[int(i)] for i in ii], dtype=np.int64)
            times_all.append(times)
            for var in tr["variables"]:
                vals = np.concatenate([d[f"g{g}w{w}_{var}"] for d in data])
                m = np.full((len(times), len(neurons)), np.nan)
                m[row, cols] = vals * var_scale[var]
                values_all[var].append(m)
        names = {nest_name(v): v for v in (list(cell.states) + [ch.current_name for ch in cell.channels] + ["I_leak"])}
        groups.append({"t": np.concatenate(times_all) * 1e-3, "neurons": neurons,
                       "variables": {names.get(v, v): np.concatenate(values_all[v]) for v in tr["variables"]}})
    for g in groups:
        for name, arr in g["variables"].items():
            if arr.size and not np.isfinite(arr).all():
                raise HHCError(f"the simulation blew up: {name} is NaN or infinite in a recorded trace; "
                               f"try a smaller dt")
    wall = max(i["wall_time_s"] for i in infos)
    meta = dict(meta)
    meta.update({"device": "cpu", "wall_time_s": wall, "cpu_time_s": max(i.get("cpu_time_s", 0.0) for i in infos),
                 "nest_version": infos[0]["nest_version"],
                 "mpi_processes": nproc, "have_mpi": infos[0]["have_mpi"], "threads": infos[0]["threads"],
                 "local_neurons_per_rank": [i["local_neurons"] for i in infos],
                 "setup_time_s": max(i["setup_time_s"] for i in infos),
                 "spike_time_convention": "start of the step in which v crossed the threshold (NEST time - dt)"})
    return {"spike_i": spike_i, "spike_t": spike_t, "traces": groups, "meta": meta}
