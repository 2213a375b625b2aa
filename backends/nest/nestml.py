"""The NESTML text of a cell: hhc's fixed-step methods written into the update block over plain
numbers in NEST units (see _RhsProgram), or NESTML's own rkf45 over the ODEs."""
from __future__ import annotations

import math
from fractions import Fraction
from math import gcd
from pathlib import Path

import sympy
from sympy.printing.precedence import PRECEDENCE

from hhc.compiler.version import __version__
from hhc.compiler import ir, rhs as ir_rhs, units
from hhc.compiler.errors import HHCError

from ..base import unsupported
from ..codegen import DoublePrinter, decimal_form

NEST_VERSION_TAG = "v3.10.0"
FIXED_STEP = ("euler", "exponential_euler", "rk2", "rk4")      # hhc writes the step into `update`
VARIANTS = FIXED_STEP + ("rkf45",)
# "auto" is resolved by the accuracy advisor before a run (NestBackend.capabilities.advise_device); where it is
# not (PyNN cell types, hhc compile), it means rk4, the most accurate fixed-step method.
METHODS = {"auto": "rk4", "euler": "euler", "exponential_euler": "exponential_euler", "rk2": "rk2",
           "midpoint": "rk2", "rk4": "rk4", "rkf45": "rkf45", "rk45": "rkf45", "gsl": "rkf45"}
_DESCRIPTION = {"euler": "forward Euler",
                "exponential_euler": "exponential Euler (each state exact for its linearisation)",
                "rk2": "explicit midpoint Runge-Kutta (RK2)", "rk4": "classic Runge-Kutta (RK4)"}

# NEST's unit system: every quantity is a double in these units. The amount's unit (amol) is chosen so
# that a concentration, amount / length**3, comes out in amol/um**3 = mmol/l = mM (the SI value: mol/m3),
# and temperatures stay in the degrees Celsius the .chan file writes (degC, NESTML's deg_C).
_NEST_BASE = {"length": Fraction(1, 10**6), "mass": Fraction(1, 10**12), "time": Fraction(1, 10**3),
              "current": Fraction(1, 10**12), "amount": Fraction(1, 10**18), "temperature": Fraction(1)}
# um, kg*1e-12 (so that voltage comes out in mV), ms, pA, amol, degC: in the order of Dimension._vec()
_BASE_ORDER = ("length", "mass", "time", "current", "amount", "temperature")
# How a dimension is written in NESTML (as a declared type / a unit factor). NESTML's units are
# astropy's: it knows mmol, l, amol and deg_C (not M, mM or degC). Dimensions not listed here are
# composed from mV, um, ms, pA, amol and deg_C (_composed_unit).
_NESTML_UNIT = {units.DIMENSIONLESS: "real", units.VOLTAGE: "mV", units.CURRENT: "pA",
                units.CONDUCTANCE: "nS", units.CAPACITANCE: "pF", units.TIME: "ms", units.RATE: "1/ms",
                units.LENGTH: "um", units.AREA: "um**2", units.RESISTANCE: "GOhm",
                units.CONDUCTANCE / units.AREA: "nS/um**2", units.CURRENT / units.AREA: "pA/um**2",
                units.CAPACITANCE / units.AREA: "pF/um**2",
                units.CONCENTRATION: "mmol/l", units.TEMPERATURE: "deg_C", units.AMOUNT: "amol"}
# Names NESTML or NEST claim; a .chan name equal to one of these gets a trailing underscore.
_RESERVED = {"e", "t", "inf", "and", "or", "not", "if", "elif", "else", "for", "while", "in", "step",
             "function", "return", "recordable", "inline", "model", "state", "parameters", "internals",
             "equations", "input", "output", "update", "spike", "continuous", "kernel", "real", "integer",
             "boolean", "string", "void", "true", "false", "pi", "exp", "log", "ln", "abs", "max", "min",
             "resolution", "steps", "emit_spike", "integrate_odes", "V_m_old", "V_th", "h",
             "global_id", "local", "model_id", "thread", "vp", "frozen", "element_type", "recordables",
             "node_uid", "t_spike", "synaptic_elements", "gsl_abs_error_tol", "gsl_rel_error_tol"}


def _exponents(dim: units.Dimension) -> tuple[int, ...]:
    if any(x.denominator != 1 for x in dim._vec()):
        unsupported("nest", f"a quantity of dimension {dim.name} ({dim.si_expression}, a fractional power)")
    return tuple(int(x) for x in dim._vec())


def nest_scale(dim: units.Dimension) -> Fraction:
    """The SI value of one NEST unit of this dimension (mV → 1/1000, nS → 1/10**9, mM → 1, ...), exact."""
    scale = Fraction(1)
    for base, exp in zip(_BASE_ORDER, _exponents(dim)):
        scale *= _NEST_BASE[base] ** exp
    return scale


def _unit_terms(dim: units.Dimension) -> list[tuple[str, int]]:
    """A dimension as powers of NEST's units mV, um, ms, pA, amol, deg_C (mass enters only through
    the volt: kg = V A s**3 / m**2)."""
    L, M, T, I, N, K = _exponents(dim)
    L -= 2 * M
    if N and L == -3 * N:        # powers of a concentration: mmol/l (= amol/um**3), as the pools are written
        amount = [("mmol", N), ("l", -N)]
        L = 0
    else:
        amount = [("amol", N)]
    terms = [("mV", M), ("um", L), ("ms", T + 3 * M), ("pA", I + M)] + amount + [("deg_C", K)]
    return [(u, k) for u, k in terms if k]


def _composed_unit(dim: units.Dimension) -> str:
    """NESTML type text of a dimension without a name in _NESTML_UNIT: 'amol/(um*pA*ms)'."""
    terms = _unit_terms(dim)
    num = [u if k == 1 else f"{u}**{k}" for u, k in terms if k > 0]
    den = [u if k == -1 else f"{u}**{-k}" for u, k in terms if k < 0]
    text = "*".join(num) or "1"
    if den:
        text += "/" + (den[0] if len(den) == 1 else "(" + "*".join(den) + ")")
    return text


def nestml_unit(dim: units.Dimension) -> str:
    """How NESTML declares a quantity of this dimension (in NEST's units): mV, nS/um**2, mmol/l, real."""
    return _NESTML_UNIT.get(dim) or _composed_unit(dim)


def _is_name(unit: str) -> bool:
    """A unit NESTML takes after a number as it is: 30 mV, 34 deg_C (not mmol/l)."""
    return unit.replace("_", "a").isalnum()


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
        units.CAPACITANCE / units.AREA: "((1 pF) / (1 um)**2)", units.CONCENTRATION: "((1 mmol) / (1 l))"}


def one_unit(dim: units.Dimension) -> str:
    """NESTML text for 1 NEST unit of a dimension: (1 mV), (1 / (1 ms)), ((1 mmol) / (1 l)), 1 for
    dimensionless."""
    text = nestml_unit(dim)
    if text == "real":
        return "1"
    if dim in _ONE:
        return _ONE[dim]
    if _is_name(text):
        return f"(1 {text})"
    terms = _unit_terms(dim)
    num = [f"(1 {u})" if k == 1 else f"(1 {u})**{k}" for u, k in terms if k > 0]
    den = [f"(1 {u})" if k == -1 else f"(1 {u})**{-k}" for u, k in terms if k < 0]
    text = " * ".join(num) or "1"
    if den:
        text += " / " + (den[0] if len(den) == 1 else "(" + " * ".join(den) + ")")
    return f"({text})"


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
            if text != "real" and _is_name(text):
                return f"{_exact(float(coeff) * factor)} {text}"
        # several units in one product (the Faraday constant's A*s/mol, R's V*A*s/(mol*degC)): one
        # number times one NEST unit of their combined dimension
        parts = [(a, _unit_power(a)) for a in expr.args]
        found = [f for _, f in parts if f is not None]
        if len({u.name for u, _ in found}) > 1:
            scale, dim = Fraction(1), units.DIMENSIONLESS
            for u, k in found:
                scale *= Fraction(u.scale) ** k
                dim = dim * u.dimension ** k
            rest = sympy.Mul(*[a for a, f in parts if f is None]) * sympy.Float(float(scale / nest_scale(dim)), 17)
            one = one_unit(dim)
            if one == "1":
                return self._print(rest)
            return f"{self.parenthesize(rest, PRECEDENCE['Mul'])} * {one}"
        return super()._print_Mul(expr)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp in (sympy.S.Half, -sympy.S.Half):       # NESTML has no sqrt
            return f"{self.parenthesize(base, PRECEDENCE['Pow'])}**{'0.5' if exp > 0 else '(-0.5)'}"
        return super()._print_Pow(expr, rational)

    def _print_exprel(self, expr):
        # NESTML has expm1 but no exprel; exact 0/0 only when the argument is exactly 0.0
        arg = self._print(expr.args[0])
        return f"(expm1({arg}) / ({arg}))"

    def _print_log(self, expr):
        return f"ln({self._print(expr.args[0])})"          # NESTML's natural logarithm is ln

    # `a if cond else b` (.chan) is sympy.Piecewise((a, cond), (b, True)): NESTML's ternary
    # `cond ? a : b`, nested for more pieces, always parenthesised. In `equations:` (rkf45) NESTML
    # hands the ODEs to ODE-toolbox, whose parser reads neither `and` nor `or` (NESTML prints them as
    # && and ||): conditions are single comparisons there, `c1 and c2 ? a : b` written as
    # `c1 ? (c2 ? a : b) : b` (PlainPrinter, for the update block, keeps and/or).
    def _print_Piecewise(self, expr):
        *pieces, last = expr.args
        if last.cond != sympy.true:
            unsupported("nest", "a conditional expression without a final 'else' branch")
        text = self._print(last.expr)
        for value, cond in reversed(pieces):
            text = self._branch(cond, self._print(value), text)
        return text

    def _branch(self, cond, yes: str, no: str) -> str:
        if isinstance(cond, sympy.And):
            for c in reversed(cond.args):
                yes = self._branch(c, yes, no)
            return yes
        if isinstance(cond, sympy.Or):
            for c in reversed(cond.args):
                no = self._branch(c, yes, no)
            return no
        if isinstance(cond, sympy.Not):
            return self._branch(cond.args[0], no, yes)
        return f"({self._print(cond)} ? {yes} : {no})"

    _RELATIONAL = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "!=": "!="}

    def _print_Relational(self, expr):
        op = self._RELATIONAL.get(expr.rel_op)
        if op is None:
            unsupported("nest", f"the comparison {expr.rel_op}")
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _logical(self, expr, word):
        return f" {word} ".join(self._print(a) if isinstance(a, sympy.core.relational.Relational)
                                else f"({self._print(a)})" for a in expr.args)

    def _print_And(self, expr):
        return self._logical(expr, "and")

    def _print_Or(self, expr):
        return self._logical(expr, "or")

    def _print_Not(self, expr):
        return f"not ({self._print(expr.args[0])})"

    def _print_BooleanTrue(self, expr):
        return "true"

    def _print_BooleanFalse(self, expr):
        return "false"


def _unit_power(a: sympy.Expr):
    """(unit, integer exponent) when a is a unit symbol or an integer power of one, else None."""
    base, exp = a.as_base_exp()
    if isinstance(base, sympy.Symbol) and exp.is_Integer:
        unit = units.unit_of_symbol(base)
        if unit is not None:
            return unit, int(exp)
    return None


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

    def _branch(self, cond, yes: str, no: str) -> str:      # the update block is C++ as it stands
        return f"({self._print(cond)} ? {yes} : {no})"


def nestml_expr(expr: sympy.Expr) -> str:
    return NestmlPrinter().doprint(decimal_form(expr))


def quantity(value: sympy.Expr, dim: units.Dimension) -> str:
    """A constant as NESTML text in the declared unit of its dimension: 140 nS, 4 pF, 0.5."""
    si = sympy.Rational(units.to_si(value))
    unit = nestml_unit(dim)
    scale = nest_scale(dim)
    number = _exact(float(si / sympy.Rational(scale.numerator, scale.denominator)))
    return number if unit == "real" else f"{number} {unit}" if _is_name(unit) else f"{number} * {one_unit(dim)}"


def spike_port(syn: ir.Synapse) -> str:
    """The NESTML spike input port of a synapse (NEST receptor type SPIKES_<NAME>)."""
    return f"spikes_{syn.name}"


def _jump_lines(cell: ir.Cell) -> tuple[list[str], list[str]]:
    """(internals, onReceive blocks) for the cell's synapses: on a spike at a synapse's port, each of
    its states jumps by factor * w (ir.Synapse.jumps; the double exponential's peak factor is an
    internal, recomputed when its time constants are set). `spikes_X * 1 s` is the sum of the weights
    (NEST units: nS, or pA when current-based) of the spikes arriving in this step."""
    internals, blocks = [], []
    for syn in cell.synapses:
        one = one_unit(syn.weight_dimension)
        port = spike_port(syn)
        blocks += [f"    onReceive({port}):"]
        for state, factor in syn.jumps.items():
            if factor == 1:
                term = ""
            else:
                name = f"hhc_jump_{syn.name}"
                if not any(line.startswith(name + " ") for line in internals):
                    internals.append(f"{name} real = {nestml_expr(factor)}    # a single spike's g peaks at w")
                term = f" * {name}"
            blocks.append(f"        {nest_name(state)} += {port} * 1 s * {one}{term}")
        blocks.append("")
    return internals, blocks


def model_name(cell: ir.Cell, variant: str, noise_input: str | None = None) -> str:
    return f"{cell.name.lower()}_{variant}" + ("_ou" if noise_input else "")


# The Ornstein-Uhlenbeck current of a noisy population (issue 15), as Brian2 runs it: advanced once per
# step, before the step, by its exact transition (stationary standard deviation sigma), and added to the
# input it names. Its parameters are set per population; the random numbers are NEST's (seeded by hhc).
NOISE_STATE = "I_noise"
NOISE_PARAMETERS = ("hhc_noise_mean", "hhc_noise_sigma", "hhc_noise_tau")


def _noise_lines() -> dict[str, list[str]]:
    return {
        "state": [f"{NOISE_STATE} pA = 0 pA    # Ornstein-Uhlenbeck input current"],
        "parameters": ["# Ornstein-Uhlenbeck noise (set per population by hhc)",
                       "hhc_noise_mean pA = 0 pA", "hhc_noise_sigma pA = 0 pA", "hhc_noise_tau ms = 5 ms"],
        "internals": ["hhc_noise_decay real = exp(-resolution() / hhc_noise_tau)",
                      "hhc_noise_kick pA = hhc_noise_sigma * (1 - hhc_noise_decay**2)**0.5"],   # (NESTML has no sqrt)
        "update": ["# the noise current's exact Ornstein-Uhlenbeck step, before the neuron's step",
                   f"{NOISE_STATE} = hhc_noise_mean + ({NOISE_STATE} - hhc_noise_mean) * hhc_noise_decay"
                   f" + hhc_noise_kick * random_normal(0, 1)"],
    }


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


def _header(cell: ir.Cell, variant: str) -> list[str]:
    sources = ", ".join(Path(s).name for s in cell.sources) or Path(cell.source).name
    how = (f"hhc's own fixed-step {_DESCRIPTION[variant]} in the update block (step = NEST's resolution)"
           if variant in FIXED_STEP
           else "NESTML's default: GSL rkf45, adaptive (tolerances gsl_abs_error_tol, gsl_rel_error_tol)")
    return [f"# NESTML model of cell {cell.name}.",
            f"# Generated by hhc {__version__} from {cell.source} (reads: {sources}).",
            "# Do not edit: change the .chan file and run `hhc compile --target nest` again.",
            f"# Integrator: {how}.",
            "# Units inside NEST: mV, ms, pA, nS, pF" + _extra_units(cell) + ". v is V_m."]


def _extra_units(cell: ir.Cell) -> str:
    extra = []
    if cell.pools:
        extra.append("concentrations mM (NESTML: mmol/l)")
    if cell.temperature is not None:
        extra.append("temperatures degC (NESTML: deg_C)")
    return "; " + ", ".join(extra) if extra else ""


def _pool_comment(cell: ir.Cell, pool: ir.Pool) -> list[str]:
    """The pool's equation in words, for the comment above its state."""
    ion, c = pool.ion, pool.state
    currents = " + ".join(ch.current_name for ch in cell.channels if ch.ion == ion) or "0"
    relax = f"({c} - {pool.resting.name}) / {pool.decay.name}"
    if pool.kind == "decaying":
        feed = f"({currents}) / ({ir.ION_VALENCE[ion]} F area {pool.depth.name})"
        how = (f"decaying pool in a shell {pool.depth.name} under the membrane (F = {float(ir.FARADAY)} C/mol, "
               f"currents outward-positive)")
    else:
        feed = f"{pool.rho.name} ({currents}) / area"
        how = "fixed-factor pool (currents outward-positive)"
    return [f"# pool {ion}: {how}", f"#   d{c}/dt = -{feed} - {relax}"]


def _parameter_groups(cell: ir.Cell) -> list[tuple[str, list[ir.Parameter]]]:
    """The cell's parameters under headings: the cell, each channel (with its vshift), the leak, each
    pool; anything else the IR lists comes last, so none is left out."""
    groups = [("cell", [p for p in (cell.capacitance, cell.area, cell.temperature) if p is not None])]
    for ch in cell.channels:
        params = list(ch.parameters) + ([ch.vshift] if ch.vshift is not None else [])
        kind = "passive" if ch.is_passive else ch.ion
        groups.append((f"channel {ch.name}" + (f" ({kind})" if kind else ""), params))
    if cell.leak is not None:
        groups.append(("leak", list(cell.leak)))
    for pool in cell.pools:
        what = "constant: resting" if not pool.is_dynamic else pool.kind.replace("_", " ")
        groups.append((f"pool {pool.ion} ({what})", list(pool.parameters)))
    for syn in cell.synapses:
        groups.append((f"synapse {syn.name} ({syn.kind.replace('_', ' ')})", list(syn.parameters)))
    listed = {p.name for _, ps in groups for p in ps}
    rest = [p for p in cell.parameters if p.name not in listed]
    if rest:
        groups.append(("other", rest))
    return [(title, ps) for title, ps in groups if ps]


def _state_lines(cell: ir.Cell, variant: str, v0_value: sympy.Expr) -> list[str]:
    out = [f"V_m mV = {quantity(v0_value, units.VOLTAGE)}",
           f"V_m_old mV = {quantity(v0_value, units.VOLTAGE)}    # v one step ago (spike detection)"]
    for ch in cell.channels:
        if not ch.gates:
            continue
        out.append(f"# channel {ch.name}")
        for g in ch.gates:
            iv = cell.initial_value(g.state)
            if iv is None or iv.value is None:
                value = float(ir_rhs.steady_state_si(cell, g).xreplace({ir.V: units.to_si(v0_value)}))
                out.append(f"{nest_name(g.state)} real = {_exact(value)}    # steady state at initial v")
            else:
                out.append(f"{nest_name(g.state)} real = {quantity(iv.value, units.DIMENSIONLESS)}")
    for pool in cell.dynamic_pools:
        iv = cell.initial_value(pool.state)
        value = iv.value if iv is not None and iv.value is not None else (
            pool.initial if pool.initial is not None else pool.resting.value)
        if variant in FIXED_STEP:
            out += _pool_comment(cell, pool)
        out.append(f"{nest_name(pool.state)} {nestml_unit(units.CONCENTRATION)} = "
                   f"{quantity(value, units.CONCENTRATION)}    # {pool.ion} concentration inside, mM")
    for syn in cell.synapses:
        unit = nestml_unit(syn.weight_dimension)
        what = "conductance" if syn.conductance_based else "current"
        out.append(f"# synapse {syn.name} ({syn.kind.replace('_', ' ')}, {what}-based): "
                   f"jumps on each spike at port {spike_port(syn)}")
        for state in syn.states:
            iv = cell.initial_value(state)
            value = iv.value if iv is not None and iv.value is not None else sympy.Integer(0)
            out.append(f"{nest_name(state)} {unit} = {quantity(value, syn.weight_dimension)}")
    if variant in FIXED_STEP:
        out.append("hhc_bad_t ms = -1 ms    # time at which v stopped being a finite number (-1: never)")
    return out


def _equation_lines(cell: ir.Cell) -> list[str]:
    """The rkf45 model's equations block: per channel its named expressions, gates and current;
    the pools; v. A gate's temperature factor (Q10) is an inline of its own, shared by the gates
    of a channel that have the same one."""
    out = []
    factors: dict = {}                           # Q10 factor expression -> its inline's name
    for ch in cell.channels:
        kind = "passive" if ch.is_passive else ch.ion
        out.append(f"# channel {ch.name}" + (f" ({kind})" if kind else ""))
        for e in ch.expressions:
            out.append(f"inline {nest_name(e.name)} {nestml_unit(e.dimension)} = {nestml_expr(e.expr)}")
        for g in ch.gates:
            x = nest_name(g.state)
            alpha, beta, tau = g.alpha, g.beta, g.time_constant
            if g.q10 is not None:
                phi = factors.get(g.q10.factor)
                if phi is None:
                    phi = factors[g.q10.factor] = f"phi_{x}"
                    what = "fixed rate factor" if g.q10.fixed is not None else "Q10 temperature factor"
                    out.append(f"inline {phi} real = {nestml_expr(g.q10.factor)}    # {what}: rates x {phi}")
                phi_symbol = sympy.Symbol(phi)
                if g.form == "alpha_beta":
                    alpha, beta = g.base_alpha * phi_symbol, g.base_beta * phi_symbol
                else:
                    tau = g.base_time_constant / phi_symbol
            if g.form == "alpha_beta":
                out.append(f"inline {x}_alpha 1/ms = {nestml_expr(alpha)}")
                out.append(f"inline {x}_beta 1/ms = {nestml_expr(beta)}")
                out.append(f"{x}' = {x}_alpha * (1 - {x}) - {x}_beta * {x}")
            else:
                out.append(f"inline {x}_inf real = {nestml_expr(g.steady_state)}")
                out.append(f"inline {x}_tau ms = {nestml_expr(tau)}")
                out.append(f"{x}' = ({x}_inf - {x}) / {x}_tau")
        out.append(f"recordable inline {ch.current_name} {nestml_unit(units.CURRENT)} = "
                   f"{nestml_expr(cell.channel_current(ch))}")
    for syn in cell.synapses:
        out.append(f"# synapse {syn.name} ({syn.kind.replace('_', ' ')})")
        for state, d in syn.derivatives.items():
            out.append(f"{nest_name(state)}' = {nestml_expr(d)}")
        out.append(f"recordable inline {syn.current_name} {nestml_unit(units.CURRENT)} = {nestml_expr(syn.current)}")
    leak = cell.leak_current
    out.append(f"recordable inline I_leak pA = {quantity(leak, units.CURRENT) if leak == 0 else nestml_expr(leak)}")
    for pool in cell.dynamic_pools:
        out += _pool_comment(cell, pool)
        out.append(f"{nest_name(pool.state)}' = {nestml_expr(cell.pool_derivative(pool))}")
    out.append(f"V_m' = {nestml_expr(cell.dv_dt)}")
    return out


def nestml_text(cell: ir.Cell, variant: str = "rk4", noise_input: str | None = None) -> str:
    """The cell as a NESTML model integrated by `variant`; with noise_input, an Ornstein-Uhlenbeck
    current is added to that input (fixed-step variants only)."""
    if variant not in VARIANTS:
        raise HHCError(f"unknown NEST integrator '{variant}' (known: {', '.join(VARIANTS)})")
    if noise_input is not None:
        if variant not in FIXED_STEP:
            unsupported("nest", f"noise with the {variant} integrator", hint="use one of hhc's fixed-step methods")
        if not any(i.name == noise_input and i.dimension == units.CURRENT for i in cell.inputs):
            raise HHCError(f"cell {cell.name} has no current input {noise_input} for the noise")
    noise = _noise_lines() if noise_input is not None else {}
    name = model_name(cell, variant, noise_input)
    v0 = cell.initial_value("v")
    v0_value = v0.value if v0 is not None and v0.value is not None else sympy.Integer(-65) * units.unit_symbol("mV")
    out = _header(cell, variant) + [f"model {name}:", "    state:"]
    out += ["        " + line for line in _state_lines(cell, variant, v0_value) + noise.get("state", [])]
    out.append("")
    if variant == "rkf45":
        out.append("    equations:")
        out += ["        " + line for line in _equation_lines(cell)]
        out.append("")

    out.append("    parameters:")
    for title, params in _parameter_groups(cell):
        out.append(f"        # {title}")
        for p in params:
            doc = f"    # {p.doc}" if p.doc else ""
            out.append(f"        {nest_name(p.name)} {nestml_unit(p.dimension)} = {quantity(p.value, p.dimension)}{doc}")
    out.append("        # inputs and spikes")
    for inp in cell.inputs:
        zero = quantity(sympy.Integer(0), inp.dimension)
        out.append(f"        {nest_name(inp.name)} {nestml_unit(inp.dimension)} = {zero}    # input, set by the protocol")
    th = cell.threshold if cell.threshold is not None else sympy.Integer(10 ** 6) * units.unit_symbol("mV")
    out.append(f"        V_th mV = {quantity(th, units.VOLTAGE)}    # spike: v rises above V_th")
    out += ["        " + line for line in noise.get("parameters", [])]
    out.append("")
    internals, on_receive = _jump_lines(cell)
    internals += noise.get("internals", [])
    if internals:
        out.append("    internals:")
        out += ["        " + line for line in internals]
        out.append("")
    if cell.synapses:
        out.append("    input:")
        out += [f"        {spike_port(syn)} <- spike    # synapse {syn.name}" for syn in cell.synapses]
        out.append("")
    out.append("    output:")
    out.append("        spike")
    out.append("")
    out.append("    update:")
    out.append("        V_m_old = V_m")
    out += ["        " + line for line in noise.get("update", [])]
    if variant == "rkf45":
        out.append("        integrate_odes()")
    else:
        out += ["        " + line for line in _update_lines(cell, variant, noise_input)]
    out.append("")
    out += on_receive
    out.append("    onCondition(V_m_old <= V_th and V_m > V_th):")
    out.append("        emit_spike()")
    return "\n".join(out) + "\n"


# The explicit Runge-Kutta methods hhc writes into the update block (Brian2's methods of the same
# names): the Butcher tableau's rows a (stage k + 2 starts at y + h * sum_j a[k][j] * k_(j+1)) and
# the step y + h * sum_i b_i k_i as text.
_STAGES = {"euler": (), "rk2": ((0.5,),), "rk4": ((0.5,), (0, 0.5), (0, 0, 1))}
_FINAL = {"euler": "h * k1_{n}", "rk2": "h * k2_{n}",                  # rk2: explicit midpoint
          "rk4": "h / 6 * (k1_{n} + 2 * k2_{n} + 2 * k3_{n} + k4_{n})"}


def _is_condition(expr) -> bool:
    """A comparison or a logical combination of them (not a Symbol, which SymPy also calls Boolean)."""
    return isinstance(expr, (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction,
                             sympy.logic.boolalg.BooleanAtom))


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
        rhs = ir_rhs.derivatives(cell)
        self.states = list(cell.states)
        self.y = {s: sympy.Symbol(f"y_{nest_name(s)}") for s in self.states}
        params = {p.symbol: sympy.Symbol(f"p_{nest_name(p.name)}") for p in cell.parameters}
        params.update({sympy.Symbol(i.name): sympy.Symbol(f"p_{nest_name(i.name)}") for i in cell.inputs})
        self.param_symbols = set(params.values())
        generic = {sympy.Symbol(s) if s != "v" else ir.V: self.y[s] for s in self.states}
        exprs = [decimal_form(_to_nest_numbers(rhs[s])).xreplace(generic).xreplace(params) for s in self.states]
        self.invariant: list[tuple[sympy.Symbol, sympy.Expr]] = []
        inv_of: dict = {}
        hoisted: dict = {}
        exprs = [self._hoist(e, hoisted) for e in exprs]
        nums, dens = [], []
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
            for s, e, n, d in zip(self.states, exprs, nums, dens):
                y = self.y[s]
                a_num = sympy.diff(n, y)
                if y in a_num.free_symbols or y in d.free_symbols:
                    # not linear in its own state (a pool's Nernst log(cao/cai), an instantaneous
                    # m_inf(v)**2 in dv/dt): Brian2's rule ("conditionally linear"), so both take the
                    # same step: the slope a is the coefficient of y in the expanded derivative, what
                    # else depends on y is held at its start-of-step value
                    parts = sympy.collect(sympy.expand(e), y, evaluate=False)
                    if set(parts) - {y, sympy.S.One} or y not in parts:
                        unsupported("nest", f"method exponential_euler for cell {cell.name} (d{s}/dt cannot "
                                            f"be written a * {s} + b)", hint="use rk2 or rk4")
                    a_num = parts[y] * d
                slopes.append(a_num)
        temps = sympy.numbered_symbols("c")
        replacements, reduced = sympy.cse(list(nums) + dens + slopes, symbols=temps, optimizations="basic")
        # shared terms of parameters only (a Q10 factor q10 ** ((T - T0) / 10), a Nernst RT/zF) are
        # computed once per step with 1/C, not in every evaluation
        hoisted = set(self.param_symbols)
        kept = []
        for sym, value in replacements:
            if value.free_symbols <= hoisted and not _is_condition(value):
                self.invariant.append((sym, value))
                hoisted.add(sym)
            else:
                kept.append((sym, value))
        replacements = kept
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

    def _hoist(self, expr: sympy.Expr, inv_of: dict) -> sympy.Expr:
        """expr with its costly parameter-only parts (a Q10 factor q10 ** ((T - T0) / 10), a function
        of parameters) replaced by symbols computed once per step."""
        if expr.is_Atom:
            return expr
        if (isinstance(expr, sympy.Expr) and _is_invariant(expr, self.param_symbols)
                and (expr.is_Function or expr.is_Pow and not expr.exp.is_Integer)):
            if expr not in inv_of:
                inv_of[expr] = sympy.Symbol(f"q{len(self.invariant)}")
                self.invariant.append((inv_of[expr], expr))
            return inv_of[expr]
        return expr.func(*[self._hoist(a, inv_of) for a in expr.args])

    def _share_exponentials(self, max_power: int = 32, max_denominator: int = 12):
        """exp(k1*v), exp(k2*v), ... whose rates are small integer multiples of one rate b are
        computed from a single exp(b*v) by multiplication (a binary ladder of squares): for the
        Kenyon cell, the rates 1/20, 1/15, 1/12, 1/16 and 1/8 per mV are 12, 16, 20, 15 and 30 times
        1/240 per mV, so five exponentials become one and 12 multiplications. Relative rounding
        error grows to about n ulp for the n-th power (n <= 32): ~1e-14."""
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
            kind = "boolean" if _is_condition(value) else "real"     # a condition shared by two piecewise
            lines.append(f"{new.name} {kind} = {printer.doprint(value.xreplace(rename))}")
            rename[sym] = new
        for s in self.states:
            lines.append(f"k{tag}_{nest_name(s)} real = {printer.doprint(self.derivs[s].xreplace(rename))}")
        for s in self.slopes:
            lines.append(f"a{tag}_{nest_name(s)} real = {printer.doprint(self.slopes[s].xreplace(rename))}")
        return lines


def _update_lines(cell: ir.Cell, method: str, noise_input: str | None = None) -> list[str]:
    """One step of a fixed-step method over plain numbers in NEST units (the NESTML update block); the
    noise current, if any, is added to its input for the step."""
    program = _RhsProgram(cell, rates=method == "exponential_euler")
    printer = PlainPrinter()
    states = program.states
    names = {s: nest_name(s) for s in states}
    lines = [f"# hhc: one {_DESCRIPTION[method]} step of length h = resolution(), over plain numbers in NEST units;",
             "# every evaluation of the right-hand side computes shared terms once.",
             "h real = resolution() / (1 ms)"]
    for q in list(cell.parameters) + list(cell.inputs):
        divisor = _unit_divisor(q.dimension)
        value = f"({nest_name(q.name)} + {NOISE_STATE})" if q.name == noise_input else nest_name(q.name)
        lines.append(f"p_{nest_name(q.name)} real = {value}" + ("" if divisor == "1" else f" / {divisor}"))
    for s in states:
        divisor = one_unit(cell.state_dimension(s))
        lines.append(f"y_{names[s]} real = {names[s]}" + ("" if divisor == "1" else f" / {divisor}"))
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
        factor = one_unit(cell.state_dimension(s))
        lines.append(f"{names[s]} = {new[s]}" if factor == "1" else f"{names[s]} = ({new[s]}) * {factor}")
    lines.append("# a state that is no longer a finite number is reported after the run (hhc_bad_t: its time)")
    lines.append("if hhc_bad_t < 0 ms and not (abs(V_m) < 1e9 mV):")
    lines.append("    hhc_bad_t = t")
    return lines


def _coef(a: float) -> str:
    return "" if a == 1 else f"{a!r} * "


def _unit_divisor(dim: units.Dimension) -> str:
    return one_unit(dim)


def _variant(method: str) -> str:
    if method not in METHODS:
        raise HHCError(f"unknown integration method '{method}' for nest; known: {', '.join(METHODS)} "
                       f"(auto: the accuracy advisor's choice among hhc's fixed-step methods; rkf45: NESTML's "
                       f"default GSL integrator)")
    return METHODS[method]
