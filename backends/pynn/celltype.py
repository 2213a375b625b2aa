"""PyNN target: a Python module giving one PyNN cell type per cell, usable with pyNN.nest (backed
by the NEST module hhc builds from the same IR) and pyNN.brian2 (backed by hhc's Brian2
equations). Parameters and initial values keep their .chan names (gbar_NaF, m_NaF, Iapp ...);
the membrane potential is `v` on both simulators.

    from kenyoncell_pynn import cell_type
    import pyNN.nest as sim            # or pyNN.brian2
    sim.setup(timestep=0.01)
    KC = cell_type(sim)
    pop = sim.Population(10, KC(Iapp=0.018))     # PyNN units: mV, ms, nA, uS, nF
    pop.record(["spikes", "v"])                  # v, the gates and ion pools are recordable on both

On NEST, v is the NESTML state V_m (recorded by PyNN's multimeter, in mV); NEST runs hhc's rk4
model (the experiment-free meaning of method "auto"), Brian2 its rk4 equations.

Quantities PyNN has no unit for are in the units .chan files and NEURON write them in: um, um2,
mS/cm2, uF/cm2, uA/cm2, 1/ms, mM (concentrations, e.g. the pool state cai), degC (temperature), else
SI (the module's PARAMETERS name the unit of each). Every parameter, temperature, Q10s, vshifts and
pool settings too, is per neuron. Gates not initialised start at 0 (PyNN sets every state):
initialise them to their steady state for a start at rest.

Synapses: a cell with `synapses AMPA, GABA` has the PyNN receptor types "AMPA" and "GABA"
(`sim.Projection(..., receptor_type="AMPA")`, weights in uS for conductance-based synapses, nA for
current-based ones, delays in ms). On NEST a receptor type is the NESTML model's spike input port
spikes_<NAME>; on Brian2 a presynaptic spike makes the synapse's states jump by the weight (the
double exponential's both states by weight times its peak factor), as hhc's Brian2 networks do.
PyNN gives a cell type one weight unit, so a cell mixing conductance- and current-based synapses is
refused. The synapse states (g_AMPA, a_GABA ...) are recordable in uS or nA; they start at 0 (PyNN
hands NEST initial values unconverted, and NEST keeps them in nS or pA).
"""
from __future__ import annotations

import re
from pathlib import Path

import sympy

from hhc.compiler.version import __version__
from hhc.compiler import ir, units

from ..base import unsupported
from ..brian2 import generate as b2backend
from ..nest import nestml as nest_nestml

# PyNN's units per dimension (its standard cell types use mV, ms, nA, uS, nF): value_pynn = value_si / scale.
# PyNN has no units for the rest; hhc takes those the .chan language and NEURON write them in.
_PYNN_UNITS = {units.VOLTAGE: ("mV", 1e-3), units.TIME: ("ms", 1e-3), units.CURRENT: ("nA", 1e-9),
               units.CONDUCTANCE: ("uS", 1e-6), units.CAPACITANCE: ("nF", 1e-9), units.DIMENSIONLESS: ("", 1.0),
               units.RATE: ("1/ms", 1e3), units.LENGTH: ("um", 1e-6), units.AREA: ("um2", 1e-12),
               units.CONDUCTANCE / units.AREA: ("mS/cm2", 10.0), units.CAPACITANCE / units.AREA: ("uF/cm2", 1e-2),
               units.CURRENT / units.AREA: ("uA/cm2", 1e-2), units.CONCENTRATION: ("mM", 1.0),
               units.TEMPERATURE: ("degC", 1.0)}
# the units the NEO/quantities package knows the recorded states by
_QUANTITIES_UNIT = {units.VOLTAGE: "mV", units.CONCENTRATION: "mM", units.DIMENSIONLESS: "dimensionless",
                    units.CONDUCTANCE: "uS", units.CURRENT: "nA"}


def _pynn_unit(dim) -> tuple[str, float]:
    """(PyNN unit text, its SI value) of a dimension; SI for one no table names (a pool's rho)."""
    return _PYNN_UNITS.get(dim, (dim.si_expression, 1.0))


def pynn_scale(dim):
    return _pynn_unit(dim)[1]


def brian2_method(variant: str) -> str:
    """The Brian2 method of the cell type: the NEST variant's fixed-step method, else rk4 (rkf45 is
    NESTML's adaptive GSL integrator, which Brian2 has not)."""
    return variant if variant in ("euler", "exponential_euler", "rk2", "rk4") else "rk4"


def check_synapses(cell: ir.Cell) -> None:
    """Refuse what a PyNN cell type cannot receive: synapses of both weight units on one cell."""
    kinds = {s.conductance_based for s in cell.synapses}
    if len(kinds) > 1:
        cond = ", ".join(s.name for s in cell.synapses if s.conductance_based)
        curr = ", ".join(s.name for s in cell.synapses if not s.conductance_based)
        unsupported("pynn", f"a cell receiving conductance-based and current-based synapses (cell {cell.name}: "
                            f"{cond}; {curr})",
                    hint="a PyNN cell type has one weight unit (conductance_based: uS, else nA); give the cell "
                         "synapses of one kind")


def brian2_receptor(on_pre: str) -> str:
    """PyNN's Brian2 Projection writes `<post-synaptic variable> += weight`; hhc's jump (the module's
    SYNAPSES, in w) as such a prefix: `g_AMPA_post`, or for a jump by factor·w of several states
    `a_GABA_post += F * weight; b_GABA_post += F * weight - weight; b_GABA_post`."""
    statements = [part.strip() for part in re.sub(r"\bw\b", "weight", on_pre).split(";")]
    target, increment = (x.strip() for x in statements[-1].split("+=", 1))
    last = target if increment == "weight" else f"{target} += {increment} - weight; {target}"
    return "; ".join(statements[:-1] + [last])


def module_text(cell: ir.Cell, variant: str, nest_module: dict | None) -> str:
    check_synapses(cell)
    brian_module = b2backend.module_text(cell)
    pynn_equations = b2backend.equations(cell, injected_current="i_inj", parameters_as_variables=True)

    def nest_factor(dim):
        # NEST-unit → PyNN-unit; only with a NEST module (the NEST side is the nest backend's build)
        return None if nest_module is None else float(nest_nestml.nest_scale(dim)) / pynn_scale(dim)

    def entry(value, dim):
        unit, scale = _pynn_unit(dim)     # the value in PyNN units from the exact one: 1000 um2, not 1000.0000000000001
        pynn_value = float(units.to_si(sympy.sympify(value)) / sympy.Rational(repr(scale)))
        return (pynn_value, nest_factor(dim), scale, b2backend.brian_unit(dim), unit)

    params = {p.name: entry(p.value, p.dimension) for p in cell.parameters}
    for i in cell.inputs:
        params[i.name] = entry(0, i.dimension)
    states = {"v": ("V_m", nest_factor(units.VOLTAGE), 1e-3, "volt", "mV")}
    for g in cell.gates:
        states[g.state] = (nest_nestml.nest_name(g.state), nest_factor(units.DIMENSIONLESS), 1.0, "1", "")
    for pool in cell.dynamic_pools:
        unit, scale = _pynn_unit(units.CONCENTRATION)
        states[pool.state] = (nest_nestml.nest_name(pool.state), nest_factor(units.CONCENTRATION), scale,
                              b2backend.brian_unit(units.CONCENTRATION), unit)
    synapse_states = set()
    for syn in cell.synapses:
        unit, scale = _pynn_unit(syn.weight_dimension)
        for state in syn.states:
            synapse_states.add(state)
            states[state] = (nest_nestml.nest_name(state), nest_factor(syn.weight_dimension), scale,
                             b2backend.brian_unit(syn.weight_dimension), unit)
    quantities = {s: _QUANTITIES_UNIT[cell.state_dimension(s)] for s in cell.states}
    for name, entry_ in states.items():
        # PyNN gives NEST initial values as they are: a state's PyNN and NEST units must be the same
        # (synapse states excepted: they start at 0, which is 0 in any unit; recording scales them)
        if entry_[1] not in (None, 1.0) and name not in synapse_states:
            unsupported("pynn", f"the state {name} in NEST units other than PyNN's ({entry_[4]})")
    # name: (NEST receptor port, PyNN.brian2 post-synaptic variable, conductance-based)
    receptors = {s.name: (nest_nestml.spike_port(s).upper(), brian2_receptor(b2backend.synapse_on_pre(cell, s)),
                          s.conductance_based) for s in cell.synapses}
    nest_names = {p: nest_nestml.nest_name(p) for p in params}
    init = {}
    for s in cell.states:
        iv = cell.initial_value(s)
        if iv is not None and iv.value is not None:
            init[s] = float(units.to_si(iv.value)) / pynn_scale(cell.state_dimension(s))
    sources = ", ".join(Path(s).name for s in cell.sources)
    return f'''"""PyNN cell type for cell {cell.name}, on pyNN.nest and pyNN.brian2.

Generated by hhc {__version__} from {cell.source} (reads: {sources}).
Do not edit: change the .chan file and run `hhc compile --target pynn` again.
PyNN units: mV, ms, nA, uS, nF (else as PARAMETERS says). NEST runs hhc's {variant} NESTML model; Brian2 runs
hhc's equations ({brian2_method(variant)}). Receptor types: the cell's synapses (SYNAPSES), weights in uS
(conductance-based) or nA (current-based).
"""
import os

CELL = "{cell.name}"
# name: (default in PyNN units, NEST-unit → PyNN-unit factor (None: no NEST build), SI value of the
#        PyNN unit, Brian2 unit, PyNN unit)
PARAMETERS = {params!r}
# state: (NEST name, NEST → PyNN factor, SI value of the PyNN unit, Brian2 unit, PyNN unit)
STATES = {states!r}
STATE_UNITS = {quantities!r}   # as recordings are labelled
INITIAL_VALUES = {init!r}   # in PyNN units; gates not given start at 0
NEST_MODULE = {nest_module!r}
NEST_NAMES = {nest_names!r}   # parameter -> its NEST name
# receptor type (the synapse's name): (NEST spike port, pyNN.brian2 post-synaptic variable: PyNN appends
# " += weight"; the double exponential's several states jump by the peak factor times the weight,
# conductance-based: weights in uS, else nA)
SYNAPSES = {receptors!r}
BRIAN2_METHOD = {brian2_method(variant)!r}

BRIAN2_MODULE = {brian_module!r}
# the cell's equations with PyNN's injected current i_inj and every parameter per neuron
BRIAN2_EQUATIONS = {pynn_equations!r}


def _brian2_module():
    import types
    mod = types.ModuleType("hhc_pynn_{cell.name.lower()}_brian2")
    exec(compile(BRIAN2_MODULE, "<hhc brian2 model of {cell.name}>", "exec"), mod.__dict__)
    return mod


def cell_type(sim):
    """The PyNN cell type class for simulator module `sim` (pyNN.nest or pyNN.brian2), after sim.setup()."""
    name = sim.__name__.rsplit(".", 1)[-1]
    if name == "nest":
        return _nest_type(sim)
    if name == "brian2":
        return _brian2_type(sim)
    raise ValueError(f"hhc's {cell.name} cell type supports pyNN.nest and pyNN.brian2, not {{sim.__name__}}")


def _nest_type(sim):
    import nest
    if NEST_MODULE is None:
        raise RuntimeError("this module was generated without a NEST build; run hhc compile --target pynn "
                           "with NEST installed")
    os.environ["LD_LIBRARY_PATH"] = NEST_MODULE["lib_dir"] + ":" + os.environ.get("LD_LIBRARY_PATH", "")
    if NEST_MODULE["model"] not in nest.node_models:
        nest.Install(NEST_MODULE["module"])
    from pyNN.standardmodels import StandardCellType, build_translations
    native = sim.native_cell_type(NEST_MODULE["model"])   # what NEST says of the model (receptors ...)

    # A standard cell type, so that PyNN converts its units to NEST's on creation, set() and get()
    # (a native type would hand NEST the numbers in PyNN units as they are)
    class HHCCell(StandardCellType):
        __doc__ = f"{{CELL}} (hhc) on NEST"
        default_parameters = {{k: v[0] for k, v in PARAMETERS.items()}}
        default_initial_values = dict({{k: INITIAL_VALUES.get(k, 0.0) for k in STATES}})
        recordable = ["spikes"] + list(STATES)
        units = dict(STATE_UNITS)
        # PyNN → NEST units: divide by the NEST → PyNN factor; the states' units are the same on both
        translations = build_translations(*[(k, NEST_NAMES[k], 1.0 / v[1]) for k, v in PARAMETERS.items()])
        variable_map = {{k: v[0] for k, v in STATES.items()}}
        scale_factors = {{k: v[1] for k, v in STATES.items()}}
        nest_name = native.nest_name
        nest_model = native.nest_model
        # the synapses by name; PyNN's NEST Projection then passes get_receptor_type(name) to NEST
        receptor_types = list(SYNAPSES) or native.receptor_types
        injectable = native.injectable
        standard_receptor_type = False if SYNAPSES else native.standard_receptor_type
        conductance_based = all(s[2] for s in SYNAPSES.values()) if SYNAPSES else native.conductance_based
        always_local = native.always_local
        uses_parrot = native.uses_parrot

        def get_receptor_type(self, name):
            ports = nest.GetDefaults(self.nest_model).get("receptor_types", {{}})
            if name in SYNAPSES:
                # NESTML numbers the ports of a cell with several (SPIKES_AMPA: 1 ...); one port is 0
                return int(ports[SYNAPSES[name][0]]) if ports else 0
            return ports[name]

    HHCCell.__name__ = CELL
    return HHCCell


def _brian2_type(sim):
    import brian2
    from pyNN.brian2.cells import BaseNeuronGroup
    from pyNN.standardmodels import StandardCellType, build_translations
    mod = _brian2_module()
    # what the equations read besides their variables: units Brian2 lacks (degC ...), hhc_where
    namespace = {{k: v for k, v in mod.NAMESPACE.items() if k not in PARAMETERS}}

    class Group(BaseNeuronGroup):
        def __init__(self, n, equations, **parameters):
            BaseNeuronGroup.__init__(self, n, equations, threshold=mod.THRESHOLD, reset=None,
                                     refractory=mod.REFRACTORY, method=BRIAN2_METHOD, **parameters)
            self.namespace = dict(namespace)
            for state, value in mod.INITIAL_VALUES.items():
                if value.endswith("_inf"):
                    setattr(self, state, value)

    eqs_text = BRIAN2_EQUATIONS

    def unit(si_value, brian_unit):
        """One PyNN unit as a Brian2 quantity: 1 mS/cm2 = 10 siemens/metre**2."""
        return si_value * eval(brian_unit, {{"__builtins__": {{}}}}, vars(brian2))

    translations = build_translations(*[(k, k, unit(v[2], v[3])) for k, v in PARAMETERS.items()])

    class HHCCell(StandardCellType):
        __doc__ = f"{{CELL}} (hhc) on Brian2"
        default_parameters = {{k: v[0] for k, v in PARAMETERS.items()}}
        default_initial_values = dict({{k: INITIAL_VALUES.get(k, 0.0) for k in STATES}})
        recordable = ["spikes"] + list(STATES)
        units = dict(STATE_UNITS)
        eqs = brian2.Equations(eqs_text)
        brian2_model = Group
        receptor_types = list(SYNAPSES)
        post_synaptic_variables = {{k: v[1] for k, v in SYNAPSES.items()}}
        conductance_based = all(s[2] for s in SYNAPSES.values())
        state_variable_translations = build_translations(
            *[(k, k, unit(v[2], v[3])) for k, v in STATES.items()])   # a factor: pyNN.brian2 records through it

    HHCCell.translations = translations
    HHCCell.__name__ = CELL
    return HHCCell
'''

