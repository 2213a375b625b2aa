"""Compare hhc results: spike counts, firing rates, matched spike times, first spikes and traces.

Two runs agree when, on the neurons both simulated and over the time both covered, every neuron
meets the tolerances below. Neurons near rheobase are *marginal*: their spike times are
ill-conditioned (a slow approach to threshold turns a tiny difference in the state into a large
difference in timing, or into one spike more or less), so they are reported in their own table and
judged with their own, looser, tolerances — never dropped. A disagreement in a marginal neuron
beyond those looser tolerances still fails the comparison.

A neuron is marginal when it spikes in at least one of the two runs and, in either run, it fires
at most ``marginal_max_spikes`` spikes, or its median inter-spike interval exceeds
``marginal_isi``, or its first spike comes more than ``marginal_latency`` after the start of the
protocol phase it falls in (a slow approach to threshold: the latency is the ill-conditioned
quantity).

Two more checks look at the pair as a whole, so that per-neuron allowances never add up to
agreement between different things:

* *same experiment*: the runs must simulate the same cell (and model text, where recorded), the same
  population size, the same protocol, initial values and duration. A difference is a disagreement,
  listed with what differs (``allow_different_experiments`` turns them into notes and compares what
  the runs have in common).
* *systematic marginal differences*: the marginal allowance of one spike more or less is for
  near-threshold noise, which goes either way. When the marginal neurons' count differences mostly
  go one way (a two-sided sign test, p < ``population_sign_p``) — say no neuron fires in A and every
  neuron fires once in B — the pair disagrees.

The count check counts unmatched spikes: a spike without a partner within ``window`` in the other
run, except in the last ``window`` of the common time span (its partner may fall just after the
end). Matched spikes are judged by their time difference instead.

*Ill-conditioned threshold crossings.* A run that records how far each spike's peak went above the
threshold and the peaks that came close below it (the SciPy reference: Crossings in its results)
shows which crossings no integrator can decide: a peak within ``crossing_margin`` of the threshold
is a spike in one run and none in another by rounding alone. Spikes of either run within ``window``
of such a crossing are listed and left out of the count, first-spike and spike-time judgement (they
stay in the results and in the spike counts shown).

*Networks.* When both runs are network runs (meta.json ``populations``), the pair also gets a
`NetworkComparison`: per population, the time at which the two runs first part spike-by-spike (the
first unmatched spike before the last window, or the first spike beyond the first-spike or spike-time
tolerance) and the population statistics of both runs (`hhc.network_stats`: rates and their
distribution, ISI CV, pairwise spike-count correlation, Golomb's synchrony χ) with a verdict for each.
Which comparison is judged: the same network (``network_digest``) and no divergence over the whole run:
spike-by-spike, as for any pair (the statistics reported); otherwise the population statistics — the
per-neuron differences and the marginal sign test are then reported, not judged, and traces are judged
up to the first divergence. Different networks are a difference of experiment (a disagreement unless
``allow_different_experiments``; then judged by the statistics only).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hhc.compiler import ir
from hhc.compiler.errors import HHCError
from hhc import network_stats, plot
from hhc.backends.results import Results, ill_conditioned, load_results


@dataclass(frozen=True)
class Tolerances:
    """Default tolerances of `hhc compare` (times in seconds, voltages in volts)."""
    count: int = 0                       # |spike count difference| per neuron
    first_spike: float = 0.1e-3          # |first-spike time difference|
    spike_time: float = 0.5e-3           # max |difference| of matched spike times per neuron
    window: float = 2e-3                 # spikes closer than this are matched
    marginal_count: int = 1
    marginal_first_spike: float = 0.5e-3
    marginal_spike_time: float = 0.5e-3
    marginal_max_spikes: int = 2
    marginal_isi: float = 0.1
    marginal_latency: float = 0.05
    trace_rms_v: float = 1e-3            # subthreshold RMS of the v difference per neuron (V)
    trace_rms_other: float = 0.02        # subthreshold RMS difference of dimensionless states (gates)
    trace_rms_concentration: float = 0.02   # of ion concentrations (cai ...), relative to their own RMS
    trace_spike_mask: float = 3e-3       # samples this close to a spike of either run are not judged
    population_sign_p: float = 0.01      # marginal count differences this one-sided (sign test) disagree
    crossing_margin: float = 0.5e-3      # a peak this close to the threshold (V) is an ill-conditioned crossing
    allow_different_experiments: bool = False   # different cells, populations, protocols: notes, not failures
    # networks (meta.json "populations"): population statistics, judged once spike-by-spike has diverged
    stats_bin: float = 10e-3             # spike-count bins of the correlation, synchrony and population rate (s)
    stats_pairs: int = 200               # pairs of neurons per population for the mean correlation
    stats_start: float | None = None     # statistics over [stats_start, stats_stop] (s); None: the whole run
    stats_stop: float | None = None
    rate_rel: float = 0.10               # mean rates within this fraction of their average ...
    rate_abs: float = 0.1                # ... or this many Hz (sparse populations)
    rate_ks_p: float = 0.01              # rate distributions differ when KS p < this ...
    rate_ks_statistic: float = 0.1       # ... and the KS statistic D > this (large populations: tiny shifts)
    cv_abs: float = 0.1                  # mean ISI CV within this
    correlation_abs: float = 0.05        # mean pairwise spike-count correlation within this
    synchrony_abs: float = 0.1           # Golomb's chi within this
    stats_sigmas: float = 3.0            # and a difference must exceed this many standard errors (sampling noise)

    def describe(self, networks: bool = True) -> list[tuple[str, str]]:
        """(check, tolerance) rows; networks=False leaves out the rows of network comparisons."""
        rows = [
            ("spike count difference per neuron", f"<= {self.count} (marginal: <= {self.marginal_count})"),
            ("first-spike time difference", f"<= {self.first_spike * 1e3:g} ms (marginal: <= "
                                            f"{self.marginal_first_spike * 1e3:g} ms)"),
            ("matched spike time difference, max per neuron", f"<= {self.spike_time * 1e3:g} ms (marginal: <= "
                                                              f"{self.marginal_spike_time * 1e3:g} ms)"),
            ("matching window", f"{self.window * 1e3:g} ms"),
            ("marginal (near rheobase)", f"fires in a run, and <= {self.marginal_max_spikes} spikes, median "
                                         f"ISI > {self.marginal_isi * 1e3:g} ms or first-spike latency > "
                                         f"{self.marginal_latency * 1e3:g} ms in either run"),
            ("trace RMS difference per neuron, subthreshold (samples more than "
             f"{self.trace_spike_mask * 1e3:g} ms from any spike of either run)",
             f"v <= {self.trace_rms_v * 1e3:g} mV; gates <= {self.trace_rms_other:g}; concentrations <= "
             f"{self.trace_rms_concentration:g} of their RMS; currents reported only; "
             f"the RMS over all samples is reported (spike-time shifts dominate it)"),
            ("marginal count differences, all neurons together", f"not one-sided (sign test p >= "
                                                                  f"{self.population_sign_p:g})"),
            ("threshold crossings", f"within {self.crossing_margin * 1e3:g} mV of the threshold (peak) are "
                                    f"ill-conditioned: listed, not judged (needs a run that records crossings: "
                                    f"the reference)"),
            ("experiment (cell, model, population, protocol, initial values, duration, network)",
             "noted only" if self.allow_different_experiments else "the same in both runs"),
        ]
        if not networks:
            return rows
        return rows + [
            ("networks: which comparison is judged",
             "spike-by-spike when no spike diverges over the whole run (statistics reported); else the population "
             "statistics below (the divergence reported; traces judged up to it)"),
            ("networks: statistics window and bins",
             f"{'whole run' if self.stats_start is None and self.stats_stop is None else _window_text(self)}; "
             f"{self.stats_bin * 1e3:g} ms bins; mean correlation over up to {self.stats_pairs} pairs"),
            ("networks: mean firing rate per population",
             f"within {self.rate_rel:.0%} of their average or {self.rate_abs:g} Hz, whichever is larger"),
            ("networks: firing-rate distribution (KS)",
             f"not (p < {self.rate_ks_p:g} and D > {self.rate_ks_statistic:g})"),
            ("networks: mean ISI CV (neurons with >= 3 spikes)", f"within {self.cv_abs:g}"),
            ("networks: mean pairwise spike-count correlation", f"within {self.correlation_abs:g}"),
            ("networks: synchrony (Golomb's chi)", f"within {self.synchrony_abs:g}"),
            ("networks: sampling noise", f"a statistic disagrees only beyond its tolerance and {self.stats_sigmas:g} "
                                         f"standard errors of the difference (mean rate: over the bins of the population "
                                         f"rates; CV and correlation: over the neurons / pairs; paired when the "
                                         f"networks are the same; chi: none)"),
        ]


def _window_text(tol: Tolerances) -> str:
    start = 0.0 if tol.stats_start is None else tol.stats_start
    stop = "end" if tol.stats_stop is None else f"{tol.stats_stop * 1e3:g} ms"
    return f"{start * 1e3:g} ms to {stop}"


# ---------------------------------------------------------------------------------------------
# Spike-train metrics (plain numpy; tested on constructed trains)


def match_spikes(a: np.ndarray, b: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (ia, ib) of spikes of a and b that are each other's nearest neighbour and closer
    than window. a and b are sorted spike times."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    nb = _nearest(b, a)          # for each a, nearest b
    na = _nearest(a, b)          # for each b, nearest a
    ia = np.arange(len(a))
    mutual = na[nb] == ia
    close = np.abs(b[nb] - a) <= window
    keep = mutual & close
    return ia[keep], nb[keep]


def _nearest(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    j = np.searchsorted(sorted_values, queries)
    j = np.clip(j, 1, len(sorted_values) - 1) if len(sorted_values) > 1 else np.zeros(len(queries), int)
    if len(sorted_values) == 1:
        return j
    left = sorted_values[j - 1]
    right = sorted_values[j]
    return np.where(np.abs(queries - left) <= np.abs(right - queries), j - 1, j)


def is_marginal(a: np.ndarray, b: np.ndarray, tol: Tolerances, phase_starts=None) -> bool:
    """Near rheobase: fires in one run, and few spikes, long ISIs or a long latency in either run."""
    if len(a) == 0 and len(b) == 0:
        return False
    for train in (a, b):
        if len(train) <= tol.marginal_max_spikes:
            return True
        if np.median(np.diff(train)) > tol.marginal_isi:
            return True
        if phase_starts:      # known protocol (meta.json): latency from the start of the phase
            starts = np.asarray(phase_starts, float)
            onset = starts[max(np.searchsorted(starts, train[0], side="right") - 1, 0)]
            if train[0] - onset > tol.marginal_latency:
                return True
    return False


@dataclass
class NeuronComparison:
    neuron: int
    count_a: int
    count_b: int
    count_diff: int                      # b - a, edge spikes excluded
    first_diff: float | None             # b - a (s)
    matched_diffs: np.ndarray            # b - a of matched spikes (s)
    unmatched_a: int
    unmatched_b: int
    marginal: bool
    failures: list[str] = field(default_factory=list)
    ill_conditioned: int = 0             # spikes (of A and B) left out of judgement: near an ill-conditioned crossing
    # the first spike at which the trains part (an unmatched spike before the last window, or a spike
    # beyond the neuron's first-spike / spike-time tolerance), and what happened there; None: never
    diverged_at: float | None = None
    divergence: str = ""

    @property
    def max_abs_diff(self) -> float:
        return float(np.max(np.abs(self.matched_diffs))) if len(self.matched_diffs) else 0.0


def _near_any(times: np.ndarray, events: np.ndarray, window: float) -> np.ndarray:
    """Which of the sorted `times` lie within `window` of one of the sorted `events`."""
    if not len(events) or not len(times):
        return np.zeros(len(times), bool)
    j = _nearest(events, times)
    return np.abs(events[j] - times) <= window


def compare_trains(neuron: int, a: np.ndarray, b: np.ndarray, t_end: float, tol: Tolerances,
                   phase_starts=None, ignore=None) -> NeuronComparison:
    """One neuron's trains. ignore: times (s) of ill-conditioned threshold crossings of this neuron;
    spikes of either train within tol.window of one are counted but not judged."""
    a = np.sort(np.asarray(a, float))
    b = np.sort(np.asarray(b, float))
    a = a[a <= t_end]
    b = b[b <= t_end]
    count_a, count_b = len(a), len(b)
    marginal = is_marginal(a, b, tol, phase_starts)
    left_out = 0
    if ignore is not None and len(ignore):
        events = np.sort(np.asarray(ignore, float))
        out_a, out_b = _near_any(a, events, tol.window), _near_any(b, events, tol.window)
        left_out = int(out_a.sum() + out_b.sum())
        a, b = a[~out_a], b[~out_b]
    ia, ib = match_spikes(a, b, tol.window)
    diffs = b[ib] - a[ia]
    # an unmatched spike within the window before the end may have its partner just after the end
    edge = t_end - tol.window
    only_a = np.setdiff1d(np.arange(len(a)), ia)
    only_b = np.setdiff1d(np.arange(len(b)), ib)
    count_diff = int(np.sum(b[only_b] < edge)) - int(np.sum(a[only_a] < edge))
    first = float(b[0] - a[0]) if len(a) and len(b) else None
    c = NeuronComparison(neuron, count_a, count_b, count_diff, first, diffs, len(a) - len(ia), len(b) - len(ib),
                         marginal, ill_conditioned=left_out)
    max_count = tol.marginal_count if marginal else tol.count
    max_first = tol.marginal_first_spike if marginal else tol.first_spike
    max_time = tol.marginal_spike_time if marginal else tol.spike_time
    if abs(count_diff) > max_count:
        c.failures.append(f"spike count {count_a} vs {count_b}" +
                          (f" ({left_out} near ill-conditioned crossings not judged)" if left_out else ""))
    if first is not None and abs(first) > max_first and min(a[0], b[0]) < edge:
        c.failures.append(f"first spike {a[0] * 1e3:.4f} vs {b[0] * 1e3:.4f} ms (diff {first * 1e3:+.4f} ms)")
    if len(diffs) and c.max_abs_diff > max_time:
        k = int(np.argmax(np.abs(diffs)))
        c.failures.append(f"spike at {a[ia][k] * 1e3:.4f} ms moved by {diffs[k] * 1e3:+.4f} ms")
    c.diverged_at, c.divergence = _divergence(a, b, ia, ib, only_a, only_b, edge, max_first, max_time)
    return c


def _divergence(a, b, ia, ib, only_a, only_b, edge, max_first, max_time) -> tuple[float | None, str]:
    """The earliest spike at which two trains part: an unmatched spike before `edge`, a first spike
    beyond max_first, or a matched spike beyond max_time. (time s, what happened) or (None, "")."""
    events = []
    late_a, late_b = a[only_a][a[only_a] < edge], b[only_b][b[only_b] < edge]
    if len(late_a):
        events.append((float(late_a[0]), f"spike at {late_a[0] * 1e3:.4f} ms only in A"))
    if len(late_b):
        events.append((float(late_b[0]), f"spike at {late_b[0] * 1e3:.4f} ms only in B"))
    if len(a) and len(b) and abs(b[0] - a[0]) > max_first and min(a[0], b[0]) < edge:
        events.append((float(min(a[0], b[0])), f"first spike {a[0] * 1e3:.4f} vs {b[0] * 1e3:.4f} ms"))
    moved = np.flatnonzero(np.abs(b[ib] - a[ia]) > max_time)
    if len(moved):
        k = moved[0]
        events.append((float(min(a[ia][k], b[ib][k])),
                       f"spike at {a[ia][k] * 1e3:.4f} ms moved by {(b[ib][k] - a[ia][k]) * 1e3:+.4f} ms"))
    return min(events, key=lambda e: e[0]) if events else (None, "")


# ---------------------------------------------------------------------------------------------
# Runs


@dataclass
class TraceComparison:
    variable: str
    neurons: np.ndarray
    rms: np.ndarray                      # per neuron, all samples
    max: np.ndarray
    sub_rms: np.ndarray                  # per neuron, samples away from spikes (judged)
    n_samples: int
    limit: float | None                  # RMS tolerance, None = reported only
    t: np.ndarray = field(repr=False, default=None)
    a: np.ndarray = field(repr=False, default=None)
    b: np.ndarray = field(repr=False, default=None)

    @property
    def failing(self) -> list[int]:
        if self.limit is None:
            return []
        return [int(n) for n, r in zip(self.neurons, self.sub_rms) if not r <= self.limit]


def is_concentration(variable: str) -> bool:
    """An ion pool's state: cai, nai, ... (the names the .chan language gives them)."""
    return variable in {f"{ion}i" for ion in ir.ION_VALENCE}


def compare_traces(ra: Results, rb: Results, tol: Tolerances, t_end: float, spikes=None) -> list[TraceComparison]:
    """Every variable recorded for the same neurons at the same times in both runs."""
    out = []
    seen = set()
    for ga in ra.traces:
        for gb in rb.traces:
            common_vars = [v for v in ga.variables if v in gb.variables and v not in seen]
            if not common_vars:
                continue
            neurons, ja, jb = np.intersect1d(ga.neurons, gb.neurons, return_indices=True)
            if not len(neurons):
                continue
            ka = np.round(ga.t / 1e-9).astype(np.int64)   # the same sample times, to a nanosecond
            kb = np.round(gb.t / 1e-9).astype(np.int64)
            _, ta, tb = np.intersect1d(ka, kb, return_indices=True)
            keep = ga.t[ta] <= t_end + 1e-12
            ta, tb = ta[keep], tb[keep]
            if len(ta) < 2:
                continue
            for var in common_vars:
                xa = ga.variables[var][np.ix_(ta, ja)]
                xb = gb.variables[var][np.ix_(tb, jb)]
                d = xb - xa
                if is_concentration(var):   # 1e-4 mM is a lot of calcium: judged relative to its size
                    with np.errstate(all="ignore"):
                        d = d / np.sqrt(np.nanmean(xa ** 2, axis=0))
                rms = np.sqrt(np.nanmean(d ** 2, axis=0))
                mx = np.nanmax(np.abs(d), axis=0)
                sub = np.empty(len(neurons))
                t = ga.t[ta]
                for k, n in enumerate(neurons):
                    near = np.zeros(len(t), bool)
                    for s in (spikes or {}).get(int(n), ()):
                        lo, hi = np.searchsorted(t, [s - tol.trace_spike_mask, s + tol.trace_spike_mask])
                        near[lo:hi] = True
                    sub[k] = np.sqrt(np.nanmean(d[~near, k] ** 2)) if (~near).any() else 0.0
                limit = (tol.trace_rms_v if var == "v" else tol.trace_rms_concentration if is_concentration(var)
                         else None if var.startswith("I_") or var in ("Iapp",) else tol.trace_rms_other)
                out.append(TraceComparison(var, neurons, rms, mx, sub, len(ta), limit, ga.t[ta], xa, xb))
                seen.add(var)
    return out


@dataclass
class PairComparison:
    label_a: str
    label_b: str
    path_a: str
    path_b: str
    neurons: np.ndarray
    t_end: float
    per_neuron: list[NeuronComparison]
    traces: list[TraceComparison]
    rates_a: np.ndarray
    rates_b: np.ndarray
    tol: Tolerances
    notes: list[str] = field(default_factory=list)
    vp_distance: dict | None = None
    population_failures: list[str] = field(default_factory=list)   # judged on the pair as a whole
    # ill-conditioned threshold crossings (neuron, time s, peak - threshold V), listed and not judged;
    # None when neither run records crossings
    ill_conditioned: list[tuple[int, float, float]] | None = None
    network: "NetworkComparison | None" = None   # both runs are networks (meta.json populations)

    @property
    def spikes_judged(self) -> bool:
        """Whether the neuron-by-neuron spike comparison is judged (always, except for networks judged by
        their population statistics)."""
        return self.network is None or self.network.judged == SPIKE_BY_SPIKE

    @property
    def ill_conditioned_spikes(self) -> int:
        """Spikes of A and B left out of judgement near an ill-conditioned crossing."""
        return sum(c.ill_conditioned for c in self.per_neuron)

    @property
    def regular(self):
        return [c for c in self.per_neuron if not c.marginal]

    @property
    def marginal(self):
        return [c for c in self.per_neuron if c.marginal]

    @property
    def failing(self) -> list[NeuronComparison]:
        return [c for c in self.per_neuron if c.failures]

    @property
    def failing_trace_neurons(self) -> dict[str, list[int]]:
        return {tc.variable: tc.failing for tc in self.traces if tc.failing}

    @property
    def agree(self) -> bool:
        return ((not self.failing or not self.spikes_judged) and not self.failing_trace_neurons
                and not self.population_failures and bool(len(self.neurons)))

    def all_diffs(self, marginal: bool | None = None) -> np.ndarray:
        chosen = [c for c in self.per_neuron if marginal is None or c.marginal == marginal]
        return np.concatenate([c.matched_diffs for c in chosen]) if chosen else np.zeros(0)

    def first_diffs(self, marginal: bool | None = None) -> np.ndarray:
        return np.array([c.first_diff for c in self.per_neuron
                         if c.first_diff is not None and (marginal is None or c.marginal == marginal)])


# ---------------------------------------------------------------------------------------------
# Networks: spike-by-spike while it holds, population statistics once chaos has taken over


SPIKE_BY_SPIKE = "spike-by-spike"
STATISTICS = "population statistics"


@dataclass
class StatCheck:
    """One statistic of one population in both runs."""
    statistic: str
    a: str
    b: str
    difference: str
    tolerance: str
    judged: bool = True                  # False: too little data (said in `note`)
    ok: bool = True
    note: str = ""


@dataclass
class PopulationComparison:
    name: str
    offset: int
    size: int
    stats_a: network_stats.PopulationStats | None
    stats_b: network_stats.PopulationStats | None
    checks: list[StatCheck] = field(default_factory=list)
    diverged_at: float | None = None     # first divergence of any of its neurons (s); None: none (or not compared)
    divergence: str = ""                 # which neuron and what happened
    neurons_diverged: int = 0            # neurons whose trains part somewhere
    spike_compared: bool = True          # False: the networks differ, no neuron is the same neuron in both

    @property
    def failures(self) -> list[str]:
        return [f"population {self.name}: {c.statistic} {c.a} vs {c.b} ({c.difference}; allowed {c.tolerance})"
                for c in self.checks if c.judged and not c.ok]

    @property
    def statistics_agree(self) -> bool:
        return not self.failures


@dataclass
class NetworkComparison:
    populations: list[PopulationComparison]
    digest_a: str | None
    digest_b: str | None
    same_network: bool                   # the same digest and populations: neurons are the same neurons
    judged: str                          # SPIKE_BY_SPIKE or STATISTICS
    reason: str                          # why that one
    window: tuple[float, float]

    @property
    def first_divergence(self) -> PopulationComparison | None:
        diverged = [p for p in self.populations if p.diverged_at is not None]
        return min(diverged, key=lambda p: p.diverged_at) if diverged else None

    @property
    def diverged_at(self) -> float | None:
        first = self.first_divergence
        return None if first is None else first.diverged_at

    @property
    def failures(self) -> list[str]:
        return [f for p in self.populations for f in p.failures]

    def judged_text(self) -> str:
        """One line: which comparison was judged, and why."""
        return self.reason


def is_network(r: Results) -> bool:
    return isinstance(r.meta.get("populations"), dict) and bool(r.meta["populations"])


def network_differences(ra: Results, rb: Results) -> list[str]:
    """What differs between two runs' networks (meta.json populations, network_digest)."""
    if not is_network(ra) and not is_network(rb):
        return []
    if is_network(ra) != is_network(rb):
        which, other = ("A", ra) if is_network(ra) else ("B", rb)
        return [f"only {which} is a network run (populations {', '.join(other.meta['populations'])})"]
    out = []
    pa, pb = ra.meta["populations"], rb.meta["populations"]

    def layout(p):
        return ", ".join(f"{n} {v.get('size')} x {v.get('cell')}" for n, v in p.items())
    if layout(pa) != layout(pb) or any(pa[n].get("offset") != pb[n].get("offset") for n in pa if n in pb):
        out.append(f"different network populations: {layout(pa)} vs {layout(pb)}")
    da, db = ra.meta.get("network_digest"), rb.meta.get("network_digest")
    if da and db and da != db:
        out.append(f"different networks: network_digest {da} vs {db} (other connections, weights, delays or source "
                   f"spike trains: another seed or network); spike-by-spike comparison is meaningless, only the "
                   f"population statistics are compared")
    return out


def _standard_error(x_a: np.ndarray, x_b: np.ndarray, paired: np.ndarray | None) -> float:
    """Of mean(x_b) - mean(x_a): from the paired differences when given (the same neurons or pairs),
    else Welch's. inf when there are too few values to say."""
    d = paired[np.isfinite(paired)] if paired is not None else np.zeros(0)
    if len(d) >= 2:
        return float(np.std(d, ddof=1) / np.sqrt(len(d)))
    if len(x_a) < 2 or len(x_b) < 2:
        return float("inf")
    return float(np.sqrt(np.var(x_a, ddof=1) / len(x_a) + np.var(x_b, ddof=1) / len(x_b)))


def _within(diff: float, tolerance: float, se: float, tol: Tolerances) -> tuple[bool, float]:
    """A difference disagrees beyond its tolerance and beyond tol.stats_sigmas standard errors."""
    noise = tol.stats_sigmas * se
    allowed = max(tolerance, noise) if np.isfinite(noise) else float("inf")
    return bool(abs(diff) <= allowed), allowed


def _fmt(x, digits=3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _rate_error(sa: network_stats.PopulationStats, sb: network_stats.PopulationStats, paired: bool) -> float:
    """Standard error of the difference of two populations' mean rates, from their population rates
    over the bins: it holds the spike-count noise and, unlike a count of independent spikes, the
    co-fluctuation of synchronous neurons. Paired bin by bin when the network is the same (what both
    runs share, an onset transient, cancels). Fewer than 10 bins: the Poisson noise of the counts."""
    bins = len(sa.rate)
    if bins < 10 or len(sb.rate) != bins:
        def poisson(s):
            return np.sqrt(s.spikes) / (max(s.size, 1) * max(s.t_stop - s.t_start, 1e-12))
        return float(np.hypot(poisson(sa), poisson(sb)))
    if paired:
        return float(np.std(sb.rate - sa.rate, ddof=1) / np.sqrt(bins))
    return float(np.hypot(np.std(sa.rate, ddof=1), np.std(sb.rate, ddof=1)) / np.sqrt(bins))


def population_checks(sa: network_stats.PopulationStats, sb: network_stats.PopulationStats, tol: Tolerances,
                      paired: bool) -> list[StatCheck]:
    """The judged statistics of one population in two runs. paired: the same network, so neuron k
    (and pair k) is the same neuron (pair) in both runs."""
    from scipy.stats import ks_2samp
    checks = []
    ma, mb = sa.mean_rate, sb.mean_rate
    diff = mb - ma
    se = _rate_error(sa, sb, paired)
    limit = max(tol.rate_rel * (ma + mb) / 2, tol.rate_abs)
    ok, allowed = _within(diff, limit, se, tol)
    rel = f"{diff / ma:+.1%}" if ma > 0 else "from 0"
    checks.append(StatCheck("mean rate (Hz)", _fmt(ma, 4), _fmt(mb, 4), f"{diff:+.3g} Hz, {rel}",
                            f"{allowed:.3g} Hz (max of {tol.rate_rel:.0%}, {tol.rate_abs:g} Hz, "
                            f"{tol.stats_sigmas:g} SE = {tol.stats_sigmas * se:.2g} Hz)", ok=ok))
    if sa.size >= 2 and sb.size >= 2:
        ks = ks_2samp(sa.rates, sb.rates)
        ok = not (ks.pvalue < tol.rate_ks_p and ks.statistic > tol.rate_ks_statistic)
        checks.append(StatCheck("rate distribution (median / p95 Hz)",
                                f"{np.median(sa.rates):.3g} / {np.percentile(sa.rates, 95):.3g}",
                                f"{np.median(sb.rates):.3g} / {np.percentile(sb.rates, 95):.3g}",
                                f"KS D {ks.statistic:.3g}, p {ks.pvalue:.2g}",
                                f"not p < {tol.rate_ks_p:g} with D > {tol.rate_ks_statistic:g}", ok=ok))
    else:
        checks.append(StatCheck("rate distribution (median / p95 Hz)", "-", "-", "-", "-", judged=False,
                                note="one neuron"))
    ca, cb = sa.mean_cv, sb.mean_cv
    if len(sa.cv) >= 2 and len(sb.cv) >= 2:
        _, ja, jb = np.intersect1d(sa.cv_neurons, sb.cv_neurons, return_indices=True)
        se = _standard_error(sa.cv, sb.cv, sb.cv[jb] - sa.cv[ja] if paired else None)
        ok, allowed = _within(cb - ca, tol.cv_abs, se, tol)
        checks.append(StatCheck("mean ISI CV", _fmt(ca), _fmt(cb), f"{cb - ca:+.3g} ({len(sa.cv)} / {len(sb.cv)} neurons)",
                                f"{allowed:.3g}", ok=ok))
    else:
        checks.append(StatCheck("mean ISI CV", _fmt(ca), _fmt(cb), "-", f"{tol.cv_abs:g}", judged=False,
                                note="fewer than 2 neurons with >= 3 spikes"))
    ra_, rb_ = sa.pair_correlations, sb.pair_correlations
    both = np.isfinite(ra_) & np.isfinite(rb_) if len(ra_) == len(rb_) else None
    xa, xb = ra_[np.isfinite(ra_)], rb_[np.isfinite(rb_)]
    if len(xa) >= 5 and len(xb) >= 5:
        ka, kb = float(np.mean(xa)), float(np.mean(xb))
        same_pairs = both is not None and np.array_equal(sa.pairs, sb.pairs)
        se = _standard_error(xa, xb, (rb_ - ra_)[both] if paired and same_pairs else None)
        ok, allowed = _within(kb - ka, tol.correlation_abs, se, tol)
        checks.append(StatCheck("mean pairwise correlation", _fmt(ka), _fmt(kb),
                                f"{kb - ka:+.3g} ({len(xa)} / {len(xb)} pairs)", f"{allowed:.3g}", ok=ok))
    else:
        checks.append(StatCheck("mean pairwise correlation", _fmt(sa.mean_correlation), _fmt(sb.mean_correlation), "-",
                                f"{tol.correlation_abs:g}", judged=False, note="fewer than 5 pairs of firing neurons"))
    xa, xb = sa.synchrony, sb.synchrony
    if np.isfinite(xa) and np.isfinite(xb):
        ok = abs(xb - xa) <= tol.synchrony_abs
        checks.append(StatCheck("synchrony (Golomb's chi)", _fmt(xa), _fmt(xb), f"{xb - xa:+.3g}",
                                f"{tol.synchrony_abs:g}", ok=ok))
    else:
        checks.append(StatCheck("synchrony (Golomb's chi)", _fmt(xa), _fmt(xb), "-", f"{tol.synchrony_abs:g}",
                                judged=False, note="a run without spikes, or one neuron"))
    return checks


def compare_network(ra: Results, rb: Results, neurons: np.ndarray, per: list[NeuronComparison], t_end: float,
                    tol: Tolerances) -> NetworkComparison:
    """The network part of a pair: the divergence per population, the population statistics of both
    runs and which of the two comparisons is judged."""
    pops_a = network_stats.populations_of(ra.meta, neurons)
    pops_b = network_stats.populations_of(rb.meta, neurons)
    da, db = ra.meta.get("network_digest"), rb.meta.get("network_digest")
    same_layout = pops_a == pops_b
    same_network = same_layout and da == db
    t0 = min(max(tol.stats_start or 0.0, 0.0), t_end)
    t1 = t_end if tol.stats_stop is None else min(max(tol.stats_stop, t0), t_end)
    divergence = {int(c.neuron): c for c in per}

    def active(r: Results) -> np.ndarray:
        keep = (r.spike_t >= t0) & (r.spike_t <= t1)
        return np.unique(r.spike_i[keep])
    candidates = np.intersect1d(active(ra), active(rb))
    out = []
    for name in [n for n in pops_a if n in pops_b]:
        (oa, na), (ob, nb) = pops_a[name], pops_b[name]
        members_a = neurons[(neurons >= oa) & (neurons < oa + na)]
        members_b = neurons[(neurons >= ob) & (neurons < ob + nb)]
        # the same pairs in both runs: drawn among the neurons firing in both (local indices when the
        # layouts differ, which is only for the statistics)
        local = np.intersect1d(candidates[(candidates >= oa) & (candidates < oa + na)] - oa,
                               candidates[(candidates >= ob) & (candidates < ob + nb)] - ob)
        sa = network_stats.population_stats(ra.spike_i, ra.spike_t, members_a, t0, t1, name, oa, tol.stats_bin,
                                            tol.stats_pairs, pair_candidates=local + oa)
        sb = network_stats.population_stats(rb.spike_i, rb.spike_t, members_b, t0, t1, name, ob, tol.stats_bin,
                                            tol.stats_pairs, pair_candidates=local + ob)
        pc = PopulationComparison(name, oa, na, sa, sb, population_checks(sa, sb, tol, same_network),
                                  spike_compared=same_network)
        if same_network:
            parted = [divergence[int(n)] for n in members_a
                      if int(n) in divergence and divergence[int(n)].diverged_at is not None]
            pc.neurons_diverged = len(parted)
            if parted:
                first = min(parted, key=lambda c: c.diverged_at)
                pc.diverged_at = first.diverged_at
                pc.divergence = f"neuron {first.neuron} ({name} {first.neuron - oa}): {first.divergence}"
        out.append(pc)
    net = NetworkComparison(out, da, db, same_network, STATISTICS, "", (t0, t1))
    first = net.first_divergence
    if not same_network:
        net.reason = ("the networks differ (" + (f"network_digest {da} vs {db}" if da != db else "populations") +
                      "): spike-by-spike comparison is meaningless; judged by population statistics")
    elif first is None and not any(c.failures for c in per):
        net.judged = SPIKE_BY_SPIKE
        net.reason = "judged spike-by-spike: no spike diverged over the whole run (population statistics reported)"
    else:
        where = (f"spike-by-spike diverged at t = {first.diverged_at * 1e3:.4g} ms in population {first.name} "
                 f"({first.divergence})" if first is not None else "spike-by-spike differs")
        net.reason = where + "; judged by population statistics"
    return net


def _protocol_difference(ra: Results, rb: Results, t_end: float) -> str | None:
    """Where the two protocols drive the cells differently within the first t_end seconds."""
    pa, pb = ra.phases(), rb.phases()
    if not pa or not pb:
        return None
    edges = sorted({x for s, e, _ in pa + pb for x in (s, e) if x < t_end - 1e-12} | {0.0})
    for t in edges:
        ia = next((i for s, e, i in pa if s - 1e-12 <= t < e - 1e-12), None)
        ib = next((i for s, e, i in pb if s - 1e-12 <= t < e - 1e-12), None)
        if ia is None or ib is None:
            continue
        for name in sorted(set(ia) | set(ib)):
            a, b = ia.get(name, 0.0), ib.get(name, 0.0)
            if abs(a - b) > 1e-9 * max(abs(a), abs(b), 1e-30):
                return f"from {t:g} s, {name} is {a:.6g} in A and {b:.6g} in B (SI units)"
    return None


def experiment_differences(ra: Results, rb: Results) -> list[str]:
    """What differs between the experiments of two runs, as far as their meta.json records it."""
    ma, mb = ra.meta, rb.meta
    out = []
    if ma.get("cell") and mb.get("cell") and ma["cell"] != mb["cell"]:
        out.append(f"different cells: {ma['cell']} vs {mb['cell']}")
    if ma.get("model_digest") and mb.get("model_digest") and ma["model_digest"] != mb["model_digest"]:
        out.append("different model text (the .chan files differ)")
    if ma.get("n_neurons") is not None and mb.get("n_neurons") is not None and ma["n_neurons"] != mb["n_neurons"]:
        out.append(f"different populations: {ma['n_neurons']:,} vs {mb['n_neurons']:,} neurons")
    ta, tb = ra.duration(), rb.duration()
    if abs(ta - tb) > 1e-9 * max(ta, tb, 1e-12):
        out.append(f"different durations: {ta:g} s vs {tb:g} s")
    protocol = _protocol_difference(ra, rb, min(ta, tb))
    if protocol:
        out.append(f"different protocols: {protocol}")
    out += network_differences(ra, rb)
    if "initial" in ma and "initial" in mb and ma["initial"] != mb["initial"]:
        out.append(f"different initial values: {ma['initial']} vs {mb['initial']}")
    elif ma.get("initial") and ma.get("seed") is not None and mb.get("seed") is not None and \
            ma["seed"] != mb["seed"] and any(("rand" in str(v) or "uniform" in str(v)) for v in ma["initial"].values()):
        out.append(f"different random initial values: seed {ma['seed']} vs {mb['seed']}")
    return out


def _sign_test(per: list[NeuronComparison], tol: Tolerances) -> str | None:
    """A one-sided pattern of count differences among marginal neurons (allowed one by one)."""
    diffs = [c.count_diff for c in per if c.marginal and c.count_diff != 0 and abs(c.count_diff) <= tol.marginal_count]
    if not diffs:
        return None
    more_b = sum(1 for d in diffs if d > 0)
    n = len(diffs)
    k = min(more_b, n - more_b)
    # two-sided sign test: P(at most k of n fair coin flips go the rarer way), doubled
    p = min(1.0, 2.0 * sum(math.comb(n, j) for j in range(k + 1)) / 2.0 ** n)
    if p < tol.population_sign_p:
        side = "B" if more_b > n - more_b else "A"
        return (f"{max(more_b, n - more_b)} of {n} marginal neurons whose spike counts differ fire more in {side} "
                f"(sign test p = {p:.2g}): a systematic difference, not near-threshold noise")
    return None


def compare_results(ra: Results, rb: Results, tol: Tolerances = Tolerances(), label_a="A", label_b="B",
                    distances: bool = True) -> PairComparison:
    na, nb = ra.neurons(), rb.neurons()
    neurons = np.intersect1d(na, nb)
    ta, tb = ra.duration(), rb.duration()
    t_end = min(ta, tb)
    notes = []
    if len(neurons) < max(len(na), len(nb)):
        notes.append(f"compared the {len(neurons):,} neurons both runs simulated "
                     f"(A has {len(na):,}, B has {len(nb):,})")
    if abs(ta - tb) > 1e-12:
        notes.append(f"runs cover {ta:g} s and {tb:g} s; compared the first {t_end:g} s")
    differences = experiment_differences(ra, rb)
    if tol.allow_different_experiments:
        notes += differences
        differences = []
    trains_a = ra.trains_for(neurons)
    trains_b = rb.trains_for(neurons)
    starts = ra.phase_starts() or rb.phase_starts() or None
    crossings = _ill_conditioned_events(ra, rb, neurons, t_end, tol)
    ignore: dict[int, list[float]] = {}
    for n, t, _ in crossings or ():
        ignore.setdefault(n, []).append(t)
    per = [compare_trains(int(n), a, b, t_end, tol, starts, ignore=ignore.get(int(n)))
           for n, a, b in zip(neurons, trains_a, trains_b)]
    rates_a = np.array([c.count_a for c in per]) / t_end if t_end > 0 else np.zeros(len(per))
    rates_b = np.array([c.count_b for c in per]) / t_end if t_end > 0 else np.zeros(len(per))
    spikes = {int(n): np.concatenate([a, b]) for n, a, b in zip(neurons, trains_a, trains_b)}
    network = compare_network(ra, rb, neurons, per, t_end, tol) if is_network(ra) and is_network(rb) else None
    trace_end, traces_judged = t_end, True
    if network is not None and network.judged == STATISTICS:
        if not network.same_network:      # other connections: the traces are reported only
            traces_judged = False
            notes.append("traces reported, not judged: the networks differ")
        elif network.diverged_at is not None and ra.traces and rb.traces:
            trace_end = network.diverged_at
            notes.append(f"traces compared up to the divergence at t = {trace_end * 1e3:.4g} ms (after it the "
                         f"spikes differ, and so does every trace)")
    traces = compare_traces(ra, rb, tol, trace_end, spikes)
    if not traces_judged:
        for tc in traces:
            tc.limit = None
    pair = PairComparison(label_a, label_b, str(ra.path), str(rb.path), neurons, t_end, per,
                          traces, rates_a, rates_b, tol, notes, network=network)
    if network is None or network.judged == SPIKE_BY_SPIKE:
        pair.population_failures = differences + [x for x in [_sign_test(per, tol)] if x]
    else:        # chaos: marginal count differences go any way; the statistics are judged instead
        pair.population_failures = differences + network.failures
    pair.ill_conditioned = crossings
    if distances:
        pair.vp_distance = victor_purpura(trains_a, trains_b, t_end, tol.window)
    return pair


def _ill_conditioned_events(ra: Results, rb: Results, neurons, t_end: float, tol: Tolerances):
    """The ill-conditioned threshold crossings either run records, on the compared neurons and time:
    [(neuron, time s, peak - threshold V)] sorted by neuron and time, one per crossing (the same
    crossing recorded by both runs, within the matching window, is listed once); None when neither
    run records crossings."""
    found = [ill_conditioned(r.spike_i, r.spike_t, r.crossings, tol.crossing_margin)
             for r in (ra, rb) if r.crossings is not None]
    if not found:
        return None
    i = np.concatenate([f[0] for f in found])
    t = np.concatenate([f[1] for f in found])
    d = np.concatenate([f[2] for f in found])
    keep = np.isin(i, neurons) & (t <= t_end)
    i, t, d = i[keep], t[keep], d[keep]
    order = np.lexsort((t, i))
    out: list[tuple[int, float, float]] = []
    for n, time_, dist in zip(i[order], t[order], d[order]):
        if out and out[-1][0] == n and time_ - out[-1][1] <= tol.window:
            continue
        out.append((int(n), float(time_), float(dist)))
    return out


def victor_purpura(trains_a, trains_b, t_end, window, limit=300):
    """Mean and max Victor–Purpura distance (Elephant) with cost 1/window: shifting a spike by
    less than the window costs less than dropping it. On up to `limit` neurons (spread evenly)."""
    try:
        import neo
        import quantities as pq
        from elephant.spike_train_dissimilarity import victor_purpura_distance
    except Exception:   # the compare extra is not installed
        return None
    n = len(trains_a)
    if n == 0 or t_end <= 0:
        return None
    pick = np.unique(np.round(np.linspace(0, n - 1, min(n, limit))).astype(int))
    values = []
    for k in pick:
        a = neo.SpikeTrain(np.clip(trains_a[k], 0, t_end) * pq.s, t_stop=t_end * pq.s)
        b = neo.SpikeTrain(np.clip(trains_b[k], 0, t_end) * pq.s, t_stop=t_end * pq.s)
        values.append(float(victor_purpura_distance([a, b], cost_factor=(1.0 / window) / pq.s)[0, 1]))
    return {"neurons": len(pick), "mean": float(np.mean(values)), "max": float(np.max(values)),
            "cost_factor_per_s": 1.0 / window}


# ---------------------------------------------------------------------------------------------
# Text


def _ms(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.4g}"


def _stats(values):
    a = np.abs(np.asarray(values, float))
    if not len(a):
        return None, None, None
    return float(np.median(a)), float(np.percentile(a, 95)), float(np.max(a))


def _names(neurons, limit=20):
    neurons = list(neurons)
    text = ", ".join(str(n) for n in neurons[:limit])
    return text + (f", ... ({len(neurons)} in all)" if len(neurons) > limit else "")


def pair_table(p: PairComparison) -> list[tuple[str, str]]:
    """Rows (metric, value) of one pair's table."""
    rows = [("neurons compared", f"{len(p.neurons):,} ({len(p.regular):,} regular, {len(p.marginal):,} "
                                 f"marginal/near rheobase)"),
            ("time compared", f"{p.t_end:g} s"),
            ("spikes (A / B)", f"{sum(c.count_a for c in p.per_neuron):,} / {sum(c.count_b for c in p.per_neuron):,}")]
    for name, group in (("regular", p.regular), ("marginal", p.marginal)):
        if not group:
            continue
        mism = [c.neuron for c in group if c.count_diff != 0]
        rows.append((f"{name}: neurons with different spike counts",
                     f"{len(mism):,}" + (f" ({_names(mism)})" if mism else "")))
        diffs = np.concatenate([c.matched_diffs for c in group])
        med, p95, mx = _stats(diffs)
        rows.append((f"{name}: matched spike |dt| median / p95 / max (ms)",
                     f"{_ms(med)} / {_ms(p95)} / {_ms(mx)} ({len(diffs):,} matched, "
                     f"{sum(c.unmatched_a for c in group):,} only in A, {sum(c.unmatched_b for c in group):,} only in B)"))
        firsts = [c.first_diff for c in group if c.first_diff is not None]
        med, p95, mx = _stats(firsts)
        worst = max((c for c in group if c.first_diff is not None), key=lambda c: abs(c.first_diff), default=None)
        rows.append((f"{name}: first-spike |dt| median / max (ms)",
                     f"{_ms(med)} / {_ms(mx)}" + (f" (worst: neuron {worst.neuron})" if worst else "")))
    ra, rb = p.rates_a, p.rates_b
    if len(ra):
        rows.append(("firing rate mean / median / max (Hz), A", f"{ra.mean():.4g} / {np.median(ra):.4g} / {ra.max():.4g}"))
        rows.append(("firing rate mean / median / max (Hz), B", f"{rb.mean():.4g} / {np.median(rb):.4g} / {rb.max():.4g}"))
        if len(ra) > 1:
            from scipy.stats import ks_2samp
            ks = ks_2samp(ra, rb)
            rows.append(("firing-rate distributions, KS statistic (p)", f"{ks.statistic:.3g} ({ks.pvalue:.3g})"))
    if p.ill_conditioned is not None:
        rows.append(("ill-conditioned crossings (not judged)", ill_conditioned_text(p)))
    if p.vp_distance:
        rows.append(("Victor-Purpura distance mean / max (Elephant, cost 1/window)",
                     f"{p.vp_distance['mean']:.3g} / {p.vp_distance['max']:.3g} on {p.vp_distance['neurons']} neurons"))
    for tc in p.traces:
        unit, scale = ("mV", 1e3) if tc.variable == "v" else (("pA", 1e12) if tc.variable.startswith("I") else ("", 1))
        if is_concentration(tc.variable):
            unit = "relative to its RMS"
        worst = int(np.nanargmax(tc.sub_rms)) if len(tc.rms) else 0
        rows.append((f"trace {tc.variable}: subthreshold RMS worst / RMS worst / max abs ({unit or '1'})",
                     f"{tc.sub_rms[worst] * scale:.4g} (neuron {tc.neurons[worst]}) / {np.nanmax(tc.rms) * scale:.4g}"
                     f" / {np.nanmax(tc.max) * scale:.4g} on {len(tc.neurons)} neurons x {tc.n_samples:,} samples"))
    if p.network is not None:
        rows.append(("network", p.network.judged_text()))
        for pc in p.network.populations:
            rows.append((f"population {pc.name}: spike-by-spike", divergence_text(pc)))
    verdict = "AGREE" if p.agree else "DISAGREE"
    if p.network is not None:
        verdict += " (judged " + ("spike-by-spike" if p.network.judged == SPIKE_BY_SPIKE else
                                  "by population statistics") + ")"
    rows.append(("verdict", verdict))
    return rows


def _crossing_text(neuron: int, t: float, distance: float) -> str:
    mv = abs(distance) * 1e3
    where = "below" if distance < 0 else "above"
    return f"neuron {neuron} at {t * 1e3:.4g} ms (peak {mv:.3g} mV {where} threshold)"


def ill_conditioned_text(p: PairComparison, limit=20) -> str:
    """How many ill-conditioned crossings a pair has, the spikes left out of judgement, and up to
    `limit` of them."""
    events = p.ill_conditioned or []
    text = f"{len(events):,}"
    if p.ill_conditioned_spikes:
        text += f" ({p.ill_conditioned_spikes:,} spikes of A and B left out of judgement)"
    if events:
        text += " — " + ", ".join(_crossing_text(*e) for e in events[:limit])
        if len(events) > limit:
            text += f", ... ({len(events)} in all)"
    return text


def divergence_text(pc: PopulationComparison) -> str:
    if not pc.spike_compared:
        return "not compared (the networks differ)"
    if pc.diverged_at is None:
        return f"no divergence ({pc.size:,} neurons)"
    return (f"diverged at t = {pc.diverged_at * 1e3:.4g} ms, {pc.divergence}; {pc.neurons_diverged:,} of "
            f"{pc.size:,} neurons part somewhere")


def network_rows(p: PairComparison) -> list[tuple[str, str, str, str, str, str, str]]:
    """(population, statistic, A, B, difference, allowed, verdict) of a network pair's statistics."""
    if p.network is None:
        return []
    judged = p.network.judged == STATISTICS
    rows = []
    for pc in p.network.populations:
        for c in pc.checks:
            if not c.judged:
                verdict = f"not judged ({c.note})"
            elif c.ok:
                verdict = "agree"
            else:
                verdict = "DISAGREE" if judged else "differs (reported; judged spike-by-spike)"
            rows.append((f"{pc.name} ({pc.size:,})", c.statistic, c.a, c.b, c.difference, c.tolerance, verdict))
    return rows


NETWORK_HEADER = ("population (neurons)", "statistic", "A", "B", "difference", "allowed", "verdict")


def format_columns(header, rows, indent="  ") -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: indent + "  ".join(f"{str(x):<{w}}" for x, w in zip(r, widths)).rstrip()
    return "\n".join([line(header)] + [line(r) for r in rows])


def failure_lines(p: PairComparison, limit=20) -> list[str]:
    lines = list(p.population_failures)
    for c in (p.failing if p.spikes_judged else [])[:limit]:
        lines.append(f"neuron {c.neuron}{' (marginal)' if c.marginal else ''}: " + "; ".join(c.failures))
    if p.spikes_judged and len(p.failing) > limit:
        lines.append(f"... and {len(p.failing) - limit} more neurons")
    for var, neurons in p.failing_trace_neurons.items():
        lines.append(f"trace {var}: subthreshold RMS difference over tolerance in neurons {_names(neurons)}")
    if not len(p.neurons):
        lines.append("no neuron in common: nothing to compare")
    return lines


def format_table(rows, title=None) -> str:
    width = max(len(k) for k, _ in rows)
    out = [title] if title else []
    out += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(out)


def markdown(pairs: list[PairComparison], tol: Tolerances, images: dict) -> str:
    lines = ["# hhc compare", ""]
    lines += ["## Runs", ""]
    seen = []
    for p in pairs:
        for label, path in ((p.label_a, p.path_a), (p.label_b, p.path_b)):
            if path not in seen:
                seen.append(path)
                lines.append(f"- `{path}`: {label}")
    lines += ["", "## Tolerances", "", "| check | tolerance |", "|---|---|"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in tol.describe(networks=any(p.network is not None for p in pairs))]
    for k, p in enumerate(pairs):
        lines += ["", f"## Pair {k + 1}: A = {p.label_a} vs B = {p.label_b}: **{'AGREE' if p.agree else 'DISAGREE'}**", ""]
        for note in p.notes:
            lines.append(f"- note: {note}")
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {_md(m)} | {_md(v)} |" for m, v in pair_table(p)]
        if p.network is not None:
            t0, t1 = p.network.window
            lines += ["", f"### Network: {_md(p.network.judged_text())}", "",
                      f"Population statistics over {t0 * 1e3:g}–{t1 * 1e3:g} ms ({p.tol.stats_bin * 1e3:g} ms bins):", "",
                      "| " + " | ".join(NETWORK_HEADER) + " |", "|" + "---|" * len(NETWORK_HEADER)]
            lines += ["| " + " | ".join(_md(x) for x in row) + " |" for row in network_rows(p)]
            lines += ["", "| population | spike-by-spike |", "|---|---|"]
            lines += [f"| {_md(pc.name)} | {_md(divergence_text(pc))} |" for pc in p.network.populations]
        fails = failure_lines(p, limit=100)
        if fails:
            lines += ["", "Disagreements:", ""] + [f"- {f}" for f in fails]
        for title, name in images.get(k, []):
            lines += ["", f"![{title}]({name})"]
    return "\n".join(lines) + "\n"


def _md(text) -> str:
    return str(text).replace("|", "\\|")


def summary_json(pairs: list[PairComparison]) -> dict:
    out = []
    for p in pairs:
        out.append({"a": p.path_a, "b": p.path_b, "label_a": p.label_a, "label_b": p.label_b, "agree": p.agree,
                    "neurons": len(p.neurons), "marginal_neurons": [c.neuron for c in p.marginal],
                    "failing_neurons": [c.neuron for c in p.failing] if p.spikes_judged else [],
                    "failures": {str(c.neuron): c.failures for c in p.failing} if p.spikes_judged else {},
                    "failing_traces": p.failing_trace_neurons, "population_failures": p.population_failures,
                    "notes": p.notes,
                    **({} if p.ill_conditioned is None else {
                        "ill_conditioned_crossings": [{"neuron": n, "t": t, "distance_mV": d * 1e3}
                                                      for n, t, d in p.ill_conditioned],
                        "ill_conditioned_spikes": p.ill_conditioned_spikes}),
                    **({} if p.network is None else {"network": network_json(p)}),
                    "table": dict(pair_table(p)), "tolerances": dataclasses.asdict(p.tol)})
    return {"pairs": out, "agree": all(p.agree for p in pairs)}


def network_json(p: PairComparison) -> dict:
    net = p.network
    return {"judged": net.judged, "reason": net.judged_text(), "same_network": net.same_network,
            "network_digest": [net.digest_a, net.digest_b], "window_s": list(net.window),
            "diverged_at_s": net.diverged_at,
            "neurons_differing_not_judged": [] if p.spikes_judged else [c.neuron for c in p.failing],
            "populations": {pc.name: {
                "offset": pc.offset, "size": pc.size, "spike_compared": pc.spike_compared,
                "diverged_at_s": pc.diverged_at, "divergence": pc.divergence, "neurons_diverged": pc.neurons_diverged,
                "statistics_agree": pc.statistics_agree, "failures": pc.failures,
                "a": pc.stats_a.summary(), "b": pc.stats_b.summary(),
                "checks": [dataclasses.asdict(c) for c in pc.checks]} for pc in net.populations}}


def compare_runs(paths, tol: Tolerances = Tolerances(), report: str | Path | None = None, plots: bool = True):
    """Compare every pair of result directories; write the report. Returns the pair comparisons."""
    if len(paths) < 2:
        raise HHCError("compare needs at least two result directories")
    results = [load_results(p) for p in paths]
    labels = [r.label(f"run {k + 1}") for k, r in enumerate(results)]
    if len(set(labels)) < len(labels):      # same settings: tell the runs apart by directory
        labels = [f"{label} [{Path(path).name}]" for label, path in zip(labels, paths)]
    pairs, index = [], []
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            pairs.append(compare_results(results[i], results[j], tol, labels[i], labels[j]))
            index.append((i, j))
    if report is not None:
        out = Path(report)
        out.mkdir(parents=True, exist_ok=True)
        images = {}
        if plots:
            for k, p in enumerate(pairs):
                i, j = index[k]
                images[k] = plot.pair_figures(p, results[i], results[j], out, f"pair{k + 1}")
        (out / "summary.md").write_text(markdown(pairs, tol, images))
        (out / "summary.json").write_text(json.dumps(summary_json(pairs), indent=2, default=float) + "\n")
    return pairs
