"""The NeuroML2 + LEMS generator (used by the neuroml target and the jneuroml and neuron runners).

`emit` writes, per cell, a NeuroML2 document with one `ionChannelHH` per channel and a
single-compartment `cell`; with an experiment, also a network document (population, pulse
generators) and a LEMS simulation file (protocol, recording plan).

How the IR maps onto NeuroML:
- Gate expressions that have a standard NeuroML form use it: steady states `HHSigmoidVariable`,
  `HHExpVariable`, `HHExpLinearVariable`; rates `HHExpRate`, `HHSigmoidRate`, `HHExpLinearRate`;
  constant time constants `fixedTimeCourse`. A form is recognised numerically, not by spelling: the
  expression (all parameters and helpers inlined, in mV and ms) must equal the standard form on a
  voltage grid to 1e-9 relative. Everything else becomes a custom `ComponentType` extending
  `baseVoltageDepTime` / `baseVoltageDepVariable` / `baseVoltageDepRate`, written from the IR: each
  unit is a LEMS `Constant` of its dimension (`unit_mV` = 1 mV), so every literal in the expression is
  dimensionless and both jNeuroML and the NEURON export convert it correctly; `exprel(x)` becomes a
  `ConditionalDerivedVariable`.
- Absolute (point-neuron) conductances and capacitances are divided by the area of a one-segment
  cylinder (1000 um2 unless the cell gives an area), so S/m2 equals nS numerically; `channelDensity`
  is what both jNeuroML and the NEURON export accept.
- NeuroML initialises every gate at its steady state at the initial v; other initial gate values
  cannot be expressed and are reported. Neurons of one experiment that start at different v
  become one population per distinct v, each of a copy of the cell that differs only in
  `initMembPotential`.
- The grown language (issue 14), each with NeuroML's own element:
  Q10 → `<q10Settings type="q10ExpTemp">` (or `q10Fixed` for rate_factor) in the gate, whose rates are
  then the IR's base rates (Q10 factor removed); the cell's temperature → `networkWithTemperature`;
  a calcium pool → `decayingPoolConcentrationModel` / `fixedFactorConcentrationModel` and a `species`
  in `intracellularProperties`; `E = nernst(ca)` → `channelDensityNernst`; a gateless channel →
  `<ionChannel type="ionChannelPassive">`; a use-site vshift → `channelDensityVShift` whose gates read
  `v - vShift`; rates that read `cai` or `temperature`, or are piecewise, → custom ComponentTypes
  extending `baseVoltageConcDep*` / `baseVoltageDep*` with `ConditionalDerivedVariable` + `Case`s.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import sympy
from sympy.printing.str import StrPrinter

from hhc.compiler.version import __version__
from hhc.compiler import ir, rhs as ir_rhs, units
from hhc.compiler.errors import HHCError

from ..base import EmitOptions, unsupported
from ..codegen import decimal_form

NML_NS = "http://www.neuroml.org/schema/neuroml2"
SCHEMA_VERSION = "2.3.1"
DEFAULT_AREA_UM2 = 1000.0          # S/m2 numerically equal to nS, F/m2*1e-9 equal to F
SEGMENT_DIAMETER_UM = 10.0

U = sympy.Symbol("u")              # membrane potential in mV, for form matching

# NeuroML unit names for hhc units where they differ or exist (hhc name → (NeuroML name, LEMS dimension))
_LEMS_DIMENSION = {units.VOLTAGE: ("voltage", "V"), units.TIME: ("time", "s"), units.RATE: ("per_time", "per_s"),
                   units.CONDUCTANCE: ("conductance", "S"), units.CAPACITANCE: ("capacitance", "F"),
                   units.CURRENT: ("current", "A"), units.LENGTH: ("length", "m"), units.AREA: ("area", "m2"),
                   units.RESISTANCE: ("resistance", "ohm"),
                   units.CONDUCTANCE / units.AREA: ("conductanceDensity", "S_per_m2"),
                   units.CAPACITANCE / units.AREA: ("specificCapacitance", "F_per_m2"),
                   units.CURRENT / units.AREA: ("currentDensity", "A_per_m2"),
                   units.DIMENSIONLESS / units.VOLTAGE: ("per_voltage", "per_V"),
                   units.CONCENTRATION: ("concentration", "mol_per_m3"),
                   # a degree Celsius as a difference: the size of a kelvin (LEMS's degC has an offset)
                   units.TEMPERATURE: ("temperature", "K")}
_NML_UNITS = {"s", "ms", "Hz", "m", "cm", "um", "m2", "cm2", "um2", "V", "mV", "ohm", "S", "mS", "uS", "nS",
              "pS", "F", "uF", "nF", "pF", "A", "uA", "nA", "pA", "mM", "M"}

# What a gate's rate may read besides v, as the LEMS names NeuroML gives them: the calcium
# concentration (caConc, from the cell's Ca species), the temperature (kelvin, from
# networkWithTemperature) and, in a channel placed with channelDensityVShift, vShift.
CAI = ir.inside("ca")
VSHIFT = sympy.Symbol("vShift")
_CAI_NUMBER = sympy.Symbol("hhc_cai")          # caConc / 1 mM, inside a custom type
_CELSIUS_NUMBER = sympy.Symbol("hhc_celsius")  # the temperature in degC as a number, inside a custom type


# ---------------------------------------------------------------------------------------------
# numbers
def nml_number(x: float) -> str:
    """A number in NeuroML's format: no 'e+', 12 significant digits (enough to round-trip any
    value written in a .chan file, short enough to read)."""
    x = float(x)
    if not math.isfinite(x):
        raise HHCError(f"cannot write the non-finite number {x} in NeuroML")
    if x == 0:
        return "0"
    s = f"{x:.12g}"
    if "e" in s:
        mantissa, exp = s.split("e")
        e = int(exp)
        if e > 0:                       # write it out: 1.5e+20 → 150000000000000000000
            s = f"{x:.{max(0, 12 - e - 1)}f}" if e < 12 else str(int(round(x)))
            if "." in s:
                s = s.rstrip("0").rstrip(".")
        else:
            s = f"{mantissa}e{e}"
    return s


def quantity(x: float, unit: str) -> str:
    return f"{nml_number(x)}{unit}"


# ---------------------------------------------------------------------------------------------
# expressions
def plain_function(expr: sympy.Expr, out_scale) -> sympy.Expr:
    """expr (SI after unit substitution) as a function of U in mV, divided by out_scale (SI)."""
    e = units.to_si(expr).xreplace({ir.V: U / 1000})
    return e / out_scale


def _np_function(expr: sympy.Expr):
    """expr, a function of U alone, as a numpy function."""
    return sympy.lambdify(U, expr, modules=ir_rhs.NUMERIC_MODULES)


_GRID = np.linspace(-120.0, 80.0, 401) + 0.0123   # mV, off the round numbers where 0/0 sits


def _same_function(f, g) -> float | None:
    """If f/g is constant on the grid, that constant, else None."""
    with np.errstate(all="ignore"):
        fv = np.broadcast_to(_np_function(f)(_GRID), _GRID.shape).astype(float)
        gv = np.broadcast_to(_np_function(g)(_GRID), _GRID.shape).astype(float)
        ok = np.isfinite(fv) & np.isfinite(gv) & (np.abs(gv) > 1e-300) & (np.abs(fv) > 1e-300)
        if ok.sum() < len(_GRID) * 0.8:
            return None
        ratio = fv[ok] / gv[ok]
    r0 = float(np.median(ratio))
    if r0 == 0 or not np.all(np.abs(ratio - r0) <= 1e-9 * abs(r0)):
        return None
    return r0


def _linear(arg: sympy.Expr):
    try:
        poly = sympy.Poly(sympy.expand(arg), U)
    except sympy.PolynomialError:
        return None
    if poly.degree() != 1:
        return None
    a, b = (float(c) for c in poly.all_coeffs())
    return a, b


# Standard forms, with x = (v - midpoint)/scale.  kind → [(type, g(x) with rate 1, sign)], where the
# atom found in the expression, exp(a u + b) or exprel(a u + b), gives x = sign*(a u + b).
_FORMS = {
    "rate": [("HHExpRate", "exp", 1), ("HHSigmoidRate", "exp", -1), ("HHExpLinearRate", "exprel", -1)],
    "variable": [("HHSigmoidVariable", "exp", -1), ("HHExpVariable", "exp", 1),
                 ("HHExpLinearVariable", "exprel", -1)],
}


def _form_function(type_name: str, x: sympy.Expr) -> sympy.Expr:
    if type_name in ("HHExpRate", "HHExpVariable"):
        return sympy.exp(x)
    if type_name in ("HHSigmoidRate", "HHSigmoidVariable"):
        return 1 / (1 + sympy.exp(-x))
    return 1 / ir.exprel(-x)          # x/(1 - exp(-x))


def match_standard(expr: sympy.Expr, kind: str):
    """(NeuroML type, {attribute: text}) if the plain function (U in mV, rates per ms, times in ms)
    has a standard form, else None."""
    if kind == "time":
        if U not in expr.free_symbols:
            value = float(expr)
            if value > 0:
                return "fixedTimeCourse", {"tau": quantity(value, "ms")}
        return None
    atoms = list(expr.atoms(sympy.exp)) + list(expr.atoms(ir.exprel))
    if len(atoms) != 1:
        return None
    atom = atoms[0]
    lin = _linear(atom.args[0])
    if lin is None:
        return None
    a, b = lin
    for type_name, atom_kind, sign in _FORMS[kind]:
        if atom.func.__name__ != atom_kind:
            continue
        scale = sign / a                # x = sign*(a u + b) = (u - mid)/scale
        midpoint = -b / a
        x = (U - sympy.Float(midpoint, 17)) / sympy.Float(scale, 17)
        rate = _same_function(expr, _form_function(type_name, x))
        if rate is None:
            continue
        rate_text = quantity(rate, "per_ms") if kind == "rate" else nml_number(rate)
        return type_name, {"rate": rate_text, "midpoint": quantity(midpoint, "mV"),
                           "scale": quantity(scale, "mV")}
    return None


_RELATIONS = {"<": ".lt.", "<=": ".leq.", ">": ".gt.", ">=": ".geq.", "==": ".eq.", "!=": ".neq."}


class LemsPrinter(StrPrinter):
    """SymPy → LEMS expression text (`^` for powers, unit symbols as Constants, no 'e+'; conditions
    with .lt. .leq. .gt. .geq. .and. .or.)."""

    def __init__(self, names=None):
        super().__init__()
        self.names = names or {}

    def _print_Symbol(self, expr):
        if expr in self.names:
            return self.names[expr]
        return expr.name

    def _print_Rational(self, expr):
        return nml_number(float(expr))

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Float(self, expr):
        return nml_number(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        if e == -1:
            return f"1/({self._print(base)})"
        if e == sympy.Rational(1, 2):
            return f"sqrt({self._print(base)})"
        return f"({self._print(base)})^({self._print(e)})"

    def _print_Exp1(self, expr):
        return "exp(1)"

    def _print_Relational(self, expr):
        op = _RELATIONS.get(expr.rel_op)
        if op is None:
            unsupported("neuroml", f"the condition {expr} (LEMS conditions here: <, <=, >, >=)")
        return f"({self._print(expr.lhs)}) {op} ({self._print(expr.rhs)})"

    def _print_And(self, expr):
        return " .and. ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Or(self, expr):
        return " .or. ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Not(self, expr):
        # LEMS conditions have no negation: push it into the relations (not (a and b) -> a' or b')
        pushed = sympy.logic.boolalg.to_nnf(expr)
        if isinstance(pushed, sympy.Not):
            unsupported("neuroml", f"the condition {expr} (LEMS conditions cannot negate it)")
        return self._print(pushed)

    def _print_Abs(self, expr):
        # not abs(): jNeuroML's NEURON export copies it into the mod file, where NMODL takes it for
        # a user function
        return f"sqrt(({self._print(expr.args[0])})^(2))"

    def _print_Piecewise(self, expr):
        unsupported("neuroml", f"a piecewise expression inside a function ({expr})",
                    hint="write the condition around the whole rate")


def _unit_constant(sym: sympy.Symbol):
    unit = units.unit_of_symbol(sym)
    dim = _LEMS_DIMENSION.get(unit.dimension)
    if dim is None:
        unsupported("neuroml", f"the unit {unit.name} in a LEMS expression")
    if unit.name in _NML_UNITS:
        value = f"1{unit.name}"
    else:
        value = quantity(float(unit.scale), dim[1])
    return sym.name, dim[0], value


def _lems_inputs(expr: sympy.Expr):
    """expr with the concentration and temperature it reads turned into dimensionless numbers
    (hhc_cai = caConc / 1 mM; hhc_celsius = the temperature in degC), so no dimensional quantity is
    raised to a power in LEMS; returns (expr, derived variable lines before it, requirements, extra
    constants, unit symbols those lines use)."""
    subs, lines, requirements, constants = {}, [], [], []
    mm, degc = units.unit_symbol("mM"), units.unit_symbol("degC")
    if CAI in expr.free_symbols:
        subs[CAI] = _CAI_NUMBER * mm
        lines.append(f'<DerivedVariable name="{_CAI_NUMBER}" dimension="none" value="caConc / {mm}"/>')
    if ir.TEMPERATURE in expr.free_symbols:
        subs[ir.TEMPERATURE] = _CELSIUS_NUMBER * degc
        requirements.append(("temperature", "temperature"))
        constants.append(("hhc_zero_celsius", "temperature", "273.15K"))
        lines.append(f'<DerivedVariable name="{_CELSIUS_NUMBER}" dimension="none" '
                     f'value="(temperature - hhc_zero_celsius) / {degc}"/>')
    if VSHIFT in expr.free_symbols:
        requirements.append(("vShift", "voltage"))
    # the units the helper lines divide by are Constants even where expr no longer has them
    helper_units = {u for s, u in ((CAI, mm), (ir.TEMPERATURE, degc)) if s in subs}
    return expr.xreplace(subs), lines, requirements, constants, helper_units


def _exclusive_cases(pw: sympy.Piecewise) -> list[tuple[sympy.Expr, object]]:
    """(value, condition or None) of a Piecewise with conditions that exclude one another (each also
    says that none before it holds), so the Cases mean the same whatever order a tool tries them in;
    conditions are conjunctions (an `or` becomes several Cases); the last (`else`) case has none."""
    cases, before = [], []
    for value, cond in pw.args:
        if cond == sympy.true:
            cases.append((value, None))
            break
        exclusive = sympy.And(cond, *[sympy.Not(c) for c in before])
        # one Case per disjunct: jNeuroML's NEURON export does not translate `.or.` (it writes it
        # into the mod file as is); overlapping disjuncts carry the same value
        for term in sympy.Or.make_args(sympy.to_dnf(exclusive)):
            if term != sympy.false:        # (a branch no v reaches is left out)
                cases.append((value, term))
        before.append(cond)
    else:
        unsupported("neuroml", f"a piecewise expression without an else branch ({pw})")
    return cases


def custom_type(name: str, base: str, exposure: str, dimension: str, expr: sympy.Expr, description: str) -> str:
    """A ComponentType computing `exposure` from the IR expression (units as Constants). The
    expression is a function of v and possibly of caConc (as cai; the base must then be a
    baseVoltageConcDep* type), temperature and vShift. Each `exprel(x)` becomes a DerivedVariable x
    and two cases, x != 0: (exp(x) - 1)/x and x = 0: 1; with the branches of a piecewise expression
    they make the exposure a ConditionalDerivedVariable with one Case per combination (conditions
    that exclude one another; the last Case has none)."""
    expr, input_lines, requirements, constants, input_units = _lems_inputs(expr)
    derived = []
    replaced = {}
    for k, atom in enumerate(sorted(expr.atoms(ir.exprel), key=sympy.default_sort_key)):
        x = sympy.Symbol(f"exprel{k}_x")
        replaced[atom] = sympy.Piecewise(((sympy.exp(x) - 1) / x, sympy.Ne(x, 0)), (1, True))
        derived.append((x.name, decimal_form(atom.args[0])))
    if any(arg.has(ir.exprel) for _, arg in derived):
        unsupported("neuroml", f"exprel nested in an exprel ({expr})")
    expr = sympy.piecewise_fold(expr.xreplace(replaced))
    branches = _exclusive_cases(expr) if isinstance(expr, sympy.Piecewise) else [(expr, None)]
    if any(v.has(sympy.Piecewise) or (c is not None and c.has(sympy.Piecewise)) for v, c in branches):
        unsupported("neuroml", f"a piecewise expression nested in a way LEMS cannot write ({expr})")
    whole = sympy.Tuple(*[v for v, _ in branches], *[c for _, c in branches if c is not None],
                        *[arg for _, arg in derived])
    unit_syms = {s for s in whole.free_symbols if units.unit_of_symbol(s)} | input_units
    printer = LemsPrinter()
    lines = [f'    <ComponentType name="{name}" extends="{base}" description={quoteattr(description)}>']
    for cname, cdim, cvalue in constants:
        lines.append(f'        <Constant name="{cname}" dimension="{cdim}" value="{cvalue}"/>')
    for sym in sorted(unit_syms, key=lambda s: s.name):
        cname, cdim, cvalue = _unit_constant(sym)
        lines.append(f'        <Constant name="{cname}" dimension="{cdim}" value="{cvalue}"/>')
    for rname, rdim in requirements:
        lines.append(f'        <Requirement name="{rname}" dimension="{rdim}"/>')
    # (the schema wants every DerivedVariable before every ConditionalDerivedVariable; NEURON's
    # export writes a Case without a condition as the `else` of the ones before it)
    lines.append("        <Dynamics>")
    for line in input_lines:
        lines.append("            " + line)
    for xname, arg in derived:
        lines.append(f'            <DerivedVariable name="{xname}" dimension="none" '
                     f'value={quoteattr(printer.doprint(arg))}/>')
    if len(branches) == 1:
        body = decimal_form(branches[0][0])
        lines.append(f'            <DerivedVariable name="{exposure}" dimension="{dimension}" exposure="{exposure}" '
                     f'value={quoteattr(printer.doprint(body))}/>')
    else:
        lines.append(f'            <ConditionalDerivedVariable name="{exposure}" dimension="{dimension}" '
                     f'exposure="{exposure}">')
        for value, cond in branches:
            text = quoteattr(printer.doprint(decimal_form(value)))
            if cond is None:
                lines.append(f"                <Case value={text}/>")
            else:
                lines.append(f"                <Case condition={quoteattr(printer.doprint(decimal_form(cond)))} "
                             f"value={text}/>")
        lines.append("            </ConditionalDerivedVariable>")
    lines.append("        </Dynamics>")
    lines.append("    </ComponentType>")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the cell
def _nml_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _si(expr: sympy.Expr, channel: ir.Channel | None = None) -> float:
    """The number (SI) of a constant expression of parameters (the channel's put in) and units."""
    value = units.to_si(ir_rhs.inline(expr, channel=channel, parameters=True) if channel is not None else expr)
    try:
        return float(value)
    except TypeError:
        raise HHCError(f"cannot write {expr} as a number in NeuroML: it depends on "
                       f"{sorted(map(str, value.free_symbols))}")


def _conductance_and_reversal(ch: ir.Channel):
    """(gbar parameter, E in volts or None) of a channel whose current is gbar * Π gate^power * (v − E);
    E is None for a Nernst reversal (channelDensityNernst computes it)."""
    gates = sympy.Mul(*[g.symbol ** g.power for g in ch.gates + ch.instantaneous])
    conductances = [p for p in ch.parameters
                    if p.dimension in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA)]
    voltages = [p.symbol for p in ch.parameters if p.dimension == units.VOLTAGE]
    voltages += [e.symbol for e in ch.expressions if e.dimension == units.VOLTAGE]
    for g in conductances:
        for e in voltages:
            if sympy.expand(ch.current - g.symbol * gates * (ir.V - e)) == 0:
                if ch.nernst is not None and ch.nernst in ir.ION_VALENCE:
                    if sympy.expand(ir_rhs.inline(e, channel=ch) - ir.nernst(ch.nernst)) == 0:
                        return g, None
                try:
                    return g, _si(e, ch)
                except HHCError:
                    unsupported("neuroml", f"channel {ch.name}: a reversal potential that changes "
                                           f"({ir_rhs.inline(e, channel=ch)})",
                                hint="NeuroML has a fixed erev, or channelDensityNernst for E = nernst(ca)")
    raise HHCError(f"channel {ch.name}: its current {ch.current} is not gbar * gates * (v - E), which is all "
                   f"a NeuroML ionChannelHH can express",
                   hint="write the current in the default form, or use another target")


# NeuroML's decayingPoolConcentrationModel (NeuroML2CoreTypes/Cells.xml) puts the ion in a shell of
# thickness t under the surface of a sphere with the segment's area A, written with pi = 3.14159:
# r = sqrt(A / (4 pi)), volume 4/3 pi (r^3 - (r - t)^3). hhc's shell has the volume A * depth. The
# thickness written is the one that gives NeuroML's shell hhc's volume, so both change the
# concentration equally per charge; hhc import reads it back as volume / area.
_NML_PI = 3.14159


def shell_thickness(area_m2: float, depth_m: float) -> float:
    """NeuroML's shellThickness (m) whose shell holds area × depth."""
    r = math.sqrt(area_m2 / (4 * _NML_PI))
    inner_cubed = r ** 3 - 3 * area_m2 * depth_m / (4 * _NML_PI)
    if inner_cubed <= 0:
        unsupported("neuroml", f"a pool {depth_m * 1e6:g} um deep in a cell of {area_m2 * 1e12:g} um2: NeuroML's "
                               f"pool is a shell inside a sphere of the cell's area (radius {r * 1e6:.4g} um), "
                               f"which holds at most a third of the radius times the area")
    return r - inner_cubed ** (1 / 3)


def shell_depth(area_m2: float, thickness_m: float) -> float:
    """The inverse: the hhc depth (m) of a NeuroML shell of this thickness (its volume / area)."""
    r = math.sqrt(area_m2 / (4 * _NML_PI))
    return 4 * _NML_PI / 3 * (r ** 3 - (r - thickness_m) ** 3) / area_m2


def _reads(ch: ir.Channel, symbol: sympy.Symbol) -> bool:
    """Whether any rate of the channel's gates reads symbol (cai, temperature)."""
    for g in ch.gates + ch.instantaneous:
        for e in (g.steady_state, g.time_constant, g.alpha, g.beta):
            if e is not None and symbol in ir_rhs.inline(e, channel=ch).free_symbols:
                return True
    return False


def neuron_problems(cell: ir.Cell) -> list[str]:
    """What the NEURON export (pynml -neuron) of the cell's documents would get wrong: a channel
    written as a non-specific current whose rates read cai (the export declares no calcium for it,
    so it reads 0)."""
    layout = CellLayout(cell)
    return [f"the calcium-dependent channel {ch.name} as a non-specific current (it declares no ion, or its "
            f"ion's channels have different E; NEURON's export gives a non-specific current no cai to read)"
            for ch, cid, _, _, ion in layout.channels if ion is None and layout.reads_cai[cid]]


class CellLayout:
    """Numbers of the single-compartment NeuroML cell equivalent to an IR point cell."""

    def __init__(self, cell: ir.Cell):
        self.cell = cell
        self.id = _nml_id(cell.name)
        if cell.area is not None:
            self.area_m2 = cell.area.si_value
        else:
            self.area_m2 = DEFAULT_AREA_UM2 * 1e-12
        area_um2 = self.area_m2 * 1e12
        self.length_um = area_um2 / (math.pi * SEGMENT_DIAMETER_UM)
        cap = cell.capacitance
        self.specific_capacitance = (cap.si_value if cap.dimension == units.CAPACITANCE / units.AREA
                                     else cap.si_value / self.area_m2)          # F/m2
        # (channel, nml id, gbar density S/m2, erev V or None for channelDensityNernst, ion)
        self.channels = []
        self.vshift: dict[str, float] = {}      # nml id → vShift (V): channelDensityVShift
        self.folded_vshift: dict[str, float] = {}   # nml id → vshift (V) written into the rates
        ion_erevs: dict[str, set] = {}
        for ch in cell.channels:
            g, erev = _conductance_and_reversal(ch)
            density = g.si_value if g.dimension == units.CONDUCTANCE / units.AREA else g.si_value / self.area_m2
            cid = _nml_id(ch.name)
            if erev is None and ch.nernst != "ca":
                unsupported("neuroml", f"E = nernst({ch.nernst}) in channel {ch.name}",
                            hint="NeuroML's channelDensityNernst is defined for calcium only (zCa = 2, caConc)")
            if erev is None and ch.ion != "ca":
                unsupported("neuroml", f"E = nernst(ca) in channel {ch.name}, which does not declare `ion ca`",
                            hint="NeuroML's channelDensityNernst carries calcium, and its current feeds the pool")
            self.channels.append([ch, cid, density, erev, ch.ion])
            if ch.vshift is not None and erev is not None:
                self.vshift[cid] = _si(ch.vshift.value)
            elif ch.vshift is not None:
                # NeuroML has no channelDensityNernst with a vShift: the gates get the shifted rates
                self.folded_vshift[cid] = _si(ch.vshift.value)
            if ch.ion:
                ion_erevs.setdefault(ch.ion, set()).add("nernst" if erev is None else round(erev, 12))
        self.pools = list(cell.pools)
        pooled = {p.ion for p in self.pools}
        for pool in self.pools:
            if pool.ion != "ca":
                unsupported("neuroml", f"a {pool.ion} pool",
                            hint="NeuroML's concentration models are driven by the calcium current (iCa) only")
            if len(ion_erevs.get("ca", ())) > 1:
                unsupported("neuroml", "calcium channels with different reversal potentials (or fixed and Nernst) "
                                       "in a cell with a calcium pool",
                            hint="NEURON keeps one E per ion, and every ca channel must feed the pool")
        # NEURON keeps one reversal potential per ion and section: channels of one ion with
        # different E are written as non-specific currents (same equations, own E each), except
        # those with the E of the ones whose rates read cai (NEURON's export gives a non-specific
        # current no calcium to read)
        self.reads_cai = {entry[1]: _reads(entry[0], CAI) for entry in self.channels}
        for ion, erevs in ion_erevs.items():
            if ion in pooled or len(erevs) <= 1:
                continue
            entries = [entry for entry in self.channels if entry[4] == ion]
            readers = {round(entry[3], 12) for entry in entries if self.reads_cai[entry[1]]}
            keep = readers.pop() if len(readers) == 1 else None
            for entry in entries:
                if keep is None or round(entry[3], 12) != keep:
                    entry[4] = None
        self.leak = None
        if cell.leak is not None:
            g, e = cell.leak
            density = g.si_value if g.dimension == units.CONDUCTANCE / units.AREA else g.si_value / self.area_m2
            self.leak = (density, e.si_value)
        names = {entry[1] for entry in self.channels}
        self.leak_id = "leak" if "leak" not in names else "hhc_leak"
        self.pool_ids = {}
        for pool in self.pools:
            pid = f"{pool.ion}_pool"
            while pid in names:
                pid = "hhc_" + pid
            self.pool_ids[pool.ion] = pid

    def density_id(self, channel_id: str) -> str:
        return f"{channel_id}_all"

    def pool_initial(self, pool: ir.Pool) -> float:
        """A pool's initial concentration (mol/m3 = mM) from the .chan file."""
        if pool.is_dynamic and pool.initial is not None:
            return _si(pool.initial)
        return pool.resting.si_value


def _gate_inputs(cell: ir.Cell, ch: ir.Channel, fold_vshift: bool = False) -> dict:
    """What makes a gate expression of the channel (its own parameters put in) a function of v, cai,
    temperature and vShift alone: the cell's vshift of the channel → vShift (or, fold_vshift, its
    value), constant outside concentrations → their values."""
    subs = {}
    if ch.vshift is not None:
        subs[ch.vshift.symbol] = ch.vshift.value if fold_vshift else VSHIFT
    for pool in cell.pools:
        subs[ir.outside(pool.ion)] = pool.outside.value
    return subs


_KINDS = {  # kind → (base type, base type reading caConc, exposure, LEMS dimension, SI → NeuroML unit)
    "time": ("baseVoltageDepTime", "baseVoltageConcDepTime", "t", "time", sympy.Rational(1, 1000)),
    "rate": ("baseVoltageDepRate", "baseVoltageConcDepRate", "r", "per_time", 1000),
    "variable": ("baseVoltageDepVariable", "baseVoltageConcDepVariable", "x", "none", 1),
}


def _q10_xml(ch: ir.Channel, g: ir.Gate) -> str | None:
    q = g.q10
    if q is None:
        return None
    if q.fixed is not None:
        return f'<q10Settings type="q10Fixed" fixedQ10="{nml_number(_si(q.fixed, ch))}"/>'
    if q.q10 is None or q.reference_temperature is None:
        unsupported("neuroml", f"the Q10 factor {q.factor} of gate {ch.name}.{g.name}")
    # degC has SI scale 1 in hhc: the number is the Celsius temperature
    return (f'<q10Settings type="q10ExpTemp" q10Factor="{nml_number(_si(q.q10, ch))}" '
            f'experimentalTemp="{quantity(_si(q.reference_temperature, ch), "degC")}"/>')


def _gate_kind(g: ir.Gate) -> str:
    return "gateHHInstantaneous" if g.instantaneous else ("gateHHrates" if g.form == "alpha_beta" else "gateHHtauInf")


def _gate_xml(cell: ir.Cell, ch: ir.Channel, g: ir.Gate, types: list[str], generic: bool = False,
              fold_vshift: bool = False) -> list[str]:
    """The gate's element: <gateHHrates>, <gateHHtauInf> or <gateHHInstantaneous>; generic: the
    same as <gate type="..."> (the schema lets a channel hold one kind of the specific elements only)."""
    kind = _gate_kind(g)
    opening, closing = (f'<gate id="{_nml_id(g.name)}" type="{kind}" instances="{g.power}">', "</gate>") if generic \
        else (f'<{kind} id="{_nml_id(g.name)}" instances="{g.power}">', f"</{kind}>")
    gid = _nml_id(g.name)
    cid = _nml_id(ch.name)
    out = []
    subs = _gate_inputs(cell, ch, fold_vshift)

    def element(tag, expr, kind):
        # the channel's helpers and parameters put in: a function of v (and cai, temperature, vShift)
        full = ir_rhs.inline(expr, channel=ch, parameters=True).xreplace(subs)
        others = {s for s in full.free_symbols if not units.unit_of_symbol(s)} - {ir.V, CAI, ir.TEMPERATURE, VSHIFT}
        if others:
            unsupported("neuroml", f"gate {ch.name}.{g.name} reading {', '.join(sorted(map(str, others)))}",
                        hint="NeuroML's rates read v, the calcium concentration and the temperature")
        base, conc_base, exposure, dim, scale = _KINDS[kind]
        if full.free_symbols & {CAI, ir.TEMPERATURE, VSHIFT} == set() and not full.has(sympy.Piecewise):
            std = match_standard(plain_function(full, scale), kind)
            if std is not None:
                type_name, attrs = std
                text = " ".join(f'{k}="{v}"' for k, v in attrs.items())
                return f'<{tag} type="{type_name}" {text}/>'
        type_name = f"hhc_{cid}_{gid}_{tag}"
        types.append(custom_type(type_name, conc_base if CAI in full.free_symbols else base, exposure, dim, full,
                                 f"{ch.name}.{g.name} {tag}, generated by hhc from the IR: {full}"))
        return f'<{tag} type="{type_name}"/>'

    out.append("        " + opening)
    q10 = _q10_xml(ch, g)
    if q10:
        out.append("            " + q10)
    if g.instantaneous:
        out.append("            " + element("steadyState", g.steady_state, "variable"))
    elif g.form == "alpha_beta":
        out.append("            " + element("forwardRate", g.base_alpha, "rate"))
        out.append("            " + element("reverseRate", g.base_beta, "rate"))
    else:
        out.append("            " + element("timeCourse", g.base_time_constant, "time"))
        out.append("            " + element("steadyState", g.steady_state, "variable"))
    out.append("        " + closing)
    return out


def _header(doc_id: str, cell: ir.Cell, what: str) -> list[str]:
    sources = ", ".join(Path(s).name for s in cell.sources) or Path(cell.source).name
    return [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<neuroml xmlns="{NML_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
        f'    xsi:schemaLocation="{NML_NS} https://raw.github.com/NeuroML/NeuroML2/development/Schemas/'
        f'NeuroML2/NeuroML_v{SCHEMA_VERSION}.xsd"',
        f'    id="{doc_id}">',
        f"    <notes>{escape(what)} Generated by hhc {__version__} from {escape(cell.source)} "
        f"(reads: {escape(sources)}). Do not edit: change the .chan file and run hhc compile again.</notes>",
    ]


def _cell_element(cell: ir.Cell, layout: CellLayout, cell_id: str, v0: float, pool_initial: dict) -> list[str]:
    """The <cell>: one cylinder segment, the channel densities, the pools' species; v0 (V) and
    pool_initial (ion → mol/m3) are its initial values."""
    area_um2 = layout.area_m2 * 1e12
    out = [
        f'    <cell id="{cell_id}">',
        f"        <notes>Single compartment of area {nml_number(area_um2)} um2 (a cylinder without end caps); "
        f"absolute conductances and capacitance of the point neuron are divided by it.</notes>",
        '        <morphology id="morphology">',
        '            <segment id="0" name="soma">',
        f'                <proximal x="0" y="0" z="0" diameter="{nml_number(SEGMENT_DIAMETER_UM)}"/>',
        f'                <distal x="0" y="{nml_number(layout.length_um)}" z="0" '
        f'diameter="{nml_number(SEGMENT_DIAMETER_UM)}"/>',
        "            </segment>",
        '            <segmentGroup id="soma_group"><member segment="0"/></segmentGroup>',
        '            <segmentGroup id="all"><include segmentGroup="soma_group"/></segmentGroup>',
        "        </morphology>",
        '        <biophysicalProperties id="biophys">',
        "            <membraneProperties>",
    ]
    plain, shifted, nernst = [], [], []
    for ch, cid, density, erev, ion in layout.channels:
        common = (f'id="{layout.density_id(cid)}" ionChannel="{cid}" condDensity="{quantity(density, "S_per_m2")}"')
        if erev is None:
            nernst.append(f'                <channelDensityNernst {common} ion="ca"/>')
        elif cid in layout.vshift:
            shifted.append(f'                <channelDensityVShift {common} erev="{quantity(erev * 1e3, "mV")}" '
                           f'ion="{ion or "non_specific"}" vShift="{quantity(layout.vshift[cid] * 1e3, "mV")}"/>')
        else:
            plain.append(f'                <channelDensity {common} erev="{quantity(erev * 1e3, "mV")}" '
                         f'ion="{ion or "non_specific"}"/>')
    if layout.leak is not None:
        density, erev = layout.leak
        plain.append(f'                <channelDensity id="{layout.density_id(layout.leak_id)}" '
                     f'ionChannel="{layout.leak_id}" condDensity="{quantity(density, "S_per_m2")}" '
                     f'erev="{quantity(erev * 1e3, "mV")}" ion="non_specific"/>')
    out += plain + shifted + nernst       # the schema's order
    threshold = float(units.to_si(cell.threshold)) if cell.threshold is not None else 0.0
    out += [
        f'                <spikeThresh value="{quantity(threshold * 1e3, "mV")}"/>',
        f'                <specificCapacitance value="{quantity(layout.specific_capacitance * 100, "uF_per_cm2")}"/>',
        f'                <initMembPotential value="{quantity(v0 * 1e3, "mV")}"/>',
        "            </membraneProperties>",
        "            <intracellularProperties>",
    ]
    for pool in layout.pools:       # concentrations: 1 mM = 1 mol/m3, hhc's SI
        out.append(f'                <species id="{pool.ion}" ion="{pool.ion}" '
                   f'concentrationModel="{layout.pool_ids[pool.ion]}" '
                   f'initialConcentration="{quantity(pool_initial[pool.ion], "mM")}" '
                   f'initialExtConcentration="{quantity(pool.outside.si_value, "mM")}"/>')
    out += [
        '                <resistivity value="100ohm_cm"/>',
        "            </intracellularProperties>",
        "        </biophysicalProperties>",
        "    </cell>",
    ]
    return out


def _pool_xml(layout: CellLayout, pool: ir.Pool) -> list[str]:
    pid = layout.pool_ids[pool.ion]
    resting = f'restingConc="{quantity(pool.resting.si_value, "mM")}"'
    if pool.kind == "decaying":
        depth = pool.depth.si_value
        thickness = shell_thickness(layout.area_m2, depth)
        # (jLEMS takes no <notes> in a concentration model: a comment says it)
        return [f"    <!-- hhc pool {pool.ion}: depth {nml_number(depth * 1e6)} um, a shell of volume "
                f"{nml_number(layout.area_m2 * 1e12)} um2 x depth. NeuroML's shell lies inside a sphere of the "
                f"cell's area: this shellThickness gives it the same volume. -->",
                f'    <decayingPoolConcentrationModel id="{pid}" ion="{pool.ion}" {resting} '
                f'decayConstant="{quantity(pool.decay.si_value * 1e3, "ms")}" '
                f'shellThickness="{quantity(thickness * 1e6, "um")}"/>']
    if pool.kind == "fixed_factor":
        return [f'    <fixedFactorConcentrationModel id="{pid}" ion="{pool.ion}" {resting} '
                f'decayConstant="{quantity(pool.decay.si_value * 1e3, "ms")}" '
                f'rho="{quantity(pool.rho.si_value, "mol_per_m_per_A_per_s")}"/>']
    # a constant concentration: no current in (rho 0), and at rest from the start, so it stays there
    return [f"    <!-- hhc pool {pool.ion} without decay: {pool.ion}i stays at its resting value -->",
            f'    <fixedFactorConcentrationModel id="{pid}" ion="{pool.ion}" {resting} decayConstant="1s" '
            f'rho="0mol_per_m_per_A_per_s"/>']


def _default_initial(cell: ir.Cell, layout: CellLayout) -> tuple[float, dict]:
    iv = cell.initial_value("v")
    v0 = float(units.to_si(iv.value)) if iv and iv.value is not None else -0.065
    return v0, {p.ion: layout.pool_initial(p) for p in layout.pools}


def cell_definitions(cell: ir.Cell, layout: CellLayout) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """What a document needs besides the <cell> element: its channels and pools as (element kind, id,
    lines) in the schema's order (passive ionChannel, ionChannelHH, concentration models), and its
    custom ComponentTypes (texts; they go last)."""
    blocks: list[tuple[str, str, list[str]]] = []
    types: list[str] = []
    passive = [entry for entry in layout.channels if entry[0].is_passive]
    for ch, cid, _, _, ion in passive:      # <ionChannel> precedes <ionChannelHH> in the schema
        species = f' species="{ch.ion}"' if ion else ""
        blocks.append(("ionChannel", cid, [
            f'    <ionChannel id="{cid}" type="ionChannelPassive" conductance="10pS"{species}>',
            f"        <notes>channel {escape(ch.name)} (passive): current = {escape(str(ch.current))}</notes>",
            "    </ionChannel>"]))
    for ch, cid, _, _, ion in layout.channels:
        if ch.is_passive:
            continue
        species = f' species="{ch.ion}"' if ion else ""
        out = [f'    <ionChannelHH id="{cid}" conductance="10pS"{species}>']
        note = f"channel {escape(ch.name)}: current = {escape(str(ch.current))}"
        if cid in layout.vshift:
            note += "; placed with vshift: its gates read v - vShift (channelDensityVShift)"
        elif cid in layout.folded_vshift:
            note += (f"; placed with vshift = {nml_number(layout.folded_vshift[cid] * 1e3)} mV, written into its "
                     f"rates (they are the .chan rates at v - vshift): NeuroML's channelDensityNernst takes no vShift")
        out.append(f"        <notes>{note}</notes>")
        gates = ch.gates + ch.instantaneous
        generic = len({_gate_kind(g) for g in gates}) > 1     # the schema: one kind of specific element
        for g in gates:
            out.extend(_gate_xml(cell, ch, g, types, generic, cid in layout.folded_vshift))
        out.append("    </ionChannelHH>")
        blocks.append(("ionChannelHH", cid, out))
    if layout.leak is not None:
        blocks.append(("ionChannelHH", layout.leak_id, [f'    <ionChannelHH id="{layout.leak_id}" conductance="10pS">',
                                                         "        <notes>leak</notes>",
                                                         "    </ionChannelHH>"]))
    for pool in layout.pools:
        blocks.append(("pool", layout.pool_ids[pool.ion], _pool_xml(layout, pool)))
    return blocks, types


def cell_document(cell: ir.Cell, initial_v: float | None = None, pool_initial: dict | None = None) -> str:
    layout = CellLayout(cell)
    fixed = [iv.state for iv in cell.initial
             if iv.state != "v" and iv.value is not None and iv.state not in {p.state for p in cell.pools}]
    what = f"NeuroML2 model of cell {cell.name}."
    if fixed:
        what += (f" NeuroML starts every gate at its steady state: the initial values the .chan file gives "
                 f"{', '.join(fixed)} are not expressed here.")
    if cell.temperature is not None:
        what += (f" Temperature {nml_number(_si(cell.temperature.value))} degC: NeuroML sets it on the network "
                 f"(networkWithTemperature), which the network document does.")
    out = _header(f"{layout.id}_doc", cell, what)
    blocks, types = cell_definitions(cell, layout)
    for _, _, lines in blocks:
        out.extend(lines)
    v0, pools0 = _default_initial(cell, layout)
    if initial_v is not None:
        v0 = initial_v
    if pool_initial:
        pools0.update(pool_initial)
    out += _cell_element(cell, layout, layout.id, v0, pools0)
    out.extend(types)       # the schema wants ComponentTypes after the other top-level elements
    out.append("</neuroml>")
    return "\n".join(out) + "\n"


def cell_filename(cell: ir.Cell) -> str:
    return f"{_nml_id(cell.name)}.cell.nml"


def net_filename(cell: ir.Cell) -> str:
    return f"{_nml_id(cell.name)}.net.nml"


def lems_filename(cell: ir.Cell) -> str:
    return f"LEMS_{_nml_id(cell.name)}.xml"


# ---------------------------------------------------------------------------------------------
# the experiment
class Placement:
    """Where each neuron of an experiment lives. NeuroML gives a population one initMembPotential,
    so neurons that start at different v go into one population per distinct v, each of a copy of
    the cell with that value: `pop` when all start alike, else `pop0`, `pop1`, ... (pop0 uses the
    cell document's cell). Pool concentrations must start alike (NEURON's export holds them in a
    GLOBAL)."""

    def __init__(self, cell: ir.Cell, layout: CellLayout, experiment):
        n = experiment.size
        arrays = experiment.initial_arrays
        v_default, pools_default = _default_initial(cell, layout)
        columns = [np.broadcast_to(np.asarray(arrays["v"] if arrays.get("v") is not None else v_default, float), (n,))]
        ions = [p.ion for p in layout.pools]
        for pool in layout.pools:
            values = arrays.get(pool.state) if pool.is_dynamic else None
            columns.append(np.broadcast_to(np.asarray(values if values is not None else pools_default[pool.ion],
                                                      float), (n,)))
        for ion, column in zip(ions, columns[1:]):
            if not np.all(column == column[0]):
                # (NEURON's export keeps a species' initial concentration in a GLOBAL of the pool)
                unsupported("neuroml", f"a different initial {ion}i per neuron",
                            hint=f"start every neuron at one {ion}i for the neuroml, jneuroml and neuron backends")
        keys = list(zip(*[c.tolist() for c in columns]))
        self.groups: list[tuple[float, dict, list[int]]] = []       # (v0, {ion: c0}, neurons)
        index = {}
        for i, key in enumerate(keys):
            if key not in index:
                index[key] = len(self.groups)
                self.groups.append((key[0], dict(zip(ions, key[1:])), []))
            self.groups[index[key]][2].append(i)
        single = len(self.groups) == 1
        self.population_ids = ["pop"] if single else [f"pop{k}" for k in range(len(self.groups))]
        self.cell_ids = [layout.id] + [f"{layout.id}_start{k}" for k in range(1, len(self.groups))]
        self.target = [""] * n
        for k, (_, _, neurons) in enumerate(self.groups):
            for j, i in enumerate(neurons):
                self.target[i] = f"{self.population_ids[k]}[{j}]"


def initial_gate_warnings(cell: ir.Cell, experiment) -> list[str]:
    pools = {p.state for p in cell.pools}
    fixed = [s for s in cell.states[1:] if s not in pools and experiment.initial_arrays.get(s) is not None]
    if not fixed:
        return []
    return [f"NeuroML starts every gate at its steady state; the initial values of {', '.join(fixed)} "
            f"are not used (set [initial] gates = \"steady_state\" to compare with other backends)"]


def _trace_quantity(cell: ir.Cell, layout: CellLayout, var: str, target: str):
    """(LEMS quantity path of var in the neuron at `target`, e.g. pop[3], factor to hhc's SI value)."""
    if var == "v":
        return f"{target}/v", 1.0
    for ch, cid, *_ in layout.channels:
        if var == ch.current_name:
            return f"{target}/biophys/membraneProperties/{layout.density_id(cid)}/iDensity", -layout.area_m2
        for g in ch.gates + ch.instantaneous:
            if var == g.state:
                return f"{target}/biophys/membraneProperties/{layout.density_id(cid)}/{cid}/{_nml_id(g.name)}/q", 1.0
    if var == "I_leak" and layout.leak is not None:
        return f"{target}/biophys/membraneProperties/{layout.density_id(layout.leak_id)}/iDensity", -layout.area_m2
    for pool in layout.pools:
        if var == pool.state:       # mol/m3 in LEMS, hhc's SI
            return f"{target}/caConc", 1.0
    unsupported("neuroml", f"recording '{var}'", hint="recordable: v, gate states, channel currents, cai")


def network_document(cell: ir.Cell, experiment, placement: Placement | None = None) -> str:
    layout = CellLayout(cell)
    placement = placement or Placement(cell, layout, experiment)
    out = _header(f"{layout.id}_net", cell, f"Network of {experiment.size} {cell.name} cells for "
                                            f"experiment {Path(experiment.path).name}.")
    out.append(f'    <include href="{cell_filename(cell)}"/>')
    for k in range(1, len(placement.groups)):       # the cell again, starting elsewhere
        v0, pools0, _ = placement.groups[k]
        out += _cell_element(cell, layout, placement.cell_ids[k], v0, pools0)
    pulses = []
    t = 0.0
    inputs = [i.name for i in cell.inputs if i.kind == "current"]
    if len(inputs) != len(cell.inputs):
        unsupported("neuroml", "an input that is not a current")
    for k, phase in enumerate(experiment.protocol):
        for name in inputs:
            amp = phase.inputs.get(name, 0.0)
            if amp != 0:
                pid = f"stim_{name}_{k}"
                pulses.append(pid)
                out.append(f'    <pulseGenerator id="{pid}" delay="{quantity(t * 1e3, "ms")}" '
                           f'duration="{quantity(phase.duration * 1e3, "ms")}" '
                           f'amplitude="{quantity(amp * 1e12, "pA")}"/>')
        t += phase.duration
    if cell.temperature is not None:    # degC has SI scale 1: the number is the Celsius temperature
        out.append(f'    <network id="net" type="networkWithTemperature" '
                   f'temperature="{quantity(_si(cell.temperature.value), "degC")}">')
    else:
        out.append('    <network id="net">')
    for k, (_, _, neurons) in enumerate(placement.groups):
        out.append(f'        <population id="{placement.population_ids[k]}" component="{placement.cell_ids[k]}" '
                   f'size="{len(neurons)}"/>')
    for pid in pulses:
        for i in range(experiment.size):
            out.append(f'        <explicitInput target="{placement.target[i]}" input="{pid}"/>')
    out.append("    </network>")
    out.append("</neuroml>")
    return "\n".join(out) + "\n"


def simulation_head(cell: ir.Cell, experiment, comment: str, includes) -> list[str]:
    """The opening lines of a LEMS simulation of the cell's network document: the comment, the
    standard files `includes` (names without .xml) and the network, and the <Simulation> element's
    start (its OutputFiles follow)."""
    return ['<?xml version="1.0" encoding="UTF-8"?>', f"<!-- {comment} -->", "<Lems>",
            '    <Target component="sim"/>',
            *[f'    <Include file="{name}.xml"/>' for name in includes],
            f'    <Include file="{net_filename(cell)}"/>',
            f'    <Simulation id="sim" length="{quantity(experiment.duration * 1e3, "ms")}" '
            f'step="{quantity(experiment.dt * 1e3, "ms")}" target="net" seed="{experiment.seed}">']


def lems_document(cell: ir.Cell, experiment, placement: Placement | None = None) -> str:
    layout = CellLayout(cell)
    placement = placement or Placement(cell, layout, experiment)
    lines = simulation_head(cell, experiment, f"LEMS simulation of {cell.name}, experiment "
                                              f"{Path(experiment.path).name}; generated by hhc {__version__} "
                                              f"from {cell.source}.", ("Cells", "Networks", "Simulation"))
    for k, tr in enumerate(experiment.traces):
        lines.append(f'        <OutputFile id="traces_{k}" fileName="traces_{k}.dat">')
        for var in tr.variables:
            for i in tr.neurons:
                path, _ = _trace_quantity(cell, layout, var, placement.target[i])
                lines.append(f'            <OutputColumn id="{var}_{i}" quantity="{path}"/>')
        lines.append("        </OutputFile>")
    if experiment.record_spikes is not None:
        neurons = range(experiment.size) if experiment.record_spikes is True else experiment.record_spikes
        lines.append('        <EventOutputFile id="spikes" fileName="spikes.dat" format="TIME_ID">')
        for i in neurons:
            lines.append(f'            <EventSelection id="{i}" select="{placement.target[i]}" eventPort="spike"/>')
        lines.append("        </EventOutputFile>")
    lines += ["    </Simulation>", "</Lems>"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# checking
def schema_path() -> Path:
    import neuroml
    return Path(neuroml.__file__).parent / "nml" / f"NeuroML_v{SCHEMA_VERSION}.xsd"


_SCHEMA = None


def validate(text_or_path) -> None:
    """Check a NeuroML document against the XSD shipped with libNeuroML (the schema `pynml -validate`
    uses); raise HHCError listing the problems."""
    global _SCHEMA
    from lxml import etree
    if _SCHEMA is None:
        _SCHEMA = etree.XMLSchema(etree.parse(str(schema_path())))
    if isinstance(text_or_path, Path):
        doc = etree.parse(str(text_or_path))
    else:
        doc = etree.fromstring(text_or_path.encode())
    if not _SCHEMA.validate(doc):
        problems = "; ".join(f"line {e.line}: {e.message}" for e in list(_SCHEMA.error_log)[:5])
        raise HHCError(f"generated NeuroML does not pass the schema: {problems}")


def emit_documents(cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
    """The cell's NeuroML2 document; with an experiment, also its network and LEMS simulation."""
    exp = options.experiment
    if exp is None:
        return {cell_filename(cell): cell_document(cell)}
    placement = Placement(cell, CellLayout(cell), exp)
    v0, pools0, _ = placement.groups[0]
    return {cell_filename(cell): cell_document(cell, v0, pools0),
            net_filename(cell): network_document(cell, exp, placement),
            lems_filename(cell): lems_document(cell, exp, placement)}
