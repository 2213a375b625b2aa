"""The intermediate representation: a checked cell, immutable, the only thing backends read.

Expressions are SymPy objects over
  - the membrane potential `v`, gate states (`m_NaF`), inputs (`Iapp`), parameters (`gbar_NaF`),
    and named intermediate expressions (`tau_h_KA`), all as `sympy.Symbol`;
  - units as positive symbols `unit_mV` (see units.py), so a backend can print `58*mV` or
    substitute SI scales (`units.to_si`);
  - `exprel(x) = (exp(x) - 1)/x`, the safe form of removable 0/0 rate singularities.
Numbers are exact Rationals (a backend prints them as doubles), so no precision is lost before
the target language sees them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from . import units
from .errors import HHCError
from .units import Dimension


class exprel(sympy.Function):  # noqa: N801 - the conventional name (numpy/brian2/scipy use it)
    """(exp(x) - 1)/x, continuous at 0 where it is 1."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sympy.Integer(1)
        return None

    def _eval_evalf(self, prec):
        # numeric value without the 0/0: expm1(x)/x, computed by mpmath at the asked precision
        import mpmath
        x = self.args[0].evalf(prec)
        if not x.is_number or not x.is_real:
            return None
        with mpmath.workprec(prec):
            xm = mpmath.mpf(str(x)) if x != 0 else mpmath.mpf(0)
            value = mpmath.mpf(1) if xm == 0 else mpmath.expm1(xm) / xm
        return sympy.Float(value, precision=prec)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return (sympy.exp(x) - 1) / x

    def fdiff(self, argindex=1):
        x = self.args[0]
        return (sympy.exp(x) * x - sympy.exp(x) + 1) / x**2


V = sympy.Symbol("v")


@dataclass(frozen=True)
class Parameter:
    """A named constant: `gbar_NaF = 140 nS`. Overridable per cell and per experiment."""
    name: str
    value: sympy.Expr          # number × unit symbol, e.g. 140*unit_nS
    dimension: Dimension
    doc: str = ""

    @property
    def symbol(self) -> sympy.Symbol:
        return sympy.Symbol(self.name)

    @property
    def si_value(self) -> float:
        return float(units.to_si(self.value))

    @property
    def magnitude(self) -> float:
        """The number as written, in `unit`."""
        return float(self.value.xreplace({s: 1 for s in self.value.free_symbols}))

    @property
    def unit(self) -> str:
        """The unit the value was written in ('' if dimensionless)."""
        names = [u.name for s in self.value.free_symbols if (u := units.unit_of_symbol(s))]
        if len(names) == 1 and self.value == sympy.Mul(*self.value.as_coeff_Mul()):
            return names[0]
        return ""


@dataclass(frozen=True)
class NamedExpression:
    """An intermediate the user named (`tau0 = ...`), or a gate's steady state / time constant."""
    name: str
    expr: sympy.Expr
    dimension: Dimension

    @property
    def symbol(self) -> sympy.Symbol:
        return sympy.Symbol(self.name)


@dataclass(frozen=True)
class Q10:
    """How temperature scales a gate's kinetics: its rates are multiplied by `factor` (its time
    constant divided by it). `factor` is q10 ^ ((temperature - reference_temperature) / 10 degC), or
    the fixed number `fixed` (NeuroML's q10Fixed). The others are the parameter symbols it is made of,
    kept so NeuroML can write its own q10Settings."""
    factor: sympy.Expr
    q10: sympy.Expr | None = None
    reference_temperature: sympy.Expr | None = None
    fixed: sympy.Expr | None = None


@dataclass(frozen=True)
class Gate:
    """A gating variable x with dx/dt = (steady_state - x) / time_constant.

    Gates written in alpha/beta form keep their rates; steady_state and time_constant are then
    alpha/(alpha+beta) and 1/(alpha+beta). With a Q10, the rates and time constant here already
    include its factor (every target reads them as they are); `base_*` are the rates before it.
    """
    name: str                  # as written in the channel: "m"
    channel: str               # "NaF"
    power: int
    steady_state: sympy.Expr   # dimensionless
    time_constant: sympy.Expr  # time
    alpha: sympy.Expr | None = None   # 1/time, alpha/beta form only
    beta: sympy.Expr | None = None
    q10: Q10 | None = None
    instantaneous: bool = False       # always at its steady state: not a state variable (time_constant 0)

    @property
    def _factor(self) -> sympy.Expr:
        return self.q10.factor if self.q10 is not None else sympy.Integer(1)

    @property
    def base_time_constant(self) -> sympy.Expr:
        """The time constant at the Q10's reference temperature (factor removed)."""
        return self.time_constant * self._factor

    @property
    def base_alpha(self) -> sympy.Expr | None:
        return None if self.alpha is None else self.alpha / self._factor

    @property
    def base_beta(self) -> sympy.Expr | None:
        return None if self.beta is None else self.beta / self._factor

    @property
    def state(self) -> str:
        """The state variable's name in generated code: m_NaF."""
        return f"{self.name}_{self.channel}"

    @property
    def symbol(self) -> sympy.Symbol:
        return sympy.Symbol(self.state)

    @property
    def form(self) -> str:
        return "alpha_beta" if self.alpha is not None else "inf_tau"

    @property
    def derivative(self) -> sympy.Expr:
        if self.instantaneous:
            raise ValueError(f"gate {self.state} is instantaneous: it has no derivative")
        x = self.symbol
        if self.alpha is not None:
            return self.alpha * (1 - x) - self.beta * x
        return (self.steady_state - x) / self.time_constant


@dataclass(frozen=True)
class Channel:
    name: str
    ion: str | None
    parameters: tuple[Parameter, ...]
    expressions: tuple[NamedExpression, ...]   # helper intermediates, dependency order
    gates: tuple[Gate, ...]
    current: sympy.Expr                        # outward current (A, or A/m² for densities)
    current_is_density: bool = False
    nernst: str | None = None                  # the ion, when E is exactly nernst(ion)
    # Gates always at their steady state (`gate m ^ 2 { inf = ... }`): not states; each is also the
    # named expression m_<Channel> = steady_state in `expressions`, which is all most targets need.
    instantaneous: tuple[Gate, ...] = ()
    vshift: Parameter | None = None            # set where the cell uses it; already in the gates

    @property
    def current_name(self) -> str:
        return f"I_{self.name}"

    @property
    def is_passive(self) -> bool:
        return not self.gates and not self.instantaneous


# Valences of the ions whose concentrations channels may read (`cai`, `cao`, ...).
ION_VALENCE = {"ca": 2, "na": 1, "k": 1, "cl": -1, "mg": 2}
FARADAY = sympy.Rational("96485.33212")       # C/mol
GAS_CONSTANT = sympy.Rational("8.314462618")  # J/(mol K)
ZERO_CELSIUS = sympy.Rational("273.15")       # K


def inside(ion: str) -> sympy.Symbol:
    """The intracellular concentration of an ion as a name in expressions: cai."""
    return sympy.Symbol(f"{ion}i")


def outside(ion: str) -> sympy.Symbol:
    return sympy.Symbol(f"{ion}o")


TEMPERATURE = sympy.Symbol("temperature")


def nernst(ion: str) -> sympy.Expr:
    """E = R T / (z F) ln(co / ci), T in kelvin from the cell's temperature in degC, in volts
    written with unit symbols (V = J/C; the degree and mol cancel)."""
    z = ION_VALENCE[ion]
    r = GAS_CONSTANT * units.unit_symbol("V") * units.unit_symbol("A") * units.unit_symbol("s") / (
        units.unit_symbol("mol") * units.unit_symbol("degC"))
    f = FARADAY * units.unit_symbol("A") * units.unit_symbol("s") / units.unit_symbol("mol")
    temperature_k = TEMPERATURE + ZERO_CELSIUS * units.unit_symbol("degC")
    return r * temperature_k / (z * f) * sympy.log(outside(ion) / inside(ion))


@dataclass(frozen=True)
class Pool:
    """An ion's intracellular concentration `cai`.

    kind "decaying": fed by the ion's currents into a shell `depth` under the membrane,
        d cai/dt = -I_ion / (z F area depth) - (cai - resting) / decay;
    kind "fixed_factor": d cai/dt = -rho I_ion / area - (cai - resting) / decay;
    kind "fixed": cai stays at `resting` (then a parameter, not a state).
    I_ion is the sum of the outward currents of the cell's channels that declare the ion.
    """
    ion: str
    kind: str
    resting: Parameter
    outside: Parameter                   # cao, constant
    decay: Parameter | None = None
    depth: Parameter | None = None       # decaying
    rho: Parameter | None = None         # fixed_factor
    initial: sympy.Expr | None = None    # default: resting

    @property
    def state(self) -> str:
        return f"{self.ion}i"

    @property
    def symbol(self) -> sympy.Symbol:
        return inside(self.ion)

    @property
    def is_dynamic(self) -> bool:
        return self.kind != "fixed"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for p in (self.resting, self.outside, self.decay, self.depth, self.rho) if p is not None)


# Synapse kinds: the time constants each needs.
SYNAPSE_KINDS = {"exponential": ("tau",), "alpha": ("tau",), "double_exponential": ("tau_rise", "tau_decay")}


@dataclass(frozen=True)
class Synapse:
    """A synapse type a cell receives: its conductance g (a current for a current-based synapse, one
    without E) jumps on each presynaptic spike by the connection's weight, then relaxes:

    - exponential: dg/dt = -g / tau; on a spike g += w;
    - alpha: dh/dt = -h / tau, dg/dt = (e h - g) / tau; on a spike h += w (g peaks at w after tau);
    - double_exponential: da/dt = -a / tau_decay, db/dt = -b / tau_rise, g = a - b; on a spike a and b
      += w · peak_factor (g peaks at w).

    Its current (outward-positive, like a channel's) is g (v - E), or -g when current-based. Every
    synapse of a cell sums the currents of all its connections: it is linear."""
    name: str
    kind: str
    time_constants: tuple[Parameter, ...]     # in SYNAPSE_KINDS order, qualified: tau_AMPA
    reversal: Parameter | None                 # E_AMPA; None: current-based

    @property
    def conductance_based(self) -> bool:
        return self.reversal is not None

    @property
    def weight_dimension(self) -> Dimension:
        return units.CONDUCTANCE if self.conductance_based else units.CURRENT

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return self.time_constants + ((self.reversal,) if self.reversal is not None else ())

    def _sym(self, prefix: str) -> sympy.Symbol:
        return sympy.Symbol(f"{prefix}_{self.name}")

    @property
    def states(self) -> tuple[str, ...]:
        return {"exponential": (f"g_{self.name}",), "alpha": (f"g_{self.name}", f"h_{self.name}"),
                "double_exponential": (f"a_{self.name}", f"b_{self.name}")}[self.kind]

    @property
    def conductance(self) -> sympy.Expr:
        """g: a conductance (or a current, current-based) as an expression of the states."""
        if self.kind == "double_exponential":
            return self._sym("a") - self._sym("b")
        return self._sym("g")

    @property
    def peak_factor(self) -> sympy.Expr:
        """double_exponential: 1 / (e^(-tp/tau_decay) - e^(-tp/tau_rise)) at the peak time tp, so a
        single spike's g peaks at w; 1 otherwise."""
        if self.kind != "double_exponential":
            return sympy.Integer(1)
        rise, decay = (p.symbol for p in self.time_constants)
        peak = rise * decay / (decay - rise) * sympy.log(decay / rise)
        return 1 / (sympy.exp(-peak / decay) - sympy.exp(-peak / rise))

    @property
    def derivatives(self) -> dict[str, sympy.Expr]:
        taus = [p.symbol for p in self.time_constants]
        if self.kind == "exponential":
            return {f"g_{self.name}": -self._sym("g") / taus[0]}
        if self.kind == "alpha":
            return {f"g_{self.name}": (sympy.E * self._sym("h") - self._sym("g")) / taus[0],
                    f"h_{self.name}": -self._sym("h") / taus[0]}
        return {f"a_{self.name}": -self._sym("a") / taus[1], f"b_{self.name}": -self._sym("b") / taus[0]}

    @property
    def jumps(self) -> dict[str, sympy.Expr]:
        """state → the factor of the weight it jumps by on a presynaptic spike (state += factor * w)."""
        if self.kind == "exponential":
            return {f"g_{self.name}": sympy.Integer(1)}
        if self.kind == "alpha":
            return {f"h_{self.name}": sympy.Integer(1)}
        return {f"a_{self.name}": self.peak_factor, f"b_{self.name}": self.peak_factor}

    @property
    def current_name(self) -> str:
        return f"I_{self.name}"

    @property
    def current(self) -> sympy.Expr:
        if self.conductance_based:
            return self.conductance * (V - self.reversal.symbol)
        return -self.conductance


@dataclass(frozen=True)
class Input:
    name: str                  # "Iapp"
    kind: str                  # "current"
    dimension: Dimension


@dataclass(frozen=True)
class InitialValue:
    state: str                 # "v", or a gate state "m_NaF"
    value: sympy.Expr | None   # None: the steady state at the initial v


@dataclass(frozen=True)
class Cell:
    """A point neuron: C dv/dt = Σ inputs − Σ channel currents − leak."""
    name: str
    source: str                               # path of the .chan file that defined the cell
    capacitance: Parameter                    # F (or F/m² with `area`)
    area: Parameter | None
    channels: tuple[Channel, ...]
    leak: tuple[Parameter, Parameter] | None  # (g_leak, E_leak)
    inputs: tuple[Input, ...]
    initial: tuple[InitialValue, ...]
    threshold: sympy.Expr | None              # spike when v rises above this voltage
    sources: tuple[str, ...] = field(default=())   # every file read, for cache keys and headers
    temperature: Parameter | None = None      # degC; channels with a Q10 or nernst() need it
    pools: tuple[Pool, ...] = ()
    synapses: tuple[Synapse, ...] = ()        # the synapse types the cell receives

    # ---- derived views backends use
    @property
    def gates(self) -> tuple[Gate, ...]:
        return tuple(g for ch in self.channels for g in ch.gates)

    @property
    def dynamic_pools(self) -> tuple[Pool, ...]:
        return tuple(p for p in self.pools if p.is_dynamic)

    @property
    def states(self) -> tuple[str, ...]:
        return (("v",) + tuple(g.state for g in self.gates) + tuple(p.state for p in self.dynamic_pools)
                + tuple(s for syn in self.synapses for s in syn.states))

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        params = [self.capacitance]
        if self.area is not None:
            params.append(self.area)
        if self.temperature is not None:
            params.append(self.temperature)
        for ch in self.channels:
            params.extend(ch.parameters)
            if ch.vshift is not None:
                params.append(ch.vshift)
        if self.leak is not None:
            params.extend(self.leak)
        for pool in self.pools:
            params.extend(pool.parameters)
        for syn in self.synapses:
            params.extend(syn.parameters)
        return tuple(params)

    def ion_current(self, ion: str) -> sympy.Expr:
        """The total outward current (A) of the channels that declare `ion`, by their current names."""
        return sum((sympy.Symbol(ch.current_name) for ch in self.channels if ch.ion == ion), sympy.Integer(0))

    def pool_derivative(self, pool: Pool) -> sympy.Expr:
        """d cai/dt, with the channel currents as their names (I_CaT ...), in the cell's units."""
        c = pool.symbol
        relax = -(c - pool.resting.symbol) / pool.decay.symbol
        current = self.ion_current(pool.ion)
        if pool.kind == "decaying":
            f = FARADAY * units.unit_symbol("A") * units.unit_symbol("s") / units.unit_symbol("mol")
            return -current / (ION_VALENCE[pool.ion] * f * self.area.symbol * pool.depth.symbol) + relax
        return -pool.rho.symbol * current / self.area.symbol + relax

    @property
    def expressions(self) -> tuple[NamedExpression, ...]:
        return tuple(e for ch in self.channels for e in ch.expressions)

    def channel_current(self, channel: Channel) -> sympy.Expr:
        """The channel's current in A (densities multiplied by the cell's area)."""
        if channel.current_is_density:
            return channel.current * self.area.symbol
        return channel.current

    @property
    def leak_current(self) -> sympy.Expr:
        if self.leak is None:
            return sympy.Integer(0)
        g, e = self.leak
        current = g.symbol * (V - e.symbol)
        if self.area is not None and g.dimension == units.CONDUCTANCE / units.AREA:
            current = current * self.area.symbol
        return current

    @property
    def membrane_capacitance(self) -> sympy.Expr:
        if self.area is not None and self.capacitance.dimension == units.CAPACITANCE / units.AREA:
            return self.capacitance.symbol * self.area.symbol
        return self.capacitance.symbol

    @property
    def dv_dt(self) -> sympy.Expr:
        """dv/dt written with the channel current names (I_NaF ...) as symbols."""
        total_in = sum((sympy.Symbol(i.name) for i in self.inputs), sympy.Integer(0))
        total_out = sum((sympy.Symbol(ch.current_name) for ch in self.channels), sympy.Integer(0))
        total_out += sum((sympy.Symbol(syn.current_name) for syn in self.synapses), sympy.Integer(0))
        return (total_in - total_out - sympy.Symbol("I_leak")) / self.membrane_capacitance

    def initial_value(self, state: str) -> InitialValue | None:
        for iv in self.initial:
            if iv.state == state:
                return iv
        return None

    def state_dimension(self, state: str) -> Dimension:
        if state == "v":
            return units.VOLTAGE
        if any(p.state == state for p in self.pools):
            return units.CONCENTRATION
        for syn in self.synapses:
            if state in syn.states:
                return syn.weight_dimension
        return units.DIMENSIONLESS

    def unit_symbols(self) -> set[sympy.Symbol]:
        """Every unit symbol used anywhere in the cell."""
        found: set[sympy.Symbol] = set()
        exprs = [p.value for p in self.parameters]
        exprs += [e.expr for e in self.expressions]
        for g in self.gates:
            exprs += [g.steady_state, g.time_constant]
        exprs += [ch.current for ch in self.channels]
        exprs += [iv.value for iv in self.initial if iv.value is not None]
        exprs += [self.pool_derivative(p) for p in self.dynamic_pools]
        exprs += [ch.current for ch in self.channels]
        exprs += [p.value for syn in self.synapses for p in syn.parameters]
        if self.threshold is not None:
            exprs.append(self.threshold)
        for e in exprs:
            found |= {s for s in e.free_symbols if units.unit_of_symbol(s)}
        return found


@dataclass(frozen=True)
class Model:
    """Everything one .chan file (with its imports) defines."""
    path: str
    channels: tuple[Channel, ...]
    cells: tuple[Cell, ...]
    synapses: tuple[Synapse, ...] = ()

    def cell(self, name: str | None = None) -> Cell:
        if name is None:
            if len(self.cells) == 1:
                return self.cells[0]
            names = ", ".join(c.name for c in self.cells) or "none"
            raise HHCError(f"{self.path} defines {len(self.cells)} cells ({names}); name one")
        for c in self.cells:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in self.cells) or "none"
        raise HHCError(f"{self.path} has no cell {name!r} (cells: {names})")
