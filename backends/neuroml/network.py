"""hhc's drawn network (hhc.compiler.network.DrawnNetwork) as one NeuroML2 document and its LEMS
simulation, for the neuroml target and the jneuroml and neuron runners.

* Every population's cell, with the cells' channels, pools and ComponentTypes written once (two cells
  defining one id differently are refused). NeuroML gives a cell component one set of numbers and one
  initMembPotential, so the neurons of a population are grouped by their initial v (and
  concentrations) and per-neuron parameters: one NeuroML population per group, each of a copy of
  the cell with those numbers. A per-neuron parameter may change only the <cell> element (densities,
  capacitance, reversal potentials); one that would change a channel's, pool's or synapse's
  definition is refused.
* hhc's synapses as NeuroML's standard components: exponential → expOneSynapse, alpha →
  alphaSynapse, double_exponential → expTwoSynapse (gbase 1 nS, the connection's weight in nS: NeuroML
  jumps by gbase × weight); current-based exponential → expCurrSynapse (its current is the weight in
  nA), current-based alpha → alphaCurrentSynapse (ibase 1 pA, the weight in pA). NeuroML has no
  current-based double exponential: refused.
* Spike sources as hhc's drawn trains: one spikeArray per source neuron that has connections, each
  in a population of one (a population holds one component, so one train).
* Projections: hhc's drawn edges, one connectionWD per edge (weight, delay), grouped into one
  <projection> per pair of NeuroML populations.
* Current inputs: one pulseGenerator per population, input and protocol phase (an input keeps its
  value until a phase changes it), an explicitInput per neuron.
* The LEMS simulation records spikes of every population with hhc's global neuron indices
  (population after population, DrawnNetwork.offsets()) and traces of the main population.
Noise (an Ornstein-Uhlenbeck current) is refused.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import sympy

from hhc.compiler import ir
from hhc.compiler.version import __version__

from ..base import EmitOptions, unsupported
from .generate import (CellLayout, _cell_element, _default_initial, _header, _nml_id, _si, _trace_quantity,
                       cell_definitions, emit_documents, initial_gate_warnings, lems_filename, net_filename,
                       nml_number, quantity, simulation_head)

# the schema's order of top-level elements (NeuroMLDocument)
_ORDER = ("ionChannel", "ionChannelHH", "pool", "alphaCurrentSynapse", "alphaSynapse", "expOneSynapse",
          "expTwoSynapse", "cell", "pulseGenerator", "spikeArray", "expCurrSynapse")


def experiment_documents(cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
    """Every document of an emit: the network's when the experiment has one ([network] or
    per-neuron parameters), else the cell's (generate.emit_documents)."""
    exp = options.experiment
    if exp is None or getattr(exp, "drawn", None) is None:
        return emit_documents(cell, options)
    placement = NetworkPlacement(exp)
    return {net_filename(cell): network_document(cell, exp, placement),
            lems_filename(cell): lems_document(cell, exp, placement)}


def network_cells(experiment) -> list[ir.Cell]:
    """The distinct cells of the experiment's populations (by name), main first."""
    net = experiment.drawn
    seen = {}
    for pop in net.populations:
        seen.setdefault(net.cells[pop].name, net.cells[pop])
    return list(seen.values())


def network_size(experiment) -> int:
    """Neurons in all populations (sources are not neurons)."""
    net = experiment.drawn
    return sum(net.sizes[p] for p in net.populations)


def network_gate_warnings(experiment) -> list[str]:
    """Initial gate values NeuroML cannot express (it starts gates at their steady state), per
    population; synapse states starting at 0 are what NeuroML does too."""
    net = experiment.drawn
    out = []
    for pop in net.populations:
        cell = net.cells[pop]
        arrays = experiment.initial_arrays if pop == net.spec.main else net.initial[pop]
        zero = {s for syn in cell.synapses for s in syn.states
                if arrays.get(s) is not None and not np.any(np.asarray(arrays[s]))}
        shown = dataclasses.replace(experiment, initial_arrays={k: v for k, v in arrays.items() if k not in zero})
        out += [f"population {pop}: {w}" for w in initial_gate_warnings(cell, shown)]
    return out


# ---------------------------------------------------------------------------------------------
# per-neuron numbers
def _scaled(p: ir.Parameter, si: float) -> ir.Parameter:
    """p with the SI value si, written in p's own units (so expressions reading it keep their units)."""
    base = p.si_value
    if base == si:
        return p
    if base == 0:
        unsupported("neuroml", f"a per-neuron value of parameter {p.name}, which is 0 in the .chan file",
                    hint="give it a non-zero value in the .chan file")
    return dataclasses.replace(p, value=sympy.Float(si / base, 17) * p.value)


def _with_parameters(obj, values: dict):
    """The IR object (a cell and everything in it) with the named parameters' values replaced (SI)."""
    if isinstance(obj, ir.Parameter):
        return _scaled(obj, values[obj.name]) if obj.name in values else obj
    if isinstance(obj, tuple):
        new = tuple(_with_parameters(o, values) for o in obj)
        return obj if all(a is b for a, b in zip(new, obj)) else new
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {}
        for f in dataclasses.fields(obj):
            old = getattr(obj, f.name)
            new = _with_parameters(old, values)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(obj, **changes) if changes else obj
    return obj


@dataclasses.dataclass
class Group:
    """Neurons of one hhc population that NeuroML can hold in one population of one cell component."""
    population: str               # hhc population
    pop_id: str                   # NeuroML population
    component: str                # NeuroML cell id (NetworkPlacement.cells: the cell with its numbers)
    neurons: list[int]            # indices within the hhc population


class NetworkPlacement:
    """Where each neuron of every population lives in the NeuroML network: `where[pop][i]` is
    (NeuroML population, index in it); `groups` are the NeuroML populations, `cells` the cell
    components (id → (cell, v0, pools0)), `sources[name][k]` the population of source neuron k's
    spikeArray."""

    def __init__(self, experiment):
        net = experiment.drawn
        noisy = [name for name, noise in [(net.spec.main, net.spec.main_noise)] +
                 [(p.name, p.noise) for p in net.spec.populations] if noise is not None]
        if noisy:
            unsupported("neuroml", f"noise (the Ornstein-Uhlenbeck current of population {noisy[0]})",
                        hint="NeuroML's inputs are deterministic here; run noisy networks on brian2")
        self.net = net
        self.groups: list[Group] = []
        self.where: dict[str, list[tuple[str, int]]] = {}
        self.cells: dict[str, tuple[ir.Cell, float, dict]] = {}
        self.base_cells: dict[str, ir.Cell] = {}            # cell name → the cell as written
        used: set[str] = set()
        components: dict[tuple, str] = {}
        for pop in net.populations:
            cell = net.cells[pop]
            other = self.base_cells.setdefault(cell.name, cell)
            if other is not cell and other != cell:
                unsupported("neuroml", f"two different cells named {cell.name} in one network",
                            hint="rename one of them: NeuroML ids are cell names")
            arrays = experiment.initial_arrays if pop == net.spec.main else net.initial[pop]
            self._place(pop, cell, net.sizes[pop], arrays, net.parameters.get(pop) or {}, components, used)
        self.sources: dict[str, dict[int, str]] = {}
        connected: dict[str, set] = {s.name: set() for s in net.spec.sources}
        for proj, edges in zip(net.spec.projections, net.edges):
            if proj.source in connected:
                connected[proj.source].update(np.unique(edges.pre).tolist())
        for src in net.spec.sources:
            self.sources[src.name] = {k: self._fresh(f"{_nml_id(src.name)}_{k}", used)
                                      for k in sorted(connected[src.name])}

    def source_trains(self) -> dict[str, np.ndarray]:
        """spikeArray id → the drawn spike times (s) of its source neuron."""
        out = {}
        for src in self.net.spec.sources:
            idx, times = (np.asarray(a) for a in self.net.source_spikes[src.name])
            for k, pop_id in self.sources[src.name].items():
                out[f"{pop_id}_spikes"] = times[idx == k]
        return out

    @staticmethod
    def _fresh(name: str, used: set) -> str:
        if name in used:
            unsupported("neuroml", f"two network elements named {name}",
                        hint="rename a population or source (NeuroML ids are built from their names)")
        used.add(name)
        return name

    def _place(self, pop, cell, n, arrays, parameters, components, used):
        layout = CellLayout(cell)
        v_default, pools_default = _default_initial(cell, layout)
        columns = [np.broadcast_to(np.asarray(arrays["v"] if arrays.get("v") is not None else v_default, float),
                                   (n,))]
        ions = [p.ion for p in layout.pools]
        for pool in layout.pools:
            values = arrays.get(pool.state) if pool.is_dynamic else None
            column = np.broadcast_to(np.asarray(values if values is not None else pools_default[pool.ion], float),
                                     (n,))
            if not np.all(column == column[0]):
                # (NEURON's export keeps a species' initial concentration in a GLOBAL of the pool)
                unsupported("neuroml", f"a different initial {pool.ion}i per neuron (population {pop})",
                            hint=f"start every neuron at one {pool.ion}i for the neuroml, jneuroml and neuron backends")
            columns.append(column)
        names = sorted(parameters)
        if cell.area is not None and cell.area.name in names:
            unsupported("neuroml", f"a per-neuron area (population {pop})",
                        hint="NeuroML's recorded currents are densities times one area per cell")
        columns += [np.broadcast_to(np.asarray(parameters[k], float), (n,)) for k in names]
        keys = list(zip(*[c.tolist() for c in columns]))
        order: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            order.setdefault(key, []).append(i)
        single = len(order) == 1
        self.where[pop] = [("", 0)] * n
        for k, (key, neurons) in enumerate(order.items()):
            values = dict(zip(names, key[1 + len(ions):]))
            variant = _with_parameters(cell, values) if values else cell
            if values:
                self._check_variant(pop, cell, variant, names)
            comp_key = (cell.name, key[:1 + len(ions)], tuple(sorted(values.items())))
            if comp_key not in components:
                count = sum(1 for c in components if c[0] == cell.name)
                cid = layout.id if count == 0 else f"{layout.id}_{count}"
                components[comp_key] = self._fresh(cid, used)
                self.cells[components[comp_key]] = (variant, key[0], dict(zip(ions, key[1:1 + len(ions)])))
            pop_id = self._fresh(_nml_id(pop) if single else f"{_nml_id(pop)}_{k}", used)
            self.groups.append(Group(pop, pop_id, components[comp_key], neurons))
            for j, i in enumerate(neurons):
                self.where[pop][i] = (pop_id, j)

    @staticmethod
    def _check_variant(pop, cell, variant, names):
        """A per-neuron parameter may change only the <cell> element."""
        if cell.temperature is not None and variant.temperature != cell.temperature:
            unsupported("neuroml", f"a per-neuron temperature (population {pop})",
                        hint="NeuroML sets one temperature on the network")
        if variant.synapses != cell.synapses:
            changed = [s.name for s, t in zip(cell.synapses, variant.synapses) if s != t]
            unsupported("neuroml", f"per-neuron parameters of synapse {changed[0]} (population {pop})",
                        hint="NeuroML's synapse components are shared by every connection")
        base, _ = cell_definitions(cell, CellLayout(cell))
        new, _ = cell_definitions(variant, CellLayout(variant))
        for (kind, eid, lines), (_, _, other) in zip(base, new):
            if lines != other:
                unsupported("neuroml", f"per-neuron {', '.join(names)} (population {pop}), which changes the "
                                       f"definition of {kind} {eid}",
                            hint="per-neuron values are expressed for conductances, reversal potentials and the "
                                 "capacitance: what the <cell> element holds")

    def target(self, pop: str, i: int) -> str:
        """The LEMS path of neuron i of hhc population pop."""
        pop_id, j = self.where[pop][i]
        return f"{pop_id}[{j}]"

    def cell_path(self, pop: str, i: int) -> str:
        """The connection path (../population[index]: jLEMS finds a neuron of a population given by its
        size only so) of neuron i of hhc population pop."""
        pop_id, j = self.where[pop][i]
        return f"../{pop_id}[{j}]"


# ---------------------------------------------------------------------------------------------
# synapses
def synapse_element(syn: ir.Synapse) -> tuple[str, str, float]:
    """(element kind, its XML, the factor from hhc's SI weight to NeuroML's weight)."""
    sid = _nml_id(syn.name)
    taus = [p.si_value * 1e3 for p in syn.time_constants]            # ms
    if syn.conductance_based:
        common = f'id="{sid}" gbase="1nS" erev="{quantity(syn.reversal.si_value * 1e3, "mV")}"'
        if syn.kind == "exponential":
            return "expOneSynapse", f'    <expOneSynapse {common} tauDecay="{quantity(taus[0], "ms")}"/>', 1e9
        if syn.kind == "alpha":
            return "alphaSynapse", f'    <alphaSynapse {common} tau="{quantity(taus[0], "ms")}"/>', 1e9
        return ("expTwoSynapse", f'    <expTwoSynapse {common} tauRise="{quantity(taus[0], "ms")}" '
                                 f'tauDecay="{quantity(taus[1], "ms")}"/>', 1e9)
    if syn.kind == "exponential":       # PyNN's: tau_syn in ms, its current the weight in nA
        return "expCurrSynapse", f'    <expCurrSynapse id="{sid}" tau_syn="{nml_number(taus[0])}"/>', 1e9
    if syn.kind == "alpha":
        return ("alphaCurrentSynapse", f'    <alphaCurrentSynapse id="{sid}" tau="{quantity(taus[0], "ms")}" '
                                       f'ibase="1pA"/>', 1e12)
    unsupported("neuroml", f"the current-based double_exponential synapse {syn.name}",
                hint="NeuroML has no current-based double-exponential synapse; give it an E (conductance-based), "
                     "or make it exponential or alpha")


def _synapses(net) -> dict[str, tuple[str, str, float]]:
    """Every synapse a projection uses: NeuroML id → (kind, XML, weight factor)."""
    out, defined = {}, {}
    for proj in net.spec.projections:
        syn = next(s for s in net.cells[proj.target].synapses if s.name == proj.synapse)
        sid = _nml_id(syn.name)
        if sid in defined and defined[sid] != syn:
            unsupported("neuroml", f"two different synapses named {syn.name} in one network",
                        hint="rename one of them: NeuroML ids are synapse names")
        defined[sid] = syn
        out[sid] = synapse_element(syn)
    return out


# ---------------------------------------------------------------------------------------------
# documents
def _temperature(placement: NetworkPlacement) -> float | None:
    temps = {name: _si(c.temperature.value) for name, c in placement.base_cells.items() if c.temperature is not None}
    if len(set(temps.values())) > 1:
        unsupported("neuroml", f"cells at different temperatures in one network "
                               f"({', '.join(f'{k} {nml_number(v)} degC' for k, v in temps.items())})",
                    hint="NeuroML sets one temperature on the network; set [model] temperature")
    return next(iter(temps.values()), None)


def _definitions(placement: NetworkPlacement) -> tuple[list[tuple[str, str, list[str]]], list[str]]:
    """The channels, pools and ComponentTypes of every cell, each id once."""
    blocks: dict[str, tuple[str, str, list[str]]] = {}
    owner: dict[str, str] = {}
    types: dict[str, str] = {}
    for name, cell in placement.base_cells.items():
        found, texts = cell_definitions(cell, CellLayout(cell))
        for kind, eid, lines in found:
            if eid in blocks and blocks[eid][2] != lines:
                unsupported("neuroml", f"cells {owner[eid]} and {name} with different definitions of {kind} {eid} "
                                       f"in one network", hint="NeuroML ids are channel names: rename one")
            blocks.setdefault(eid, (kind, eid, lines))
            owner.setdefault(eid, name)
        for text in texts:
            type_name = re.search(r'<ComponentType name="([^"]+)"', text).group(1)
            if type_name in types and types[type_name] != text:
                unsupported("neuroml", f"two different ComponentTypes {type_name} in one network",
                            hint="NeuroML ids are channel names: rename one of the channels")
            types.setdefault(type_name, text)
    return list(blocks.values()), list(types.values())


def _phase_inputs(experiment) -> list[dict[str, dict[str, float]]]:
    """Per protocol phase: population → {input: value (SI)}, an input keeping its value until a phase
    sets it (as the other backends do)."""
    net = experiment.drawn
    current = {pop: {i.name: 0.0 for i in net.cells[pop].inputs} for pop in net.populations}
    for pop in net.populations:
        for i in net.cells[pop].inputs:
            if i.kind != "current":
                unsupported("neuroml", f"the input {i.name} of cell {net.cells[pop].name}, which is not a current")
    out = []
    for phase in experiment.protocol:
        for key, value in phase.inputs.items():
            pop, name = key.split(".", 1) if "." in key else (net.spec.main, key)
            current[pop][name] = float(value)
        out.append({pop: dict(values) for pop, values in current.items()})
    return out


def network_document(cell: ir.Cell, experiment, placement: NetworkPlacement) -> str:
    net = experiment.drawn
    total = network_size(experiment)
    out = _header(f"{_nml_id(cell.name)}_net", cell,
                  f"Network of experiment {Path(experiment.path).name}: "
                  + ", ".join(f"{p} ({net.sizes[p]} x {net.cells[p].name})" for p in net.populations)
                  + (f"; sources {', '.join(s.name for s in net.spec.sources)}" if net.spec.sources else "")
                  + f"; {total} neurons, {sum(len(e) for e in net.edges)} connections, drawn by hhc "
                    f"(seed {experiment.seed}).")
    blocks, types = _definitions(placement)
    elements: list[tuple[str, list[str]]] = [(kind, lines) for kind, _, lines in blocks]
    synapses = _synapses(net)
    elements += [(kind, [xml]) for kind, xml, _ in synapses.values()]
    for cid, (variant, v0, pools0) in placement.cells.items():
        elements.append(("cell", _cell_element(variant, CellLayout(variant), cid, v0, pools0)))
    pulses: list[tuple[str, str]] = []          # (pulse id, hhc population)
    t = 0.0
    for k, (phase, inputs) in enumerate(zip(experiment.protocol, _phase_inputs(experiment))):
        for pop, values in inputs.items():
            for name, amp in values.items():
                if amp != 0:
                    pid = f"stim_{_nml_id(pop)}_{_nml_id(name)}_{k}"
                    pulses.append((pid, pop))
                    elements.append(("pulseGenerator", [
                        f'    <pulseGenerator id="{pid}" delay="{quantity(t * 1e3, "ms")}" '
                        f'duration="{quantity(phase.duration * 1e3, "ms")}" amplitude="{quantity(amp * 1e12, "pA")}"/>']))
        t += phase.duration
    for array_id, times in placement.source_trains().items():
        lines = [f'    <spikeArray id="{array_id}">']
        lines += [f'        <spike id="{j}" time="{quantity(s * 1e3, "ms")}"/>' for j, s in enumerate(times)]
        lines.append("    </spikeArray>")
        elements.append(("spikeArray", lines))
    elements.sort(key=lambda e: _ORDER.index(e[0]))            # stable: each kind keeps its order
    for _, lines in elements:
        out.extend(lines)

    temperature = _temperature(placement)
    if temperature is not None:
        out.append(f'    <network id="net" type="networkWithTemperature" temperature="{quantity(temperature, "degC")}">')
    else:
        out.append('    <network id="net">')
    for g in placement.groups:
        out.append(f'        <population id="{g.pop_id}" component="{g.component}" size="{len(g.neurons)}"/>')
    for src in net.spec.sources:
        for pop_id in placement.sources[src.name].values():
            out.append(f'        <population id="{pop_id}" component="{pop_id}_spikes" size="1"/>')
    for proj, edges in zip(net.spec.projections, net.edges):
        out += _projections(proj, edges, placement, synapses[_nml_id(proj.synapse)][2])
    for pid, pop in pulses:
        for i in range(net.sizes[pop]):
            out.append(f'        <explicitInput target="{placement.target(pop, i)}" input="{pid}"/>')
    out.append("    </network>")
    out.extend(types)       # the schema wants ComponentTypes after the other top-level elements
    out.append("</neuroml>")
    return "\n".join(out) + "\n"


def _projections(proj, edges, placement: NetworkPlacement, weight_factor: float) -> list[str]:
    """One <projection> per pair of NeuroML populations the hhc projection's edges join, with one
    connectionWD per edge (in the drawn order)."""
    net = placement.net
    is_source = proj.source in placement.sources
    pairs: dict[tuple[str, str], list[int]] = {}
    paths = []
    for e, (a, b) in enumerate(zip(edges.pre.tolist(), edges.post.tolist())):
        if is_source:
            pre_pop = placement.sources[proj.source][a]
            pre_path = f"../{pre_pop}[0]"
        else:
            pre_pop = placement.where[proj.source][a][0]
            pre_path = placement.cell_path(proj.source, a)
        post_pop = placement.where[proj.target][b][0]
        pairs.setdefault((pre_pop, post_pop), []).append(e)
        paths.append((pre_path, placement.cell_path(proj.target, b)))
    out = []
    for (pre_pop, post_pop), members in pairs.items():
        out.append(f'        <projection id="proj{proj.index}_{pre_pop}_{post_pop}" presynapticPopulation="{pre_pop}" '
                   f'postsynapticPopulation="{post_pop}" synapse="{_nml_id(proj.synapse)}">')
        for k, e in enumerate(members):
            pre_path, post_path = paths[e]
            out.append(f'            <connectionWD id="{k}" preCellId="{pre_path}" postCellId="{post_path}" '
                       f'weight="{nml_number(edges.weight[e] * weight_factor)}" '
                       f'delay="{quantity(edges.delay[e] * 1e3, "ms")}"/>')
        out.append("        </projection>")
    return out


def lems_document(cell: ir.Cell, experiment, placement: NetworkPlacement) -> str:
    net = experiment.drawn
    layout = CellLayout(cell)
    main = net.spec.main
    lines = simulation_head(
        cell, experiment,
        f"LEMS simulation of the network of experiment {escape(Path(experiment.path).name)}; generated by hhc "
        f"{__version__} from {escape(cell.source)}. Spikes: hhc's global neuron indices (populations "
        f"{', '.join(f'{p} from {o}' for p, o in net.offsets().items())}).",
        ("Cells", "Synapses", "Inputs", "PyNN", "Networks", "Simulation"))
    for k, tr in enumerate(experiment.traces):
        lines.append(f'        <OutputFile id="traces_{k}" fileName="traces_{k}.dat">')
        for var in tr.variables:
            synapse = next((s for s in cell.synapses if var in s.states + (s.current_name,)), None)
            if synapse is not None:
                unsupported("neuroml", f"recording '{var}' (of synapse {synapse.name})",
                            hint="NeuroML makes one synapse instance per connection, so a cell has no single "
                                 "synapse state to record; record v, gate states, channel currents")
            for i in tr.neurons:
                path, _ = _trace_quantity(cell, layout, var, placement.target(main, i))
                lines.append(f'            <OutputColumn id="{var}_{i}" quantity="{path}"/>')
        lines.append("        </OutputFile>")
    if experiment.record_spikes is not None:
        lines.append('        <EventOutputFile id="spikes" fileName="spikes.dat" format="TIME_ID">')
        for pop, offset in net.offsets().items():
            if net.cells[pop].threshold is None:
                continue
            neurons = (range(net.sizes[pop]) if pop != main or experiment.record_spikes is True
                       else experiment.record_spikes)
            for i in neurons:
                lines.append(f'            <EventSelection id="{offset + i}" select="{placement.target(pop, i)}" '
                             f'eventPort="spike"/>')
        lines.append("        </EventOutputFile>")
    lines += ["    </Simulation>", "</Lems>"]
    return "\n".join(lines) + "\n"

