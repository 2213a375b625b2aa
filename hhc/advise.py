"""The accuracy advisor: the cheapest method x dt that still gives the reference's spikes.

For a sample of the experiment's neurons and a (shortened) protocol, hhc advise
 1. computes the high-precision reference (hhc.backends.reference: SciPy DOP853, rtol 1e-9);
 2. runs the sample on the backend at every method x dt of a grid;
 3. compares each run with the reference, neuron by neuron (hhc.compare.compare_trains):
    the default tolerance is identical spike counts on every sampled neuron and first-spike error
    <= 0.1 ms (no leniency for neurons near rheobase: the advisor's question is exactly whether a
    combination reproduces them);
 4. measures the cost of one step of each method per neuron (a short run of up to 2,000 neurons),
    so the cost of a combination is cost per step / dt, and the estimated wall time of the whole
    experiment follows;
 5. recommends the cheapest combination that meets the tolerance.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hhc import backends
from hhc.backends.cache import cache_root, file_lock
from hhc.backends.reference import compute_reference, sample_experiment, sample_indices
from hhc.backends.results import write_results
from hhc.compare import Tolerances, compare_trains
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import PROVISIONAL_DT
from hhc.compiler.version import __version__

DEFAULT_METHODS = ("euler", "exponential_euler", "rk2", "rk4")
DEFAULT_DTS_MS = (0.1, 0.05, 0.025, 0.01, 0.005)
DEFAULT_SAMPLE = 20
DEFAULT_DURATION = 1.0          # s: the protocol is cut to this (covers onset, adaptation to ~5 x 200 ms)
STAGES = {"euler": 1, "exponential_euler": 1, "rk2": 2, "heun": 2, "rk4": 4}


@dataclass(frozen=True)
class AdviseTolerance:
    count: int = 0               # spike count difference allowed on every sampled neuron
    first_spike: float = 0.1e-3  # s
    spike_time: float | None = None   # s: also bound every matched spike's error (off by default)

    def as_compare(self, window: float) -> Tolerances:
        return Tolerances(count=self.count, first_spike=self.first_spike, spike_time=float("inf"), window=window,
                          marginal_count=self.count, marginal_first_spike=self.first_spike,
                          marginal_spike_time=float("inf"))


@dataclass
class Trial:
    method: str
    dt: float
    ok: bool
    error: str | None = None             # the run failed (blow-up, unsupported)
    count_mismatches: int = 0
    mismatched_neurons: tuple = ()
    first_spike_error: float | None = None   # max over neurons (s)
    spike_time_error: float | None = None    # max matched |dt| (s)
    spikes: int = 0
    sample_wall_s: float = 0.0
    step_cost_s: float | None = None          # measured wall per neuron per step
    cost: float = 0.0                         # relative: per-neuron-step cost / dt

    @property
    def label(self):
        return f"{self.method} @ {self.dt * 1e3:g} ms"


def _run_backend(cell, exp, backend_name, device, out_dir):
    target = backends.get(backend_name)
    reason = target.unavailable_reason()
    if reason:
        raise HHCError(f"backend {backend_name} cannot run here: {reason}")
    # one thread: the runtime device would only note that it ignores more
    exp = dataclasses.replace(exp, backend=dataclasses.replace(exp.backend, name=backend_name, device=device,
                                                                threads=1))
    return target.run(cell, exp, Path(out_dir))


def measure_step_costs(cell, exp, methods, backend_name, device, neurons=2000, duration=0.02, dt=1e-5, workdir=None):
    """Wall time per neuron per step of each method: a short run of a larger population."""
    n = min(exp.size, neurons)
    probe, _ = sample_experiment(exp.cut_to(duration), np.arange(n))
    probe = dataclasses.replace(probe, dt=dt, traces=(), record_spikes=None)
    costs = {}
    for method in methods:
        try:
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                out = _run_backend(cell, dataclasses.replace(probe, method=method), backend_name, device, tmp)
            steps = round(probe.duration / dt)
            costs[method] = float(out.meta["wall_time_s"]) / (n * steps)
        except HHCError:
            costs[method] = None
    return costs, n


def advise(full, cell, *, sample=DEFAULT_SAMPLE, duration=DEFAULT_DURATION, methods=DEFAULT_METHODS,
           dts=tuple(d * 1e-3 for d in DEFAULT_DTS_MS), backend=None, device=None,
           tolerance=AdviseTolerance(), reference_rtol=1e-9, out=None, measure_cost=True, say=print):
    """Run the grid on `full`, a resolved experiment (hhc.api.prepare with choose_auto=False) of `cell`;
    returns (trials sorted by cost, recommended trial or None, info dict)."""
    backend = backend or full.backend.name
    device = device or backends.backend_class(backend).capabilities.advise_device or full.backend.device
    exp = full.cut_to(duration) if duration else full
    neurons = sample_indices(exp.size, sample)
    say(f"sample: {len(neurons)} of {exp.size:,} neurons, first {exp.duration:g} s of {full.duration:g} s; "
        f"backend {backend}/{device}")

    t0 = time.perf_counter()
    ref = compute_reference(exp, cell, neurons, rtol=reference_rtol, variables=())
    ref_wall = time.perf_counter() - t0
    say(f"reference: scipy DOP853 rtol {reference_rtol:g}, {ref['meta']['distinct_trajectories']} distinct "
        f"trajectories, {len(ref['spike_t'])} spikes, {ref_wall:.1f} s")
    ref_trains = _trains(ref["spike_i"], ref["spike_t"], neurons)

    costs, probe_n = ({}, 0)
    if measure_cost:
        costs, probe_n = measure_step_costs(cell, full, methods, backend, device)
        say("cost per neuron-step (µs, measured on " + f"{probe_n} neurons): " +
            ", ".join(f"{m} {c * 1e6:.3g}" if c else f"{m} -" for m, c in costs.items()))

    sample_exp, _ = sample_experiment(exp, neurons)
    sample_exp = dataclasses.replace(sample_exp, traces=())
    trials = []
    for method in methods:
        for dt in sorted(dts, reverse=True):
            trial = run_trial(cell, sample_exp, neurons, ref_trains, method, dt, tolerance, backend, device)
            trials.append(_cost(trial, costs))
            if trial.error:
                say(f"  {trial.label:28s} failed: {trial.error}")
            else:
                say(f"  {trial.label:28s} {'meets' if trial.ok else 'misses'} the tolerance "
                    f"(count mismatches {trial.count_mismatches}, first-spike error "
                    f"{_ms(trial.first_spike_error)} ms)")
    trials.sort(key=lambda t: (t.cost, t.method))
    passing = [t for t in trials if t.ok]
    best = passing[0] if passing else None
    current_method = full.method if full.method != "auto" else (
        backends.backend_class(backend).capabilities.default_method or "rk4")
    current = next((t for t in trials if t.method == current_method and abs(t.dt - full.dt) < 1e-12), None)
    info = {"sample_neurons": neurons.tolist(), "duration": exp.duration, "full_duration": full.duration,
            "n_neurons": full.size, "backend": backend, "device": device, "reference_rtol": reference_rtol,
            "reference_wall_s": ref_wall, "step_costs_s": costs, "probe_neurons": probe_n,
            "tolerance": dataclasses.asdict(tolerance), "current": {"method": current_method, "dt": full.dt},
            "full_steps": full.duration, "cost_basis": "measured" if any(costs.values()) else "stages"}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_results(out / "reference", spike_i=ref["spike_i"], spike_t=ref["spike_t"], traces=[],
                      meta={**ref["meta"], "n_neurons": exp.size, "duration": exp.duration,
                            "protocol": [dataclasses.asdict(p) for p in exp.protocol]})
        rows = [dataclasses.asdict(t) for t in trials]
        (out / "advise.json").write_text(json.dumps({"trials": rows, "recommended": best and best.label,
                                                     "info": info}, indent=2, default=str) + "\n")
        (out / "advise.md").write_text(markdown(trials, best, info) + "\n")
    info["current_trial"] = current
    return trials, best, info


def run_trial(cell, sample_exp, neurons, ref_trains, method, dt, tolerance: AdviseTolerance, backend, device) -> Trial:
    """Run the sample at one method x dt and judge it against the reference trains."""
    trial = Trial(method, dt, ok=False)
    tol = tolerance.as_compare(window=2e-3)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = _run_backend(cell, dataclasses.replace(sample_exp, method=method).with_dt(dt), backend, device, tmp)
    except HHCError as exc:
        trial.error = str(exc).splitlines()[0][:80]
        return trial
    trial.sample_wall_s = float(run.meta.get("wall_time_s", 0.0))
    spike_i = neurons[np.asarray(run.spike_i, dtype=np.int64)]
    trains = _trains(spike_i, np.asarray(run.spike_t), neurons)
    per = [compare_trains(int(n), a, b, sample_exp.duration, tol) for n, a, b in zip(neurons, ref_trains, trains)]
    trial.spikes = int(sum(c.count_b for c in per))
    bad = [c.neuron for c in per if abs(c.count_diff) > tolerance.count]
    trial.count_mismatches = len(bad)
    trial.mismatched_neurons = tuple(bad)
    firsts = [abs(c.first_diff) for c in per if c.first_diff is not None]
    silent_mismatch = any((c.count_a == 0) != (c.count_b == 0) for c in per)
    trial.first_spike_error = max(firsts) if firsts else None
    diffs = [c.max_abs_diff for c in per if len(c.matched_diffs)]
    trial.spike_time_error = max(diffs) if diffs else None
    trial.ok = (not bad and not silent_mismatch and
                (trial.first_spike_error is None or trial.first_spike_error <= tolerance.first_spike) and
                (tolerance.spike_time is None or trial.spike_time_error is None or
                 trial.spike_time_error <= tolerance.spike_time))
    return trial


# ---- method/dt = "auto": the advisor's choice, made before a run ------------------------------

AUTO_METHODS = ("exponential_euler", "rk2", "rk4")
AUTO_DTS = (0.1e-3, 0.05e-3, 0.025e-3, 0.01e-3, 0.005e-3)
_AUTO_STAGES = {"exponential_euler": 1.5}   # one RHS evaluation plus an exp per gate


def auto_candidates(exp) -> list[tuple[str, float]]:
    """Method x dt pairs "auto" may choose, cheapest first (by RHS evaluations per biological
    second). A chosen dt divides every trace interval, so samples fall on steps."""
    methods = AUTO_METHODS if exp.method == "auto" else (exp.method,)
    intervals = [tr.interval for tr in exp.traces if tr.interval is not None]
    dts = AUTO_DTS if exp.dt_auto else (exp.dt,)
    dts = [d for d in dts if all(abs(i / d - round(i / d)) < 1e-6 and i >= d * (1 - 1e-9) for i in intervals)]
    pairs = [(m, d) for m in methods for d in dts]
    return sorted(pairs, key=lambda md: (_AUTO_STAGES.get(md[0], STAGES.get(md[0], 4)) / md[1], md[0]))


def _auto_key(exp, cell, candidates, tolerance, backend, device, sample, duration) -> str:
    sources = {str(s): Path(s).read_text() for s in cell.sources if Path(s).is_file()}
    short = exp.cut_to(min(duration, exp.duration))
    blob = {"hhc": __version__, "cell": cell.name, "sources": sources, "candidates": candidates,
            "tolerance": dataclasses.asdict(tolerance), "backend": backend, "device": device, "sample": sample,
            "protocol": [(p.duration, sorted(p.inputs.items())) for p in short.protocol],
            "initial": exp.initial, "size": exp.size, "seed": exp.seed, "precision": exp.precision}
    return hashlib.sha1(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def choose(exp, cell, backend, device, *, sample=DEFAULT_SAMPLE, duration=DEFAULT_DURATION, say=print):
    """Resolve method and/or dt = "auto" on a resolved experiment: the cheapest candidate whose
    sample run meets the experiment's tolerance against the reference (first 1 s of the protocol),
    tried cheapest first and cached by model, protocol and tolerance. Never coarser than the
    tolerance: when nothing meets it, the finest candidate is refused with an error, not used."""
    tol = exp.tolerance
    tolerance = AdviseTolerance(count=tol.get("count", 0), first_spike=tol.get("first_spike", 0.1e-3),
                                spike_time=tol.get("spike_time"))
    candidates = auto_candidates(exp)
    if not candidates:
        raise HHCError("dt = \"auto\" found no candidate dt that divides every trace interval "
                       f"(candidates {', '.join(f'{d * 1e3:g} ms' for d in AUTO_DTS)})",
                       hint="give the traces an interval that is a multiple of 0.1 ms, or set dt")
    key = _auto_key(exp, cell, candidates, tolerance, backend, device, sample, duration)
    path = cache_root() / "advice" / f"{key}.json"
    with file_lock(path.with_suffix(".lock")):
        if path.exists():
            chosen = json.loads(path.read_text())
            say(f"auto: {chosen['method']} @ {chosen['dt'] * 1e3:g} ms (cached advice {path.name}: "
                f"{chosen['summary']})")
        else:
            chosen = _search(exp, cell, candidates, tolerance, backend, device, sample, duration, say)
            path.write_text(json.dumps(chosen, indent=2) + "\n")
    exp = dataclasses.replace(exp, method=chosen["method"]).with_dt(chosen["dt"])
    return exp, chosen


def _search(exp, cell, candidates, tolerance, backend, device, sample, duration, say):
    base = exp.with_dt(PROVISIONAL_DT) if exp.dt_auto else exp    # each trial sets its own dt
    short = base.cut_to(min(duration, exp.duration))
    neurons = sample_indices(short.size, sample)
    say(f"auto: choosing {'method' if exp.method == 'auto' else ''}"
        f"{' and ' if exp.method == 'auto' and exp.dt_auto else ''}{'dt' if exp.dt_auto else ''} on "
        f"{len(neurons)} sampled neurons over {short.duration:g} s against the reference "
        f"(tolerance: count ±{tolerance.count}, first spike ≤ {tolerance.first_spike * 1e3:g} ms"
        + (f", every spike ≤ {tolerance.spike_time * 1e3:g} ms" if tolerance.spike_time else "") + ")")
    t0 = time.perf_counter()
    ref = compute_reference(short, cell, neurons, variables=())
    ref_trains = _trains(ref["spike_i"], ref["spike_t"], neurons)
    sample_exp, _ = sample_experiment(short, neurons)
    sample_exp = dataclasses.replace(sample_exp, traces=())
    tried = []
    for method, dt in candidates:
        trial = run_trial(cell, sample_exp, neurons, ref_trains, method, dt, tolerance, backend, device)
        verdict = ("failed: " + trial.error if trial.error else
                   f"{'meets' if trial.ok else 'misses'} (count mismatches {trial.count_mismatches}, "
                   f"first-spike error {_ms(trial.first_spike_error)} ms)")
        say(f"  {trial.label:28s} {verdict}")
        tried.append({"method": method, "dt": dt, "ok": trial.ok, "error": trial.error,
                      "count_mismatches": trial.count_mismatches, "first_spike_error": trial.first_spike_error,
                      "spike_time_error": trial.spike_time_error})
        if trial.ok:
            summary = (f"identical spike counts on {len(neurons)} sampled neurons over {short.duration:g} s, "
                       f"first-spike error {_ms(trial.first_spike_error)} ms, largest spike-time error "
                       f"{_ms(trial.spike_time_error)} ms")
            return {"method": method, "dt": dt, "summary": summary, "tolerance": dataclasses.asdict(tolerance),
                    "sample_neurons": neurons.tolist(), "sample_duration": short.duration, "tried": tried,
                    "search_wall_s": time.perf_counter() - t0}
    raise HHCError("no candidate method x dt met the tolerance against the reference: "
                   + "; ".join(f"{r['method']} @ {r['dt'] * 1e3:g} ms" for r in tried),
                   hint="set method and dt yourself, or loosen [simulation] tolerance")


def _trains(spike_i, spike_t, neurons):
    order = np.lexsort((spike_t, spike_i))
    i, t = np.asarray(spike_i)[order], np.asarray(spike_t)[order]
    return [t[np.searchsorted(i, n, "left"):np.searchsorted(i, n, "right")] for n in neurons]


def _cost(trial: Trial, costs: dict) -> Trial:
    per_step = costs.get(trial.method)
    trial.step_cost_s = per_step
    basis = per_step if per_step else STAGES.get(trial.method, 4) * 1e-7
    trial.cost = basis / trial.dt        # seconds of wall per neuron per biological second
    return trial


def _ms(x):
    return "-" if x is None else f"{x * 1e3:.3g}"


def table_rows(trials, best, info) -> list[list[str]]:
    n, t_full = info["n_neurons"], info["full_duration"]
    cur = info["current"]
    cur_cost = next((t.cost for t in trials if t.method == cur["method"] and abs(t.dt - cur["dt"]) < 1e-12), None)
    if cur_cost is None and (cur["method"] in info["step_costs_s"] or cur["method"] in STAGES):
        cur_cost = _cost(Trial(cur["method"], cur["dt"], ok=False), info["step_costs_s"]).cost
    rows = []
    for t in trials:
        est = t.cost * n * t_full
        rows.append([t.method, f"{t.dt * 1e3:g}", "FAILED" if t.error else ("yes" if t.ok else "no"),
                     "-" if t.error else str(t.count_mismatches), _ms(t.first_spike_error), _ms(t.spike_time_error),
                     f"{t.cost * 1e3:.3g}", _duration(est),
                     f"{cur_cost / t.cost:.2g}x" if cur_cost else "-",
                     "<= recommended" if t is best else (t.error or "")])
    return rows


HEADER = ["method", "dt (ms)", "meets tol", "count mismatches", "first-spike err (ms)", "max spike err (ms)",
          "cost (ms wall/neuron/s)", "est. full run", "speed vs exp.", ""]
# cost: wall time per neuron per biological second (measured per step on the backend, / dt);
# est. full run: that x neurons x the full protocol, one thread; speed vs exp.: against the
# experiment's own method and dt


def _duration(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_table(trials, best, info) -> str:
    rows = [HEADER] + table_rows(trials, best, info)
    widths = [max(len(r[k]) for r in rows) for k in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def markdown(trials, best, info) -> str:
    lines = ["# hhc advise", "",
             f"Sample: neurons {info['sample_neurons']} of {info['n_neurons']:,}; first {info['duration']:g} s of "
             f"{info['full_duration']:g} s; backend {info['backend']}/{info['device']}; reference SciPy DOP853 rtol "
             f"{info['reference_rtol']:g}.",
             f"Tolerance: spike-count differences <= {info['tolerance']['count']} on every sampled neuron and "
             f"first-spike error <= {info['tolerance']['first_spike'] * 1e3:g} ms"
             + (f", every matched spike within {info['tolerance']['spike_time'] * 1e3:g} ms"
                if info['tolerance'].get('spike_time') else "") + ".", "",
             "| " + " | ".join(HEADER[:-1]) + " | note |", "|" + "---|" * len(HEADER)]
    for r in table_rows(trials, best, info):
        lines.append("| " + " | ".join(r) + " |")
    lines += ["", recommendation_text(best, info)]
    return "\n".join(lines)


def recommendation_text(best, info) -> str:
    if best is None:
        return ("no combination met the tolerance: try smaller dt values (--dts) or other methods; the reference "
                "itself is in the report folder")
    est = best.cost * info["n_neurons"] * info["full_duration"]
    return (f"recommended: method = \"{best.method}\", dt = \"{best.dt * 1e3:g} ms\" (first-spike error "
            f"{_ms(best.first_spike_error)} ms, identical spike counts on the sample, largest spike-time error "
            f"{_ms(best.spike_time_error)} ms by {info['duration']:g} s; estimated {_duration(est)} for the full "
            f"experiment on one {info['backend']}/{info['device']} thread)")
