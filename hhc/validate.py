"""The validation suite: every model x every backend against the SciPy reference.

For each cell of each model in models/, hhc finds the rheobase of a current step (bisection with
the reference solver) and builds the standard protocol set — 20 ms at rest, then a 200 ms step of
  silence   0 pA
  rheobase  1.05 x rheobase   (spike timing ill-conditioned: judged as marginal by hhc compare)
  strong    3 x rheobase
on one neuron starting from the cell's initial v with every gate at its steady state (every backend
can express that; NeuroML cannot start gates elsewhere). Each
backend that can run here runs each protocol at its default method ("auto") and dt 0.01 ms
(jNeuroML, which integrates with forward Euler, at 0.001 ms); the result is compared with the
reference (hhc.compare defaults). The matrix shows PASS/FAIL per model x backend with the worst
metric; backends that cannot run here, or only generate code, are listed with the reason.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hhc import backends
from hhc.api import prepare, run_experiment
from hhc.backends.reference import compute_reference
from hhc.backends.results import load_results, write_results
from hhc.compare import Tolerances, compare_results
from hhc.compiler import load_model
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import BackendSettings, Experiment, Phase, Traces, resolve

REFERENCE = "reference"

LEVELS = (("silence", 0.0), ("rheobase", 1.05), ("strong", 3.0))
REST = 0.02          # s before the step
STEP = 0.2           # s of step
NEURONS = 1


def models_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "models"
    if here.is_dir():
        return here
    spec = importlib.util.find_spec("hhc.models")      # installed (pip install .): the package's folder
    return Path(list(spec.submodule_search_locations)[0])


def discover_cells(directory: Path | None = None, names=None):
    """(model file, cell) for every cell defined in the top-level .chan files."""
    directory = directory or models_dir()
    found = []
    for path in sorted(Path(directory).glob("*.chan")):
        model = load_model(path)
        for cell in model.cells:
            if names and cell.name not in names and path.stem not in names:
                continue
            found.append((path, cell))
    return found


def base_experiment(model_file: Path, cell, current: float, *, dt=1e-5, method="auto", size=NEURONS,
                    backend="brian2", device=None, tag="validate"):
    if not cell.inputs:
        raise HHCError(f"cell {cell.name} has no input to drive")
    name = cell.inputs[0].name
    return Experiment(
        path=f"{model_file}#{tag}", model_file=Path(model_file), cell_name=cell.name, size=size, dt=dt,
        method=method, seed=1, initial={"gates": "steady_state"},
        protocol=(Phase(REST, {name: 0.0}), Phase(STEP, {name: float(current)})), record_spikes=True,
        traces=(Traces(("v",), tuple(range(size)), 1e-4, None),),
        backend=BackendSettings(backend, device, None))


def find_rheobase(model_file, cell, low=0.0, high=1e-12, rtol=1e-6, precision=0.02, limit=1e-6) -> float:
    """The smallest step current (A) that makes a neuron at the cell's own initial state spike within
    the step, by doubling then bisection with the reference solver."""

    def spikes(current):
        exp = resolve(base_experiment(model_file, cell, current, size=1), cell)
        ref = compute_reference(exp, cell, [0], rtol=rtol, variables=())
        return len(ref["spike_t"]) > 0

    while not spikes(high):
        low, high = high, high * 2
        if high > limit:
            raise HHCError(f"cell {cell.name} does not spike for steps up to {limit * 1e12:g} pA")
    while high - low > precision * high:
        mid = 0.5 * (low + high)
        low, high = (low, mid) if spikes(mid) else (mid, high)
    return high


@dataclass
class MatrixCell:
    status: str                     # PASS, FAIL, ERROR, UNAVAILABLE
    worst: str = ""
    details: list = field(default_factory=list)


def validate(backend_specs=None, model_names=None, out=None, dt=1e-5, method="auto", say=print):
    """Returns (cells: {(model label, backend label): MatrixCell}, unavailable: {backend: reason}, info)."""

    specs = backend_specs or backends.names()
    unavailable, runnable = {}, []
    for spec in specs:
        name, _, device = spec.partition(":")
        try:
            cls = backends.backend_class(name)
        except HHCError as exc:
            unavailable[spec] = str(exc)
            continue
        if name == REFERENCE:
            continue            # what every backend is validated against
        reason = (cls.capabilities.note or "generates code only") if not cls.capabilities.runs else \
            cls.unavailable_reason()
        if reason:
            unavailable[spec] = reason
        else:
            runnable.append((spec, name, device or None))
    out = Path(out) if out else None
    matrix: dict = {}
    tol = Tolerances()
    info = {"levels": [], "dt": dt, "method": method}
    for model_file, cell in (discover_cells(names=model_names) if runnable else []):
        label = f"{model_file.stem}:{cell.name}"
        t0 = time.perf_counter()
        rheobase = find_rheobase(model_file, cell)
        say(f"{label}: rheobase {rheobase * 1e12:.4g} pA for a {STEP * 1e3:g} ms step "
            f"({time.perf_counter() - t0:.1f} s)")
        info["levels"].append({"model": label, "rheobase_A": rheobase})
        refs = {}
        for level, factor in LEVELS:
            exp, _, _ = prepare(base_experiment(model_file, cell, factor * rheobase, dt=dt, method=method,
                                                tag=f"validate-{level}"), choose_auto=False)
            ref = compute_reference(exp, cell, np.arange(exp.size), variables=("v",))
            ref_dir = (out or Path(".")) / "reference" / cell.name / level
            if out is None:
                ref_dir = Path(tempfile.mkdtemp(prefix="hhc-validate-")) / level
            write_results(ref_dir, spike_i=ref["spike_i"], spike_t=ref["spike_t"], traces=ref["traces"],
                          meta={**ref["meta"], "n_neurons": exp.size, "duration": exp.duration})
            refs[level] = (exp, ref_dir)
        for spec, name, device in runnable:
            worst_dt, fails, mismatches, details = 0.0, [], 0, []
            try:
                for level, factor in LEVELS:
                    exp = base_experiment(model_file, cell, factor * rheobase, dt=backends.backend_class(name).capabilities.validate_dt or dt,
                                          method=method,
                                          backend=name, device=device, tag=f"validate-{level}")
                    run_dir = ((out / "runs" / spec.replace(":", "-") / cell.name / level) if out else None)
                    if run_dir is None:
                        run_dir = Path(tempfile.mkdtemp(prefix="hhc-validate-")) / level
                    run_experiment(exp, out=run_dir, quiet=True, choose_auto=False, overwrite=True)
                    pair = compare_results(load_results(refs[level][1]), load_results(run_dir), tol,
                                           "reference", spec, distances=False)
                    diffs = pair.all_diffs()
                    if len(diffs):
                        worst_dt = max(worst_dt, float(np.max(np.abs(diffs))))
                    mismatches += sum(1 for c in pair.per_neuron if c.count_diff)
                    details.append({"level": level, "agree": pair.agree,
                                    "failures": {c.neuron: c.failures for c in pair.failing},
                                    "spikes_reference": int(sum(c.count_a for c in pair.per_neuron)),
                                    "spikes_backend": int(sum(c.count_b for c in pair.per_neuron))})
                    if not pair.agree:
                        c = pair.failing[0] if pair.failing else None
                        fails.append(f"{level}: " + (f"neuron {c.neuron} {c.failures[0]}" if c else "traces"))
                worst = f"max spike dt {worst_dt * 1e3:.3g} ms, {mismatches} count mismatches"
                matrix[(label, spec)] = MatrixCell("FAIL" if fails else "PASS", worst if not fails else fails[0], details)
            except Exception as exc:   # one backend's failure must not stop the suite
                text = str(exc).splitlines()[0] if str(exc) else ""
                prefix = "" if isinstance(exc, HHCError) else f"{type(exc).__name__}: "
                matrix[(label, spec)] = MatrixCell("ERROR", (prefix + text)[:120])
            c = matrix[(label, spec)]
            say(f"  {spec}: {c.status} ({c.worst})")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "validate.md").write_text(markdown(matrix, unavailable, info) + "\n")
        (out / "validate.json").write_text(json.dumps({
            "matrix": [{"model": m, "backend": b, **dataclasses.asdict(c)} for (m, b), c in matrix.items()],
            "unavailable": unavailable, "info": info}, indent=2, default=str) + "\n")
    return matrix, unavailable, info


def format_matrix(matrix, unavailable) -> str:
    models = list(dict.fromkeys(m for m, _ in matrix))
    specs = list(dict.fromkeys(b for _, b in matrix))
    rows = [["model"] + specs]
    for m in models:
        rows.append([m] + [f"{matrix[(m, b)].status}: {matrix[(m, b)].worst}" for b in specs])
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for spec, reason in unavailable.items():
        lines.append(f"{spec}: unavailable here: {reason}")
    return "\n".join(lines)


def markdown(matrix, unavailable, info) -> str:
    specs = list(dict.fromkeys(b for _, b in matrix))
    models = list(dict.fromkeys(m for m, _ in matrix))
    lines = ["# hhc validate", "",
             f"Protocols: {REST * 1e3:g} ms rest, then a {STEP * 1e3:g} ms step at "
             + ", ".join(f"{lv} ({f:g} x rheobase)" for lv, f in LEVELS)
             + f"; {NEURONS} neuron from the cell's initial v, gates at steady state; dt {info['dt'] * 1e3:g} ms "
             + "".join(f" ({name} {backends.backend_class(name).capabilities.validate_dt * 1e3:g} ms)"
                       for name in backends.names() if backends.backend_class(name).capabilities.validate_dt)
             + f", method {info['method']}.",
             "Rheobase: " + ", ".join(f"{x['model']} {x['rheobase_A'] * 1e12:.4g} pA" for x in info["levels"]), ""]
    if specs:
        lines += ["| model | " + " | ".join(specs) + " |", "|---|" + "---|" * len(specs)]
        for m in models:
            lines.append(f"| {m} | " + " | ".join(f"{matrix[(m, b)].status}: {matrix[(m, b)].worst}" for b in specs) + " |")
    if unavailable:
        lines += ["", "Backends that cannot run here:", ""]
        lines += [f"- {spec}: {reason}" for spec, reason in unavailable.items()]
    return "\n".join(lines)
