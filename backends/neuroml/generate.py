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
  cannot be expressed and are reported.
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
                   units.DIMENSIONLESS / units.VOLTAGE: ("per_voltage", "per_V")}
_NML_UNITS = {"s", "ms", "Hz", "m", "cm", "um", "m2", "cm2", "um2", "V", "mV", "ohm", "S", "mS", "uS", "nS",
              "pS", "F", "uF", "nF", "pF", "A", "uA", "nA", "pA"}


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


class LemsPrinter(StrPrinter):
    """SymPy → LEMS expression text (`^` for powers, unit symbols as Constants, no 'e+')."""

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


def custom_type(name: str, base: str, exposure: str, dimension: str, expr: sympy.Expr, description: str) -> str:
    """A ComponentType computing `exposure` from the IR expression (units as Constants)."""
    derived = []
    replaced = {}
    for k, atom in enumerate(sorted(expr.atoms(ir.exprel), key=sympy.default_sort_key)):
        xname, rname = f"exprel{k}_x", f"exprel{k}"
        replaced[atom] = sympy.Symbol(rname)
        derived.append((xname, rname, decimal_form(atom.args[0])))
    body = decimal_form(expr.xreplace(replaced))
    unit_syms = sorted((s for s in expr.free_symbols if units.unit_of_symbol(s)), key=lambda s: s.name)
    printer = LemsPrinter()
    lines = [f'    <ComponentType name="{name}" extends="{base}" description={quoteattr(description)}>']
    for sym in unit_syms:
        cname, cdim, cvalue = _unit_constant(sym)
        lines.append(f'        <Constant name="{cname}" dimension="{cdim}" value="{cvalue}"/>')
    lines.append("        <Dynamics>")
    for xname, rname, arg in derived:
        lines.append(f'            <DerivedVariable name="{xname}" dimension="none" '
                     f'value={quoteattr(printer.doprint(arg))}/>')
        lines.append(f'            <ConditionalDerivedVariable name="{rname}" dimension="none">')
        lines.append(f'                <Case condition="{xname} .neq. 0" value="(exp({xname}) - 1)/{xname}"/>')
        lines.append(f'                <Case condition="{xname} .eq. 0" value="1"/>')
        lines.append("            </ConditionalDerivedVariable>")
    lines.append(f'            <DerivedVariable name="{exposure}" dimension="{dimension}" exposure="{exposure}" '
                 f'value={quoteattr(printer.doprint(body))}/>')
    lines.append("        </Dynamics>")
    lines.append("    </ComponentType>")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the cell
def _nml_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _conductance_and_reversal(ch: ir.Channel):
    """The parameters (gbar, E) of a channel whose current is gbar * Π gate^power * (v − E)."""
    gates = sympy.Mul(*[g.symbol ** g.power for g in ch.gates])
    conductances = [p for p in ch.parameters
                    if p.dimension in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA)]
    voltages = [p for p in ch.parameters if p.dimension == units.VOLTAGE]
    for g in conductances:
        for e in voltages:
            if sympy.expand(ch.current - g.symbol * gates * (ir.V - e.symbol)) == 0:
                return g, e
    raise HHCError(f"channel {ch.name}: its current {ch.current} is not gbar * gates * (v - E), which is all "
                   f"a NeuroML ionChannelHH can express",
                   hint="write the current in the default form, or use another target")


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
        self.channels = []      # (channel, nml id, gbar density S/m2, erev V, ion)
        ion_erevs: dict[str, set] = {}
        for ch in cell.channels:
            g, e = _conductance_and_reversal(ch)
            density = g.si_value if g.dimension == units.CONDUCTANCE / units.AREA else g.si_value / self.area_m2
            self.channels.append([ch, _nml_id(ch.name), density, e.si_value, ch.ion])
            if ch.ion:
                ion_erevs.setdefault(ch.ion, set()).add(round(e.si_value, 12))
        # NEURON keeps one reversal potential per ion and section: channels of one ion with
        # different E are written as non-specific currents (same equations, own E each)
        for entry in self.channels:
            if entry[4] and len(ion_erevs[entry[4]]) > 1:
                entry[4] = None
        self.leak = None
        if cell.leak is not None:
            g, e = cell.leak
            density = g.si_value if g.dimension == units.CONDUCTANCE / units.AREA else g.si_value / self.area_m2
            self.leak = (density, e.si_value)
        names = {entry[1] for entry in self.channels}
        self.leak_id = "leak" if "leak" not in names else "hhc_leak"

    def density_id(self, channel_id: str) -> str:
        return f"{channel_id}_all"


def _gate_xml(ch: ir.Channel, g: ir.Gate, types: list[str]) -> list[str]:
    gid = _nml_id(g.name)
    cid = _nml_id(ch.name)
    out = []

    def element(tag, expr, kind):
        # the channel's helpers and parameters put in: a function of v alone
        full = ir_rhs.inline(expr, channel=ch, parameters=True)
        if kind == "time":
            f = plain_function(full, sympy.Rational(1, 1000))
            base, exposure, dim, unit = "baseVoltageDepTime", "t", "time", "ms"
        elif kind == "rate":
            f = plain_function(full, 1000)
            base, exposure, dim, unit = "baseVoltageDepRate", "r", "per_time", "per_ms"
        else:
            f = plain_function(full, 1)
            base, exposure, dim, unit = "baseVoltageDepVariable", "x", "none", ""
        std = match_standard(f, kind)
        if std is not None:
            type_name, attrs = std
            text = " ".join(f'{k}="{v}"' for k, v in attrs.items())
            return f'<{tag} type="{type_name}" {text}/>'
        type_name = f"hhc_{cid}_{gid}_{tag}"
        types.append(custom_type(type_name, base, exposure, dim, full,
                                 f"{ch.name}.{g.name} {tag}, generated by hhc from the IR: {full}"))
        return f'<{tag} type="{type_name}"/>'

    if g.form == "alpha_beta":
        out.append(f'        <gateHHrates id="{gid}" instances="{g.power}">')
        out.append("            " + element("forwardRate", g.alpha, "rate"))
        out.append("            " + element("reverseRate", g.beta, "rate"))
        out.append("        </gateHHrates>")
    else:
        out.append(f'        <gateHHtauInf id="{gid}" instances="{g.power}">')
        out.append("            " + element("timeCourse", g.time_constant, "time"))
        out.append("            " + element("steadyState", g.steady_state, "variable"))
        out.append("        </gateHHtauInf>")
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


def cell_document(cell: ir.Cell, initial_v: float | None = None) -> str:
    layout = CellLayout(cell)
    fixed = [iv.state for iv in cell.initial if iv.state != "v" and iv.value is not None]
    what = f"NeuroML2 model of cell {cell.name}."
    if fixed:
        what += (f" NeuroML starts every gate at its steady state: the initial values the .chan file gives "
                 f"{', '.join(fixed)} are not expressed here.")
    out = _header(f"{layout.id}_doc", cell, what)
    types: list[str] = []
    for ch, cid, _, _, ion in layout.channels:
        species = f' species="{ch.ion}"' if ion else ""
        out.append(f'    <ionChannelHH id="{cid}" conductance="10pS"{species}>')
        out.append(f"        <notes>channel {escape(ch.name)}: current = {escape(str(ch.current))}</notes>")
        for g in ch.gates:
            out.extend(_gate_xml(ch, g, types))
        out.append("    </ionChannelHH>")
    if layout.leak is not None:
        out.append(f'    <ionChannelHH id="{layout.leak_id}" conductance="10pS">')
        out.append("        <notes>leak</notes>")
        out.append("    </ionChannelHH>")
    iv = cell.initial_value("v")
    v0 = initial_v if initial_v is not None else (float(units.to_si(iv.value)) if iv and iv.value is not None
                                                  else -0.065)
    area_um2 = layout.area_m2 * 1e12
    out += [
        f'    <cell id="{layout.id}">',
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
    for ch, cid, density, erev, ion in layout.channels:
        out.append(f'                <channelDensity id="{layout.density_id(cid)}" ionChannel="{cid}" '
                   f'condDensity="{quantity(density, "S_per_m2")}" erev="{quantity(erev * 1e3, "mV")}" '
                   f'ion="{ion or "non_specific"}"/>')
    if layout.leak is not None:
        density, erev = layout.leak
        out.append(f'                <channelDensity id="{layout.density_id(layout.leak_id)}" '
                   f'ionChannel="{layout.leak_id}" condDensity="{quantity(density, "S_per_m2")}" '
                   f'erev="{quantity(erev * 1e3, "mV")}" ion="non_specific"/>')
    threshold = float(units.to_si(cell.threshold)) if cell.threshold is not None else 0.0
    out += [
        f'                <spikeThresh value="{quantity(threshold * 1e3, "mV")}"/>',
        f'                <specificCapacitance value="{quantity(layout.specific_capacitance * 100, "uF_per_cm2")}"/>',
        f'                <initMembPotential value="{quantity(v0 * 1e3, "mV")}"/>',
        "            </membraneProperties>",
        "            <intracellularProperties>",
        '                <resistivity value="100ohm_cm"/>',
        "            </intracellularProperties>",
        "        </biophysicalProperties>",
        "    </cell>",
    ]
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
def uniform_initial_v(cell: ir.Cell, experiment) -> float:
    v = np.asarray(experiment.initial_arrays["v"], dtype=float)
    if not np.all(v == v[0]):
        unsupported("neuroml", "a different initial v per neuron (NeuroML gives a population one "
                    "initMembPotential)", hint="use one initial v for the neuroml, jneuroml and neuron backends")
    return float(v[0])


def initial_gate_warnings(cell: ir.Cell, experiment) -> list[str]:
    fixed = [s for s in cell.states[1:] if experiment.initial_arrays.get(s) is not None]
    if not fixed:
        return []
    return [f"NeuroML starts every gate at its steady state; the initial values of {', '.join(fixed)} "
            f"are not used (set [initial] gates = \"steady_state\" to compare with other backends)"]


def _trace_quantity(cell: ir.Cell, layout: CellLayout, var: str, i: int):
    """(LEMS quantity path, factor to hhc's SI value)."""
    if var == "v":
        return f"pop[{i}]/v", 1.0
    for ch, cid, *_ in layout.channels:
        if var == ch.current_name:
            return f"pop[{i}]/biophys/membraneProperties/{layout.density_id(cid)}/iDensity", -layout.area_m2
        for g in ch.gates:
            if var == g.state:
                return f"pop[{i}]/biophys/membraneProperties/{layout.density_id(cid)}/{cid}/{_nml_id(g.name)}/q", 1.0
    if var == "I_leak" and layout.leak is not None:
        return f"pop[{i}]/biophys/membraneProperties/{layout.density_id(layout.leak_id)}/iDensity", -layout.area_m2
    unsupported("neuroml", f"recording '{var}'", hint="recordable: v, gate states, channel currents")


def network_document(cell: ir.Cell, experiment) -> str:
    layout = CellLayout(cell)
    out = _header(f"{layout.id}_net", cell, f"Network of {experiment.size} {cell.name} cells for "
                                            f"experiment {Path(experiment.path).name}.")
    out.append(f'    <include href="{cell_filename(cell)}"/>')
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
    out.append('    <network id="net">')
    out.append(f'        <population id="pop" component="{layout.id}" size="{experiment.size}"/>')
    for pid in pulses:
        for i in range(experiment.size):
            out.append(f'        <explicitInput target="pop[{i}]" input="{pid}"/>')
    out.append("    </network>")
    out.append("</neuroml>")
    return "\n".join(out) + "\n"


def lems_document(cell: ir.Cell, experiment) -> str:
    layout = CellLayout(cell)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- LEMS simulation of {cell.name}, experiment {Path(experiment.path).name}; generated by hhc "
        f"{__version__} from {cell.source}. -->",
        "<Lems>",
        '    <Target component="sim"/>',
        '    <Include file="Cells.xml"/>',
        '    <Include file="Networks.xml"/>',
        '    <Include file="Simulation.xml"/>',
        f'    <Include file="{net_filename(cell)}"/>',
        f'    <Simulation id="sim" length="{quantity(experiment.duration * 1e3, "ms")}" '
        f'step="{quantity(experiment.dt * 1e3, "ms")}" target="net" seed="{experiment.seed}">',
    ]
    for k, tr in enumerate(experiment.traces):
        lines.append(f'        <OutputFile id="traces_{k}" fileName="traces_{k}.dat">')
        for var in tr.variables:
            for i in tr.neurons:
                path, _ = _trace_quantity(cell, layout, var, i)
                lines.append(f'            <OutputColumn id="{var}_{i}" quantity="{path}"/>')
        lines.append("        </OutputFile>")
    if experiment.record_spikes is not None:
        neurons = range(experiment.size) if experiment.record_spikes is True else experiment.record_spikes
        lines.append('        <EventOutputFile id="spikes" fileName="spikes.dat" format="TIME_ID">')
        for i in neurons:
            lines.append(f'            <EventSelection id="{i}" select="pop[{i}]" eventPort="spike"/>')
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
    v0 = uniform_initial_v(cell, exp) if exp is not None else None
    files = {cell_filename(cell): cell_document(cell, v0)}
    if exp is not None:
        files[net_filename(cell)] = network_document(cell, exp)
        files[lems_filename(cell)] = lems_document(cell, exp)
    return files
