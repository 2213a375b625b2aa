"""Units and physical dimensions.

A dimension is a vector of exponents over the SI base quantities hhc needs (length, mass, time,
current). Units are named scales of a dimension. The checker computes the dimension of every
expression from these tables; the IR keeps unit names as SymPy symbols so a backend can print
`58*mV` where its simulator understands units, or substitute SI scales where it does not.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import sympy


@dataclass(frozen=True)
class Dimension:
    length: Fraction = Fraction(0)
    mass: Fraction = Fraction(0)
    time: Fraction = Fraction(0)
    current: Fraction = Fraction(0)
    amount: Fraction = Fraction(0)         # mol: ion concentrations
    temperature: Fraction = Fraction(0)    # a degree (kelvin-sized): Q10 and Nernst

    def _vec(self):
        return (self.length, self.mass, self.time, self.current, self.amount, self.temperature)

    def __mul__(self, other: "Dimension") -> "Dimension":
        return Dimension(*(a + b for a, b in zip(self._vec(), other._vec())))

    def __truediv__(self, other: "Dimension") -> "Dimension":
        return Dimension(*(a - b for a, b in zip(self._vec(), other._vec())))

    def __pow__(self, exponent) -> "Dimension":
        return Dimension(*(a * Fraction(exponent) for a in self._vec()))

    @property
    def is_dimensionless(self) -> bool:
        return not any(self._vec())

    @property
    def name(self) -> str:
        """A physiologist's word for the dimension, or its SI base-unit expression."""
        for word, dim in NAMED_DIMENSIONS.items():
            if dim == self:
                return word
        return self.si_expression

    @property
    def si_expression(self) -> str:
        parts = []
        for symbol, exp in zip(("m", "kg", "s", "A", "mol", "K"), self._vec()):
            if exp == 1:
                parts.append(symbol)
            elif exp:
                parts.append(f"{symbol}^{exp}")
        return " ".join(parts) or "1"

    def __str__(self) -> str:
        return self.name


DIMENSIONLESS = Dimension()
LENGTH = Dimension(length=Fraction(1))
MASS = Dimension(mass=Fraction(1))
TIME = Dimension(time=Fraction(1))
CURRENT = Dimension(current=Fraction(1))
AMOUNT = Dimension(amount=Fraction(1))
TEMPERATURE = Dimension(temperature=Fraction(1))
VOLTAGE = Dimension(Fraction(2), Fraction(1), Fraction(-3), Fraction(-1))
CONDUCTANCE = CURRENT / VOLTAGE
CAPACITANCE = CURRENT * TIME / VOLTAGE
RESISTANCE = VOLTAGE / CURRENT
AREA = LENGTH ** 2
RATE = DIMENSIONLESS / TIME
CONCENTRATION = AMOUNT / LENGTH ** 3
CHARGE = CURRENT * TIME

NAMED_DIMENSIONS = {
    "dimensionless": DIMENSIONLESS,
    "voltage": VOLTAGE,
    "current": CURRENT,
    "time": TIME,
    "rate (1/time)": RATE,
    "conductance": CONDUCTANCE,
    "capacitance": CAPACITANCE,
    "resistance": RESISTANCE,
    "length": LENGTH,
    "area": AREA,
    "conductance density": CONDUCTANCE / AREA,
    "current density": CURRENT / AREA,
    "capacitance density": CAPACITANCE / AREA,
    "voltage per time": VOLTAGE / TIME,
    "1/voltage": DIMENSIONLESS / VOLTAGE,
    "concentration": CONCENTRATION,
    "temperature": TEMPERATURE,
    "amount": AMOUNT,
    "rate per concentration": RATE / CONCENTRATION,
    "rate per voltage": RATE / VOLTAGE,
}


@dataclass(frozen=True)
class Unit:
    name: str              # as written in .chan files, e.g. "mV"
    scale: Fraction        # value in SI base units of 1 of this unit
    dimension: Dimension

    @property
    def symbol(self) -> sympy.Symbol:
        return unit_symbol(self.name)


_PREFIXES = {"p": Fraction(1, 10**12), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6),
             "m": Fraction(1, 1000), "": Fraction(1), "k": Fraction(1000), "M": Fraction(10**6)}
_BASES = {"V": VOLTAGE, "A": CURRENT, "S": CONDUCTANCE, "F": CAPACITANCE, "s": TIME, "ohm": RESISTANCE,
          "Hz": RATE}


def _build_table() -> dict[str, Unit]:
    table: dict[str, Unit] = {}
    for base, dim in _BASES.items():
        for prefix, scale in _PREFIXES.items():
            table[prefix + base] = Unit(prefix + base, scale, dim)
    # lengths and areas (cm2 = cm^2), as membrane densities are written per area
    for prefix, scale in {"u": Fraction(1, 10**6), "m": Fraction(1, 1000), "c": Fraction(1, 100),
                          "": Fraction(1)}.items():
        table[prefix + "m"] = Unit(prefix + "m", scale, LENGTH)
        table[prefix + "m2"] = Unit(prefix + "m2", scale ** 2, AREA)
    table["m"] = Unit("m", Fraction(1), LENGTH)   # metre wins over milli-nothing
    del table["ks"]                               # 'ks' (kiloseconds) would only confuse
    table["Ohm"] = Unit("Ohm", Fraction(1), RESISTANCE)
    table["kOhm"] = Unit("kOhm", Fraction(1000), RESISTANCE)
    table["MOhm"] = Unit("MOhm", Fraction(10**6), RESISTANCE)
    # amounts and concentrations: 1 mM = 1 mol/m3 (the SI value of a concentration is in mol/m3)
    for prefix, scale in {"": Fraction(1), "m": Fraction(1, 1000), "u": Fraction(1, 10**6)}.items():
        table[prefix + "mol"] = Unit(prefix + "mol", scale, AMOUNT)
    for prefix, scale in {"": Fraction(1000), "m": Fraction(1), "u": Fraction(1, 1000),
                          "n": Fraction(1, 10**6)}.items():
        table[prefix + "M"] = Unit(prefix + "M", scale, CONCENTRATION)
    table["m3"] = Unit("m3", Fraction(1), LENGTH ** 3)
    # Temperatures are written in degrees Celsius; a degree has the size of a kelvin (SI scale 1), so
    # differences (Q10) need no offset and nernst() adds the 273.15 itself. There is no `K` unit, so
    # nobody can mix the two scales.
    table["degC"] = Unit("degC", Fraction(1), TEMPERATURE)
    return table


UNITS: dict[str, Unit] = _build_table()

# The unit a quantity of a dimension is most naturally written in, for messages and generated code.
PREFERRED_UNIT = {VOLTAGE: "mV", TIME: "ms", CURRENT: "pA", CONDUCTANCE: "nS", CAPACITANCE: "pF",
                  AREA: "um2", RATE: "Hz", CONCENTRATION: "mM", TEMPERATURE: "degC"}


def unit_symbol(name: str) -> sympy.Symbol:
    """Units live in IR expressions as positive symbols with this naming, so they never clash
    with model names (a gate may be called `m`)."""
    return sympy.Symbol(f"unit_{name}", positive=True)


def unit_of_symbol(symbol: sympy.Symbol) -> Unit | None:
    name = symbol.name
    return UNITS.get(name[5:]) if name.startswith("unit_") else None


def si_substitutions(expr: sympy.Expr) -> dict:
    """{unit symbol: SI scale} for every unit used in expr."""
    subs = {}
    for sym in expr.free_symbols:
        unit = unit_of_symbol(sym)
        if unit is not None:
            subs[sym] = sympy.Rational(unit.scale.numerator, unit.scale.denominator)
    return subs


def to_si(expr: sympy.Expr) -> sympy.Expr:
    """The same expression with every unit replaced by its SI scale."""
    return expr.xreplace(si_substitutions(expr))


def suggest_unit(name: str) -> str | None:
    import difflib
    # A wrong case is the likeliest slip ('mv' for 'mV'); difflib alone would suggest 'm' (metre).
    # Among those ('mV', 'MV'), prefer the one agreeing with the letters' case most often.
    same_but_case = [u for u in UNITS if u.lower() == name.lower()]
    if same_but_case:
        return max(same_but_case, key=lambda u: sum(a == b for a, b in zip(u, name)))
    close = difflib.get_close_matches(name, UNITS.keys(), n=1)
    return close[0] if close else None
