"""Networks in experiment files: more populations, spike sources and projections, drawn once.

An experiment's `[model]`/`[population]` cells are the *main* population (named by `[population]
name`, default the cell's name). `[network]` adds:

    [network.populations.GGN]              # another population, its own cell
    cell = "GGN"                           # in [model] file, or model = "other.chan"
    size = 1
    initial = { v = "-60 mV" }
    parameters = { gbar_KA = "uniform(40 nS, 60 nS)" }    # per neuron: i, N, uniform(), rand(), randn()

    [network.sources.PN]                   # spike sources
    kind = "poisson"                       # or "spike_times" with times = [[...], ...] in ms
    size = 800
    rate = "5 Hz"                          # or per protocol phase: [[protocol]] rates = { PN = "40 Hz" }

    [[network.projections]]
    source = "PN"                          # a source or a population
    target = "KC"                          # a population whose cell receives `synapse`
    synapse = "AMPA"
    rule = "fixed_indegree"                # all_to_all, one_to_one, fixed_probability, fixed_indegree, from_file
    indegree = 20                          # probability = 0.1; file = "edges.csv" (pre,post[,weight,delay])
    weight = "uniform(0.5 nS, 1.5 nS)"     # constant or drawn, per connection
    delay = "1.5 ms"

The main population may also take `[population] parameters = {...}` and `noise = { input = "Iapp",
mean = "0 pA", sigma = "5 pA", tau = "5 ms" }` (an Ornstein-Uhlenbeck current).

`draw` makes every random thing once from the experiment's seed (one stream per thing, so adding
a projection does not change another's draw): connections, weights, delays, per-neuron parameters
and the Poisson spike trains. Every backend, thread and MPI rank count then simulates the same network.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ir, units
from .checker import load_model
from .errors import HHCError
from .values import evaluate, random_functions

RULES = {"all_to_all": (), "one_to_one": (), "fixed_probability": ("probability",),
         "fixed_indegree": ("indegree",), "from_file": ("file",)}
SOURCE_KINDS = ("poisson", "spike_times")


@dataclass(frozen=True)
class PopulationSpec:
    name: str
    model_file: Path
    cell_name: str | None
    size: int
    initial: dict = field(default_factory=dict)      # state -> value text (the main one: the experiment's)
    parameters: dict = field(default_factory=dict)   # parameter -> value text, per neuron
    noise: dict | None = None                        # input, mean, sigma, tau in SI


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str
    size: int
    rate: float | None = None                        # Hz, all phases without their own
    times: tuple = ()                                # spike_times: one tuple of seconds per source neuron


@dataclass(frozen=True)
class ProjectionSpec:
    index: int
    source: str
    target: str
    synapse: str
    rule: str
    options: dict
    weight: str
    delay: str


@dataclass(frozen=True)
class NetworkSpec:
    main: str                                        # the name of the experiment's own population
    populations: tuple[PopulationSpec, ...]          # the others
    sources: tuple[SourceSpec, ...]
    projections: tuple[ProjectionSpec, ...]
    phase_rates: tuple[dict, ...] = ()               # per protocol phase: source -> Hz
    main_parameters: dict = field(default_factory=dict)
    main_noise: dict | None = None

    def names(self) -> list[str]:
        return [self.main] + [p.name for p in self.populations] + [s.name for s in self.sources]


@dataclass
class Edges:
    """One projection's connections: presynaptic and postsynaptic indices (within their groups),
    weights (SI: S or A) and delays (s)."""
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    delay: np.ndarray

    def __len__(self) -> int:
        return len(self.pre)


@dataclass
class DrawnNetwork:
    spec: NetworkSpec
    cells: dict                    # population -> ir.Cell
    sizes: dict                    # every population and source -> size
    parameters: dict               # population -> {parameter: array (SI)}
    initial: dict                  # population (not the main one) -> {state: array | None}
    source_spikes: dict            # source -> (indices, times) sorted by time
    edges: list[Edges]             # in the order of spec.projections

    @property
    def populations(self) -> list[str]:
        return [self.spec.main] + [p.name for p in self.spec.populations]

    def offsets(self) -> dict:
        """Global neuron index of each population's first neuron, in population order (for results)."""
        out, k = {}, 0
        for name in self.populations:
            out[name] = k
            k += self.sizes[name]
        return out


# ---- reading ----------------------------------------------------------------------------------

def parse(reader, raw: dict, main: str, model_file: Path, experiment_dir: Path, protocol_raw: list,
          main_extra: dict) -> NetworkSpec:
    """[network] (and the main population's parameters/noise, the protocol's rates) → NetworkSpec."""
    if not isinstance(raw, dict):
        raise reader.error("[network] must be a table with populations, sources and projections")
    unknown = set(raw) - {"populations", "sources", "projections"}
    if unknown:
        raise reader.error(f"[network] has no {sorted(unknown)[0]!r} (known: populations, sources, projections)",
                           sorted(unknown)[0])
    pops = []
    for name, table in _tables(reader, raw.get("populations", {}), "[network.populations]").items():
        pops.append(_population(reader, name, table, model_file, experiment_dir))
    sources = [_source(reader, name, table) for name, table in
               _tables(reader, raw.get("sources", {}), "[network.sources]").items()]
    names = [main] + [p.name for p in pops] + [s.name for s in sources]
    seen = set()
    for n in names:
        if n in seen:
            raise reader.error(f"the name {n!r} is used twice in the network (populations and sources share "
                               f"one namespace)", n)
        seen.add(n)
    projections_raw = raw.get("projections", [])
    if not isinstance(projections_raw, list):
        raise reader.error("[[network.projections]] must be an array of tables")
    projections = [_projection(reader, k, t, names, [s.name for s in sources], experiment_dir)
                   for k, t in enumerate(projections_raw)]
    phase_rates = []
    source_names = {s.name for s in sources}
    for k, phase in enumerate(protocol_raw, 1):
        rates = phase.get("rates", {})
        if not isinstance(rates, dict):
            raise reader.error(f"[[protocol]] phase {k} rates must be a table like {{ PN = \"40 Hz\" }}")
        out = {}
        for src, value in rates.items():
            if src not in source_names:
                raise reader.error(f"[[protocol]] phase {k} rates: {src!r} is not a Poisson source "
                                   f"(sources: {', '.join(sorted(source_names)) or 'none'})", src)
            out[src] = _rate(reader, value, f"[[protocol]] phase {k} rate of {src}", src)
        phase_rates.append(out)
    for s in sources:
        if s.kind == "poisson" and s.rate is None and not all(s.name in r for r in phase_rates):
            raise reader.error(f"source {s.name} has no rate for every protocol phase: give rate = \"5 Hz\" or "
                               f"rates = {{ {s.name} = \"...\" }} in each [[protocol]] phase", s.name)
    params = _parameter_table(reader, main_extra.get("parameters", {}), f"[population] parameters")
    noise = _noise(reader, main_extra.get("noise"), "[population] noise")
    return NetworkSpec(main, tuple(pops), tuple(sources), tuple(projections), tuple(phase_rates), params, noise)


def _tables(reader, raw, what) -> dict:
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise reader.error(f"{what} must hold one table per name, like [{what[1:-1]}.NAME]")
    return raw


def _size(reader, table, what) -> int:
    size = table.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise reader.error(f"{what} size must be a positive integer, got {size!r}", size, "size")
    return size


def _population(reader, name, table, model_file, experiment_dir) -> PopulationSpec:
    what = f"[network.populations.{name}]"
    allowed = {"model", "cell", "size", "initial", "parameters", "noise"}
    for key in table:
        if key not in allowed:
            raise reader.error(f"{what} has no {key!r} (known: {', '.join(sorted(allowed))})", key)
    file = model_file
    if "model" in table:
        file = (experiment_dir / str(table["model"])).resolve()
        if not file.is_file():
            raise reader.error(f"{what} model file {table['model']!r} not found (looked for {file})",
                               table["model"], "model")
    initial = table.get("initial", {})
    if not isinstance(initial, dict):
        raise reader.error(f"{what} initial must be a table like {{ v = \"-65 mV\" }}")
    return PopulationSpec(name, file, table.get("cell"), _size(reader, table, what),
                          {str(k): v for k, v in initial.items()},
                          _parameter_table(reader, table.get("parameters", {}), f"{what} parameters"),
                          _noise(reader, table.get("noise"), f"{what} noise"))


def _parameter_table(reader, raw, what) -> dict:
    if not isinstance(raw, dict):
        raise reader.error(f"{what} must be a table like {{ gbar_NaF = \"uniform(120 nS, 160 nS)\" }}")
    for key, value in raw.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise reader.error(f"{what} {key} must be a value or an expression in quotes, got {value!r}", key)
    return dict(raw)


def _noise(reader, raw, what) -> dict | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"input", "mean", "sigma", "tau"} or "input" not in raw:
        raise reader.error(f"{what} must be a table like {{ input = \"Iapp\", mean = \"0 pA\", sigma = \"5 pA\", "
                           f"tau = \"5 ms\" }}")
    out = {"input": str(raw["input"])}
    out["mean"] = reader.quantity(raw.get("mean", "0 pA"), units.CURRENT, f"{what} mean", "mean")
    out["sigma"] = reader.quantity(raw.get("sigma", "0 pA"), units.CURRENT, f"{what} sigma", "sigma")
    out["tau"] = reader.quantity(raw.get("tau", "5 ms"), units.TIME, f"{what} tau", "tau")
    if out["sigma"] < 0 or out["tau"] <= 0:
        raise reader.error(f"{what}: sigma must be >= 0 and tau > 0", raw.get("sigma"), "sigma")
    return out


def _rate(reader, value, what, key) -> float:
    rate = reader.quantity(value, units.RATE, what, key)
    if rate < 0:
        raise reader.error(f"{what} must not be negative, got {value!r}", value, key)
    return rate


def _source(reader, name, table) -> SourceSpec:
    what = f"[network.sources.{name}]"
    kind = table.get("kind")
    if kind not in SOURCE_KINDS:
        raise reader.error(f"{what} kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}", kind, "kind")
    allowed = {"kind", "size", "rate"} if kind == "poisson" else {"kind", "size", "times"}
    for key in table:
        if key not in allowed:
            raise reader.error(f"{what} ({kind}) has no {key!r} (known: {', '.join(sorted(allowed))})", key)
    if kind == "poisson":
        rate = _rate(reader, table["rate"], f"{what} rate", "rate") if "rate" in table else None
        return SourceSpec(name, kind, _size(reader, table, what), rate=rate)
    times = table.get("times")
    if not isinstance(times, list) or not all(isinstance(t, list) for t in times):
        raise reader.error(f"{what} times must be one list of spike times (ms) per source neuron, "
                           f"like [[10.0, 20.0], [15.0]]", None)
    trains = []
    for k, train in enumerate(times):
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in train):
            raise reader.error(f"{what} times[{k}] must hold numbers of milliseconds >= 0", None)
        trains.append(tuple(sorted(float(x) * 1e-3 for x in train)))
    size = table.get("size", len(trains))
    if size != len(trains):
        raise reader.error(f"{what} size is {size} but times has {len(trains)} lists", None)
    return SourceSpec(name, kind, len(trains), times=tuple(trains))


def _projection(reader, k, table, names, source_names, experiment_dir) -> ProjectionSpec:
    what = f"[[network.projections]] {k + 1}"
    if not isinstance(table, dict):
        raise reader.error(f"{what} must be a table")
    for key in ("source", "target", "synapse", "rule"):
        if not isinstance(table.get(key), str):
            raise reader.error(f"{what} needs {key} = \"...\"", None)
    for key in ("source", "target"):
        if table[key] not in names:
            raise reader.error(f"{what}: unknown {key} {table[key]!r} (populations and sources: {', '.join(names)})",
                               table[key], key)
    if table["target"] in source_names:
        raise reader.error(f"{what}: target {table['target']!r} is a spike source; only populations receive "
                           f"synapses", table["target"], "target")
    rule = table["rule"]
    if rule not in RULES:
        raise reader.error(f"{what}: unknown rule {rule!r} (rules: {', '.join(RULES)})", rule, "rule")
    allowed = {"source", "target", "synapse", "rule", "weight", "delay", "allow_autapses"} | set(RULES[rule])
    for key in table:
        if key not in allowed:
            raise reader.error(f"{what} ({rule}) has no {key!r} (known: {', '.join(sorted(allowed))})", key)
    options = {key: table[key] for key in RULES[rule]}
    for key in RULES[rule]:
        if key not in table:
            raise reader.error(f"{what}: rule {rule} needs {key}", rule, "rule")
    if rule == "fixed_probability":
        p = options["probability"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise reader.error(f"{what}: probability must be a number in [0, 1], got {p!r}", p, "probability")
    if rule == "fixed_indegree":
        n = options["indegree"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise reader.error(f"{what}: indegree must be a whole number >= 0, got {n!r}", n, "indegree")
    if rule == "from_file":
        path = (experiment_dir / str(options["file"])).resolve()
        if not path.is_file():
            raise reader.error(f"{what}: connection file {options['file']!r} not found (looked for {path})",
                               options["file"], "file")
        options["file"] = path
    options["allow_autapses"] = bool(table.get("allow_autapses", True))
    if "weight" not in table or "delay" not in table:
        raise reader.error(f"{what} needs weight (e.g. \"1 nS\") and delay (e.g. \"1 ms\")", None)
    return ProjectionSpec(k, table["source"], table["target"], table["synapse"], rule, options,
                          str(table["weight"]), str(table["delay"]))


# ---- drawing ----------------------------------------------------------------------------------

def _stream(seed: int, *key) -> np.random.Generator:
    """An independent random stream per drawn thing (the seed, a kind, an index)."""
    words = [seed] + [sum(ord(c) * 31 ** i for i, c in enumerate(str(k))) % (2 ** 32) for k in key]
    return np.random.default_rng(words)


def draw(spec: NetworkSpec, main_cell: ir.Cell, main_size: int, seed: int, dt: float, durations, reader) -> DrawnNetwork:
    """Every random thing of the network, once. Raises located errors for what only the cells tell
    (a synapse the target cell does not receive, a negative conductance weight, a delay below dt)."""
    cells = {spec.main: main_cell}
    sizes = {spec.main: main_size}
    for p in spec.populations:
        try:
            cells[p.name] = load_model(p.model_file).cell(p.cell_name)
        except HHCError as exc:
            raise reader.error(f"[network.populations.{p.name}]: {exc.message}", p.cell_name or p.name) from None
        sizes[p.name] = p.size
    for s in spec.sources:
        sizes[s.name] = s.size

    parameters = {spec.main: _parameters(reader, main_cell, main_size, spec.main_parameters, _stream(seed, "par", spec.main))}
    initial = {}
    for p in spec.populations:
        parameters[p.name] = _parameters(reader, cells[p.name], p.size, p.parameters, _stream(seed, "par", p.name))
        initial[p.name] = _initial(reader, cells[p.name], p, _stream(seed, "init", p.name))
    for name, noise in [(spec.main, spec.main_noise)] + [(p.name, p.noise) for p in spec.populations]:
        if noise is not None and noise["input"] not in {i.name for i in cells[name].inputs}:
            raise reader.error(f"noise of population {name}: cell {cells[name].name} has no input "
                               f"{noise['input']!r}", noise["input"], "input")

    source_spikes = {s.name: _source_spikes(s, spec, durations, _stream(seed, "src", s.name)) for s in spec.sources}
    edges = [_edges(reader, proj, cells, sizes, dt, _stream(seed, "proj", proj.index)) for proj in spec.projections]
    return DrawnNetwork(spec, cells, sizes, parameters, initial, source_spikes, edges)


def _names(n: int) -> dict:
    return {"i": (np.arange(n, dtype=float), units.DIMENSIONLESS), "N": (float(n), units.DIMENSIONLESS)}


def _parameters(reader, cell: ir.Cell, n: int, table: dict, rng) -> dict:
    known = {p.name: p for p in cell.parameters}
    out = {}
    for key, raw in table.items():
        if key not in known:
            raise reader.error(f"cell {cell.name} has no parameter {key!r} (parameters: "
                               f"{', '.join(sorted(known))})", key)
        value, dim = evaluate(str(raw), reader.where(raw, key), _names(n), random_functions(rng, n))
        if dim != known[key].dimension:
            raise reader.error(f"parameter {key} of cell {cell.name} is a {known[key].dimension.name}, but "
                               f"{raw!r} is a {dim.name}", raw, key)
        value = np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
        if known[key].dimension in (units.CONDUCTANCE, units.CONDUCTANCE / units.AREA) and (value < 0).any():
            raise reader.error(f"parameter {key}: a conductance cannot be negative ({value.min():g} S)", raw, key)
        out[key] = value
    return out


def _initial(reader, cell: ir.Cell, pop: PopulationSpec, rng) -> dict:
    arrays = {iv.state: None if iv.value is None else np.full(pop.size, float(units.to_si(iv.value)))
              for iv in cell.initial}
    for key, raw in pop.initial.items():
        state = key if key in cell.states else ("_".join(reversed(key.split(".", 1))) if "." in key else None)
        if state not in cell.states:
            raise reader.error(f"[network.populations.{pop.name}] initial: {key!r} is not a state of cell "
                               f"{cell.name}", key)
        if raw == "steady_state":
            arrays[state] = None
            continue
        value, dim = evaluate(str(raw), reader.where(raw, key), _names(pop.size), random_functions(rng, pop.size))
        if dim != cell.state_dimension(state):
            raise reader.error(f"initial {key} of population {pop.name} must be a {cell.state_dimension(state).name}",
                               raw, key)
        arrays[state] = np.broadcast_to(np.asarray(value, dtype=float), (pop.size,)).copy()
    return arrays


def _source_spikes(src: SourceSpec, spec: NetworkSpec, durations, rng) -> tuple[np.ndarray, np.ndarray]:
    if src.kind == "spike_times":
        i = np.concatenate([np.full(len(t), k, np.int64) for k, t in enumerate(src.times)] or [np.zeros(0, np.int64)])
        t = np.concatenate([np.asarray(t, float) for t in src.times] or [np.zeros(0)])
    else:
        chunks_i, chunks_t, start = [], [], 0.0
        for k, duration in enumerate(durations):
            rate = spec.phase_rates[k].get(src.name, src.rate) if k < len(spec.phase_rates) else src.rate
            count = rng.poisson(rate * duration * src.size) if rate else 0
            chunks_i.append(rng.integers(0, src.size, count))
            chunks_t.append(start + rng.random(count) * duration)
            start += duration
        i, t = np.concatenate(chunks_i), np.concatenate(chunks_t)
    order = np.lexsort((i, t))
    return i[order].astype(np.int64), t[order]


def _edges(reader, proj: ProjectionSpec, cells: dict, sizes: dict, dt: float, rng) -> Edges:
    what = f"[[network.projections]] {proj.index + 1} ({proj.source} → {proj.target})"
    target_cell = cells[proj.target]
    synapse = next((s for s in target_cell.synapses if s.name == proj.synapse), None)
    if synapse is None:
        have = ", ".join(s.name for s in target_cell.synapses) or "none"
        raise reader.error(f"{what}: cell {target_cell.name} of population {proj.target} does not receive synapse "
                           f"{proj.synapse!r} (it receives: {have})", proj.synapse, "synapse",
                           hint=f"add `synapses {proj.synapse}` to cell {target_cell.name}")
    n_pre, n_post = sizes[proj.source], sizes[proj.target]
    pre, post, file_weight, file_delay = _connect(reader, proj, n_pre, n_post, rng, what)
    n = len(pre)
    weight = _per_connection(reader, proj.weight, "weight", synapse.weight_dimension, n, rng, what,
                             file_weight)
    if synapse.conductance_based and (weight < 0).any():
        raise reader.error(f"{what}: weight {proj.weight!r} gives negative conductances (down to {weight.min():g} S); "
                           f"a conductance-based synapse needs weights >= 0 (inhibition comes from its E)",
                           proj.weight, "weight")
    delay = _per_connection(reader, proj.delay, "delay", units.TIME, n, rng, what, file_delay)
    if n and delay.min() < dt * (1 - 1e-9):
        raise reader.error(f"{what}: delay {proj.delay!r} is below the time step dt = {dt * 1e3:g} ms "
                           f"(shortest {delay.min() * 1e3:g} ms); spikes cannot arrive sooner than one step",
                           proj.delay, "delay")
    return Edges(pre.astype(np.int64), post.astype(np.int64), weight, delay)


def _connect(reader, proj, n_pre, n_post, rng, what):
    rule, options = proj.rule, proj.options
    no_self = proj.source == proj.target and not options["allow_autapses"]
    if rule == "all_to_all":
        pre, post = np.meshgrid(np.arange(n_pre), np.arange(n_post), indexing="xy")
        pre, post = pre.ravel(), post.ravel()
    elif rule == "one_to_one":
        if n_pre != n_post:
            raise reader.error(f"{what}: one_to_one needs equal sizes ({n_pre} and {n_post})", proj.rule, "rule")
        pre = post = np.arange(n_pre)
    elif rule == "fixed_probability":
        counts = rng.binomial(n_pre, options["probability"], n_post)
        pre = np.concatenate([rng.choice(n_pre, c, replace=False) for c in counts] or [np.zeros(0, int)])
        post = np.repeat(np.arange(n_post), counts)
    elif rule == "fixed_indegree":
        k = options["indegree"]
        pool = n_pre - (1 if no_self else 0)
        if k > pool:
            raise reader.error(f"{what}: indegree {k} is more than the {pool} possible presynaptic neurons",
                               k, "indegree")
        pre = np.empty((n_post, k), np.int64)
        for j in range(n_post):
            if no_self:
                choice = rng.choice(n_pre - 1, k, replace=False)
                pre[j] = choice + (choice >= j)
            else:
                pre[j] = rng.choice(n_pre, k, replace=False)
        pre, post = pre.ravel(), np.repeat(np.arange(n_post), k)
    else:
        return _from_file(reader, proj, n_pre, n_post, what)
    if no_self and rule in ("all_to_all", "fixed_probability", "one_to_one"):
        keep = pre != post
        pre, post = pre[keep], post[keep]
    return pre, post, None, None


def _from_file(reader, proj, n_pre, n_post, what):
    path = proj.options["file"]
    rows = []
    with open(path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), 1):
            if not row or row[0].lstrip().startswith("#") or (line_no == 1 and not row[0].strip().lstrip("-").isdigit()):
                continue
            try:
                rows.append([float(x) for x in row])
            except ValueError:
                raise HHCError(f"{path}:{line_no}: expected numbers pre,post[,weight,delay], got {','.join(row)!r}") from None
    table = np.array(rows, dtype=float).reshape(-1, max((len(r) for r in rows), default=2))
    pre, post = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64)
    bad = (pre < 0) | (pre >= n_pre) | (post < 0) | (post >= n_post)
    if bad.any():
        k = int(np.argmax(bad))
        raise HHCError(f"{path}: connection {k + 1} ({pre[k]} → {post[k]}) is outside the populations "
                       f"({proj.source}: {n_pre}, {proj.target}: {n_post} neurons)")
    weight = table[:, 2] if table.shape[1] > 2 else None
    delay = table[:, 3] * 1e-3 if table.shape[1] > 3 else None
    return pre, post, weight, delay


def _per_connection(reader, raw: str, key: str, dimension, n: int, rng, what, from_file):
    """A weight or delay per connection: the file's column (SI: S, A; delays in ms) wins over
    "file"; otherwise a constant or a drawn expression."""
    if raw == "file":
        if from_file is None:
            raise reader.error(f"{what}: {key} = \"file\" but the connection file has no {key} column", raw, key)
        return np.asarray(from_file, dtype=float)
    names = {"N": (float(n), units.DIMENSIONLESS)}
    value, dim = evaluate(raw, reader.where(raw, key), names, random_functions(rng, n))
    if dim != dimension:
        raise reader.error(f"{what}: {key} must be a {dimension.name}, but {raw!r} is a {dim.name}", raw, key)
    return np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()


def describe(net: DrawnNetwork) -> list[str]:
    """One line per population, source and projection: what was drawn (for the console and meta)."""
    lines = [f"population {name}: {net.sizes[name]:,} × {net.cells[name].name}" for name in net.populations]
    for s in net.spec.sources:
        i, t = net.source_spikes[s.name]
        lines.append(f"source {s.name}: {s.size:,} {s.kind}, {len(t):,} spikes drawn")
    for proj, e in zip(net.spec.projections, net.edges):
        per = len(e) / max(net.sizes[proj.target], 1)
        lines.append(f"projection {proj.source} → {proj.target} ({proj.synapse}, {proj.rule}): {len(e):,} "
                     f"connections, {per:.3g} per target neuron")
    return lines


def edge_digest(net: DrawnNetwork) -> str:
    """A fingerprint of every drawn connection, weight and delay (two backends' networks are the same
    network when these are equal)."""
    h = hashlib.sha256()
    for e in net.edges:
        for a in (e.pre, e.post, e.weight, e.delay):
            h.update(np.ascontiguousarray(a).tobytes())
    for name in sorted(net.source_spikes):
        for a in net.source_spikes[name]:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]
