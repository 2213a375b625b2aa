"""The one way tests and benchmarks write experiment files.

    experiment_toml(size=20, dt="0.01 ms", method="rk4", initial={"v": "uniform(-70 mV, -60 mV)"},
                    protocol=[("20 ms", "0 pA"), ("200 ms", "18 pA")],
                    traces=[trace(["v"], "0:3", interval="0.1 ms")]) -> TOML text

Every field has a default (below, DEFAULTS); None leaves the key (or section) out of the file, so
the file says only what a test means. With base=PATH the fields start from an existing experiment
file (its model path made absolute) and only the fields given change it: tables (initial, record,
backend) are merged key by key, a None value removing that key; lists (protocol, traces) are
replaced.

Benchmarks import this module too (sys.path gets the repository's tests folder); it is not part of
the library.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from paths import KENYON


class _Default:
    def __repr__(self):
        return "DEFAULT"


DEFAULT = _Default()   # "the builder's default" (with base=: "as in the base file")

DEFAULTS = dict(
    model=KENYON, cell=None,
    size=1,
    dt="0.01 ms", method="rk4", seed=None, precision=None, tolerance=None,
    initial={"v": "-65 mV"},
    protocol=(("20 ms", "0 pA"), ("200 ms", "18 pA")),
    record={"spikes": "all"}, traces=(),
    backend=None, population=None, network=None,
)

SECTION_ORDER = ("model", "population", "simulation", "initial", "protocol", "record", "backend")


def trace(variables=("v",), neurons=(0,), interval=None, windows=None) -> dict:
    """One [[record.traces]] group. neurons: a list, a range text like "0:10", or "all";
    windows: [("40 ms", "60 ms"), ...]."""
    out = {"variables": [variables] if isinstance(variables, str) else list(variables),
           "neurons": neurons if isinstance(neurons, str) else list(neurons)}
    if windows is not None:
        out["windows"] = [list(w) for w in windows]
    if interval is not None:
        out["interval"] = interval
    return out


def phase(duration, inputs=None, rates=None) -> dict:
    """One [[protocol]] phase. inputs: a current for Iapp ("18 pA"), a table {"Iapp": "18 pA"}, or None;
    rates: the network's Poisson sources' rates in this phase {"PN": "40 Hz"}."""
    out = {"duration": duration}
    if isinstance(inputs, str):
        inputs = {"Iapp": inputs}
    if inputs is not None:
        out["inputs"] = dict(inputs)
    if rates is not None:
        out["rates"] = dict(rates)
    return out


def experiment_data(*, base=None, model=DEFAULT, cell=DEFAULT, size=DEFAULT, dt=DEFAULT, method=DEFAULT,
                    seed=DEFAULT, precision=DEFAULT, tolerance=DEFAULT, initial=DEFAULT, protocol=DEFAULT,
                    record=DEFAULT, traces=DEFAULT, backend=DEFAULT, population=DEFAULT, network=DEFAULT) -> dict:
    """The experiment as the dict tomllib would read from its file (see experiment_toml)."""
    given = dict(model=model, cell=cell, size=size, dt=dt, method=method, seed=seed, precision=precision,
                 tolerance=tolerance, initial=initial, protocol=protocol, record=record, traces=traces,
                 backend=backend, population=population, network=network)
    if base is None:
        data: dict = {}
        given = {k: DEFAULTS[k] if v is DEFAULT else v for k, v in given.items()}
    else:
        base = Path(base)
        data = tomllib.loads(base.read_text())
        if "file" in data.get("model", {}):
            data["model"]["file"] = str((base.parent / data["model"]["file"]).resolve())
        given = {k: v for k, v in given.items() if v is not DEFAULT}

    def put(section, key, value):
        table = data.setdefault(section, {})
        if value is None:
            table.pop(key, None)
        else:
            table[key] = str(value) if isinstance(value, Path) else value

    def merge(section, values):
        if values is None:
            data.pop(section, None)
            return
        for key, value in values.items():
            put(section, key, value)

    for key, value in given.items():
        if key in ("model", "cell"):
            put("model", "file" if key == "model" else "cell", value)
        elif key == "size":
            put("population", "size", value)
        elif key in ("dt", "method", "seed", "precision", "tolerance"):
            put("simulation", key, value)
        elif key == "initial":
            merge("initial", {"v": value} if isinstance(value, str) else value)
        elif key == "protocol":
            data["protocol"] = [p if isinstance(p, dict) else phase(*p) for p in value]
        elif key == "record":
            if value is None:
                kept = data.get("record", {}).get("traces")
                data.pop("record", None)
                if kept:
                    data["record"] = {"traces": kept}
            else:
                merge("record", value)
        elif key == "traces":
            if value:
                data.setdefault("record", {})["traces"] = [dict(t) for t in value]
            else:
                data.get("record", {}).pop("traces", None)
        elif key == "backend":
            merge("backend", {"name": value} if isinstance(value, str) else value)
        elif key == "population" and value is not None:
            merge("population", value)
        elif key == "network" and value is not None:
            data["network"] = value
    return {k: v for k, v in data.items() if v or v == 0}


def experiment_toml(**fields) -> str:
    """An experiment file's text. Fields (None: left out of the file):

    model      the .chan file (default: models/kenyon_cell.chan, by absolute path); cell: its cell
    size       [population] size
    dt, method, seed, precision, tolerance     [simulation] (tolerance: a table, e.g.
               {"count": 0, "first_spike": "0.02 ms"}; written inline)
    initial    [initial]: {"v": "-65 mV", "gates": "steady_state"}, or a text for v alone
    protocol   [[protocol]] phases: (duration, current for Iapp | {input: value} | None) or phase(...)
    record     [record] keys other than traces: {"spikes": "all", "segment": "25 ms"}
    traces     [[record.traces]] groups: trace(variables, neurons, interval, windows)
    backend    [backend]: {"name": "brian2", "device": "cpp_standalone", "threads": 2}, or a name
    population [population] keys besides size: {"name": "KC", "parameters": {...}, "noise": {...}}
    network    [network]: {"populations": {...}, "sources": {...}, "projections": [{...}, ...]}
    base       an existing experiment file to start from (then only the given fields change)
    """
    return dumps(experiment_data(**fields))


def write_experiment(path, **fields) -> Path:
    """experiment_toml(**fields) written to path; returns the path."""
    path = Path(path)
    path.write_text(experiment_toml(**fields))
    return path


# ---- a TOML writer for what experiment files hold --------------------------------------------

def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value), ensure_ascii=False)     # TOML basic strings escape as JSON does
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple, range)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) into an experiment file")


def _is_table_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table_lines(name: str, table: dict, header: str) -> list[str]:
    lines = [header]
    nested = []
    for key, value in table.items():
        if _is_table_array(value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, items in nested:
        for item in items:
            lines.append("")
            lines += _table_lines(f"{name}.{key}", item, f"[[{name}.{_key(key)}]]")
    return lines


def dumps(data: dict) -> str:
    """TOML text of an experiment dict: tables, arrays of tables (one level deep: [[record.traces]]);
    values that are tables (inputs, tolerance) are written inline on one line."""
    order = [k for k in SECTION_ORDER if k in data] + [k for k in data if k not in SECTION_ORDER]
    blocks = []
    for name in order:
        value = data[name]
        if _is_table_array(value):
            blocks += ["\n".join(_table_lines(name, item, f"[[{_key(name)}]]")) for item in value]
        elif isinstance(value, dict):
            scalars = {k: v for k, v in value.items() if not _is_table_array(v)}
            if scalars or not value:
                blocks.append("\n".join(_table_lines(name, value, f"[{_key(name)}]")))
            else:       # only arrays of tables, e.g. [[record.traces]] without other [record] keys
                blocks.append("\n".join(_table_lines(name, value, "")[2:]))
        else:
            raise TypeError(f"top-level {name!r} of an experiment must be a table or an array of tables")
    return "\n\n".join(blocks) + "\n"
