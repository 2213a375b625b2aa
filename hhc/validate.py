"""The validation suite: every model x every backend against a reference.

For each cell of each model in models/, hhc finds the rheobase of a current step (bisection with
the reference solver) and builds the standard protocol set — 20 ms at rest, then a 200 ms step of
  silence   0 pA
  rheobase  1.05 x rheobase   (spike timing ill-conditioned: judged as marginal by hhc compare)
  strong    3 x rheobase
on one neuron starting from the cell's initial v with every gate at its steady state (every backend
can express that; NeuroML cannot start gates elsewhere), against the SciPy reference. Phase error
grows with every spike, so two long cases follow (leave them out with long=False, `--no-long`):
  tonic     one neuron, 20 ms rest then LONG_TONIC at the strong current — only for a cell that
            fires tonically there: a cheap probe (the compiled reference over PROBE) must spike in
            its last PROBE_TAIL; a cell that does not (depolarisation block) gets no tonic case, and
            the report says why
  spread    SPREAD_NEURONS neurons, initial v drawn uniformly from SPREAD_V (gates at steady state),
            SPREAD at the strong current
judged against the compiled reference of the accuracy advisor (hhc.advise.sample_reference: adaptive
Dormand–Prince 5(4) in C, checked at two tolerances and against SciPy on a prefix), whose result
folder records threshold crossings: hhc compare lists the ill-conditioned ones and does not judge them.

Each backend that can run here runs each case at its default method ("auto") and dt 0.01 ms
(jNeuroML, which integrates with forward Euler, at its Capabilities.validate_dt of 0.001 ms: a
backend with a validate_dt skips the long cases, which would take it far too long); the result is
compared with the reference (hhc.compare defaults). A case the backend cannot express
(UnsupportedError: per-neuron initial v, say) is listed as not applicable. The matrix shows
PASS/FAIL per model x backend over all its cases, with the worst metric; backends that cannot run
here, or only generate code, are listed with the reason.
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
from hhc.backends.base import UnsupportedError
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

LONG_FACTOR = 3.0    # x rheobase: the long cases run at the "strong" current
LONG_TONIC = 20.0    # s of step in the tonic case
PROBE = 2.0          # s of step in the probe that decides whether a cell fires tonically
PROBE_TAIL = 0.5     # s: a tonic cell still spikes in the last PROBE_TAIL of the probe
SPREAD = 2.0         # s at the strong current in the spread case (no rest: the spread is the point)
SPREAD_NEURONS = 20
SPREAD_V = ("-75 mV", "-55 mV")
LONG_CASES = ("tonic", "spread")


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
                    backend="brian2", device=None, tag="validate", step=STEP, rest=REST, initial=None,
                    traces=True):
    """One neuron (or `size`) at the cell's initial v, gates at steady state (or `initial`): `rest`
    s at 0 (none if 0), then `step` s at `current` (A); v recorded every 0.1 ms unless traces=False."""
    if not cell.inputs:
        raise HHCError(f"cell {cell.name} has no input to drive")
    name = cell.inputs[0].name
    protocol = ((Phase(rest, {name: 0.0}),) if rest else ()) + (Phase(step, {name: float(current)}),)
    return Experiment(
        path=f"{model_file}#{tag}", model_file=Path(model_file), cell_name=cell.name, size=size, dt=dt,
        method=method, seed=1, initial=dict(initial or {"gates": "steady_state"}),
        protocol=protocol, record_spikes=True,
        traces=(Traces(("v",), tuple(range(size)), 1e-4, None),) if traces else (),
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


# ---- the cases --------------------------------------------------------------------------------


@dataclass
class Case:
    """One protocol of one cell, and its reference (a result folder)."""
    name: str
    long: bool
    current: float                      # A during the step
    step: float                         # s
    rest: float                         # s before the step
    size: int
    initial: dict
    protocol: str = ""                  # for the report
    ref_dir: Path | None = None
    reference: dict = field(default_factory=dict)   # what the reference is and found (for the report)
    error: str | None = None            # no reference: every backend's case is an ERROR with this

    def experiment(self, model_file, cell, *, dt, method, backend, device=None):
        return base_experiment(model_file, cell, self.current, dt=dt, method=method, size=self.size,
                               backend=backend, device=device, tag=f"validate-{self.name}", step=self.step,
                               rest=self.rest, initial=self.initial, traces=not self.long)


def short_cases(model_file, cell, rheobase, *, dt, method, out) -> list[Case]:
    """The three 220 ms protocols with their SciPy references."""
    cases = []
    for level, factor in LEVELS:
        case = Case(level, False, factor * rheobase, STEP, REST, NEURONS, {"gates": "steady_state"},
                    protocol=f"{REST * 1e3:g} ms rest, {STEP * 1e3:g} ms at {factor:g} x rheobase")
        exp, _, _ = prepare(case.experiment(model_file, cell, dt=dt, method=method, backend="brian2"),
                            choose_auto=False)
        ref = compute_reference(exp, cell, np.arange(exp.size), variables=("v",))
        case.ref_dir = _folder(out, "reference", cell.name, level)
        write_results(case.ref_dir, spike_i=ref["spike_i"], spike_t=ref["spike_t"], traces=ref["traces"],
                      crossings=ref["crossings"], meta={**ref["meta"], "n_neurons": exp.size, "duration": exp.duration})
        case.reference = {"reference": "SciPy", "spikes": int(len(ref["spike_t"]))}
        cases.append(case)
    return cases


def tonic_probe(model_file, cell, current) -> tuple[bool, str]:
    """(fires tonically, why not): the compiled reference of one neuron over REST + PROBE at `current`
    must still spike in the last PROBE_TAIL."""
    from hhc.backends import reference_c
    from hhc.backends.reference import build_rhs, initial_matrix
    exp = resolve(base_experiment(model_file, cell, current, step=PROBE, traces=False), cell)
    y0 = initial_matrix(exp, build_rhs(cell, jacobian=False))[:1]
    inputs = np.array([[[p.inputs.get(i.name, 0.0) for i in cell.inputs] for p in exp.protocol]], dtype=float)
    sol = reference_c.solve(cell, y0, [p.duration for p in exp.protocol], inputs, rtol=1e-8)
    train = np.asarray(sol.trains[0])
    if len(train) and train[-1] >= exp.duration - PROBE_TAIL:
        return True, ""
    last = f"last spike at {train[-1]:.4g} s" if len(train) else "no spike"
    return False, (f"not tonic at {LONG_FACTOR:g}× rheobase: {last} (probe: the compiled reference over "
                   f"{REST * 1e3:g} ms rest + {PROBE:g} s, {len(train)} spikes, none in the last {PROBE_TAIL:g} s)")


def long_cases(model_file, cell, rheobase, *, dt, method, out, say=print) -> tuple[list[Case], dict]:
    """The tonic and spread cases with their compiled references; {case: why it is left out}."""
    from hhc.advise import AdviseTolerance, sample_reference
    current = LONG_FACTOR * rheobase
    cases, left_out = [], {}
    tonic, why = tonic_probe(model_file, cell, current)
    if tonic:
        cases.append(Case("tonic", True, current, LONG_TONIC, REST, 1, {"gates": "steady_state"},
                          protocol=f"{REST * 1e3:g} ms rest, {LONG_TONIC:g} s at {LONG_FACTOR:g} x rheobase "
                                   f"({current * 1e12:.4g} pA); 1 neuron from the cell's initial v"))
    else:
        left_out["tonic"] = why
        say(f"  tonic: no case: {why}")
    cases.append(Case("spread", True, current, SPREAD, 0.0, SPREAD_NEURONS,
                      {"v": f"uniform({SPREAD_V[0]}, {SPREAD_V[1]})", "gates": "steady_state"},
                      protocol=f"{SPREAD:g} s at {LONG_FACTOR:g} x rheobase ({current * 1e12:.4g} pA) from t = 0; "
                               f"{SPREAD_NEURONS} neurons, initial v uniform in [{SPREAD_V[0]}, {SPREAD_V[1]}], "
                               f"gates at steady state"))
    tolerance = AdviseTolerance()
    for case in cases:
        t0 = time.perf_counter()
        exp, _, _ = prepare(case.experiment(model_file, cell, dt=dt, method=method, backend="brian2"),
                            choose_auto=False)
        neurons = np.arange(exp.size)
        try:
            ref = sample_reference(exp, cell, neurons, tolerance, say=lambda m: None)
        except HHCError as exc:
            case.error = f"no reference: {_first_line(exc)}"
            say(f"  {case.name}: {case.error}")
            continue
        case.ref_dir = _folder(out, "reference", cell.name, case.name)
        ref.write(case.ref_dir, exp, meta={"cell": cell.name, "model_digest": exp.model_digest,
                                           "initial": exp.initial, "seed": exp.seed})
        summary = ref.summary()
        spikes = sum(len(ref.train(n)) for n in neurons)
        case.reference = {
            "reference": summary["reference"], "spikes": int(spikes),
            "agreement_with_rtol_1e-10_s": ref.agreement_s, "scipy_dop853_prefix_s": ref.scipy_prefix,
            "scipy_dop853_agreement_s": ref.scipy_prefix_s, "ill_conditioned": summary["ill_conditioned"],
            "initial_v": [float(v) for v in np.broadcast_to(exp.initial_arrays["v"], (exp.size,))],
            "wall_s": time.perf_counter() - t0}
        say(f"  {case.name}: reference {spikes} spikes on {exp.size} neuron(s) over {exp.duration:g} s "
            f"({case.reference['wall_s']:.1f} s)")
    return cases, left_out


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, HHCError):
        return exc.message.splitlines()[0] if exc.message else ""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def _folder(out, *parts) -> Path:
    if out is None:
        return Path(tempfile.mkdtemp(prefix="hhc-validate-")) / parts[-1]
    return Path(out).joinpath(*parts)


def long_skip_reason(cls) -> str | None:
    """Why a backend does not run the long cases: it declares them out of its reach
    (Capabilities.long_runs), or it validates at its own (small) dt."""
    if cls.capabilities.long_runs:
        return f"{cls.name}: {cls.capabilities.long_runs}"
    dt = cls.capabilities.validate_dt
    if dt is None:
        return None
    method = cls.capabilities.default_method or "its default method"
    return (f"{cls.name} validates with {method} at dt {dt * 1e3:g} ms: the long cases would take far too long")


def _run_and_compare(case, model_file, cell, spec, name, device, dt, method, run_dir, tol):
    exp = case.experiment(model_file, cell, dt=dt, method=method, backend=name, device=device)
    run_experiment(exp, out=run_dir, quiet=True, choose_auto=False, overwrite=True)
    return compare_results(load_results(case.ref_dir), load_results(run_dir), tol, "reference", spec,
                           distances=False)


def _same_spike_drift(ref_dir, run_dir) -> tuple[float, bool]:
    """(the worst difference between the k-th spikes of each neuron in the reference and a run, over the
    spikes both have; whether every neuron's counts are equal): how far the same spikes drifted, also
    beyond compare's matching window (a spike that drifted past the end of the run is not there)."""
    ref, run = load_results(ref_dir).spike_trains(), load_results(run_dir).spike_trains()
    worst, same_counts = 0.0, True
    for neuron in set(ref) | set(run):
        a, b = np.sort(ref.get(neuron, np.zeros(0))), np.sort(run.get(neuron, np.zeros(0)))
        same_counts &= len(a) == len(b)
        k = min(len(a), len(b))
        if k:
            worst = max(worst, float(np.max(np.abs(a[:k] - b[:k]))))
    return worst, same_counts


def _converging(case, name, dt, run_dir, tol, rerun, order, halvings: int = 3) -> str | None:
    """A first-order fixed-step backend that disagrees is run again at dt/2 (and dt/4, dt/8 while its
    error has not shown its order yet). If the same spikes (the k-th against the k-th) move toward the
    reference at the method's order (the error falls by about 2^order per halving) and the spike counts
    end up equal, the disagreement is its integration error at this dt, not a model mismatch: said,
    with the dt agreement would need, and not judged. Otherwise None: the FAIL stands.
    rerun(step, folder) runs the case at another dt."""
    errors = [(dt, *_same_spike_drift(case.ref_dir, run_dir))]
    for k in range(1, halvings + 1):
        step = dt / 2 ** k
        folder = run_dir.with_name(f"{run_dir.name}-dt-{k}")
        rerun(step, folder)
        errors.append((step, *_same_spike_drift(case.ref_dir, folder)))
        (d1, e1, _), (d2, e2, same_counts) = errors[-2:]
        if not (0 < e2 < e1 and 0.6 * 2 ** order <= e1 / e2 <= 1.6 * 2 ** order):
            if e2 >= e1:
                return None            # not moving toward the reference: a model mismatch
            continue
        if same_counts:
            needed = d2 * (tol.spike_time / e2) ** (1 / order)
            path = ", ".join(f"{e * 1e3:.3g} ms at dt {d * 1e3:g} ms" for d, e, _ in errors)
            return (f"integration error of {name}'s fixed step (order {order}), not the model: worst spike {path} "
                    f"(converging, ratio {e1 / e2:.2g} per halving); within {tol.spike_time * 1e3:g} ms needs dt <= "
                    f"{needed * 1e3:.2g} ms, beyond validate's budget")
    return None


def run_case(case: Case, model_file, cell, spec, name, device, *, dt, method, out, tol=Tolerances()) -> dict:
    """One backend on one case, judged against the case's reference: a detail dict whose status is
    PASS, FAIL, ERROR, skipped or n/a (the backend cannot express the case)."""
    cls = backends.backend_class(name)
    detail = {"level": case.name, "long": case.long, "neurons": case.size}
    if case.long:
        reason = long_skip_reason(cls)
        if reason:
            return {**detail, "status": "skipped", "message": reason}
    if case.error:
        return {**detail, "status": "ERROR", "message": case.error}
    case_dt = cls.capabilities.validate_dt or dt
    run_dir = _folder(out, "runs", spec.replace(":", "-"), cell.name, case.name)
    t0 = time.perf_counter()
    try:
        pair = _run_and_compare(case, model_file, cell, spec, name, device, case_dt, method, run_dir, tol)
    except UnsupportedError as exc:
        return {**detail, "status": "n/a", "message": _first_line(exc)}
    except Exception as exc:   # one case's failure must not stop the others
        return {**detail, "status": "ERROR", "message": _first_line(exc)[:160]}
    wall = time.perf_counter() - t0
    order = cls.capabilities.fixed_step_order
    if not pair.agree and order and not pair.population_failures:
        def rerun(step, folder):
            _run_and_compare(case, model_file, cell, spec, name, device, step, method, folder, tol)
        converging = _converging(case, name, case_dt, run_dir, tol, rerun, order)
        if converging is not None:
            return {**detail, "status": "n/a", "message": converging, "wall_s": time.perf_counter() - t0}
    diffs = pair.all_diffs()
    failures = [f"neuron {c.neuron} {c.failures[0]}" for c in pair.failing] + list(pair.population_failures)
    if not pair.agree and not failures:
        failures = ["traces"]
    return {**detail, "status": "PASS" if pair.agree else "FAIL", "agree": pair.agree,
            "failures": {c.neuron: c.failures for c in pair.failing},
            "population_failures": list(pair.population_failures),
            "message": failures[0] if failures else "",
            "spikes_reference": int(sum(c.count_a for c in pair.per_neuron)),
            "spikes_backend": int(sum(c.count_b for c in pair.per_neuron)),
            "count_mismatches": int(sum(1 for c in pair.per_neuron if c.count_diff)),
            # spikes without a partner within the matching window (a train that drifted out of it)
            "unmatched_reference": int(sum(c.unmatched_a for c in pair.per_neuron)),
            "unmatched_backend": int(sum(c.unmatched_b for c in pair.per_neuron)),
            "max_spike_dt_s": float(np.max(np.abs(diffs))) if len(diffs) else 0.0,
            "ill_conditioned": len(pair.ill_conditioned or ()),
            "ill_conditioned_spikes": int(pair.ill_conditioned_spikes), "wall_s": wall}


@dataclass
class MatrixCell:
    status: str                     # PASS, FAIL, ERROR, UNAVAILABLE, N/A (no case could be compared)
    worst: str = ""
    details: list = field(default_factory=list)


def summarise(details: list) -> MatrixCell:
    """One matrix cell over all of a backend's cases: ERROR if a case could not run, else FAIL if a
    case disagrees, else PASS (skipped and not applicable cases are named, not judged)."""
    errors = [d for d in details if d["status"] == "ERROR"]
    fails = [d for d in details if d["status"] == "FAIL"]
    judged = [d for d in details if d["status"] in ("PASS", "FAIL")]
    if errors:
        return MatrixCell("ERROR", f"{errors[0]['level']}: {errors[0]['message']}"[:160], details)
    if fails:
        return MatrixCell("FAIL", f"{fails[0]['level']}: {fails[0]['message']}", details)
    if not judged:      # nothing was compared: not a PASS
        reasons = [d for d in details if d["status"] == "n/a"]
        text = f"n/a: {reasons[0]['message']}"[:160] if reasons else "every case skipped"
        return MatrixCell("N/A", text, details)
    worst = max((d["max_spike_dt_s"] for d in judged), default=0.0)
    text = f"max spike dt {worst * 1e3:.3g} ms, {sum(d['count_mismatches'] for d in judged)} count mismatches"
    skipped = [d["level"] for d in details if d["status"] == "skipped"]
    na = [d["level"] for d in details if d["status"] == "n/a"]
    if skipped:
        text += f"; skipped: {', '.join(skipped)}"
    if na:
        text += f"; n/a: {', '.join(na)}"
    return MatrixCell("PASS", text, details)


def validate(backend_specs=None, model_names=None, out=None, dt=1e-5, method="auto", long=True, say=print):
    """Returns (cells: {(model label, backend label): MatrixCell}, unavailable: {backend: reason}, info).
    long=False leaves out the long cases (tonic, spread)."""

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
    info = {"levels": [], "dt": dt, "method": method, "long": [] if long else None}
    for model_file, cell in (discover_cells(names=model_names) if runnable else []):
        label = f"{model_file.stem}:{cell.name}"
        t0 = time.perf_counter()
        rheobase = find_rheobase(model_file, cell)
        say(f"{label}: rheobase {rheobase * 1e12:.4g} pA for a {STEP * 1e3:g} ms step "
            f"({time.perf_counter() - t0:.1f} s)")
        info["levels"].append({"model": label, "rheobase_A": rheobase})
        cases = short_cases(model_file, cell, rheobase, dt=dt, method=method, out=out)
        if long:
            extra, left_out = long_cases(model_file, cell, rheobase, dt=dt, method=method, out=out, say=say)
            cases += extra
            for name in LONG_CASES:
                if name in left_out:
                    info["long"].append({"model": label, "case": name, "left_out": left_out[name]})
                for case in (c for c in extra if c.name == name):
                    info["long"].append({"model": label, "case": case.name, "protocol": case.protocol,
                                         "neurons": case.size, "error": case.error, **case.reference,
                                         "reference_dir": str(case.ref_dir) if case.ref_dir else None})
        for spec, name, device in runnable:
            details = [run_case(case, model_file, cell, spec, name, device, dt=dt, method=method, out=out, tol=tol)
                       for case in cases]
            matrix[(label, spec)] = c = summarise(details)
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


def _ms(x):
    return "-" if x is None else f"{x * 1e3:.3g} ms"


def _reference_text(case: dict) -> str:
    if case.get("error"):
        return case["error"]
    return (f"compiled Dormand–Prince 5(4) at rtol 1e-11: {case['spikes']} spikes; rtol 1e-10 within "
            f"{_ms(case['agreement_with_rtol_1e-10_s'])}, SciPy DOP853 on the first "
            f"{case['scipy_dop853_prefix_s']:g} s within {_ms(case['scipy_dop853_agreement_s'])}; "
            f"{len(case['ill_conditioned'])} ill-conditioned crossing(s)")


def markdown(matrix, unavailable, info) -> str:
    specs = list(dict.fromkeys(b for _, b in matrix))
    models = list(dict.fromkeys(m for m, _ in matrix))
    lines = ["# hhc validate", "",
             f"Protocols: {REST * 1e3:g} ms rest, then a {STEP * 1e3:g} ms step at "
             + ", ".join(f"{lv} ({f:g} x rheobase)" for lv, f in LEVELS)
             + f"; {NEURONS} neuron from the cell's initial v, gates at steady state; dt {info['dt'] * 1e3:g} ms "
             + "".join(f" ({name} {backends.backend_class(name).capabilities.validate_dt * 1e3:g} ms)"
                       for name in backends.names() if backends.backend_class(name).capabilities.validate_dt)
             + f", method {info['method']}; against the SciPy reference."
             + (" Long cases (below) too: every cell in the matrix is PASS only if all its cases pass."
                if info.get("long") is not None else " Long cases left out (--no-long)."),
             "Rheobase: " + ", ".join(f"{x['model']} {x['rheobase_A'] * 1e12:.4g} pA" for x in info["levels"]), ""]
    if specs:
        lines += ["| model | " + " | ".join(specs) + " |", "|---|" + "---|" * len(specs)]
        for m in models:
            lines.append(f"| {m} | " + " | ".join(f"{matrix[(m, b)].status}: {matrix[(m, b)].worst}" for b in specs) + " |")
    if info.get("long"):
        lines += ["", "## Long cases", "",
                  f"Phase error grows with every spike. tonic: {LONG_TONIC:g} s at {LONG_FACTOR:g} x rheobase, only "
                  f"for cells that still spike in the last {PROBE_TAIL:g} s of a {PROBE:g} s probe; spread: "
                  f"{SPREAD_NEURONS} neurons with initial v uniform in [{SPREAD_V[0]}, {SPREAD_V[1]}], {SPREAD:g} s. "
                  "Reference: the accuracy advisor's compiled reference (hhc.advise.sample_reference), judged "
                  "with the hhc compare defaults; threshold crossings within "
                  f"{Tolerances().crossing_margin * 1e3:g} mV of the threshold are ill-conditioned: listed, "
                  "not judged. Backends with their own validate dt skip these cases.", "",
                  "| model | case | protocol | neurons | reference |", "|---|---|---|---|---|"]
        for case in info["long"]:
            if case.get("left_out"):
                lines.append(f"| {case['model']} | {case['case']} | no case: {case['left_out']} | - | - |")
            else:
                lines.append(f"| {case['model']} | {case['case']} | {case['protocol']} | {case['neurons']} | "
                             f"{_reference_text(case)} |")
        rows = []
        for (m, b), cell in matrix.items():
            for d in cell.details:
                if not d.get("long"):
                    continue
                if d["status"] in ("PASS", "FAIL"):
                    rows.append(f"| {m} | {d['level']} | {b} | {d['status']}"
                                + (f": {d['message']}" if d.get("message") else "")
                                + f" | {d['spikes_reference']} / {d['spikes_backend']}"
                                + (f" ({d['unmatched_reference']} / {d['unmatched_backend']} unmatched)"
                                   if d['unmatched_reference'] or d['unmatched_backend'] else "")
                                + f" | {_ms(d['max_spike_dt_s'])} | {d['ill_conditioned']} "
                                f"({d['ill_conditioned_spikes']} spikes) | {d['wall_s']:.1f} s |")
                else:
                    label = {"n/a": "not applicable"}.get(d["status"], d["status"])
                    rows.append(f"| {m} | {d['level']} | {b} | {label}: {d['message']} | - | - | - | - |")
        if rows:
            lines += ["", "| model | case | backend | result | spikes reference / backend | worst spike-time "
                          "difference | ill-conditioned crossings (not judged) | backend wall |",
                      "|---|---|---|---|---|---|---|---|", *rows]
    if unavailable:
        lines += ["", "Backends that cannot run here:", ""]
        lines += [f"- {spec}: {reason}" for spec, reason in unavailable.items()]
    return "\n".join(lines)
