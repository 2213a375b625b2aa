"""The accuracy advisor: the cheapest method x dt that still gives the reference's spikes.

"auto" (choose, before a run) promises the experiment's tolerance over the whole run:
 1. a sample of the neurons (sample_neurons: evenly spread, plus the extremes and quantiles of
    every initial value or input that differs between neurons), simulated once per distinct
    (initial state, inputs);
 2. a reference for the sample over the full protocol (sample_reference): the compiled adaptive
    reference (backends/reference_c.py) at rtol 1e-10 and 1e-11, which must agree to within
    REFERENCE_AGREEMENT, and agree with SciPy's DOP853 on a prefix of the run. It records each
    spike's overshoot and the near misses below the threshold: crossings within the tolerance's
    crossing margin of the threshold are ill-conditioned, listed and not judged;
 3. candidates cheapest first; each is screened on the first SCREEN_DURATION of the protocol on the
    backend's advise device (cheap: no build), and the first that passes is run over the whole
    protocol on the device that runs samples in full (Backend.full_sample_device) and judged again;
    the first that passes both is chosen. Nothing is extrapolated: the promise is what was simulated.

`hhc advise` (advise) runs a whole grid on a (shortened) protocol and prints a table with costs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hhc import backends
from hhc.backends import reference_c
from hhc.backends.cache import cache_root, file_lock
from hhc.backends.reference import build_rhs, compute_reference, initial_matrix, sample_experiment, sample_indices
from hhc.backends.results import ChunkedArray, Crossings, ill_conditioned, write_results
from hhc.compare import Tolerances, compare_trains, match_spikes
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import PROVISIONAL_DT
from hhc.compiler.version import __version__

DEFAULT_METHODS = ("euler", "exponential_euler", "rk2", "rk4")
DEFAULT_DTS_MS = (0.1, 0.05, 0.025, 0.01, 0.005)
DEFAULT_SAMPLE = 20
DEFAULT_DURATION = 1.0          # s: `hhc advise` cuts the protocol to this unless told otherwise
SCREEN_DURATION = 1.0           # s: "auto" screens candidates on this much of the protocol first
STAGES = {"euler": 1, "exponential_euler": 1, "rk2": 2, "heun": 2, "rk4": 4}
# the compiled reference at rtol 1e-10 and 1e-11 must agree this well on every spike (s): a
# hundredth of the default first-spike tolerance, so its own error cannot decide a verdict
REFERENCE_AGREEMENT = 1e-6
SCIPY_PREFIX = 0.5              # s of the protocol on which the compiled reference is checked against SciPy
SCIPY_NEURONS = 3               # distinct sampled neurons checked against SciPy


@dataclass(frozen=True)
class AdviseTolerance:
    """What "auto" must meet against the reference on every sampled neuron, over the whole run.

    count 0: the same number of spikes (ill-conditioned crossings aside); first_spike 0.1 ms;
    spike_time 0.5 ms: every matched spike, to the end of the run. The researcher's rk4 @ 0.01 ms
    stays within 0.01 ms on 50 s of tonic firing, so it meets this with 50x to spare; a setting
    whose phase error grows with every spike fails it long before it loses a spike."""
    count: int = 0               # spike count difference allowed on every sampled neuron
    first_spike: float = 0.1e-3  # s
    spike_time: float | None = 0.5e-3   # s: every matched spike's error (None: not bounded)
    crossing_margin: float = 0.5e-3     # V: crossings whose peak is this close to the threshold are not judged

    def as_compare(self, window: float = 2e-3) -> Tolerances:
        spike_time = float("inf") if self.spike_time is None else self.spike_time
        return Tolerances(count=self.count, first_spike=self.first_spike, spike_time=spike_time, window=window,
                          marginal_count=self.count, marginal_first_spike=self.first_spike,
                          marginal_spike_time=spike_time, crossing_margin=self.crossing_margin)

    def describe(self) -> str:
        return (f"count ±{self.count}, first spike ≤ {self.first_spike * 1e3:g} ms"
                + (f", every spike ≤ {self.spike_time * 1e3:g} ms" if self.spike_time is not None else "")
                + f"; crossings within {self.crossing_margin * 1e3:g} mV of the threshold not judged")

    @classmethod
    def of(cls, experiment) -> "AdviseTolerance":
        """The experiment's [simulation] tolerance over the defaults."""
        tol = experiment.tolerance
        d = cls()
        return cls(count=tol.get("count", d.count), first_spike=tol.get("first_spike", d.first_spike),
                   spike_time=tol.get("spike_time", d.spike_time))


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
    ill_conditioned: int = 0                  # spikes near ill-conditioned crossings, not judged
    unmatched: int = 0                        # spikes with no partner within the matching window
    duration: float = 0.0                     # s of the protocol it was judged on
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
           tolerance=AdviseTolerance(), out=None, measure_cost=True, say=print):
    """Run the grid on `full`, a resolved experiment (hhc.api.prepare with choose_auto=False) of `cell`;
    returns (trials sorted by cost, recommended trial or None, info dict)."""
    backend = backend or full.backend.name
    device = device or backends.backend_class(backend).capabilities.advise_device or full.backend.device
    exp = full.cut_to(duration) if duration else full
    neurons = sample_neurons(exp, cell, sample)
    say(f"sample: {len(neurons)} of {exp.size:,} neurons, first {exp.duration:g} s of {full.duration:g} s; "
        f"backend {backend}/{device}")
    reference = sample_reference(exp, cell, neurons, tolerance, say)
    reps = np.array(sorted(set(reference.representative.values())), dtype=np.int64)

    costs, probe_n = ({}, 0)
    if measure_cost:
        costs, probe_n = measure_step_costs(cell, full, methods, backend, device)
        say("cost per neuron-step (µs, measured on " + f"{probe_n} neurons): " +
            ", ".join(f"{m} {c * 1e6:.3g}" if c else f"{m} -" for m, c in costs.items()))

    sample_exp, _ = sample_experiment(exp, reps)
    sample_exp = dataclasses.replace(sample_exp, traces=())
    trials = []
    for method in methods:
        for dt in sorted(dts, reverse=True):
            trial = run_trial(cell, sample_exp, reps, reference, method, dt, tolerance, backend, device)
            trials.append(_cost(trial, costs))
            say(f"  {trial.label:28s} {_verdict(trial)}")
    trials.sort(key=lambda t: (t.cost, t.method))
    passing = [t for t in trials if t.ok]
    best = passing[0] if passing else None
    current_method = full.method if full.method != "auto" else (
        backends.backend_class(backend).capabilities.default_method or "rk4")
    current = next((t for t in trials if t.method == current_method and abs(t.dt - full.dt) < 1e-12), None)
    info = {"sample_neurons": neurons.tolist(), "distinct_neurons": reps.tolist(), "duration": exp.duration,
            "full_duration": full.duration, "n_neurons": full.size, "backend": backend, "device": device,
            "reference": reference.summary(), "step_costs_s": costs, "probe_neurons": probe_n,
            "tolerance": dataclasses.asdict(tolerance), "current": {"method": current_method, "dt": full.dt},
            "full_steps": full.duration, "cost_basis": "measured" if any(costs.values()) else "stages"}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        reference.write(out / "reference", exp)
        rows = [dataclasses.asdict(t) for t in trials]
        (out / "advise.json").write_text(json.dumps({"trials": rows, "recommended": best and best.label,
                                                     "info": info}, indent=2, default=str) + "\n")
        (out / "advise.md").write_text(markdown(trials, best, info) + "\n")
    info["current_trial"] = current
    return trials, best, info


def run_trial(cell, sample_exp, neurons, reference: "SampleReference", method, dt, tolerance: AdviseTolerance,
              backend, device) -> Trial:
    """Run the sample at one method x dt and judge it against the reference, neuron by neuron, to
    the end of sample_exp's protocol: counts, first spike, every matched spike, and no spike left
    unmatched (a train that drifts by more than the matching window would otherwise look matched
    in number). Crossings the reference marks ill-conditioned are not judged."""
    trial = Trial(method, dt, ok=False)
    tol = tolerance.as_compare()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = _run_backend(cell, dataclasses.replace(sample_exp, method=method).with_dt(dt), backend, device, tmp)
            # read before the folder goes: a compiled run streams its spikes from segment files there
            spike_i, spike_t = _array(run.spike_i, np.int64), _array(run.spike_t, np.float64)
    except HHCError as exc:
        trial.error = str(exc).splitlines()[0][:80]
        return trial
    trial.sample_wall_s = float(run.meta.get("wall_time_s", 0.0))
    trial.duration = sample_exp.duration
    trains = _trains(neurons[spike_i], spike_t, neurons)
    t_end = sample_exp.duration
    per = [compare_trains(int(n), reference.train(n, t_end), b, t_end, tol, ignore=reference.ignore(n))
           for n, b in zip(neurons, trains)]
    trial.spikes = int(sum(c.count_b for c in per))
    trial.ill_conditioned = int(sum(c.ill_conditioned for c in per))
    edge = t_end - tol.window        # a spike this close to the end may have its partner after it
    unmatched = [_max_matched_diff(reference.train(n, t_end), b[b <= t_end], tol.window, reference.ignore(n), edge)[1]
                 for n, b in zip(neurons, trains)]
    bad = [c.neuron for c, u in zip(per, unmatched) if abs(c.count_diff) > tolerance.count or u > 2 * tolerance.count]
    trial.unmatched = int(sum(unmatched))
    trial.count_mismatches = len(bad)
    trial.mismatched_neurons = tuple(bad)
    firsts = [abs(c.first_diff) for c in per if c.first_diff is not None]
    silent_mismatch = any((c.count_a == 0) != (c.count_b == 0) and not c.ill_conditioned for c in per)
    trial.first_spike_error = max(firsts) if firsts else None
    diffs = [c.max_abs_diff for c in per if len(c.matched_diffs)]
    trial.spike_time_error = max(diffs) if diffs else None
    trial.ok = (not bad and not silent_mismatch and
                (trial.first_spike_error is None or trial.first_spike_error <= tolerance.first_spike) and
                (tolerance.spike_time is None or trial.spike_time_error is None or
                 trial.spike_time_error <= tolerance.spike_time))
    return trial


# ---- the sample and its reference --------------------------------------------------------------


def _input_columns(exp, cell) -> np.ndarray:
    """(size, n_phases, n_inputs): every neuron's input in every phase (SI)."""
    cols = []
    for phase in exp.protocol:
        per = [np.broadcast_to(np.asarray(phase.inputs.get(i.name, 0.0), dtype=float), (exp.size,))
               for i in cell.inputs]
        cols.append(np.stack(per, axis=1) if per else np.zeros((exp.size, 0)))
    return np.stack(cols, axis=1)


def sample_neurons(exp, cell, k: int) -> np.ndarray:
    """k neurons that see the population's spread: for every initial value or input that differs
    between neurons, the neurons at its minimum, maximum and quartiles; the rest evenly spaced
    (first and last included). Sorted original indices."""
    n = exp.size
    k = max(1, min(int(k), n))
    picked: list[int] = []
    quantities = [np.asarray(v, dtype=float) for v in exp.initial_arrays.values()
                  if v is not None and np.ndim(v) and len(v) == n]
    inputs = _input_columns(exp, cell).reshape(n, -1)
    quantities += [inputs[:, j] for j in range(inputs.shape[1])]
    for q in quantities:
        if np.ptp(q) == 0:
            continue
        order = np.argsort(q, kind="stable")
        for f in (0.0, 1.0, 0.5, 0.25, 0.75):
            idx = int(order[int(round(f * (n - 1)))])
            if idx not in picked:
                picked.append(idx)
    spread = [int(i) for i in sample_indices(n, k)]
    for i in spread:
        if len(picked) >= k:
            break
        if i not in picked:
            picked.append(i)
    return np.array(sorted(picked[:max(k, 1)]), dtype=np.int64)


def distinct_neurons(exp, cell, neurons, rhs=None) -> tuple[np.ndarray, dict]:
    """The neurons among `neurons` with distinct (initial state, inputs), and {neuron: its
    representative}: identical neurons follow identical trajectories, so one of each is simulated.
    rhs: the cell's build_rhs, when the caller has it already (it takes a SymPy lambdify)."""
    rhs = rhs or build_rhs(cell, jacobian=False)
    y0 = initial_matrix(exp, rhs)
    inputs = _input_columns(exp, cell)
    seen: dict = {}
    rep = {}
    for n in np.asarray(neurons, dtype=np.int64):
        key = (tuple(np.round(y0[n], 15)), tuple(np.round(inputs[n].ravel(), 18)))
        rep[int(n)] = seen.setdefault(key, int(n))
    return np.array(sorted(set(rep.values())), dtype=np.int64), rep


@dataclass
class SampleReference:
    """The reference for the sample over the whole protocol, and how it was checked."""
    neurons: np.ndarray                   # sampled neurons (original indices)
    representative: dict                  # neuron -> the neuron whose trajectory it shares
    trains: dict                          # representative -> spike times
    ill: dict                             # representative -> times of ill-conditioned crossings
    ill_list: list                        # (neuron, time s, distance of the peak from threshold V)
    agreement_s: float | None             # max |spike time| difference, rtol 1e-10 vs 1e-11
    scipy_prefix_s: float | None          # max |spike time| difference with SciPy on the prefix
    scipy_prefix: float                   # s
    wall_s: float
    steps: int = 0
    solution: object = None               # reference_c.CompiledSolution of the representatives

    def train(self, n, t_end=None):
        t = self.trains[self.representative[int(n)]]
        return t if t_end is None else t[t <= t_end]

    def ignore(self, n):
        return self.ill[self.representative[int(n)]]

    def write(self, out_dir, exp, meta=None):
        """The reference of every sampled neuron as an hhc result folder (with its crossings)."""
        sol = self.solution
        row = {int(r): k for k, r in enumerate(sol.neurons)}
        spike_i, spike_t, over, near_i, near_t, near_p = [], [], [], [], [], []
        for n in self.neurons:
            k = row[self.representative[int(n)]]
            spike_i.append(np.full(len(sol.trains[k]), int(n), np.int64))
            spike_t.append(sol.trains[k])
            over.append(sol.overshoots[k])
            near_i.append(np.full(len(sol.near[k][0]), int(n), np.int64))
            near_t.append(sol.near[k][0])
            near_p.append(sol.near[k][1])
        crossings = Crossings(sol.threshold, np.concatenate(over), np.concatenate(near_i), np.concatenate(near_t),
                              np.concatenate(near_p))
        return write_results(out_dir, spike_i=np.concatenate(spike_i), spike_t=np.concatenate(spike_t), traces=[],
                             crossings=crossings,
                             meta={**self.summary(), "backend": "reference", "device": "compiled", "dt": None,
                                   "method": "dormand-prince-5(4)", "n_neurons": exp.size, "duration": exp.duration,
                                   "spike_neurons": [int(n) for n in self.neurons],
                                   "protocol": [dataclasses.asdict(p) for p in exp.protocol], **(meta or {})})

    def summary(self) -> dict:
        return {"reference": "compiled Dormand-Prince 5(4), rtol 1e-11 (backends/reference_c.py)",
                "agreement_with_rtol_1e-10_s": self.agreement_s, "scipy_dop853_prefix_s": self.scipy_prefix,
                "scipy_dop853_agreement_s": self.scipy_prefix_s, "reference_wall_s": self.wall_s,
                "ill_conditioned": [{"neuron": int(n), "t": float(t), "distance_mV": float(d) * 1e3}
                                    for n, t, d in self.ill_list]}


def _max_matched_diff(a, b, window=2e-3, ignore=np.zeros(0), edge=np.inf):
    """(max |difference| of matched spikes, unmatched spikes not near an ignored time and before
    `edge`: a spike just before the end may have its partner just after it)."""
    ia, ib = match_spikes(a, b, window)
    diffs = np.abs(b[ib] - a[ia])
    left = np.concatenate([np.delete(a, ia), np.delete(b, ib)])
    left = left[left < edge]
    if len(ignore):
        left = left[np.min(np.abs(left[:, None] - ignore[None, :]), axis=1) > window] if len(left) else left
    return (float(diffs.max()) if len(diffs) else 0.0), len(left)


def sample_reference(exp, cell, neurons, tolerance: AdviseTolerance, say=print) -> SampleReference:
    """The compiled reference of the sampled neurons over the whole protocol, checked twice: rtol
    1e-10 against 1e-11 (every spike within REFERENCE_AGREEMENT) and 1e-11 against SciPy DOP853 on
    the first SCIPY_PREFIX of the protocol."""
    started = time.perf_counter()
    rhs = build_rhs(cell, jacobian=False)
    reps, representative = distinct_neurons(exp, cell, neurons, rhs)
    y0 = initial_matrix(exp, rhs)[reps]
    inputs = _input_columns(exp, cell)[reps]
    durations = [p.duration for p in exp.protocol]
    loose = reference_c.solve(cell, y0, durations, inputs, reps, rtol=1e-10)
    tight = reference_c.solve(cell, y0, durations, inputs, reps, rtol=1e-11)
    spike_i, spike_t, crossings = tight.spikes()
    ill_i, ill_t, ill_d = ill_conditioned(spike_i, spike_t, crossings, tolerance.crossing_margin)
    ill = {int(r): np.sort(ill_t[ill_i == r]) for r in reps}
    trains = {int(r): np.sort(t) for r, t in zip(reps, tight.trains)}
    worst, unmatched = 0.0, 0
    for r, t_loose in zip(reps, loose.trains):
        d, u = _max_matched_diff(trains[int(r)], np.sort(t_loose), ignore=ill[int(r)])
        worst, unmatched = max(worst, d), unmatched + u
    if unmatched or worst > REFERENCE_AGREEMENT:
        raise HHCError(f"the compiled reference did not converge on the sample: rtol 1e-10 and 1e-11 differ by "
                       f"{worst * 1e3:.3g} ms at worst and {unmatched} unmatched spikes (limit "
                       f"{REFERENCE_AGREEMENT * 1e3:g} ms)", hint="set method and dt yourself")
    # SciPy on a prefix, on the first, last and middle distinct neurons
    prefix = min(SCIPY_PREFIX, exp.duration)
    picks = reps[np.unique(np.round(np.linspace(0, len(reps) - 1, min(SCIPY_NEURONS, len(reps)))).astype(int))]
    scipy = compute_reference(exp.cut_to(prefix), cell, picks, variables=())
    scipy_worst = 0.0
    for r in picks:
        a = trains[int(r)][trains[int(r)] < prefix - 2e-3]
        b = np.sort(scipy["spike_t"][scipy["spike_i"] == r])
        b = b[b < prefix - 2e-3]
        d, u = _max_matched_diff(a, b, ignore=ill[int(r)])
        if u:
            raise HHCError(f"the compiled reference and SciPy's DOP853 disagree on neuron {int(r)} in the first "
                           f"{prefix:g} s ({len(a)} vs {len(b)} spikes)", hint="set method and dt yourself")
        scipy_worst = max(scipy_worst, d)
    if scipy_worst > 10 * REFERENCE_AGREEMENT:
        raise HHCError(f"the compiled reference and SciPy's DOP853 differ by {scipy_worst * 1e3:.3g} ms in the first "
                       f"{prefix:g} s", hint="set method and dt yourself")
    ill_list = [(int(n), float(t), float(d)) for n, t, d in zip(ill_i, ill_t, ill_d)]
    wall = time.perf_counter() - started
    say(f"reference: compiled Dormand–Prince 5(4) on {len(reps)} distinct of {len(neurons)} sampled neurons over "
        f"{exp.duration:g} s: {sum(len(t) for t in trains.values())} spikes; rtol 1e-10 vs 1e-11 within "
        f"{worst * 1e3:.2g} ms, SciPy DOP853 on the first {prefix:g} s within {scipy_worst * 1e3:.2g} ms; "
        f"{len(ill_list)} ill-conditioned crossing(s); {wall:.1f} s")
    return SampleReference(np.asarray(neurons), representative, trains, ill, ill_list, worst, scipy_worst, prefix,
                           wall, tight.steps, tight)


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


def _auto_key(exp, cell, candidates, tolerance, backend, device, sample) -> str:
    sources = {str(s): Path(s).read_text() for s in cell.sources if Path(s).is_file()}
    blob = {"hhc": __version__, "cell": cell.name, "sources": sources, "candidates": candidates,
            "tolerance": dataclasses.asdict(tolerance), "backend": backend, "device": device, "sample": sample,
            "protocol": [(p.duration, sorted((k, np.asarray(v).tolist()) for k, v in p.inputs.items()))
                         for p in exp.protocol],
            "initial": exp.initial, "size": exp.size, "seed": exp.seed, "precision": exp.precision}
    return hashlib.sha1(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def choose(exp, cell, backend, device, *, sample=DEFAULT_SAMPLE, say=print):
    """Resolve method and/or dt = "auto" on a resolved experiment: the cheapest candidate whose
    sample meets the experiment's tolerance against the reference over the whole protocol (see the
    module's docstring), cached by model, protocol and tolerance. Never coarser than the tolerance:
    when nothing meets it, the run stops with the candidates' figures, nothing is used instead.
    `device` is where candidates are screened; the whole-protocol check runs where the backend says
    a sample of that many steps is cheapest (Backend.full_sample_device)."""
    tolerance = AdviseTolerance.of(exp)
    candidates = auto_candidates(exp)
    if not candidates:
        raise HHCError("dt = \"auto\" found no candidate dt that divides every trace interval "
                       f"(candidates {', '.join(f'{d * 1e3:g} ms' for d in AUTO_DTS)})",
                       hint="give the traces an interval that is a multiple of 0.1 ms, or set dt")
    key = _auto_key(exp, cell, candidates, tolerance, backend, device, sample)
    path = cache_root() / "advice" / f"{key}.json"
    with file_lock(path.with_suffix(".lock")):
        if path.exists():
            chosen = json.loads(path.read_text())
            say(f"auto: {chosen['method']} @ {chosen['dt'] * 1e3:g} ms (cached advice {path.name}: "
                f"{chosen['summary']})")
        else:
            chosen = _search(exp, cell, candidates, tolerance, backend, device, sample, say)
            tmp = path.with_suffix(".tmp")     # written whole, then moved: a kill leaves no half file
            tmp.write_text(json.dumps(chosen, indent=2) + "\n")
            tmp.replace(path)
    exp = dataclasses.replace(exp, method=chosen["method"]).with_dt(chosen["dt"])
    return exp, chosen


def _verdict(trial: Trial) -> str:
    if trial.error:
        return "failed: " + trial.error
    return (f"{'meets' if trial.ok else 'misses'} over {trial.duration:g} s (count mismatches "
            f"{trial.count_mismatches}, first spike {_ms(trial.first_spike_error)} ms, every spike "
            f"{_ms(trial.spike_time_error)} ms"
            + (f", {trial.unmatched} spikes unmatched within 2 ms" if trial.unmatched else "")
            + (f", {trial.ill_conditioned} ill-conditioned not judged"
                                                   if trial.ill_conditioned else "") + ")")


def _row(trial: Trial, stage: str) -> dict:
    return {"method": trial.method, "dt": trial.dt, "stage": stage, "duration": trial.duration, "ok": trial.ok,
            "error": trial.error, "count_mismatches": trial.count_mismatches,
            "mismatched_neurons": list(trial.mismatched_neurons), "first_spike_error": trial.first_spike_error,
            "spike_time_error": trial.spike_time_error, "unmatched": trial.unmatched,
            "ill_conditioned": trial.ill_conditioned,
            "sample_wall_s": trial.sample_wall_s}


def _search(exp, cell, candidates, tolerance, backend, device, sample, say):
    started = time.perf_counter()
    base = exp.with_dt(PROVISIONAL_DT) if exp.dt_auto else exp    # each trial sets its own dt
    neurons = sample_neurons(base, cell, sample)
    what = " and ".join(w for w, on in (("method", exp.method == "auto"), ("dt", exp.dt_auto)) if on)
    say(f"auto: choosing {what} on {len(neurons)} sampled neurons over the whole {base.duration:g} s against the "
        f"reference (tolerance: {tolerance.describe()})")
    reference = sample_reference(base, cell, neurons, tolerance, say)
    reps = np.array(sorted(set(reference.representative.values())), dtype=np.int64)
    sample_full, _ = sample_experiment(base, reps)
    sample_full = dataclasses.replace(sample_full, traces=())
    screen = min(SCREEN_DURATION, base.duration)
    sample_short = sample_full.cut_to(screen)
    tried = []
    for method, dt in candidates:
        trial = run_trial(cell, sample_short, reps, reference, method, dt, tolerance, backend, device)
        say(f"  {trial.label:20s} {_verdict(trial)}")
        tried.append(_row(trial, f"first {screen:g} s on {backend}/{device}"))
        if not trial.ok:
            continue
        full_device = backends.backend_class(backend).full_sample_device(exp.backend.device, round(base.duration / dt))
        if base.duration > screen + 1e-12 or full_device != device:
            trial = run_trial(cell, sample_full, reps, reference, method, dt, tolerance, backend, full_device)
            say(f"  {trial.label:20s} {_verdict(trial)} [whole run on {backend}/{full_device}]")
            tried.append(_row(trial, f"whole run on {backend}/{full_device}"))
            if not trial.ok:
                continue
        wall = time.perf_counter() - started
        summary = (f"over the whole {base.duration:g} s on {len(neurons)} sampled neurons: count mismatches "
                   f"{trial.count_mismatches}, first spike within {_ms(trial.first_spike_error)} ms, every spike "
                   f"within {_ms(trial.spike_time_error)} ms"
                   + (f", {len(reference.ill_list)} ill-conditioned crossing(s) not judged" if reference.ill_list
                      else "") + f"; search {wall:.0f} s")
        say(f"auto: {trial.label}, {summary}")
        return {"method": method, "dt": dt, "summary": summary, "tolerance": dataclasses.asdict(tolerance),
                "sample_neurons": neurons.tolist(), "distinct_neurons": reps.tolist(),
                "sample_duration": base.duration, "count_mismatches": trial.count_mismatches,
                "first_spike_error": trial.first_spike_error, "spike_time_error": trial.spike_time_error,
                "ill_conditioned_crossings": len(reference.ill_list), "tried": tried,
                "reference": reference.summary(), "search_wall_s": wall}
    judged = [t for t in tried if not t["error"]]
    best = sorted(judged, key=lambda t: (t["count_mismatches"], t["spike_time_error"] or 0.0))[:3]
    raise HHCError("no candidate method x dt met the tolerance against the reference (" + tolerance.describe()
                   + "); closest: " + "; ".join(
                       f"{t['method']} @ {t['dt'] * 1e3:g} ms over {t['duration']:g} s: count mismatches "
                       f"{t['count_mismatches']}, first spike {_ms(t['first_spike_error'])} ms, every spike "
                       f"{_ms(t['spike_time_error'])} ms" for t in best),
                   hint="set method and dt yourself, or loosen [simulation] tolerance")


def _array(values, dtype):
    """A run's spike indices or times as one array (a compiled run streams them in pieces)."""
    if isinstance(values, ChunkedArray):
        return np.concatenate([np.asarray(p, dtype) for p in values.pieces()] or [np.zeros(0, dtype)])
    return np.asarray(values, dtype=dtype)


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
             f"{info['full_duration']:g} s; backend {info['backend']}/{info['device']}; reference: "
             f"{info['reference']['reference']}, checked against rtol 1e-10 and SciPy DOP853.",
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
