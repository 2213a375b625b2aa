"""Experiment files (TOML): a population, a protocol of phases, initial values, a recording plan
and a backend, checked before anything runs. Values are unit strings ("0.01 ms", "18 pA")."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy

from . import ir, units
from .errors import HHCError, SourceLocation
from . import network as network_
from .values import Where, _error, evaluate, random_functions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Initial membrane potentials outside this range are reported (the seed script's init put most
# neurons below -100 V and nothing warned).
PHYSIOLOGICAL_V = (-0.200, 0.100)
MAX_STEPS = 1e15                     # time steps in a run (a 64-bit step counter with room to spare)
# dt = "auto" where nothing chooses it (backends that pick their own integrator; `hhc advise` shows it
# as "current"; `hhc compile` without an experiment)
PROVISIONAL_DT = 0.01e-3
KNOWN_SECTIONS = {"model", "population", "simulation", "initial", "protocol", "record", "backend", "network"}


@dataclass(frozen=True)
class Phase:
    duration: float                      # s
    inputs: dict                         # input name → SI value


@dataclass(frozen=True)
class Traces:
    variables: tuple[str, ...]           # names in generated code: v, m_NaF, I_KA
    neurons: tuple[int, ...]
    interval: float | None               # s; None: every step (filled in once dt = "auto" is chosen)
    windows: tuple[tuple[float, float], ...] | None


@dataclass(frozen=True)
class BackendSettings:
    name: str = "brian2"
    device: str | None = None
    threads: int | None = None
    mpi: int | None = None               # MPI processes (nest)
    launcher: str | None = None          # command that starts the MPI processes, e.g. "srun -n 64"


@dataclass(frozen=True)
class Experiment:
    path: str
    model_file: Path
    cell_name: str | None
    size: int
    dt: float
    method: str
    seed: int
    initial: dict                        # state → spec text, as written
    protocol: tuple[Phase, ...]
    record_spikes: object                # True (all), None (none), or a tuple of neuron indices
    traces: tuple[Traces, ...]
    backend: BackendSettings
    initial_arrays: dict = field(default_factory=dict)    # filled by resolve(): state → array | None
    steady_state_after_v: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    precision: str = "float64"           # floating-point type of the state ("float32" where supported)
    dt_auto: bool = False                # dt = "auto": chosen with the method by the accuracy advisor
    tolerance: dict = field(default_factory=dict)   # [simulation] tolerance: what "auto" must meet
    auto_choice: dict | None = None      # how method/dt = "auto" were chosen (hhc.advise.choose)
    segment: float | None = None         # s: results are written every this much biological time
    model_digest: str = ""               # the cell's name and .chan texts (resolve()): part of the fingerprint
    temperature: float | None = None     # degC: [model] temperature, replacing the cell's own
    network: "network_.NetworkSpec | None" = None     # [network], per-neuron parameters, noise, rates
    drawn: "network_.DrawnNetwork | None" = field(default=None, compare=False)   # resolve(): drawn once

    def cell_of(self, model: ir.Model) -> ir.Cell:
        """The experiment's cell in a model, at the experiment's temperature if it sets one."""
        cell = model.cell(self.cell_name)
        if self.temperature is None:
            return cell
        value = sympy.Rational(repr(self.temperature)) * units.unit_symbol("degC")
        return dataclasses.replace(cell, temperature=ir.Parameter("temperature", value, units.TEMPERATURE,
                                                                  "temperature (set by the experiment)"))

    def with_dt(self, dt: float) -> "Experiment":
        """The experiment at a concrete dt (after dt = "auto" is chosen): traces without an interval
        sample every step."""
        traces = tuple(dataclasses.replace(tr, interval=dt) if tr.interval is None else tr for tr in self.traces)
        return dataclasses.replace(self, dt=dt, dt_auto=False, traces=traces)

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.protocol)

    def fingerprint(self) -> str:
        """What the compiled simulation depends on (not the backend's thread count)."""
        d = {"model": self.model_digest, "temperature": self.temperature,
             "network": network_.edge_digest(self.drawn) if self.drawn is not None else None, "size": self.size, "dt": self.dt, "method": self.method, "seed": self.seed,
             "precision": self.precision, "dt_auto": self.dt_auto,
             "initial": self.initial, "protocol": [(p.duration, sorted(p.inputs.items())) for p in self.protocol],
             "spikes": self.record_spikes if self.record_spikes in (True, None) else list(self.record_spikes),
             "traces": [dataclasses.asdict(t) for t in self.traces]}
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()

    def cut_to(self, total: float) -> "Experiment":
        """The protocol truncated to `total` seconds of biological time (for --duration); never longer."""
        if total <= 0:
            raise HHCError(f"--duration must be positive, got {total} s")
        if total > self.duration * (1 + 1e-12):
            raise HHCError(f"--duration {total:g} s is longer than the protocol of {Path(self.path).name} "
                           f"({self.duration:g} s): --duration only cuts the protocol",
                           hint="make the last [[protocol]] phase longer to simulate longer")
        phases, t = [], 0.0
        for p in self.protocol:
            if t >= total - 1e-12:
                break
            phases.append(Phase(min(p.duration, total - t), p.inputs))
            t += p.duration
        traces = tuple(dataclasses.replace(tr, windows=_clip_windows(tr.windows, total)) for tr in self.traces)
        return dataclasses.replace(self, protocol=tuple(phases), traces=traces)

    def check_time_grid(self) -> list[str]:
        """Once dt is known: every phase a whole number of steps (else an error naming the phase), and
        the warnings for trace windows that record nothing within the run."""
        if not self.dt or self.dt_auto:
            return []
        total_steps = sum(p.duration for p in self.protocol) / self.dt
        if not math.isfinite(total_steps) or total_steps > MAX_STEPS:
            raise HHCError(f"the protocol of {self.duration:g} s at dt {self.dt * 1e3:g} ms is {total_steps:.3g} time "
                           f"steps, more than any simulator can count (at most {MAX_STEPS:.0e})")
        for k, p in enumerate(self.protocol, 1):
            steps = p.duration / self.dt
            if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
                raise HHCError(f"[[protocol]] phase {k} lasts {p.duration * 1e3:.12g} ms, not a whole number of "
                               f"time steps (dt {self.dt * 1e3:g} ms: {steps:.6g} steps)",
                               hint="make each phase a multiple of dt, or choose a dt that divides every phase")
        warnings = []
        total = self.duration
        for k, tr in enumerate(self.traces, 1):
            for a, b in tr.windows or ():
                if a >= total - 1e-12:
                    warnings.append(f"[[record.traces]] {k}: window {a * 1e3:g}..{b * 1e3:g} ms starts after the run "
                                    f"ends ({total * 1e3:g} ms): it records nothing")
        return warnings

    def with_overrides(self, overrides: "RunOverrides") -> "Experiment":
        """The experiment with a run's overrides of its backend and precision (not its duration,
        which cuts the protocol once "auto" has been chosen on the experiment as written)."""
        b, o = self.backend, overrides
        # a device belongs to its backend: --backend nest on a brian2/cpp_standalone file drops it
        kept_device = b.device if o.backend in (None, b.name) else None
        backend = BackendSettings(o.backend or b.name, o.device or kept_device, o.threads or b.threads,
                                  o.mpi or b.mpi, o.launcher or b.launcher)
        return dataclasses.replace(self, backend=backend, precision=o.precision or self.precision)


def parse_duration(text) -> float:
    """A duration given on the command line or to the API: "1 s", "500 ms", or seconds as a number."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise HHCError(f"a duration must be a time such as \"1 s\" or a number of seconds, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        value, dim = evaluate(str(text))
        if dim != units.TIME:
            raise HHCError(f"--duration must be a time such as \"1 s\" or \"500 ms\", got {text!r} ({dim.name})")
        value = float(value)
    if not value > 0 or value == float("inf"):
        raise HHCError(f"--duration must be a positive, finite time, got {text!r}")
    return value


@dataclass(frozen=True)
class RunOverrides:
    """What one run changes of its experiment file, from the command line or the API; kept in the run
    directory (run.json) so that `hhc run --resume` continues with exactly these."""
    backend: str | None = None
    device: str | None = None
    threads: int | None = None
    duration: str | float | None = None     # cut the protocol to this much biological time
    mpi: int | None = None                  # MPI processes
    launcher: str | None = None             # command that starts the MPI processes
    precision: str | None = None            # "float64" or "float32"

    def __post_init__(self):
        for name in ("backend", "device", "launcher"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise HHCError(f"{name} must be a name (text), got {value!r}")
        for name in ("threads", "mpi"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise HHCError(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.precision not in (None, "float64", "float32"):
            raise HHCError(f"precision must be float64 or float32, got {self.precision!r}")
        if self.duration is not None:
            parse_duration(self.duration)

    @property
    def duration_s(self) -> float | None:
        return None if self.duration is None else parse_duration(self.duration)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunOverrides":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


TOLERANCE_KEYS = {"count": "spike-count difference allowed per sampled neuron",
                  "first_spike": "first-spike error, a time",
                  "spike_time": "error allowed on every matched spike, a time"}


def _tolerance(reader, raw) -> dict:
    """[simulation] tolerance = { count = 0, first_spike = "0.1 ms", spike_time = "0.5 ms" }: what
    method/dt = "auto" must meet against the reference (default: the advisor's)."""
    if not isinstance(raw, dict):
        raise reader.error("[simulation] tolerance must be a table like { first_spike = \"0.1 ms\", count = 0 }")
    out = {}
    for key, value in raw.items():
        if key not in TOLERANCE_KEYS:
            raise reader.error(f"[simulation] tolerance has no key {key!r}; known: "
                               + ", ".join(f"{k} ({d})" for k, d in TOLERANCE_KEYS.items()), key)
        if key == "count":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise reader.error(f"[simulation] tolerance count must be a whole number >= 0, got {value!r}", key)
            out[key] = value
        else:
            seconds = reader.quantity(value, units.TIME, f"[simulation] tolerance {key}", key)
            if seconds <= 0:
                raise reader.error(f"[simulation] tolerance {key} must be positive, got {value!r}", value, key)
            out[key] = seconds
    return out


def _clip_windows(windows, total):
    if windows is None:
        return None
    return tuple((a, min(b, total)) for a, b in windows if a < total)


class _Reader:
    """Reads one TOML file, locating values in its text for error messages."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text
        self.lines = text.splitlines()

    def where(self, value_text: str, key: str | None = None) -> Where:
        """The line and column where value_text is written (best effort: first match after key)."""
        pattern = re.escape(str(value_text))
        for number, line in enumerate(self.lines, 1):
            if key is not None and not re.search(rf"(^|[\s{{,.]){re.escape(key)}\s*=", line):
                continue
            m = re.search(pattern, line)
            if m:
                return Where(str(self.path), number, m.start() + 1, line)
        return Where(str(self.path))

    def error(self, message: str, value=None, key: str | None = None, hint: str | None = None) -> HHCError:
        if value is not None:
            w = self.where(value, key)
            if w.line:
                return HHCError(message, SourceLocation(w.path, w.line, w.column, w.line_text), hint)
        return HHCError(f"{self.path}: {message}", hint=hint)

    def quantity(self, raw, dimension: units.Dimension, what: str, key: str | None = None) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise self.error(f"{what} must be a value with a unit, like \"0.01 ms\"; got {raw!r}", raw, key)
        if isinstance(raw, (int, float)) and not dimension.is_dimensionless:
            unit = units.PREFERRED_UNIT.get(dimension, "")
            raise self.error(f"{what} = {raw} has no unit; write it as a string with a unit, "
                             f"e.g. \"{raw} {unit}\"", raw, key)
        where = self.where(raw, key)
        value, dim = evaluate(str(raw), where)
        if dim != dimension:
            unit = units.PREFERRED_UNIT.get(dimension)
            raise self.error(f"{what} must be a {dimension.name}{f' ({unit})' if unit else ''}, "
                             f"but {raw!r} is a {dim.name}", raw, key)
        return float(value)


def _neuron_list(reader: _Reader, raw, size: int, what: str) -> tuple[int, ...] | bool:
    """'all', 'a:b', an integer or a list of integers → indices (True for 'all')."""
    if raw == "all":
        return True
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if isinstance(raw, str):
        m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", raw)
        if not m:
            raise reader.error(f"{what} must be \"all\", a range \"start:stop\" or a list of indices; got {raw!r}", raw)
        start = int(m.group(1) or 0)
        stop = int(m.group(2) or size)
        if stop > size:        # checked before the indices are made: "0:1000000000" is not a list to build
            raise reader.error(f"{what}: the range {raw!r} goes beyond the population ({size} neurons, "
                               f"0..{size - 1})", raw)
        indices = tuple(range(start, stop))
        if not indices:
            raise reader.error(f"{what}: the range {raw!r} is empty", raw)
    elif isinstance(raw, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        indices = tuple(raw)
    else:
        raise reader.error(f"{what} must be \"all\", a range \"start:stop\" or a list of indices; got {raw!r}",
                           raw if isinstance(raw, str) else None)
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
        raise reader.error(f"{what}: neuron {bad[0]} does not exist (the population has {size} neurons, "
                           f"0..{size - 1})", raw if isinstance(raw, str) else None)
    return indices


def _table(reader, data, name, required=True) -> dict:
    value = data.get(name)
    if value is None:
        if required:
            raise reader.error(f"missing section [{name}]")
        return {}
    if not isinstance(value, dict):
        raise reader.error(f"[{name}] must be a table")
    return value


def _unknown_keys(reader, table: dict, known: set, section: str):
    for key in table:
        if key not in known:
            raise reader.error(f"unknown key '{key}' in [{section}] (known: {', '.join(sorted(known))})",
                               key, None)


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")        # a byte-order mark is not an error
    except UnicodeDecodeError as exc:
        before = path.read_bytes()[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise HHCError(f"{path} is not UTF-8 text (byte 0x{path.read_bytes()[exc.start]:02x} cannot be read)",
                       SourceLocation(str(path), line, column, "")) from None
    except FileNotFoundError:
        raise HHCError(f"no such experiment file: {path}") from None
    except OSError as exc:
        raise HHCError(f"cannot read {path}: {exc}") from None
    reader = _Reader(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            line_text = reader.lines[line - 1] if line <= len(reader.lines) else ""
            raise HHCError(f"invalid TOML: {str(exc).split(' (at line')[0]}",
                           SourceLocation(str(path), line, col, line_text)) from None
        raise HHCError(f"{path}: invalid TOML: {exc}") from None

    for section in data:
        if section not in KNOWN_SECTIONS:
            raise reader.error(f"unknown section [{section}] (known: {', '.join(sorted(KNOWN_SECTIONS))})",
                               f"[{section}]" if f"[{section}]" in text else section)

    model = _table(reader, data, "model")
    _unknown_keys(reader, model, {"file", "cell", "temperature"}, "model")
    if "file" not in model:
        raise reader.error("[model] needs file = \"path/to/model.chan\"")
    if not isinstance(model["file"], str):
        raise reader.error(f"[model] file must be a path in quotes, got {model['file']!r}", model["file"], "file")
    if "cell" in model and not isinstance(model["cell"], str):
        raise reader.error(f"[model] cell must be a name in quotes, got {model['cell']!r}", model["cell"], "cell")
    model_file = (path.parent / model["file"]).resolve()
    if not model_file.is_file():
        raise reader.error(f"model file {model['file']!r} not found (looked for {model_file})", model["file"], "file")

    temperature = None
    if "temperature" in model:
        temperature = reader.quantity(model["temperature"], units.TEMPERATURE, "[model] temperature", "temperature")
        if not -50 <= temperature <= 100:
            raise reader.error(f"[model] temperature = {model['temperature']!r} is out of range (-50 to 100 degC)",
                               model["temperature"], "temperature")

    population = _table(reader, data, "population")
    _unknown_keys(reader, population, {"size", "name", "parameters", "noise"}, "population")
    size = population.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise reader.error(f"[population] size must be a positive integer, got {size!r}", size, "size")

    sim = _table(reader, data, "simulation")
    _unknown_keys(reader, sim, {"dt", "method", "seed", "precision", "tolerance"}, "simulation")
    if "dt" not in sim:
        raise reader.error("[simulation] needs dt, e.g. dt = \"0.01 ms\" (or \"auto\")")
    dt_auto = sim["dt"] == "auto"
    if dt_auto:
        dt = None      # chosen before the run (hhc.api.prepare → hhc.advise.choose)
    else:
        dt = reader.quantity(sim["dt"], units.TIME, "[simulation] dt", "dt")
        if not 0 < dt <= 1e-3:
            raise reader.error(f"[simulation] dt = {sim['dt']!r} is out of range (0 < dt <= 1 ms)", sim["dt"], "dt")
    tolerance = _tolerance(reader, sim.get("tolerance", {}))
    method = sim.get("method", "auto")
    if not isinstance(method, str):
        raise reader.error(f"[simulation] method must be a name such as \"rk4\" or \"auto\", got {method!r}")
    seed = sim.get("seed", 0)
    precision = sim.get("precision", "float64")
    if precision not in ("float64", "float32"):
        raise reader.error(f"[simulation] precision must be \"float64\" or \"float32\", got {precision!r}",
                           precision, "precision")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise reader.error(f"[simulation] seed must be a whole number >= 0, got {seed!r}", seed, "seed")

    initial = _table(reader, data, "initial", required=False)
    for key, value in initial.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise reader.error(f"[initial] {key} must be a value, a \"uniform(a, b)\" range, an expression "
                               f"or \"steady_state\"; got {value!r}", key)

    protocol_raw = data.get("protocol")
    if not isinstance(protocol_raw, list) or not protocol_raw:
        raise reader.error("the experiment needs at least one [[protocol]] phase with a duration")
    phases = []
    for k, phase in enumerate(protocol_raw, 1):
        _unknown_keys(reader, phase, {"duration", "inputs", "rates"}, f"protocol {k}")
        if "duration" not in phase:
            raise reader.error(f"[[protocol]] phase {k} has no duration")
        duration = reader.quantity(phase["duration"], units.TIME, f"[[protocol]] phase {k} duration", "duration")
        if duration <= 0:
            raise reader.error(f"[[protocol]] phase {k} duration must be positive", phase["duration"], "duration")
        inputs_raw = phase.get("inputs", {})
        if not isinstance(inputs_raw, dict):
            raise reader.error(f"[[protocol]] phase {k} inputs must be a table like {{Iapp = \"18 pA\"}}")
        phases.append((duration, inputs_raw))

    record = _table(reader, data, "record", required=False)
    _unknown_keys(reader, record, {"spikes", "traces", "segment"}, "record")
    segment = None
    if "segment" in record:
        segment = reader.quantity(record["segment"], units.TIME, "[record] segment", "segment")
        if segment <= 0:
            raise reader.error(f"[record] segment must be a positive time, got {record['segment']!r}",
                               record["segment"], "segment")
    spikes_raw = record.get("spikes", "all")
    record_spikes = None if spikes_raw == "none" else _neuron_list(reader, spikes_raw, size, "[record] spikes")
    traces = []
    for k, tr in enumerate(record.get("traces", []), 1):
        what = f"[[record.traces]] {k}"
        _unknown_keys(reader, tr, {"variables", "neurons", "windows", "interval"}, what)
        variables = tr.get("variables")
        if isinstance(variables, str):
            variables = [variables]
        if not isinstance(variables, list) or not variables or not all(isinstance(v, str) for v in variables):
            raise reader.error(f"{what} needs variables = [\"v\", ...]")
        if "neurons" not in tr:
            raise reader.error(f"{what} needs neurons (a list, a range \"0:10\" or \"all\")")
        neurons = _neuron_list(reader, tr["neurons"], size, f"{what} neurons")
        if neurons is True:
            neurons = tuple(range(size))
        interval = dt
        if "interval" in tr:
            interval = reader.quantity(tr["interval"], units.TIME, f"{what} interval", "interval")
            steps = interval / dt if dt else 1.0    # dt = "auto" is chosen to divide every interval
            if interval <= 0:
                raise reader.error(f"{what} interval must be positive", tr["interval"], "interval")
            if dt and (not math.isfinite(steps) or steps > MAX_STEPS or interval < dt * (1 - 1e-9)
                       or abs(steps - round(steps)) > 1e-6):
                raise reader.error(f"{what} interval {tr['interval']!r} must be a whole multiple of dt "
                                   f"({sim['dt']})", tr["interval"], "interval")
        windows = None
        if "windows" in tr:
            windows = []
            for w in tr["windows"]:
                if not (isinstance(w, list) and len(w) == 2):
                    raise reader.error(f"{what} windows must be a list of [start, stop] pairs, "
                                       f"like [[\"0 ms\", \"100 ms\"]]")
                a = reader.quantity(w[0], units.TIME, f"{what} window start")
                b = reader.quantity(w[1], units.TIME, f"{what} window stop")
                if not 0 <= a < b:
                    raise reader.error(f"{what} window [{w[0]}, {w[1]}] is empty or negative", w[0])
                windows.append((a, b))
            windows = tuple(windows)
        traces.append(Traces(tuple(variables), tuple(neurons), interval, windows))

    backend = _table(reader, data, "backend", required=False)
    _unknown_keys(reader, backend, {"name", "device", "threads", "mpi", "launcher"}, "backend")
    threads = backend.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise reader.error(f"[backend] threads must be a positive integer, got {threads!r}", threads, "threads")

    exp = Experiment(
        path=str(path), model_file=model_file, cell_name=model.get("cell"), size=size, dt=dt, method=method,
        seed=seed, initial={str(k): v for k, v in initial.items()},
        protocol=tuple(Phase(d, dict(inp)) for d, inp in phases),   # inputs resolved against the cell later
        record_spikes=record_spikes, traces=tuple(traces), precision=precision, dt_auto=dt_auto,
        tolerance=tolerance, segment=segment, temperature=temperature,
        backend=BackendSettings(backend.get("name", "brian2"), backend.get("device"), threads,
                                backend.get("mpi"), backend.get("launcher")))
    if "network" in data or "parameters" in population or "noise" in population:
        main = population.get("name") or model.get("cell") or "main"
        if not isinstance(main, str):
            raise reader.error(f"[population] name must be a name in quotes, got {main!r}", main, "name")
        spec = network_.parse(reader, data.get("network", {}), main, model_file, path.parent, protocol_raw,
                              population)
        exp = dataclasses.replace(exp, network=spec)
    elif any("rates" in phase for phase in protocol_raw):
        raise reader.error("[[protocol]] rates are for the spike sources of a [network]; this experiment has none")
    exp_reader_cache[exp.path] = reader
    return exp


exp_reader_cache: dict[str, _Reader] = {}


def _state_name(cell: ir.Cell, key: str) -> str | None:
    """'v', 'm_NaF' or 'NaF.m' → the state's name in generated code."""
    if key in cell.states:
        return key
    if "." in key:
        channel, gate = key.split(".", 1)
        name = f"{gate}_{channel}"
        if name in cell.states:
            return name
    return None


def resolve(exp: Experiment, cell: ir.Cell) -> Experiment:
    """Check the experiment against the cell and compute everything a backend needs as numbers:
    input values, trace variable names, and per-neuron initial values (drawn once, here, so every
    backend and every MPI rank starts from the same state)."""
    reader = exp_reader_cache.get(exp.path) or _Reader(Path(exp.path), "")
    input_dims = {i.name: i.dimension for i in cell.inputs}

    phases = []
    for k, phase in enumerate(exp.protocol, 1):
        values = {}
        for name, raw in phase.inputs.items():
            if "." in name and exp.network is not None and name.split(".")[0] in exp.network.names():
                # another population's input: checked against its cell when the network is drawn
                values[name] = raw if isinstance(raw, float) else reader.quantity(
                    raw, units.CURRENT, f"[[protocol]] phase {k} input {name}", name)
                continue
            if name not in input_dims:
                known = ", ".join(input_dims) or "none"
                raise reader.error(f"[[protocol]] phase {k}: cell {cell.name} has no input '{name}' (inputs: {known})",
                                   name, None)
            values[name] = raw if isinstance(raw, float) else reader.quantity(
                raw, input_dims[name], f"[[protocol]] phase {k} input {name}", name)
        for name in input_dims:       # an input not mentioned keeps its previous value (0 at first)
            values.setdefault(name, phases[-1].inputs[name] if phases else 0.0)
        phases.append(Phase(phase.duration, values))

    recordable = set(cell.states) | {ch.current_name for ch in cell.channels} | {"I_leak"} | set(input_dims)
    recordable |= {syn.current_name for syn in cell.synapses}
    traces = []
    for tr in exp.traces:
        names = []
        for var in tr.variables:
            name = _state_name(cell, var) or (var if var in recordable else None)
            if name is None:
                raise reader.error(f"cannot record '{var}': cell {cell.name} has no such variable "
                                   f"(recordable: {', '.join(sorted(recordable))})", var)
            names.append(name)
        traces.append(dataclasses.replace(tr, variables=tuple(names)))

    if exp.record_spikes is not None and cell.threshold is None:
        raise reader.error(f"[record] spikes: cell {cell.name} has no `spike when ...` threshold, so it has no "
                           f"spikes to record", hint="add `spike when v rises above 0 mV` to the cell, or set "
                                                     "[record] spikes = \"none\"")
    rng = np.random.default_rng(exp.seed)
    n = exp.size
    _check_state_fits(reader, exp, cell)
    arrays: dict[str, np.ndarray | None] = {}
    # cell defaults first, the experiment's [initial] overrides them
    for iv in cell.initial:
        arrays[iv.state] = None if iv.value is None else np.full(n, float(units.to_si(iv.value)))
    specs = dict(exp.initial)
    if specs.pop("gates", "steady_state") != "steady_state" and "gates" in exp.initial:
        raise reader.error("[initial] gates can only be \"steady_state\"", exp.initial["gates"], "gates")
    if "gates" in exp.initial:
        for g in cell.gates:
            arrays[g.state] = None
    functions = random_functions(rng, n)
    names = {"i": (np.arange(n, dtype=float), units.DIMENSIONLESS), "N": (float(n), units.DIMENSIONLESS)}
    for key, raw in specs.items():
        state = _state_name(cell, key)
        if state is None:
            raise reader.error(f"[initial] '{key}' is not a state of cell {cell.name} "
                               f"(states: {', '.join(cell.states)})", key, None)
        if raw == "steady_state":
            if state == "v":
                raise reader.error("[initial] v has no steady state; give a voltage or a range", raw, key)
            arrays[state] = None
            continue
        where = reader.where(raw, key)
        value, dim = evaluate(str(raw), where, names, functions)
        want = cell.state_dimension(state)
        if dim != want:
            raise reader.error(f"[initial] {key} must be a {want.name}, but {raw!r} is a {dim.name}", raw, key)
        value = np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
        if want == units.CONCENTRATION and (value < 0).any():
            raise reader.error(f"[initial] {key}: a concentration cannot be negative", raw, key)
        if state != "v" and want == units.DIMENSIONLESS and ((value < 0) | (value > 1)).any():
            raise reader.error(f"[initial] {key}: gate values are fractions in [0, 1]; "
                               f"{raw!r} gives values from {value.min():g} to {value.max():g}", raw, key)
        arrays[state] = value

    warnings = []
    v0 = arrays["v"]
    low, high = PHYSIOLOGICAL_V
    outside = (v0 < low) | (v0 > high) | ~np.isfinite(v0)
    if outside.any():
        extreme = v0[outside][np.argmax(np.abs(v0[outside]))]
        warnings.append(f"initial v of {int(outside.sum()):,} of {n:,} neurons is outside the physiological "
                        f"range {low * 1e3:g}..{high * 1e3:g} mV (most extreme: {extreme * 1e3:,.6g} mV at "
                        f"neuron {int(np.flatnonzero(v0 == extreme)[0])}); check [initial] v")
    # a gate at its steady state follows the initial v, whatever order the backend sets things in
    steady = {s: arrays[s] is None for s in cell.states[1:]}
    drawn = None
    if exp.network is not None:
        dt = exp.dt if exp.dt is not None else 1e-6     # dt = "auto": delays are checked against the chosen dt
        drawn = network_.draw(exp.network, cell, n, exp.seed, dt, [p.duration for p in phases], reader)
        _check_network_inputs(reader, drawn, phases)
    return dataclasses.replace(exp, protocol=tuple(phases), traces=tuple(traces), initial_arrays=arrays,
                               steady_state_after_v=steady, warnings=exp.warnings + tuple(warnings),
                               model_digest=model_digest(cell), drawn=drawn)


def _check_network_inputs(reader, drawn, phases):
    for k, phase in enumerate(phases, 1):
        for name in phase.inputs:
            if "." not in name:
                continue
            pop, inp = name.split(".", 1)
            if pop not in drawn.cells or inp not in {i.name for i in drawn.cells[pop].inputs}:
                raise reader.error(f"[[protocol]] phase {k}: {name!r} is not an input of a population "
                                   f"(populations: {', '.join(drawn.populations)})", name)


def model_digest(cell: ir.Cell) -> str:
    """What the cell's results depend on in its model: its name and the text of every file read."""
    h = hashlib.sha256(cell.name.encode())
    for source in cell.sources or (cell.source,):
        try:
            h.update(Path(source).read_bytes())
        except OSError:
            h.update(str(source).encode())
    return h.hexdigest()[:16]


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_state_fits(reader, exp: Experiment, cell: ir.Cell) -> None:
    """Refuse a population whose initial state alone cannot fit in this machine's memory, before any
    array is made (the planner judges the whole run later, with the backend's own figures)."""
    need = exp.size * len(cell.states) * 8
    have = _memory_bytes()
    if have is not None and need > have:
        raise reader.error(f"[population] size = {exp.size:,}: the initial state alone ({len(cell.states)} "
                           f"values per neuron) needs {need / 2**30:,.1f} GiB, more than this machine's "
                           f"{have / 2**30:,.1f} GiB of memory", exp.size, "size")


