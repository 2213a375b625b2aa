"""The Brian2 code generator: a cell's equation strings, namespace and initial values as a readable,
importable Python module (`build_neurons(N)`), the same for every device and for a researcher's own
script.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path

import sympy

from hhc.compiler import ir, units
from hhc.compiler.errors import HHCError
from hhc.compiler.version import __version__

from ..base import unsupported
from ..codegen import PYTHON_LOGICAL, ConditionPrinter, decimal_form, piecewise_branches

# Brian2's name for the SI unit of each dimension, to spell units Brian2 does not predefine (hhc's
# degC, a kelvin-sized degree, is `1.0 * kelvin`: only differences and nernst()'s explicit +273.15 use it).
_BRIAN_BASE = {units.VOLTAGE: "volt", units.CURRENT: "amp", units.CONDUCTANCE: "siemens",
               units.CAPACITANCE: "farad", units.TIME: "second", units.LENGTH: "metre",
               units.AREA: "metre**2", units.RESISTANCE: "ohm", units.RATE: "Hz",
               units.CONCENTRATION: "mmolar", units.AMOUNT: "mole", units.TEMPERATURE: "kelvin",
               units.LENGTH ** 3: "metre**3"}
# hhc unit names Brian2 exports with the same meaning (mM = mmolar = 1 mol/m3)
_BRIAN_KNOWN = {"mV", "volt", "ms", "second", "us", "nS", "uS", "mS", "siemens", "pA", "nA", "uA", "mA",
                "amp", "pF", "nF", "uF", "farad", "um", "cm", "mm", "metre", "um2", "cm2", "mm2", "ohm",
                "kohm", "Mohm", "Hz", "kHz", "MHz", "mM", "uM", "nM", "mole", "mmole", "umole", "molar"}
# hhc unit names Brian2 spells otherwise (the SI units by their names: nernst() writes J/C as V A s / ...)
_BRIAN_NAME = {"A": "amp", "s": "second", "V": "volt", "S": "siemens", "F": "farad", "m": "metre",
               "Ohm": "ohm", "kOhm": "kohm", "MOhm": "Mohm", "mol": "mole", "mmol": "mmole", "umol": "umole",
               "M": "molar"}

# The SI base units Brian2 spells unit expressions in (the order of units.Dimension's exponents).
_BRIAN_SI = ("metre", "kilogram", "second", "amp", "mole", "kelvin")

# `a if cond else b` (sympy.Piecewise): Brian2's equations have no conditional expression, so the
# generated module defines this function, with one implementation per code generation target, each
# returning the chosen branch as it is (a select, never cond*a + (1-cond)*b, which gives NaN when the
# branch not taken overflows to inf). Its branches keep their units (the same for both).
WHERE = "hhc_where"


def brian_unit_name(unit: units.Unit) -> str:
    """The name of an hhc unit in generated Brian2 code."""
    return _BRIAN_NAME.get(unit.name, unit.name)


class BrianPrinter(ConditionPrinter):
    """SymPy → Brian2 expression text: units by name, exact rationals as doubles, conditions with
    Python's and/or/not, and `a if cond else b` as hhc_where(cond, a, b)."""

    LOGICAL = PYTHON_LOGICAL

    def _print_Symbol(self, expr):
        unit = units.unit_of_symbol(expr)
        return brian_unit_name(unit) if unit else expr.name

    def _print_exprel(self, expr):
        return f"exprel({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        branches, otherwise = piecewise_branches(expr)
        text = self._print(otherwise)
        for value, cond in reversed(branches):
            text = f"{WHERE}({self._print(cond)}, {self._print(value)}, {text})"
        return text


def brian_expr(expr: sympy.Expr) -> str:
    return BrianPrinter().doprint(decimal_form(expr))


def brian_unit(dim: units.Dimension) -> str:
    """The unit text after ':' in a Brian2 equation."""
    if dim.is_dimensionless:
        return "1"
    if dim in _BRIAN_BASE:
        return _BRIAN_BASE[dim]
    parts = []
    for base, exp in zip(_BRIAN_SI, dim._vec()):
        if exp:
            parts.append(base if exp == 1 else f"{base}**{exp if exp.denominator == 1 else f'({exp})'}")
    return " * ".join(parts)


def _unit_definition(unit: units.Unit) -> str:
    base = _BRIAN_BASE.get(unit.dimension)
    if base is None:
        unsupported("brian2", f"the unit {unit.name}")
    return f"{float(unit.scale)!r} * {base}"


def equations(cell: ir.Cell, injected_current: str | None = None, parameters_as_variables: bool = False) -> str:
    """The Brian2 equation string of a cell, grouped by channel, one line per quantity.
    injected_current: the name of one more current into the cell (PyNN's i_inj); parameters_as_variables:
    every parameter a per-neuron variable instead of a namespace constant (PyNN sets them per cell)."""
    dv_dt = cell.dv_dt
    if injected_current is not None:
        dv_dt = dv_dt + sympy.Symbol(injected_current) / cell.membrane_capacitance
    lines = [f"dv/dt = {brian_expr(dv_dt)} : volt"]
    for ch in cell.channels:
        lines.append("")
        lines.append(f"# channel {ch.name}" + (f" ({ch.ion})" if ch.ion else ""))
        lines.append(f"{ch.current_name} = {_typed(cell.channel_current(ch), units.CURRENT)} : amp")
        for expr in ch.expressions:
            lines.append(f"{expr.name} = {_typed(expr.expr, expr.dimension)} : {brian_unit(expr.dimension)}")
        for g in ch.gates:
            x = g.state
            if g.form == "alpha_beta":
                lines.append(f"d{x}/dt = {x}_alpha * (1 - {x}) - {x}_beta * {x} : 1")
                lines.append(f"{x}_alpha = {_typed(g.alpha, units.RATE)} : Hz")
                lines.append(f"{x}_beta = {_typed(g.beta, units.RATE)} : Hz")
                lines.append(f"{x}_inf = {x}_alpha / ({x}_alpha + {x}_beta) : 1")
            else:
                lines.append(f"d{x}/dt = ({x}_inf - {x}) / {x}_tau : 1")
                lines.append(f"{x}_inf = {brian_expr(g.steady_state)} : 1")
                lines.append(f"{x}_tau = {_typed(g.time_constant, units.TIME)} : second")
    for pool in cell.pools:
        lines.append("")
        lines.append(_pool_comment(pool))
        if pool.is_dynamic:
            lines.append(f"d{pool.state}/dt = {brian_expr(cell.pool_derivative(pool))} : "
                         f"{brian_unit(units.CONCENTRATION)}")
    for syn in cell.synapses:
        lines.append("")
        lines += _synapse_lines(syn)
    lines.append("")
    lines.append(f"I_leak = {_typed(cell.leak_current, units.CURRENT)} : amp")
    comment = "" if parameters_as_variables else "  # input, set by the protocol"
    for inp in cell.inputs:
        lines.append(f"{inp.name} : {brian_unit(inp.dimension)}{comment}")
    if injected_current is not None:
        lines.append(f"{injected_current} : amp")
    if parameters_as_variables:
        for p in cell.parameters:
            lines.append(f"{p.name} : {brian_unit(p.dimension)}")
    return "\n".join(lines) + "\n"


def _synapse_lines(syn: ir.Synapse) -> list[str]:
    """A synapse's block: its states' ODEs (every connection's spikes jump them, see SYNAPSES) and
    its current, in dv/dt as I_<name>."""
    unit = brian_unit(syn.weight_dimension)
    what = (f"conductance-based, reversal {syn.reversal.name}" if syn.conductance_based
            else "current-based: positive weights depolarise")
    out = [f"# synapse {syn.name} ({syn.kind.replace('_', ' ')}, {what})"]
    out.append(f"{syn.current_name} = {_typed(syn.current, units.CURRENT)} : amp")
    for state, rhs in syn.derivatives.items():
        out.append(f"d{state}/dt = {brian_expr(rhs)} : {unit}")
    return out


def synapse_on_pre(cell: ir.Cell, syn: ir.Synapse) -> str:
    """The on_pre statement of a Synapses object onto this cell: each state += its factor x w (the
    double exponential's peak factor in SI, so a single spike's conductance peaks at w)."""
    from hhc.compiler import rhs as ir_rhs
    parts = []
    for state, factor in syn.jumps.items():
        f = float(ir_rhs.in_si(cell, factor))
        parts.append(f"{state}_post += w" if f == 1.0 else f"{state}_post += {f!r} * w")
    return "; ".join(parts)


def _pool_comment(pool: ir.Pool) -> str:
    """The comment heading a pool's block: what kind of pool, in the .chan file's words."""
    ion, c = pool.ion, pool.state
    if pool.kind == "decaying":
        what = (f"the {ion} currents fill a shell {pool.depth.name} under the membrane; "
                f"{c} relaxes to {pool.resting.name} with time constant {pool.decay.name}")
    elif pool.kind == "fixed_factor":
        what = (f"{pool.rho.name} x the {ion} current per area; "
                f"{c} relaxes to {pool.resting.name} with time constant {pool.decay.name}")
    else:
        what = f"{c} and {pool.outside.name} are constant parameters"
    return f"# pool {ion} ({pool.kind.replace('_', ' ')}): {what}"


def uses_piecewise(cell: ir.Cell) -> bool:
    """Whether the cell's equations contain `a if cond else b` (then the module defines hhc_where)."""
    exprs = [e.expr for e in cell.expressions] + [cell.channel_current(ch) for ch in cell.channels]
    for g in cell.gates:
        exprs += [g.steady_state, g.time_constant] + [r for r in (g.alpha, g.beta) if r is not None]
    exprs += [cell.pool_derivative(p) for p in cell.dynamic_pools] + [cell.leak_current]
    exprs += [p.value for p in cell.parameters] + [iv.value for iv in cell.initial if iv.value is not None]
    return any(e.has(sympy.Piecewise) for e in exprs)


_WHERE_DEFINITION = f'''
# `a if cond else b` of the .chan file is {WHERE}(cond, a, b): Brian2's equations have no conditional
# expression, so this Function gives one for every code generation target. Each returns the chosen
# branch as it is (never cond*a + (1-cond)*b, NaN when the other branch overflows); a and b have the
# same units, the result theirs.
def _where(condition, a, b):
    return np.where(condition, a, b)


{WHERE} = Function(_where, arg_units=[bool, None, "a"], arg_names=["condition", "a", "b"],
{" " * len(WHERE + " = Function(")}return_unit=lambda condition, a, b: a)
{WHERE}.implementations.add_numpy_implementation(_where, discard_units=True)
{WHERE}.implementations.add_implementation("cython", """
cdef inline double {WHERE}(bint condition, double a, double b):
    return a if condition else b
""", name="{WHERE}")
{WHERE}.implementations.add_implementation("cpp", """
template <typename A, typename B>
static inline auto {WHERE}(const bool condition, const A a, const B b) -> decltype(a + b)
{{ return condition ? a : b; }}
""", name="{WHERE}")
{WHERE}.implementations.add_implementation("cuda", """
template <typename A, typename B>
__host__ __device__ static inline auto {WHERE}(const bool condition, const A a, const B b) -> decltype(a + b)
{{ return condition ? a : b; }}
""", name="{WHERE}")
'''


def brian_quantity(value: sympy.Expr, dim: units.Dimension) -> str:
    """A constant with its unit; a bare number (`E = 0 mV` is stored as 0) gets the SI unit of its
    dimension, since Brian2 would read a plain 0 as dimensionless."""
    constant = all(units.unit_of_symbol(s) for s in value.free_symbols)
    if constant and (value.atoms(sympy.Function) or value.has(sympy.E, sympy.pi)):
        # exp(1), log(2) ... in a constant: its value (a module namespace has no exp or E)
        number = float(units.to_si(value))
        return repr(number) if dim.is_dimensionless else f"{number!r}*{brian_unit(dim)}"
    if dim.is_dimensionless or value.free_symbols:
        return brian_expr(value)
    return f"{float(units.to_si(value))!r}*{brian_unit(dim)}"


def _typed(expr: sympy.Expr, dim: units.Dimension) -> str:
    """An equation's right-hand side; one that is exactly 0 (a zero current or constant) keeps its
    unit, since Brian2 reads a plain 0 as dimensionless."""
    if expr.is_zero and not dim.is_dimensionless:
        return f"0*{brian_unit(dim)}"
    return brian_expr(expr)


def _parameter_text(p: ir.Parameter) -> str:
    return brian_quantity(p.value, p.dimension)


def module_text(cell: ir.Cell) -> str:
    """A readable, importable Python module for the cell."""
    used_units = sorted({units.unit_of_symbol(s) for s in cell.unit_symbols()} |
                        {units.unit_of_symbol(s) for p in cell.parameters for s in p.value.free_symbols},
                        key=lambda u: u.name)
    names = {brian_unit_name(u) for u in used_units}
    extra_units = [u for u in used_units if brian_unit_name(u) not in _BRIAN_KNOWN]
    definitions = {u.name: _unit_definition(u) for u in extra_units}
    bases = {word for text in definitions.values() for word in re.findall(r"[A-Za-z_]\w*", text)}
    where = uses_piecewise(cell)
    imports = sorted({"NeuronGroup", "volt", "amp", "second", "Hz", "siemens", "farad", "metre", "ohm"} |
                     (names & _BRIAN_KNOWN) | bases |
                     ({"Function"} if where else set()))
    sources = ", ".join(Path(s).name for s in cell.sources)
    out = [
        f'"""Brian2 model of cell {cell.name}.',
        "",
        f"Generated by hhc {__version__} from {cell.source} (reads: {sources}).",
        "Do not edit: change the .chan file and run `hhc compile` again.",
        '"""',
    ]
    if where:
        out.append("import numpy as np")
    out += [f"from brian2 import {', '.join(imports)}", ""]
    if extra_units:
        out.append("# units Brian2 does not predefine")
        for name, text in definitions.items():
            out.append(f"{name} = {text}")
        out.append("")
    if where:
        out += _WHERE_DEFINITION.strip("\n").splitlines() + ["", ""]
    out += [f'CELL = "{cell.name}"', f'SOURCE = "{cell.source}"', f'HHC_VERSION = "{__version__}"', "",
            'EQUATIONS = """', equations(cell).rstrip("\n"), '"""', "",
            "# Parameters (overridable through build_neurons(namespace=...))", "NAMESPACE = {"]
    for p in cell.parameters:
        out.append(f'    "{p.name}": {_parameter_text(p)},' + (f"  # {p.doc}" if p.doc else ""))
    for u in extra_units:
        out.append(f'    "{u.name}": {u.name},')
    if where:
        out.append(f'    "{WHERE}": {WHERE},')
    out.append("}")
    out.append("")
    if cell.dynamic_pools:
        out.append("# Initial values: constants (v and ion concentrations) first, then the gates at their")
        out.append("# steady state at those")
    else:
        out.append("# Initial values: constants, or the gate's steady state at the initial v")
    out.append("INITIAL_VALUES = {")
    for iv in sorted(cell.initial, key=lambda iv: iv.value is None):
        value = f"{iv.state}_inf" if iv.value is None else brian_quantity(iv.value, cell.state_dimension(iv.state))
        out.append(f'    "{iv.state}": "{value}",')
    given = {iv.state for iv in cell.initial}
    for syn in cell.synapses:          # no input before the first spike arrives
        for state in syn.states:
            if state not in given:
                out.append(f'    "{state}": "0*{brian_unit(syn.weight_dimension)}",')
    out.append("}")
    if cell.synapses:
        out.append("# Synapse types the cell receives: the unit of a connection's weight w and the on_pre")
        out.append("# statement of a Synapses(source, these neurons, model=\"w : unit\", on_pre=...)")
        out.append("SYNAPSES = {")
        for syn in cell.synapses:
            out.append(f'    "{syn.name}": ("{brian_unit(syn.weight_dimension)}", "{synapse_on_pre(cell, syn)}"),')
        out.append("}")
    out.append(f"STATES = {tuple(cell.states)!r}")
    out.append(f"INPUTS = {tuple(i.name for i in cell.inputs)!r}")
    if cell.threshold is not None:
        th = f"v > {brian_quantity(cell.threshold, units.VOLTAGE)}"
        out.append("# a spike is an upward crossing: no new spike until v falls back below threshold")
        out.append(f'THRESHOLD = "{th}"')
        out.append(f'REFRACTORY = "{th}"')
    else:
        out.append("THRESHOLD = None")
        out.append("REFRACTORY = False")
    out += [
        "",
        "",
        f'def build_neurons(N, method="rk4", dt=None, namespace=None, name="{cell.name.lower()}", **kwargs):',
        f'    """N {cell.name} neurons as a Brian2 NeuronGroup, initialised (v{" and concentrations" if cell.dynamic_pools else ""} first, then the gates)."""',
        "    ns = dict(NAMESPACE)",
        "    ns.update(namespace or {})",
        "    group = NeuronGroup(N, EQUATIONS, threshold=THRESHOLD, refractory=REFRACTORY, method=method,",
        "                        namespace=ns, dt=dt, name=name, **kwargs)",
        "    for state, value in INITIAL_VALUES.items():",
        "        setattr(group, state, value)",
        "    return group",
        "",
    ]
    return "\n".join(out)


def module_filename(cell: ir.Cell) -> str:
    return f"{cell.name.lower()}_brian2.py"


def import_generated(path: Path):
    """Import a generated module from its file, under a name unique to its content."""
    # by content and place: a module imported from a since-deleted temporary folder is not reused
    digest = hashlib.sha1(path.read_bytes() + str(path.resolve()).encode()).hexdigest()[:12]
    name = f"hhc_generated_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
