"""NeuroML2 (and the LEMS around it) → .chan text: an input language of the compiler.

Reads what published models are written in: `ionChannelHH`/`ionChannel`/`ionChannelPassive`/`ionChannelVShift`
with gates in every spelling (`<gateHHrates>`, `<gate type="gateHHrates">`, NeuroML 2 alpha's `<gateHH>`),
instantaneous and fractional gates, custom gate types whose q is derived, conductance scaling, Q10 settings,
standard rate types and custom LEMS `ComponentType`s (Constants, Parameters, Requirements, chains of
DerivedVariables, ConditionalDerivedVariables), `<include>`d files, single-segment cells with Ca pools, Nernst
reversal and vShift, and a network (temperature, one population, pulse generators) which becomes an
experiment file. What hhc cannot hold is refused as `file:line: element: why`, never dropped.

The meaning followed is NeuroML's own (NeuroML2CoreTypes Cells.xml / Channels.xml as jLEMS runs them, numbers
in SI units); where hhc's language spells it differently the translation says so in a comment.
"""
from __future__ import annotations

import ast
import hashlib
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import sympy
from sympy.printing.str import StrPrinter

from . import ir, units
from .singularities import remove_singularities
from .errors import HHCError, SourceLocation

# The NeuroML standard's own files: documents include them for LEMS, hhc knows their content.
STANDARD_INCLUDES = {"NeuroMLCoreDimensions.xml", "NeuroMLCoreCompTypes.xml", "Cells.xml", "Channels.xml",
                     "Synapses.xml", "Inputs.xml", "Networks.xml", "PyNN.xml", "Simulation.xml",
                     "NeuroML2CoreTypes.xml"}

# NeuroML unit symbol → (.chan unit text, exact factor to it): every unit of NeuroMLCoreDimensions.xml (and a
# few more). Temperatures are handled apart (offsets).
_UNITS = {
    "s": ("s", 1), "ms": ("ms", 1), "min": ("s", 60), "hour": ("s", 3600),
    "per_s": ("/s", 1), "Hz": ("Hz", 1), "kHz": ("kHz", 1), "per_ms": ("/ms", 1),
    "per_min": ("/s", Fraction(1, 60)), "per_hour": ("/s", Fraction(1, 3600)),
    "m": ("m", 1), "cm": ("cm", 1), "mm": ("mm", 1), "um": ("um", 1),
    "m2": ("m2", 1), "cm2": ("cm2", 1), "um2": ("um2", 1),
    "m3": ("m3", 1), "cm3": ("m3", Fraction(1, 10**6)), "litre": ("m3", Fraction(1, 1000)),
    "um3": ("m3", Fraction(1, 10**18)),
    "V": ("V", 1), "mV": ("mV", 1), "per_V": ("/V", 1), "per_mV": ("/mV", 1),
    "ohm": ("ohm", 1), "kohm": ("kohm", 1), "Mohm": ("Mohm", 1),
    "ohm_m": ("ohm*m", 1), "ohm_cm": ("ohm*cm", 1), "kohm_cm": ("kohm*cm", 1),
    "S": ("S", 1), "mS": ("mS", 1), "uS": ("uS", 1), "nS": ("nS", 1), "pS": ("pS", 1),
    "S_per_m2": ("S/m2", 1), "mS_per_cm2": ("mS/cm2", 1), "S_per_cm2": ("S/cm2", 1),
    "uS_per_cm2": ("uS/cm2", 1), "pS_per_um2": ("pS/um2", 1),
    "F": ("F", 1), "uF": ("uF", 1), "nF": ("nF", 1), "pF": ("pF", 1),
    "F_per_m2": ("F/m2", 1), "uF_per_cm2": ("uF/cm2", 1),
    "A": ("A", 1), "mA": ("mA", 1), "uA": ("uA", 1), "nA": ("nA", 1), "pA": ("pA", 1),
    "A_per_m2": ("A/m2", 1), "uA_per_cm2": ("uA/cm2", 1), "mA_per_cm2": ("mA/cm2", 1),
    "C": ("A*s", 1), "e": ("A*s", Fraction("1.602176634e-19")), "C_per_mol": ("A*s/mol", 1),
    "nA_ms_per_amol": ("A*s/mol", 10**6), "pC_per_umol": ("A*s/mol", Fraction(1, 10**6)),
    "mol_per_m3": ("mM", 1), "mol_per_cm3": ("mM", 10**6), "M": ("M", 1), "mM": ("mM", 1),
    "uM": ("uM", 1), "nM": ("nM", 1), "mol": ("mol", 1),
    "m_per_s": ("m/s", 1), "cm_per_s": ("m/s", Fraction(1, 100)), "um_per_ms": ("m/s", Fraction(1, 1000)),
    "cm_per_ms": ("m/s", 10),
    "J_per_K_per_mol": ("V*A*s/degC/mol", 1), "fJ_per_K_per_umol": ("V*A*s/degC/mol", Fraction(1, 10**9)),
    "S_per_V": ("S/V", 1), "nS_per_mV": ("nS/mV", 1),
    "mol_per_m_per_A_per_s": ("mol/m/A/s", 1), "mol_per_cm_per_uA_per_ms": ("mol/m/A/s", 10**11),
    "umol_per_cm_per_nA_per_ms": ("mol/m/A/s", 10**8),
}
_TEMPERATURE_UNITS = {"K": Fraction(0), "degC": Fraction("273.15")}          # offset to kelvin
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"

STANDARD_RATES = {"HHExpRate", "HHSigmoidRate", "HHExpLinearRate"}
STANDARD_VARIABLES = {"HHExpVariable", "HHSigmoidVariable", "HHExpLinearVariable"}
GATE_KINDS = {"gateHHrates": ("forwardRate", "reverseRate"), "gateHHtauInf": ("timeCourse", "steadyState"),
              "gateHHratesTau": ("forwardRate", "reverseRate", "timeCourse"),
              "gateHHratesInf": ("forwardRate", "reverseRate", "steadyState"),
              "gateHHratesTauInf": ("forwardRate", "reverseRate", "timeCourse", "steadyState"),
              "gateHHInstantaneous": ("steadyState",)}
# what a rate element's custom ComponentType must extend, per role
_BASES = {"rate": ("baseVoltageDepRate", "baseVoltageConcDepRate", "baseHHRate"),
          "variable": ("baseVoltageDepVariable", "baseVoltageConcDepVariable", "baseHHVariable"),
          "time": ("baseVoltageDepTime", "baseVoltageConcDepTime")}
_EXPOSURE = {"rate": "r", "variable": "x", "time": "t"}
_POINT_CELLS = {"iafCell", "iafTauCell", "iafTauRefCell", "iafRefCell", "izhikevichCell", "izhikevich2007Cell",
                "adExIaFCell", "fitzHughNagumoCell", "fitzHughNagumo1969Cell", "pinskyRinzelCA3Cell",
                "hindmarshRose1984Cell", "IF_curr_alpha", "IF_curr_exp", "IF_cond_alpha", "IF_cond_exp",
                "EIF_cond_exp_isfa_ista", "EIF_cond_alpha_isfa_ista", "HH_cond_exp", "cell2CaPools"}

CAI, TEMPERATURE, VSHIFT = sympy.Symbol("cai"), sympy.Symbol("temperature"), sympy.Symbol("vShift")
FWD, REV = sympy.Symbol("fwd"), sympy.Symbol("rev")
RATE_SCALE = sympy.Symbol("rateScale")          # a gate's Q10 factor, which NeuroML passes to its rate types
KELVIN_OFFSET = sympy.Float(273.15, 15) * units.unit_symbol("degC")


def tag_of(el) -> str:
    tag = el.tag
    return tag.split("}", 1)[1] if isinstance(tag, str) and "}" in tag else str(tag)


def children(el, tag: str | None = None) -> list:
    return [c for c in el if isinstance(c.tag, str) and (tag is None or tag_of(c) == tag)]


def fmt(x: float) -> str:
    s = f"{x:.12g}"
    if "e" in s:
        mantissa, exp = s.split("e")
        s = f"{mantissa}e{int(exp)}"
    return s


# ---------------------------------------------------------------------------------------------
# files

@dataclass
class Source:
    """One XML file read: its path and lines, for located errors."""
    path: str
    lines: list[str]

    def location(self, element) -> SourceLocation | None:
        line = getattr(element, "sourceline", None) or 0
        if not line:
            return None
        text = self.lines[line - 1] if line <= len(self.lines) else ""
        return SourceLocation(self.path, line, max(1, text.find("<") + 1), text)

    def error(self, element, message: str, hint: str | None = None) -> HHCError:
        loc = self.location(element)
        return HHCError(message if loc else f"{self.path}: {message}", loc, hint)


@dataclass
class Item:
    """A top-level element and the file it came from."""
    element: object
    source: Source

    @property
    def tag(self) -> str:
        return tag_of(self.element)

    def error(self, message: str, element=None, hint: str | None = None) -> HHCError:
        return self.source.error(self.element if element is None else element, message, hint)


class Documents:
    """Every top-level element of a file and of what it includes, each file read once."""

    def __init__(self, path: str | Path, text: str | None = None):
        self.items: list[Item] = []
        self.read: set[Path] = set()
        self._load(Path(path), text, stack=[])

    def _parse(self, path: Path, text: str) -> tuple[object, Source]:
        try:
            from lxml import etree
        except ImportError:     # lxml comes with the [neuroml] extra
            raise HHCError("hhc import needs lxml: pip install 'hhc[neuroml]'") from None
        source = Source(str(path), text.splitlines())
        try:
            root = etree.fromstring(text.encode(), etree.XMLParser(remove_comments=True, huge_tree=True))
        except etree.XMLSyntaxError as exc:
            line = exc.lineno or 0
            line_text = source.lines[line - 1] if 0 < line <= len(source.lines) else ""
            raise HHCError(f"not well-formed XML: {exc.msg}",
                           SourceLocation(str(path), line, max(1, exc.offset or 1), line_text)) from None
        if tag_of(root) not in ("neuroml", "Lems"):
            raise source.error(root, f"<{tag_of(root)}> is not a NeuroML2 (<neuroml>) or LEMS (<Lems>) document")
        return root, source

    def _load(self, path: Path, text: str | None, stack: list[tuple[Path, Source, object]]):
        if text is None:
            try:
                text = path.read_text()
            except OSError as exc:
                if stack:
                    _, source, element = stack[-1]
                    raise source.error(element, f"cannot include {path.name}: {exc.strerror} ({path})") from None
                raise HHCError(f"cannot read {path}: {exc.strerror}") from None
        key = path.resolve()
        self.read.add(key)
        root, source = self._parse(path, text)
        for el in children(root):
            tag = tag_of(el)
            if tag in ("include", "Include"):
                self._include(el, source, path, stack)
            else:
                self.items.append(Item(el, source))

    def _include(self, el, source: Source, path: Path, stack):
        href = el.get("href") or el.get("file") or el.get("url")
        if not href:
            raise source.error(el, "<include> without href")
        target = (path.parent / href)
        key = target.resolve()
        chain = [p for p, _, _ in stack] + [path.resolve()]
        if key in chain:
            names = " → ".join(p.name for p in chain[chain.index(key):]) + f" → {target.name}"
            raise source.error(el, f"include cycle: {names}")
        if key in self.read:
            return                                   # read once, however often included
        if not target.exists() and Path(href).name in STANDARD_INCLUDES:
            return                                   # the standard's own definitions: hhc knows them
        self._load(target, None, stack + [(path.resolve(), source, el)])

    def of(self, *tags: str) -> list[Item]:
        return [i for i in self.items if i.tag in tags]


# ---------------------------------------------------------------------------------------------
# quantities and expressions

def _unit_expr(text: str) -> sympy.Expr:
    """'mol/m/A/s' → mol/(m*A*s) with hhc's unit symbols."""
    expr, op = sympy.Integer(1), "*"
    for token in re.split(r"([*/])", text):
        if token in "*/":
            op = token or op
            continue
        sym = units.unit_symbol(token)
        expr = expr * sym if op == "*" else expr / sym
    return expr


def _exact_quantity(text: str | None, item: Item, element, what: str) -> tuple[sympy.Rational, str]:
    """'-40mV' → (-40, 'mV'), '0.1 per_ms' → (1/10, '/ms'), '310K' → (310, 'degC'): the exact decimal written, in
    hhc's units, with LEMS's meaning for temperatures (the kelvin value, in degC, whose size is a kelvin)."""
    m = re.fullmatch(rf"\s*({_NUMBER})\s*([A-Za-z_0-9]*)\s*", text or "")
    if not m:
        raise item.error(f"{what} = {text!r} is not a NeuroML quantity", element)
    number, unit = exact(m.group(1)), m.group(2)
    if unit in _TEMPERATURE_UNITS:
        return number + exact(_TEMPERATURE_UNITS[unit]), "degC"
    if unit and unit not in _UNITS:
        raise item.error(f"{what} = {text!r}: unit {unit!r} is not a NeuroML unit hhc knows", element)
    if not unit:
        return number, ""
    chan_unit, factor = _UNITS[unit]
    return number * exact(factor), chan_unit


def _parse_quantity(text: str | None, item: Item, element, what: str) -> tuple[float, str]:
    number, unit = _exact_quantity(text, item, element, what)
    return float(number), unit


def quantity(text: str | None, item: Item, element, what: str) -> sympy.Expr:
    """A NeuroML quantity as a SymPy quantity in hhc's unit symbols (the number exact)."""
    number, unit = _exact_quantity(text, item, element, what)
    if not unit:
        return number
    return number * _unit_expr(unit.lstrip("/")) ** (-1 if unit.startswith("/") else 1)


def qattr(text: str | None, item: Item, element, what: str) -> str:
    """A NeuroML quantity as .chan text: '-65 mV', '0.1 / ms' (keeps the unit of a zero)."""
    number, unit = _exact_quantity(text, item, element, what)
    if not unit:
        return number_text(number)
    return f"{number_text(number)} / {unit[1:]}" if unit.startswith("/") else f"{number_text(number)} {unit}"


def celsius(text: str | None, item: Item, element, what: str) -> float:
    """An absolute temperature ('6.3degC', '279.45 K') in degrees Celsius, as .chan writes them."""
    m = re.fullmatch(rf"\s*({_NUMBER})\s*(K|degC)\s*", text or "")
    if not m:
        raise item.error(f"{what} = {text!r} is not a temperature (e.g. '6.3degC' or '279.45K')", element)
    number = exact(m.group(1))
    return float(number if m.group(2) == "degC" else number - exact("273.15"))


def exact(x) -> sympy.Rational:
    """A number as the exact decimal it was written as ('3.8' → 19/5; a float as its shortest decimal).

    Exact numbers keep exp(a + b·v) whole: SymPy splits a Float a off as a factor e^a, rounded when printed,
    which moves the root of exp(u) − 1 away from that of its numerator and hides removable singularities."""
    if isinstance(x, sympy.Rational):
        return x
    if isinstance(x, Fraction):
        return sympy.Rational(x.numerator, x.denominator)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"{x} is not a finite number")
        x = repr(x)
    return sympy.Rational(str(x))


def _terminating(r: sympy.Rational) -> bool:
    q = int(r.q)
    for f in (2, 5):
        while q % f == 0:
            q //= f
    return q == 1


def number_text(r) -> str:
    """An exact number as .chan text: a decimal when it has one of at most 12 significant digits ('0.055',
    '1.5e-10'), a small fraction '(5/19)' (exact), else 12 significant digits."""
    r = exact(r)
    if r.is_Integer:
        return str(int(r))
    if _terminating(r):
        text = fmt(float(r))
        if exact(text) == r:
            return text
    if abs(r.q) < 1000:
        return f"({r.p}/{r.q})"
    return fmt(float(r))


class ChanPrinter(StrPrinter):
    """SymPy → .chan expression text: units by name, exact decimals, `^`, `a if c else b` with the
    language's precedence (`and` binds tighter than `or`, parentheses group), and a zero written with the
    unit of what it stands for (`0 ms` where the other branch is a time)."""

    def _print_Symbol(self, expr):
        unit = units.unit_of_symbol(expr)
        return unit.name if unit else expr.name

    def _print_Rational(self, expr):
        return number_text(expr)

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Float(self, expr):
        return fmt(float(expr))

    def _print_Mul(self, expr):
        c, rest = expr.as_coeff_Mul()
        if c.is_Rational and not c.is_Integer and _terminating(c) and rest is not sympy.S.One \
                and exact(number_text(abs(c))) == abs(c):
            # a decimal coefficient: 0.055*v/mV rather than 11*v/(200*mV)
            text = super()._print_Mul(sympy.Mul(sympy.Symbol(number_text(abs(c))), rest, evaluate=False))
            return ("-" if c < 0 else "") + text
        return super()._print_Mul(expr)

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        if e == sympy.Rational(1, 2):
            return f"sqrt({self._print(base)})"
        if e == -1:
            return f"1/({self._print(base)})"
        if e == -sympy.Rational(1, 2):
            return f"1/sqrt({self._print(base)})"
        return f"({self._print(base)})^({self._print(e)})"

    def _print_exprel(self, expr):
        return f"exprel({self._print(expr.args[0])})"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        dim = next((dimension(value) for value, _ in pieces if value != 0), units.DIMENSIONLESS)
        text = self._value(pieces[-1][0], dim)        # the last case is the default (LEMS: no condition)
        for value, cond in reversed(pieces[:-1]):
            text = f"({self._value(value, dim)} if {self._condition(_plain_logic(cond))} else {text})"
        return text

    def _value(self, value, dim) -> str:
        return zero_text(dim) if value == 0 else self._print(value)

    def _condition(self, cond, inside=None) -> str:
        """A condition as .chan writes it: `and` binds tighter than `or`, so only an `or` inside an `and`
        needs parentheses."""
        if isinstance(cond, (sympy.And, sympy.Or)):
            joiner = " and " if isinstance(cond, sympy.And) else " or "
            text = joiner.join(self._condition(a, type(cond)) for a in cond.args)
            return f"({text})" if inside is sympy.And and isinstance(cond, sympy.Or) else text
        return self._print(cond)

    def _print_Relational(self, expr):
        lhs, rhs = expr.lhs, expr.rhs
        left = zero_text(dimension(rhs)) if lhs == 0 else self._print(lhs)
        right = zero_text(dimension(lhs)) if rhs == 0 else self._print(rhs)
        return f"{left} {expr.rel_op} {right}"


# what hhc's names stand for, for the dimension of an imported expression
_SYMBOL_DIMENSIONS = {"v": units.VOLTAGE, "cai": units.CONCENTRATION, "temperature": units.TEMPERATURE,
                      "vShift": units.VOLTAGE, "fwd": units.RATE, "rev": units.RATE, "rateScale": units.DIMENSIONLESS}


def dimension(expr) -> units.Dimension:
    """The physical dimension of an imported expression (its units, v, cai, temperature …)."""
    if isinstance(expr, sympy.Symbol):
        unit = units.unit_of_symbol(expr)
        return unit.dimension if unit else _SYMBOL_DIMENSIONS.get(expr.name, units.DIMENSIONLESS)
    if isinstance(expr, sympy.Add):
        dims = [dimension(a) for a in expr.args]
        return next((d for d in dims if not d.is_dimensionless), units.DIMENSIONLESS)
    if isinstance(expr, sympy.Mul):
        out = units.DIMENSIONLESS
        for a in expr.args:
            out = out * dimension(a)
        return out
    if isinstance(expr, sympy.Pow):
        e = expr.args[1]
        return dimension(expr.args[0]) ** Fraction(str(e)) if e.is_Rational else units.DIMENSIONLESS
    if isinstance(expr, sympy.Piecewise):
        return next((dimension(v) for v, _ in expr.args if v != 0), units.DIMENSIONLESS)
    if isinstance(expr, sympy.Abs):
        return dimension(expr.args[0])
    return units.DIMENSIONLESS


def as_dimension(expr: sympy.Expr, dim: units.Dimension) -> tuple[sympy.Expr, bool]:
    """expr as a quantity of dim, as jLEMS evaluates a LEMS expression: numerically in SI units, so a value
    whose units do not make up dim (`1/(alpha + beta) * TIME_SCALE`, a time²) stands for that many SI units of
    dim. Each branch of a conditional separately. (expr, whether anything had to be reinterpreted)."""
    if isinstance(expr, sympy.Piecewise):
        pieces = [(as_dimension(v, dim), c) for v, c in expr.args]
        if not any(changed for (_, changed), _ in pieces):
            return expr, False
        return sympy.Piecewise(*[(v, c) for (v, _), c in pieces], evaluate=False), True
    have = dimension(expr)
    if expr == 0 or have == dim:
        return expr, False
    return expr * si_unit(dim) / si_unit(have), True


def si_unit(dim: units.Dimension) -> sympy.Expr:
    """1 in SI base units of a dimension, written with hhc's units: V^b m^(a−2b) s^(c+3b) A^(d+b) mol^e degC^f
    (the volt carries the kilogram)."""
    a, b, c, d, e, f = dim._vec()
    out = sympy.Integer(1)
    for name, power in (("V", b), ("m", a - 2 * b), ("s", c + 3 * b), ("A", d + b), ("mol", e), ("degC", f)):
        if power:
            out *= units.unit_symbol(name) ** sympy.Rational(power.numerator, power.denominator)
    return out


_ZERO_UNITS = {units.TIME: "0 ms", units.RATE: "0 / ms", units.VOLTAGE: "0 mV", units.CONCENTRATION: "0 mM",
               units.TEMPERATURE: "0 degC", units.CURRENT: "0 nA", units.CONDUCTANCE: "0 nS"}


def zero_text(dim: units.Dimension) -> str:
    """Zero written with a unit of the dimension it stands for (SymPy's 0·ms is a bare 0)."""
    if dim.is_dimensionless:
        return "0"
    return _ZERO_UNITS.get(dim) or f"0 * {ChanPrinter().doprint(si_unit(dim))}"


def _plain_logic(cond):
    """== and != as the comparisons .chan has: a == b is a >= b and a <= b; a != b is a < b or a > b."""
    if isinstance(cond, sympy.Eq):
        return sympy.And(sympy.GreaterThan(cond.lhs, cond.rhs, evaluate=False),
                         sympy.LessThan(cond.lhs, cond.rhs, evaluate=False), evaluate=False)
    if isinstance(cond, sympy.Ne):
        return sympy.Or(sympy.StrictLessThan(cond.lhs, cond.rhs, evaluate=False),
                        sympy.StrictGreaterThan(cond.lhs, cond.rhs, evaluate=False), evaluate=False)
    if isinstance(cond, (sympy.And, sympy.Or)):
        return cond.func(*[_plain_logic(a) for a in cond.args], evaluate=False)
    if cond is sympy.true or cond is True:
        raise ValueError("a condition that is always true")
    return cond


def chan_text(expr: sympy.Expr, dim: units.Dimension | None = None) -> str:
    """.chan text of an expression; a zero expression is written in a unit of dim (`0 ms` for a time)."""
    if expr == 0 and dim is not None:
        return zero_text(dim)
    return ChanPrinter().doprint(expr)


_LEMS_OPERATORS = [(r"\.(lt)\.", " < "), (r"\.(gt)\.", " > "), (r"\.(le|leq)\.", " <= "),
                   (r"\.(ge|geq)\.", " >= "), (r"\.(eq)\.", " == "), (r"\.(neq|ne)\.", " != "),
                   (r"\.(and)\.", " and "), (r"\.(or)\.", " or ")]
_FUNCTIONS = {"exp": sympy.exp, "log": sympy.log, "ln": sympy.log, "sqrt": sympy.sqrt, "sinh": sympy.sinh,
              "cosh": sympy.cosh, "tanh": sympy.tanh, "abs": sympy.Abs}
_UNSUPPORTED_FUNCTIONS = {"sin", "cos", "tan", "ceil", "floor", "random", "factorial"}


def _si_match(a: sympy.Expr, b: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """LEMS evaluates in SI units: a bare number added to or compared with a quantity is that many SI units
    (`1/(alpha + beta) .lt. 0.00005` compares with 0.00005 s). Give the number that unit, so that .chan, which
    checks dimensions, reads the same comparison."""
    if a.is_number and a != 0 and not b.is_number:
        dim = dimension(b)
        if not dim.is_dimensionless:
            return a * si_unit(dim), b
    if b.is_number and b != 0 and not a.is_number:
        dim = dimension(a)
        if not dim.is_dimensionless:
            return a, b * si_unit(dim)
    return a, b


class LemsExpression:
    """A LEMS expression (`rate * exp((v - midpoint)/scale)`, `V .lt. -40 .and. x .gt. 0`) → SymPy.

    LEMS writes `^` for powers and `.lt.` … for comparisons; after replacing those the text is a
    Python expression, read with `ast` and built node by node, so nothing is evaluated."""

    def __init__(self, item: Item, element, resolve):
        self.item, self.element, self.resolve = item, element, resolve

    def parse(self, text: str | None) -> sympy.Expr:
        if text is None:
            raise self.item.error(f"<{tag_of(self.element)}> has no value", self.element)
        py = text.replace("^", "**")
        for pattern, op in _LEMS_OPERATORS:
            py = re.sub(pattern, op, py, flags=re.IGNORECASE)
        try:
            tree = ast.parse(py.strip(), mode="eval")
        except SyntaxError:
            raise self.item.error(f"cannot read the LEMS expression {text!r}", self.element) from None
        self.text = text
        return self._node(tree.body)

    def _fail(self, why: str) -> HHCError:
        return self.item.error(f"in {self.text!r}: {why}", self.element)

    def _node(self, node) -> sympy.Expr:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return exact(node.value)
        if isinstance(node, ast.Name):
            return self.resolve(node.id, self._fail)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self._node(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            a, b = self._node(node.left), self._node(node.right)
            if isinstance(node.op, (ast.Add, ast.Sub)):
                a, b = _si_match(a, b)
            ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                   ast.Div: lambda: a / b, ast.Pow: lambda: a ** b}
            if type(node.op) in ops:
                return ops[type(node.op)]()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1:
            return self._call(node.func.id, self._node(node.args[0]))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BoolOp):
            parts = [self._node(v) for v in node.values]
            return sympy.And(*parts) if isinstance(node.op, ast.And) else sympy.Or(*parts)
        raise self._fail(f"{ast.unparse(node)!r} is not a LEMS expression hhc can translate")

    def _call(self, name: str, arg: sympy.Expr) -> sympy.Expr:
        if name in _FUNCTIONS:
            return _FUNCTIONS[name](arg)
        if name == "H":      # Heaviside, as LEMS defines it (jLEMS gives 0.5 at exactly 0)
            return sympy.Piecewise((1, sympy.StrictGreaterThan(arg, 0)), (0, True))
        if name == "random":
            raise self._fail("random() makes the model stochastic; hhc models are deterministic")
        if name in _UNSUPPORTED_FUNCTIONS:
            raise self._fail(f"{name}() is not a function of the .chan language (exp, log, sqrt, sinh, cosh, "
                             f"tanh, abs, exprel)")
        raise self._fail(f"unknown function {name}()")

    def _compare(self, node) -> sympy.Expr:
        rel = {ast.Lt: sympy.StrictLessThan, ast.Gt: sympy.StrictGreaterThan, ast.LtE: sympy.LessThan,
               ast.GtE: sympy.GreaterThan, ast.Eq: sympy.Eq, ast.NotEq: sympy.Ne}
        left, parts = self._node(node.left), []
        for op, right_node in zip(node.ops, node.comparators):
            right = self._node(right_node)
            parts.append(rel[type(op)](*_si_match(left, right), evaluate=False))
            left = right
        return parts[0] if len(parts) == 1 else sympy.And(*parts)


# ---------------------------------------------------------------------------------------------
# rates and gates

@dataclass
class Gate:
    name: str
    power: int
    lines: list[str] = field(default_factory=list)
    uses_vshift: bool = False
    comment: str | None = None             # said on the gate's line


@dataclass
class Factor:
    """What a NeuroML gate contributes to the open fraction: `m^3`, or a gateFractional's weighted sum of
    its sub-gates `(0.7*h_fast + 0.3*h_slow)^1`."""
    text: str
    plain: bool                            # a plain gate^power: the default current holds it


@dataclass
class Channel:
    id: str
    item: Item
    species: str | None
    gates: list[Gate]
    passive: bool
    hh_gateless: bool                      # an ionChannelHH without gates: hhc's own leak form
    vshift_note: str | None = None
    factors: list[Factor] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)   # channel-level lines (conductance scaling)
    scale: str | None = None               # the helper multiplying the conductance (conductanceScaling)

    @property
    def current(self) -> str | None:
        """The explicit current when NeuroML's open fraction is more than the default gbar·Π gate^power."""
        if self.scale is None and all(f.plain for f in self.factors):
            return None
        fraction = " * ".join([self.scale] * (self.scale is not None) + [f.text for f in self.factors])
        return f"current = {fraction} * gbar * (v - E)"

    def lines(self) -> list[str]:
        return self.helpers + [line for g in self.gates for line in g.lines]


class RateReader:
    """Standard and custom rate components (forwardRate, steadyState, timeCourse …) → SymPy."""

    def __init__(self, docs: Documents):
        self.types = {i.element.get("name"): i for i in docs.of("ComponentType")}

    def expression(self, item: Item, el, role: str) -> sympy.Expr:
        type_name = el.get("type")
        if type_name is None:
            raise item.error(f"<{tag_of(el)}> has no type", el)
        if role == "rate" and type_name in STANDARD_RATES or role == "variable" and type_name in STANDARD_VARIABLES:
            return self._standard(item, el, type_name)
        if role == "time" and type_name == "fixedTimeCourse":
            return quantity(el.get("tau"), item, el, "tau")
        return self._custom(item, el, type_name, role)

    def standard_text(self, item: Item, el, role: str) -> str | None:
        """A standard type as a person writes it ('1 / ms / exprel(-(v + 40 mV) / (10 mV))'), else None."""
        type_name = el.get("type")
        if role == "time" and type_name == "fixedTimeCourse":
            return qattr(el.get("tau"), item, el, "tau")
        if not (role == "rate" and type_name in STANDARD_RATES or role == "variable" and type_name in STANDARD_VARIABLES):
            return None
        self._standard(item, el, type_name)                     # checks the attributes
        rate = qattr(el.get("rate"), item, el, "rate")
        mid, mid_unit = _parse_quantity(el.get("midpoint"), item, el, "midpoint")
        shifted = "v" if mid == 0 else f"(v {'+' if mid < 0 else '-'} {fmt(abs(mid))} {mid_unit})"
        x = f"{shifted} / ({qattr(el.get('scale'), item, el, 'scale')})"
        if type_name in ("HHExpRate", "HHExpVariable"):
            return f"{rate} * exp({x})"
        if type_name in ("HHSigmoidRate", "HHSigmoidVariable"):
            return f"{rate} / (1 + exp(-{x}))"
        return f"{rate} / exprel(-{x})"

    def _standard(self, item: Item, el, type_name: str) -> sympy.Expr:
        for name in ("rate", "midpoint", "scale"):
            if el.get(name) is None:
                raise item.error(f"<{tag_of(el)} type={type_name!r}> needs rate, midpoint and scale", el)
        rate = quantity(el.get("rate"), item, el, "rate")
        x = (ir.V - quantity(el.get("midpoint"), item, el, "midpoint")) / quantity(el.get("scale"), item, el, "scale")
        if type_name in ("HHExpRate", "HHExpVariable"):
            return rate * sympy.exp(x)
        if type_name in ("HHSigmoidRate", "HHSigmoidVariable"):
            return rate / (1 + sympy.exp(-x))
        return rate / ir.exprel(-x)          # rate·x/(1 − e^−x), finite at x = 0

    def _members(self, type_item: Item, seen=()) -> list:
        """The ComponentType's children, with those of custom types it extends (parents first)."""
        parent = type_item.element.get("extends", "")
        inherited = self._members(self.types[parent], seen + (parent,)) \
            if parent in self.types and parent not in seen else []
        return inherited + children(type_item.element)

    def base(self, type_item: Item, seen=()) -> str:
        """The standard NeuroML type a custom ComponentType extends, through custom types it extends."""
        parent = type_item.element.get("extends", "")
        if parent in self.types and parent not in seen:
            return self.base(self.types[parent], seen + (parent,))
        return parent

    def _custom(self, item: Item, el, type_name: str, role: str) -> sympy.Expr:
        ct = self.types.get(type_name)
        if ct is None:
            raise item.error(f"unknown component type {type_name!r} for <{tag_of(el)}>: neither a standard NeuroML "
                             f"rate type nor a ComponentType in this file or its includes", el)
        base = self.base(ct)
        if base not in _BASES[role]:
            kind = {"rate": "a rate", "variable": "a steady state", "time": "a time course"}[role]
            raise ct.error(f"ComponentType {type_name!r} extends {base or 'nothing'!r}; {kind} must extend "
                           f"{' or '.join(_BASES[role])}")
        return self.derived(item, el, ct, _EXPOSURE[role], base)

    def derived(self, item: Item, el, ct: Item, exposure: str, base: str) -> sympy.Expr:
        """The exposure of a custom ComponentType (its Constants, the element's Parameters, Requirements and
        DerivedVariables, in any order) as one expression."""
        type_name = ct.element.get("name")
        env: dict[str, sympy.Expr] = {"v": ir.V}          # the standard base types require v …
        if "Conc" in base or base.endswith("CaDependent"):
            env["caConc"] = CAI                            # … and caConc
        if "ConductanceScaling" in base:
            env["temperature"] = TEMPERATURE + KELVIN_OFFSET
        if base in ("baseHHRate", "baseHHVariable"):      # … and these have rate, midpoint, scale
            for name in ("rate", "midpoint", "scale"):
                if el.get(name) is not None:
                    env[name] = quantity(el.get(name), item, el, name)
        defs: dict[str, object] = {}
        requirements = {"v": ir.V, "caConc": CAI, "temperature": TEMPERATURE + KELVIN_OFFSET, "vShift": VSHIFT,
                        "alpha": FWD, "beta": REV, "rateScale": RATE_SCALE}
        for c in self._members(ct):
            tag, name = tag_of(c), c.get("name")
            if tag == "Constant":
                env[name] = quantity(c.get("value"), ct, c, name)
            elif tag == "Parameter":
                if el.get(name) is None:
                    raise item.error(f"<{tag_of(el)} type={type_name!r}> does not set parameter {name!r}", el)
                env[name] = quantity(el.get(name), item, el, name)
            elif tag == "Requirement":
                if name not in requirements:
                    raise ct.error(f"ComponentType {type_name!r} requires {name!r}; hhc provides v, caConc, "
                                   f"temperature, vShift, rateScale (and alpha, beta inside a gate with rates)", c)
                env[name] = requirements[name]
            elif tag in ("Dynamics", "Behavior"):          # Behavior: NeuroML 2 alpha's name for Dynamics
                for d in children(c):
                    if tag_of(d) not in ("DerivedVariable", "ConditionalDerivedVariable"):
                        raise ct.error(f"<{tag_of(d)}> in the dynamics of {type_name!r}: hhc imports rate types "
                                       f"without a state of their own (only DerivedVariable and "
                                       f"ConditionalDerivedVariable)", d)
                    defs[d.get("name")] = d
            elif tag in ("Exposure", "notes", "Text", "Property", "property", "annotation", "Child", "Children"):
                continue
            else:
                raise ct.error(f"<{tag}> in ComponentType {type_name!r} is not supported by hhc import", c)
        if not defs:
            raise ct.error(f"ComponentType {type_name!r} (extends {base}) has no <Dynamics> defining {exposure!r}")
        target = next((n for n, d in defs.items() if d.get("exposure") == exposure), exposure)
        if target not in defs:
            raise ct.error(f"ComponentType {type_name!r} does not define {exposure!r}")
        return _Derived(ct, env, defs).value(target)


class _Derived:
    """The derived variables of one component, resolved on demand (LEMS allows any order)."""

    def __init__(self, item: Item, env: dict, defs: dict):
        self.item, self.env, self.defs, self.busy = item, env, defs, []

    def value(self, name: str, fail=None) -> sympy.Expr:
        if name in self.env:
            return self.env[name]
        if name not in self.defs:
            raise (fail or (lambda why: self.item.error(why)))(
                f"{name!r} is not a Parameter, Constant, Requirement or derived variable of this ComponentType")
        d = self.defs[name]
        if name in self.busy:
            raise self.item.error(f"circular definition: {' → '.join(self.busy + [name])}", d)
        self.busy.append(name)
        reader = LemsExpression(self.item, d, self.value)
        if tag_of(d) == "DerivedVariable":
            if d.get("select") is not None:
                raise self.item.error(f"derived variable {name!r} selects {d.get('select')!r}: a rate reads no "
                                      f"other component", d)
            result = reader.parse(d.get("value"))
        else:
            result = self._conditional(d, reader)
        self.busy.pop()
        self.env[name] = result
        return result

    def _conditional(self, d, reader: LemsExpression) -> sympy.Expr:
        cases = children(d, "Case")
        if not cases:
            raise self.item.error(f"<ConditionalDerivedVariable name={d.get('name')!r}> has no <Case>", d)
        exprel = self._quotient_as_exprel(cases)
        if exprel is not None:
            return exprel
        conditional = [c for c in cases if c.get("condition")]
        default = [c for c in cases if not c.get("condition")]
        if len(default) > 1:
            raise self.item.error("a ConditionalDerivedVariable has more than one Case without a condition", d)
        # the Case without condition is the default; without one the last Case is taken as it
        ordered = conditional + default if default else conditional
        pieces = [(LemsExpression(self.item, c, self.value).parse(c.get("value")),
                   LemsExpression(self.item, c, self.value).parse(c.get("condition")) if c.get("condition") else True)
                  for c in ordered]
        if len(pieces) == 1:
            return pieces[0][0]
        pieces[-1] = (pieces[-1][0], True)
        return sympy.Piecewise(*pieces, evaluate=False)

    def _quotient_as_exprel(self, cases) -> sympy.Expr | None:
        """hhc's own spelling of exprel: `x .neq. 0: (exp(x) - 1)/x`, else 1."""
        for case in cases:
            m = re.fullmatch(r"\s*(\w+)\s*\.neq\.\s*0\s*", case.get("condition") or "")
            if m and (case.get("value") or "").replace(" ", "") == f"(exp({m.group(1)})-1)/{m.group(1)}":
                return ir.exprel(self.value(m.group(1)))
        return None


def _reads_only_shifted_v(expr: sympy.Expr) -> bool:
    """True if expr(v, vShift) = g(v − vShift): the spec's vshift, which evaluates rates at v − vshift."""
    import random
    if VSHIFT not in expr.free_symbols:
        return True
    si = units.to_si(expr)
    rng = random.Random(1)
    for _ in range(6):
        v, s = rng.uniform(-0.09, 0.04), rng.uniform(-0.02, 0.02)
        point = {CAI: 1e-4, TEMPERATURE: 20.0, FWD: 1.0, REV: 1.0}
        a = complex(si.subs({**point, ir.V: v + s, VSHIFT: s}).evalf())
        b = complex(si.subs({**point, ir.V: v, VSHIFT: 0}).evalf())
        if abs(a - b) > 1e-9 * max(abs(a), abs(b), 1e-300):
            return False
    return True


# gate types whose value follows its steady state at every instant (no state, no time constant)
_INSTANTANEOUS = {"gateHHInstantaneous"}
_SCALING = ("baseConductanceScaling", "baseConductanceScalingCaDependent")


class ChannelReader:
    def __init__(self, docs: Documents):
        self.rates = RateReader(docs)
        self.types = self.rates.types

    def read(self, item: Item) -> Channel:
        el, tag = item.element, item.tag
        cid = el.get("id")
        kind = el.get("type", tag) if tag == "ionChannel" else tag
        if kind == "ionChannelKS" or children(el, "gateKS"):
            raise item.error(f"channel {cid!r}: kinetic schemes (ionChannelKS, gateKS) are not supported by hhc; "
                             f".chan channels are Hodgkin-Huxley gates", children(el, "gateKS")[0]
                             if children(el, "gateKS") else None)
        if kind not in ("ionChannelHH", "ionChannel", "ionChannelPassive", "ionChannelVShift"):
            raise item.error(f"channel {cid!r} of type {kind!r} is not supported by hhc import (ionChannelHH, "
                             f"ionChannel, ionChannelPassive, ionChannelVShift)")
        # ionChannelVShift: the channel's own vShift, read by its rate types as v - vShift
        vshift = quantity(el.get("vShift"), item, el, "vShift") if kind == "ionChannelVShift" else None
        species = el.get("species")
        channel = Channel(cid, item, species if species and re.fullmatch(r"[A-Za-z]\w*", species) else None, [],
                          passive=kind == "ionChannelPassive", hh_gateless=False)
        scales = []
        for g in children(el):
            gtag = tag_of(g)
            if gtag in ("notes", "annotation", "property"):
                continue
            if gtag == "q10ConductanceScaling" or "onductanceScaling" in gtag:
                scales.append(self._scaling(item, g, cid))
            elif gtag == "gate" or gtag in GATE_KINDS or gtag.startswith("gate"):
                self._gate(item, g, cid, channel, vshift)
            else:
                raise item.error(f"<{gtag}> in channel {cid!r} is not supported by hhc import", g)
        if channel.passive and channel.gates:
            raise item.error(f"ionChannelPassive {cid!r} has gates")
        channel.hh_gateless = not channel.passive and not channel.gates and not scales
        if scales:
            channel.helpers.append(f"g_scale = {' * '.join(scales)}"
                                   f"       # NeuroML conductance scaling: multiplies the conductance")
            channel.scale = "g_scale"
        return channel

    # -- conductance scaling ----------------------------------------------------------------------

    def _scaling(self, item: Item, el, cid: str) -> str:
        """A conductanceScaling's factor as .chan text: q10ConductanceScaling is q10Factor^((T − T0)/10 K);
        a custom type extending baseConductanceScaling(CaDependent) exposes `factor`."""
        if tag_of(el) == "q10ConductanceScaling" and el.get("type") in (None, "q10ConductanceScaling"):
            q10 = quantity(el.get("q10Factor"), item, el, "q10Factor")
            temp = celsius(el.get("experimentalTemp"), item, el, "experimentalTemp")
            return f"{chan_text(q10)} ^ ((temperature - {fmt(temp)} degC) / 10 degC)"
        type_name = el.get("type")
        ct = self.types.get(type_name)
        if ct is None:
            raise item.error(f"channel {cid!r}: <{tag_of(el)}> of type {type_name!r} is neither "
                             f"q10ConductanceScaling nor a ComponentType in this file or its includes", el)
        base = self.rates.base(ct)
        if base not in _SCALING:
            raise ct.error(f"ComponentType {type_name!r} extends {base or 'nothing'!r}; a conductance scaling must "
                           f"extend {' or '.join(_SCALING)}")
        expr = self.rates.derived(item, el, ct, "factor", base)
        return f"({chan_text(expr)})"

    # -- gates -----------------------------------------------------------------------------------

    def _gate(self, item: Item, el, cid: str, channel: Channel, vshift):
        tag = tag_of(el)
        kind = el.get("type") or tag if tag.startswith("gate") else el.get("type")
        gid = ident(el.get("id"))
        if kind == "gateHH":          # NeuroML 2 alpha: one gate element, its kind told by its parts
            kind = _GATE_BY_PARTS.get(frozenset(tag_of(c) for c in children(el) if tag_of(c) in _ROLE), kind)
        custom = None
        if kind not in GATE_KINDS and kind != "gateFractional":
            custom = self.types.get(kind)
            base = self.rates.base(custom) if custom is not None else ""
            if base not in GATE_KINDS:
                raise item.error(f"gate {gid} of channel {cid!r}: gate type {kind!r} is not supported by hhc import "
                                 f"(supported: {', '.join(sorted(GATE_KINDS))}, gateFractional, or a ComponentType "
                                 f"extending one of them whose q is derived)", el)
        try:
            power = int(el.get("instances", "1"))
        except ValueError:
            raise item.error(f"gate {gid}: instances = {el.get('instances')!r} must be a whole number", el) from None
        if kind == "gateFractional":
            return self._fractional(item, el, gid, power, channel, vshift)
        parts = self._parts(item, el, gid, self.rates.base(custom) if custom is not None else kind)
        gate = Gate(gid, power)
        exprs = self._expressions(item, gid, parts, gate, vshift, self._q10_factor(item, el, gid))
        if custom is not None:
            inf = self._derived_q(item, el, gid, custom, exprs)
            if {FWD, REV} & inf.free_symbols:
                gate.lines = [f"fwd = {self._text(item, parts, exprs, 'forwardRate')}",
                              f"rev = {self._text(item, parts, exprs, 'reverseRate')}"]
            gate.lines.append(f"inf = {chan_text(inf)}")
            gate.comment = f"{kind}: q is its steady state at every instant, an instantaneous gate"
        elif kind in _INSTANTANEOUS:
            gate.lines = [f"inf = {self._text(item, parts, exprs, 'steadyState')}"]
        else:
            gate.lines = self._lines(item, kind, parts, exprs, gate) + self._q10(item, el, gid)
        channel.gates.append(gate)
        channel.factors.append(Factor(gid if power == 1 else f"{gid}^{power}", plain=True))

    def _parts(self, item: Item, el, gid: str, kind: str) -> dict:
        parts = {}
        for c in children(el):
            if tag_of(c) in ("notes", "annotation", "property", "q10Settings"):
                continue
            if tag_of(c) in parts or tag_of(c) not in GATE_KINDS[kind]:
                raise item.error(f"gate {gid}: <{tag_of(c)}> is not part of a {kind} (it has "
                                 f"{', '.join(GATE_KINDS[kind])})", c)
            parts[tag_of(c)] = c
        missing = [p for p in GATE_KINDS[kind] if p not in parts]
        if missing:
            raise item.error(f"gate {gid}: expected a {kind} with {'/'.join(GATE_KINDS[kind])}; "
                             f"{', '.join(missing)} missing", el)
        return parts

    def _expressions(self, item: Item, gid: str, parts: dict, gate: Gate, vshift, rate_scale) -> dict:
        exprs = {name: self.rates.expression(item, c, _ROLE[name]).xreplace({RATE_SCALE: rate_scale})
                 for name, c in parts.items()}
        rates = "forwardRate" in parts
        for name, e in exprs.items():
            if {FWD, REV} & e.free_symbols and not rates:
                raise item.error(f"gate {gid}: {name} reads alpha/beta, which only the parts of a gate with forward "
                                 f"and reverse rates can", parts[name])
        if rates:
            # NeuroML's gate exposes alpha and beta to its children: a reverse rate may read the forward one
            # (Traub's beta = total - alpha) or the other way round, not both
            f, r = exprs["forwardRate"], exprs["reverseRate"]
            if FWD in f.free_symbols or REV in r.free_symbols or (REV in f.free_symbols and FWD in r.free_symbols):
                raise item.error(f"gate {gid}: its forward and reverse rates are defined by each other (alpha/beta "
                                 f"read in a circle)", parts["forwardRate"])
            exprs["forwardRate"], exprs["reverseRate"] = f.xreplace({REV: r}), r.xreplace({FWD: f})
        gate.uses_vshift = vshift is None and any(VSHIFT in e.free_symbols for e in exprs.values())
        for name, e in exprs.items():
            if not _reads_only_shifted_v(e):
                raise item.error(f"gate {gid}: {name} uses vShift other than as v - vShift; hhc's vshift evaluates "
                                 f"a gate's rates at v - vshift", parts[name])
        return {n: remove_singularities(e.xreplace({VSHIFT: vshift if vshift is not None else 0}), ir.V)
                for n, e in exprs.items()}

    def _text(self, item: Item, parts: dict, exprs: dict, name: str, gate: Gate | None = None) -> str:
        standard = self.rates.standard_text(item, parts[name], _ROLE[name])
        if standard is not None:
            return standard
        dim = _ROLE_DIMENSION[_ROLE[name]]
        e, changed = as_dimension(exprs[name], dim)
        if changed and gate is not None:
            gate.comment = (f"its {name} is not a {dim.name} in NeuroML's own units; read in SI units, as jLEMS "
                            f"evaluates it")
        return chan_text(e, dim)

    def _lines(self, item: Item, kind: str, parts: dict, exprs: dict, gate: Gate | None = None) -> list[str]:
        text = {n: self._text(item, parts, exprs, n, gate) for n in exprs}
        lines = []
        if "forwardRate" in parts and kind != "gateHHrates":
            lines += [f"fwd = {text['forwardRate']}", f"rev = {text['reverseRate']}"]
        if kind == "gateHHrates":
            lines += [f"alpha = {text['forwardRate']}", f"beta = {text['reverseRate']}"]
        elif kind in ("gateHHtauInf", "gateHHratesTauInf"):
            lines += [f"inf = {text['steadyState']}", f"tau = {text['timeCourse']}"]
        elif kind == "gateHHratesTau":
            lines += ["inf = fwd / (fwd + rev)", f"tau = {text['timeCourse']}"]
        elif kind == "gateHHratesInf":
            lines += [f"inf = {text['steadyState']}", "tau = 1 / (fwd + rev)"]
        return lines

    def _derived_q(self, item: Item, el, gid: str, ct: Item, exprs: dict) -> sympy.Expr:
        """A ComponentType extending a standard gate whose q is a DerivedVariable (no StateVariable): q as an
        expression of v — an instantaneous gate (Wang-Buzsaki's m = alpha/(alpha + beta), Pospischil's s)."""
        dynamics = [d for c in children(ct.element) if tag_of(c) in ("Dynamics", "Behavior") for d in children(c)]
        states = [d for d in dynamics if tag_of(d) in ("StateVariable", "TimeDerivative", "OnStart", "OnCondition")]
        if states:
            raise ct.error(f"gate type {ct.element.get('name')!r} of gate {gid} has its own dynamics "
                           f"(<{tag_of(states[0])}>); hhc imports custom gate types whose q is derived (instantaneous "
                           f"gates)", states[0])
        selects = {"steadyState/x": exprs.get("steadyState"), "timeCourse/t": exprs.get("timeCourse"),
                   "forwardRate/r": FWD if "forwardRate" in exprs else None,
                   "reverseRate/r": REV if "reverseRate" in exprs else None}
        env: dict[str, sympy.Expr] = {"v": ir.V}
        try:
            env["instances"] = sympy.Integer(int(el.get("instances", "1")))
        except ValueError:
            pass
        defs = {}
        for c in children(ct.element):
            if tag_of(c) == "Constant":
                env[c.get("name")] = quantity(c.get("value"), ct, c, c.get("name"))
        for d in dynamics:
            if tag_of(d) not in ("DerivedVariable", "ConditionalDerivedVariable"):
                continue
            if d.get("select") is not None:
                if selects.get(d.get("select")) is None:
                    raise ct.error(f"gate type {ct.element.get('name')!r}: {d.get('name')} selects "
                                   f"{d.get('select')!r}, which hhc cannot resolve", d)
                env[d.get("name")] = selects[d.get("select")]
            else:
                defs[d.get("name")] = d
        if "q" not in defs and "q" not in env:
            raise ct.error(f"gate type {ct.element.get('name')!r} of gate {gid} defines no q")
        return remove_singularities(_Derived(ct, env, defs).value("q"), ir.V)

    def _fractional(self, item: Item, el, gid: str, power: int, channel: Channel, vshift):
        """gateFractional: q = Σ fractionalConductance_i · q_i over sub-gates, each an inf/tau gate sharing the
        gate's q10Settings; the sub-gates become gates and the weighted sum enters the current."""
        terms = []
        q10 = self._q10(item, el, gid)
        for sub in children(el):
            stag = tag_of(sub)
            if stag in ("notes", "annotation", "property", "q10Settings"):
                continue
            if stag != "subGate":
                raise item.error(f"gate {gid}: <{stag}> in a gateFractional (it has subGates)", sub)
            name = ident(f"{gid}_{sub.get('id')}")
            parts = self._parts(item, sub, name, "gateHHtauInf")
            gate = Gate(name, 1, comment=f"sub-gate {sub.get('id')} of gateFractional {gid}")
            exprs = self._expressions(item, name, parts, gate, vshift, self._q10_factor(item, el, gid))
            gate.lines = self._lines(item, "gateHHtauInf", parts, exprs, gate) + q10
            channel.gates.append(gate)
            fraction = quantity(sub.get("fractionalConductance"), item, sub, "fractionalConductance")
            terms.append(f"{chan_text(fraction)}*{name}")
        if not terms:
            raise item.error(f"gate {gid}: a gateFractional without subGates", el)
        channel.factors.append(Factor(f"({' + '.join(terms)})" + (f"^{power}" if power != 1 else ""), plain=False))

    def _q10_factor(self, item: Item, el, gid: str) -> sympy.Expr:
        """The gate's Q10 factor as an expression (NeuroML's rateScale, which rate types may read)."""
        settings = children(el, "q10Settings")
        if not settings:
            return sympy.Integer(1)
        q = settings[0]
        if q.get("type") == "q10ExpTemp":
            degc = units.unit_symbol("degC")
            t0 = exact(str(celsius(q.get("experimentalTemp"), item, q, "experimentalTemp")))
            return quantity(q.get("q10Factor"), item, q, "q10Factor") ** ((TEMPERATURE - t0 * degc) / (10 * degc))
        if q.get("type") == "q10Fixed":
            return quantity(q.get("fixedQ10"), item, q, "fixedQ10")
        return RATE_SCALE                      # _q10 refuses the type

    def _q10(self, item: Item, el, gid: str) -> list[str]:
        settings = children(el, "q10Settings")
        if len(settings) > 1:
            raise item.error(f"gate {gid}: more than one q10Settings (NeuroML multiplies them); hhc takes one",
                             settings[1])
        if not settings:
            return []
        q = settings[0]
        if q.get("type") == "q10ExpTemp":
            factor = quantity(q.get("q10Factor"), item, q, "q10Factor")
            temp = celsius(q.get("experimentalTemp"), item, q, "experimentalTemp")
            return [f"q10 = {chan_text(factor)}", f"q10_temperature = {fmt(temp)} degC"]
        if q.get("type") == "q10Fixed":
            return [f"rate_factor = {chan_text(quantity(q.get('fixedQ10'), item, q, 'fixedQ10'))}"]
        raise item.error(f"gate {gid}: q10Settings type {q.get('type')!r} is not supported (q10ExpTemp, q10Fixed)", q)


# NeuroML 2 alpha's <gateHH>: the kind its parts make
_GATE_BY_PARTS = {frozenset(parts): kind for kind, parts in GATE_KINDS.items()}
_ROLE_DIMENSION = {"rate": units.RATE, "time": units.TIME, "variable": units.DIMENSIONLESS}
_ROLE = {"forwardRate": "rate", "reverseRate": "rate", "steadyState": "variable", "timeCourse": "time"}


MAX_NAME = 64      # .chan names name generated files and identifiers


def ident(name: str | None) -> str:
    """A NeuroML id as a .chan name: other characters become '_'; an id longer than .chan allows (neuroConstruct
    appends every changed parameter to a channel's id) keeps its start and gets a short hash of the whole."""
    name = re.sub(r"\W", "_", name or "unnamed")
    name = "_" + name if name[0].isdigit() else name
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME - 9]}_{digest}"
    return name


def si(expr: sympy.Expr) -> float:
    return float(units.to_si(sympy.sympify(expr)))


# ---------------------------------------------------------------------------------------------
# cells

@dataclass
class Use:
    """One channel density on one cell."""
    channel: Channel
    element: object
    gbar: str                        # .chan text
    erev: str | None                 # None: Nernst
    nernst: str | None
    vshift: str | None
    ion: str | None

    @property
    def variant(self) -> tuple[str, str | None]:
        return (self.channel.id, self.nernst)


@dataclass
class CellData:
    item: Item
    name: str
    area: float                      # um2
    settings: dict
    uses: list[Use]
    pools: list[str]


class CellReader:
    def __init__(self, docs: Documents, channels: dict[str, Channel]):
        self.docs, self.channels = docs, channels
        self.by_id = {i.element.get("id"): i for i in docs.items if i.element.get("id")}

    def _referenced(self, item: Item, attribute: str, tag: str):
        """An inline child <tag> of the cell, or a top-level one named by the cell's attribute."""
        inline = children(item.element, tag)
        if inline:
            return inline[0], item
        ref = item.element.get(attribute)
        if ref and ref in self.by_id and self.by_id[ref].tag == tag:
            return self.by_id[ref].element, self.by_id[ref]
        return None, item

    def read(self, item: Item) -> CellData:
        name = ident(item.element.get("id"))
        morph, morph_item = self._referenced(item, "morphology", "morphology")
        if morph is None:
            raise item.error(f"cell {name} has no <morphology>")
        segments = children(morph, "segment")
        if len(segments) != 1:
            raise morph_item.error(f"cell {name} has {len(segments)} segments; hhc simulates point neurons (one "
                                   f"segment); multi-compartment morphologies are not supported", morph)
        area = self._area(morph_item, segments[0], name)
        groups = {"all"} | {g.get("id") for g in children(morph, "segmentGroup")}
        bio, bio_item = self._referenced(item, "biophysicalProperties", "biophysicalProperties")
        if bio is None:
            raise item.error(f"cell {name} has no <biophysicalProperties>")
        membrane = children(bio, "membraneProperties")
        if not membrane:
            raise bio_item.error(f"cell {name} has no <membraneProperties>", bio)
        settings, uses = self._membrane(bio_item, membrane[0], name, groups)
        pools = self._pools(bio_item, bio, name, area, uses)
        return CellData(item, name, area, settings, uses, pools)

    def _area(self, item: Item, seg, name: str) -> float:
        """The segment's surface in um2 as NeuroML (Cells.xml) computes it: 2π r_distal L, or the sphere
        4π r² when the length is 0 (NEURON would take a frustum; equal when the diameters are)."""
        points = {tag_of(p): p for p in children(seg) if tag_of(p) in ("proximal", "distal")}
        if "distal" not in points:
            raise item.error(f"segment of cell {name} has no distal point", seg)
        dist = points["distal"]
        prox = points.get("proximal", dist)
        try:
            p = [float(prox.get(k)) for k in ("x", "y", "z", "diameter")]
            d = [float(dist.get(k)) for k in ("x", "y", "z", "diameter")]
        except (TypeError, ValueError):
            raise item.error(f"segment of cell {name}: proximal and distal need x, y, z and diameter", seg) from None
        length = math.dist(p[:3], d[:3])
        return math.pi * d[3] ** 2 if length == 0 else math.pi * d[3] * length

    def _membrane(self, item: Item, mp, name: str, groups: set) -> tuple[dict, list[Use]]:
        settings, uses = {}, []
        for el in children(mp):
            tag = tag_of(el)
            if tag in ("channelDensity", "channelDensityNernst", "channelDensityVShift"):
                uses.append(self._density(item, el, tag, name, groups))
            elif tag in ("specificCapacitance", "initMembPotential", "spikeThresh"):
                if el.get("segmentGroup", "all") not in groups:
                    raise item.error(f"{tag} of cell {name} is on segmentGroup {el.get('segmentGroup')!r}, which "
                                     f"the morphology does not define", el)
                settings[tag] = qattr(el.get("value"), item, el, tag)
            elif tag in ("notes", "annotation"):
                continue
            else:
                raise item.error(f"<{tag}> in cell {name} is not supported by hhc import (channelDensity, "
                                 f"channelDensityNernst, channelDensityVShift, specificCapacitance, "
                                 f"initMembPotential, spikeThresh)", el)
        if "specificCapacitance" not in settings:
            raise item.error(f"cell {name} has no specificCapacitance", mp)
        return settings, uses

    def _density(self, item: Item, el, tag: str, name: str, groups: set) -> Use:
        cid = el.get("ionChannel")
        if cid not in self.channels:
            raise item.error(f"{tag} {el.get('id')!r} uses ion channel {cid!r}, which is neither in this file nor "
                             f"in what it includes", el)
        if el.get("segment") is not None or el.get("segmentGroup", "all") not in groups:
            raise item.error(f"{tag} {el.get('id')!r} of cell {name} is restricted to "
                             f"{el.get('segmentGroup') or 'segment ' + el.get('segment')!r}; hhc simulates point "
                             f"neurons (one segment, every density on it)", el)
        gbar = qattr(el.get("condDensity", "0 S_per_m2"), item, el, "condDensity")
        ion = el.get("ion") if el.get("ion") not in (None, "non_specific") else None
        nernst, erev = None, None
        if tag == "channelDensityNernst":
            nernst = el.get("ion", "ca")
            if nernst != "ca":
                raise item.error(f"channelDensityNernst {el.get('id')!r} is for ion {nernst!r}; NeuroML defines it "
                                 f"for Ca only (zCa = 2, caConc)", el)
        else:
            erev = qattr(el.get("erev"), item, el, "erev")
        vshift = qattr(el.get("vShift"), item, el, "vShift") if tag == "channelDensityVShift" else None
        return Use(self.channels[cid], el, gbar, erev, nernst, vshift, ion or self.channels[cid].species)

    def _pools(self, item: Item, bio, name: str, area_um2: float, uses: list[Use]) -> list[str]:
        lines = []
        for intra in children(bio, "intracellularProperties"):
            for el in children(intra):
                tag = tag_of(el)
                if tag == "species":
                    lines += self._pool(item, el, name, area_um2)
                elif tag not in ("resistivity", "notes"):   # axial resistivity: nothing flows in one segment
                    raise item.error(f"<{tag}> in the intracellularProperties of cell {name} is not supported by "
                                     f"hhc import", el)
        for ext in children(bio, "extracellularProperties"):
            if children(ext, "species"):
                raise item.error(f"extracellular species of cell {name} are not supported by hhc import", ext)
        return lines

    def _pool(self, item: Item, el, name: str, area_um2: float) -> list[str]:
        ion = el.get("ion") or el.get("id")
        model_id = el.get("concentrationModel")
        model = self.by_id.get(model_id)
        if model is None or model.tag not in ("decayingPoolConcentrationModel", "fixedFactorConcentrationModel"):
            what = f"a <{model.tag}>" if model is not None else "not in this file or its includes"
            raise item.error(f"species {el.get('id')!r} of cell {name}: concentration model {model_id!r} is {what} "
                             f"(hhc imports decayingPoolConcentrationModel and fixedFactorConcentrationModel)", el)
        if ion != "ca" or model.element.get("ion", "ca") != "ca":
            raise item.error(f"species {el.get('id')!r} of cell {name} is {ion!r}; NeuroML's concentration models are "
                             f"driven by the Ca current (iCa) only", el)
        m = model.element
        q = lambda attr, owner=model, e=m: qattr(e.get(attr), owner, e, attr)  # noqa: E731
        out = [f"    pool ca {{              # {model.tag} {model_id}"]
        if el.get("initialConcentration") is not None:
            out.append(f"        initial = {q('initialConcentration', item, el)}")
        out += [f"        resting = {q('restingConc')}", f"        decay = {q('decayConstant')}"]
        if model.tag == "decayingPoolConcentrationModel":
            out.append(self._depth(model, m, area_um2))
        else:
            out.append(f"        rho = {fmt(si(quantity(m.get('rho'), model, m, 'rho')))} mol/m/A/s")
        if el.get("initialExtConcentration") is not None:
            out.append(f"        outside = {q('initialExtConcentration', item, el)}")
        out.append("    }")
        return out

    def _depth(self, model: Item, m, area_um2: float) -> str:
        """NeuroML's pool is a shell of thickness d inside a sphere of the segment's area (Cells.xml, with its
        3.14159): volume 4/3·π·(r³ − (r − d)³), r = √(area/4π). hhc's pool volume is area × depth, so the
        depth written is that volume over the area — the same concentration change per charge."""
        thickness = si(quantity(m.get("shellThickness"), model, m, "shellThickness"))
        area = area_um2 * 1e-12
        pi = 3.14159
        r = math.sqrt(area / (4 * pi))
        volume = 4 * pi / 3 * (r ** 3 - (r - thickness) ** 3)
        return (f"        depth = {fmt(volume / area * 1e6)} um   # shellThickness {fmt(thickness * 1e6)} um in a "
                f"sphere of the cell's area: shell volume / area")

    def text(self, cell: CellData, temperature: float | None, variants: dict) -> list[str]:
        item, name, area, settings, uses, pools = (cell.item, cell.name, cell.area, cell.settings, cell.uses,
                                                   cell.pools)
        lines = [f"cell {name} {{", f"    C = {settings['specificCapacitance']}", f"    area = {fmt(area)} um2"]
        uses_cai = [u.channel.id for u in uses if any("cai" in re.findall(r"\w+", line)
                                                     for line in u.channel.lines())]
        if uses_cai and not pools:
            if any(u.nernst for u in uses):
                raise item.error(f"cell {name} uses {', '.join(uses_cai)}, whose rates read caConc, and Nernst "
                                 f"reversal potentials, but has no Ca species (intracellularProperties/species)")
            # NeuroML sums the concentrations of the cell's Ca species (Cells.xml: reduce="add",
            # required="false"): without one, caConc is 0
            pools = [f"    pool ca {{ resting = 0 mM; outside = 0 mM }}   # no Ca species: NeuroML's caConc and "
                     f"caConcExt are 0 (read by {', '.join(uses_cai)})"]
        needs_temperature = any(u.nernst for u in uses) or any(
            re.search(r"\b(q10|temperature)\b", line) for u in uses for line in u.channel.lines())
        if temperature is not None:
            lines.append(f"    temperature = {fmt(temperature)} degC")
        elif needs_temperature:
            guess = self._reference_temperature(uses)
            lines.append(f"    temperature = {fmt(guess if guess is not None else 6.3)} degC   # NeuroML sets it on the "
                         f"network; {'a placeholder' if guess is None else 'the first Q10 reference'}: set it")
        leak, used = None, []
        for use in uses:
            ch = use.channel
            if self.is_leak(cell, use):
                leak = use
                continue
            overrides = [f"gbar = {use.gbar}"]
            if use.erev is not None:
                overrides.append(f"E = {use.erev}")
            if use.vshift is not None:
                if any(g.uses_vshift for g in ch.gates):
                    overrides.append(f"vshift = {use.vshift}")
                else:
                    ch.vshift_note = "its gates do not read vShift, so channelDensityVShift leaves them unchanged"
            used.append(f"{variants[use.variant]}({', '.join(overrides)})")
        if used:
            lines.append("    channels " + ", ".join(used))
        if leak is not None:
            lines.append(f"    leak {{ g = {leak.gbar}; E = {leak.erev} }}")
        lines += pools
        lines.append("    input Iapp : current")
        v0 = settings.get("initMembPotential")
        lines.append("    initial {" + (f" v = {v0};" if v0 is not None else "") + " gates = steady_state }")
        if "spikeThresh" in settings:
            lines.append(f"    spike when v rises above {settings['spikeThresh']}")
        lines.append("}")
        return lines

    @staticmethod
    def _reference_temperature(uses: list[Use]) -> float | None:
        for u in uses:
            for g in u.channel.gates:
                for line in g.lines:
                    m = re.match(r"q10_temperature = (\S+) degC", line)
                    if m:
                        return float(m.group(1))
        return None

    @staticmethod
    def is_leak(cell: CellData, use: Use) -> bool:
        """The first gateless ionChannelHH with a fixed E: hhc writes its own leak so, read back as `leak`."""
        first = next((u for u in cell.uses if u.channel.hh_gateless and u.erev is not None and u.vshift is None), None)
        return use is first


# ---------------------------------------------------------------------------------------------
# networks → an experiment

@dataclass
class Pulse:
    delay: float        # s
    duration: float     # s
    amplitude: float    # A


@dataclass
class Network:
    id: str
    cell: str
    population: str
    size: int
    temperature: float | None          # degC
    pulses: list[Pulse]
    length: float | None               # s, from a LEMS <Simulation>
    step: float | None


class NetworkReader:
    def __init__(self, docs: Documents):
        self.docs = docs
        self.by_id = {i.element.get("id"): i for i in docs.items if i.element.get("id")}

    def read(self) -> Network | None:
        networks = self.docs.of("network")
        if not networks:
            return None
        if len(networks) > 1:
            raise networks[1].error("more than one <network>; hhc imports one")
        item = networks[0]
        net = item.element
        temperature = None
        if net.get("temperature") is not None:
            temperature = celsius(net.get("temperature"), item, net, "temperature")
        pops = children(net, "population")
        if len(pops) != 1:
            raise item.error(f"network {net.get('id')!r} has {len(pops)} populations; an hhc experiment holds one "
                             f"population of one cell")
        for tag in ("projection", "electricalProjection", "continuousProjection", "synapticConnection"):
            if children(net, tag):
                raise item.error(f"network {net.get('id')!r}: <{tag}> connects neurons; hhc simulates unconnected "
                                 f"point neurons", children(net, tag)[0])
        pop = pops[0]
        size = int(pop.get("size") or len(children(pop, "instance")) or 1)
        cell = pop.get("component")
        target = self.by_id.get(cell)
        if target is None:
            raise item.error(f"population {pop.get('id')!r}: component {cell!r} is not in this file or its includes", pop)
        if target.tag != "cell":
            raise target.error(f"population {pop.get('id')!r} is made of <{target.tag}> {cell!r}; hhc imports "
                               f"conductance-based <cell>s (ion channels on one segment), not "
                               f"{'abstract point models' if target.tag in _POINT_CELLS else 'this type'}")
        pulses = self._inputs(item, net, pop.get("id"), size)
        length, step = self._simulation(net.get("id"))
        return Network(net.get("id"), cell, pop.get("id"), size, temperature, pulses, length, step)

    def _inputs(self, item: Item, net, pop: str, size: int) -> list[Pulse]:
        targets: dict[str, list[int]] = {}
        for el in children(net, "explicitInput"):
            targets.setdefault(el.get("input"), []).append(self._target(item, el, el.get("target"), pop))
        for lst in children(net, "inputList"):
            for inp in children(lst, "input"):
                targets.setdefault(lst.get("component"), []).append(
                    self._target(item, inp, inp.get("target"), lst.get("population", pop)))
        pulses = []
        for input_id, neurons in targets.items():
            source = self.by_id.get(input_id)
            if source is None:
                raise item.error(f"input {input_id!r} is not in this file or its includes")
            if source.tag != "pulseGenerator":
                raise source.error(f"input {input_id!r} is a <{source.tag}>; hhc imports pulseGenerator inputs "
                                   f"(a current step)")
            if sorted(neurons) != list(range(size)):
                raise item.error(f"input {input_id!r} reaches neurons {sorted(neurons)} of the {size} in {pop!r}; an "
                                 f"hhc protocol gives every neuron the same input")
            g = source.element
            pulses.append(Pulse(*(si(quantity(g.get(a), source, g, a)) for a in ("delay", "duration", "amplitude"))))
        return pulses

    def _target(self, item: Item, el, text: str | None, pop: str) -> int:
        m = re.fullmatch(r"\s*(?:\.\./)?(\w+)(?:\[(\d+)\]|/(\d+)(?:/\w+)?)\s*", text or "")
        if not m or m.group(1) != pop:
            raise item.error(f"input target {text!r} is not a neuron of population {pop!r} ('{pop}[0]' or "
                             f"'../{pop}/0/cell')", el)
        return int(m.group(2) or m.group(3))

    def _simulation(self, network_id: str) -> tuple[float | None, float | None]:
        # <Simulation …> or, as LEMS files written to validate against the LEMS schema do, <Component type="Simulation">
        sims = [s for s in self.docs.of("Simulation", "Component")
                if (s.tag == "Simulation" or s.element.get("type") == "Simulation")
                and s.element.get("target") in (None, network_id)]
        if not sims:
            return None, None
        s = sims[0]
        step = s.element.get("step")
        return (si(quantity(s.element.get("length"), s, s.element, "length")),
                si(quantity(step, s, s.element, "step")) if step else None)


TAIL = 0.1      # s after the last pulse ends, when no LEMS <Simulation> gives the length


def protocol(net: Network) -> list[tuple[float, float]]:
    """(duration s, Iapp A) phases: the pulses summed, as NeuroML adds the currents of a neuron's inputs."""
    ends = [p.delay + p.duration for p in net.pulses]
    total = net.length if net.length is not None else max(ends, default=0.0) + TAIL
    edges = sorted({0.0, total} | {t for p in net.pulses for t in (p.delay, p.delay + p.duration) if 0 < t < total})
    phases = []
    for a, b in zip(edges, edges[1:]):
        mid = (a + b) / 2
        current = sum(p.amplitude for p in net.pulses if p.delay <= mid < p.delay + p.duration)
        if phases and phases[-1][1] == current:
            phases[-1] = (phases[-1][0] + b - a, current)
        else:
            phases.append((b - a, current))
    return phases


def experiment_text(net: Network, chan_file: str, source: str, model_temperature: bool) -> str:
    dt = net.step if net.step is not None else 1e-5
    lines = [f"# Imported by `hhc import` from {source}: network {net.id}, population {net.population} "
             f"({net.size} × {net.cell})" + (f" at {fmt(net.temperature)} degC." if net.temperature is not None else "."),
             "[model]", f'file = "{chan_file}"', f'cell = "{ident(net.cell)}"']
    if model_temperature and net.temperature is not None:
        lines.append(f'temperature = "{fmt(net.temperature)} degC"')
    lines += ["", "[population]", f"size = {net.size}", "", "[simulation]", f'dt = "{fmt(dt * 1e3)} ms"',
              'method = "rk4"', "", "[initial]", 'gates = "steady_state"     # NeuroML starts every gate there', ""]
    if net.length is None:
        lines.insert(1, f"# No LEMS <Simulation> gave the length: the last phase lasts {fmt(TAIL * 1e3)} ms after "
                        f"the last pulse.")
    for duration, current in protocol(net):
        lines += ["[[protocol]]", f'duration = "{fmt(duration * 1e3)} ms"',
                  f'inputs = {{ Iapp = "{fmt(current * 1e9)} nA" }}', ""]
    lines += ["[record]", 'spikes = "all"', "", "[[record.traces]]", 'variables = ["v"]',
              f'neurons = "0:{min(net.size, 10)}"']
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the whole import

@dataclass
class Imported:
    chan: str
    network: Network | None
    source: str

    def experiment(self, chan_file: str, model_temperature: bool = True) -> str | None:
        """The experiment file for the network, its [model] file = chan_file (relative to the .toml)."""
        if self.network is None:
            return None
        return experiment_text(self.network, chan_file, Path(self.source).name, model_temperature)


class Importer:
    def __init__(self, path: str | Path, text: str | None = None):
        self.path = str(path)
        self.docs = Documents(path, text)

    def run(self) -> Imported:
        self._refuse_unsupported()
        reader = ChannelReader(self.docs)
        channels = {i.element.get("id"): reader.read(i)
                    for i in self.docs.of("ionChannelHH", "ionChannel", "ionChannelPassive", "ionChannelKS",
                                          "ionChannelVShift")}
        network = NetworkReader(self.docs).read()
        cells_reader = CellReader(self.docs, channels)
        cell_items = self.docs.of("cell")
        if network is not None:
            cell_items = [i for i in cell_items if i.element.get("id") == network.cell]
        cells = [cells_reader.read(i) for i in cell_items]
        if not channels and not cells:
            raise HHCError(f"{self.path}: no ion channels or cells to import")
        variants = self._variants(cells, channels)
        out = [f"# Imported by `hhc import` from {Path(self.path).name}.", ""]
        cell_blocks = [cells_reader.text(c, network.temperature if network else None, variants) for c in cells]
        leak_only = self._leak_only(cells, cells_reader)
        for cid, ch in channels.items():
            keys = [k for k in variants if k[0] == cid] or ([] if cid in leak_only else [(cid, None)])
            for key in keys:
                out += self._channel(ch, variants.get(key, ident(cid)), key[1], self._first_use(cells, key)) + [""]
        for block in cell_blocks:
            out += block + [""]
        return Imported("\n".join(out).rstrip() + "\n", network, self.path)

    def _refuse_unsupported(self):
        for item in self.docs.items:
            if item.tag in _POINT_CELLS and not self.docs.of("network"):
                raise item.error(f"<{item.tag}> {item.element.get('id')!r} is an abstract point model; hhc imports "
                                 f"conductance-based <cell>s (ion channels on one segment)")

    @staticmethod
    def _variants(cells: list[CellData], channels: dict) -> dict:
        """(channel id, Nernst ion or None) → .chan name. A channel used both with a fixed E and with Nernst
        becomes two channels: in .chan, E = nernst(ion) belongs to the channel, not to its use."""
        keys = []
        for cell in cells:
            for use in cell.uses:
                if not CellReader.is_leak(cell, use) and use.variant not in keys:
                    keys.append(use.variant)
        names = {}
        for cid, nernst in keys:
            both = (cid, None) in keys and (cid, nernst) != (cid, None)
            names[(cid, nernst)] = ident(cid) + (f"_nernst_{nernst}" if both else "")
        return names

    @staticmethod
    def _leak_only(cells: list[CellData], reader: CellReader) -> set:
        leaks = {u.channel.id for c in cells for u in c.uses if reader.is_leak(c, u)}
        used = {u.channel.id for c in cells for u in c.uses if not reader.is_leak(c, u)}
        return leaks - used

    @staticmethod
    def _first_use(cells: list[CellData], key) -> Use | None:
        return next((u for c in cells for u in c.uses if u.variant == key and not CellReader.is_leak(c, u)), None)

    def _channel(self, ch: Channel, name: str, nernst: str | None, use: Use | None) -> list[str]:
        out = [f"channel {name} {{" + (f"              # {ch.vshift_note}" if ch.vshift_note else "")]
        ion = (use.ion if use else None) or ch.species
        if ion:
            out.append(f"    ion {ion}")
        if use is None:
            out.append("    gbar = 1 mS/cm2       # NeuroML puts conductances on the cell; set it where used")
        else:
            out.append(f"    gbar = {use.gbar}")
        if nernst:
            out.append(f"    E = nernst({nernst})")
        elif use is None or use.erev is None:
            default = {"na": "50 mV", "k": "-77 mV", "ca": "80 mV"}.get(ch.species or "", "0 mV")
            out.append(f"    E = {default}          # NeuroML puts reversal potentials on the cell; set it where used")
        else:
            out.append(f"    E = {use.erev}")
        out += [f"    {line}" for line in ch.helpers]
        for g in ch.gates:
            out.append(f"    gate {g.name} ^ {g.power} {{" + (f"      # {g.comment}" if g.comment else ""))
            out += [f"        {line}" for line in g.lines]
            out.append("    }")
        if ch.current is not None:
            out.append(f"    {ch.current}")
        out.append("}")
        return out


def import_file(path: str | Path) -> Imported:
    """A NeuroML2 or LEMS file (and what it includes) → .chan text, and the network if it has one."""
    return Importer(path).run()


def import_text(text: str, path: str = "<string>") -> str:
    """NeuroML2 text → .chan text (includes are read relative to path)."""
    return Importer(path, text).run().chan
