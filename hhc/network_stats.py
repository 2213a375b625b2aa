"""Population statistics of a network run: what stays comparable once chaos has made spike-by-spike
comparison meaningless.

Per population (meta.json ``populations``: each one's global index range ``offset`` … ``offset + size``;
a run without them is one population, ``all``), over the whole run or a window [t_start, t_stop]:

* **firing rates** per neuron (spikes in the window / its length) and their distribution;
* **ISI CV** per neuron that fires at least 3 spikes in the window (standard deviation of the
  inter-spike intervals over their mean, population convention ``ddof = 0``, as Elephant's ``cv``);
* **pairwise spike-count correlation**: Pearson's r of the spike counts of two neurons in bins of
  ``bin`` (default 10 ms), averaged over up to ``max_pairs`` (200) pairs of neurons that fire in the
  window, drawn deterministically (a fixed seed over the sorted candidates: the same pairs every time,
  and in both runs of a comparison when it gives the same candidates);
* **synchrony**: Golomb's χ (Golomb 2007, Scholarpedia "Neuronal synchrony measures") from binned
  spike counts: χ² = Var_t(population-averaged count) / mean over neurons of Var_t(own count); 1 when
  every neuron fires in the same bins, about 1/√N for N independent neurons (so compare χ between
  populations of the same size);
* **population rate over time** (Hz per neuron, in the same bins), for plots.

Everything is numpy/scipy on the flat spike arrays (sparse binned counts), so a 50,000-neuron, 50 s run
costs O(spikes); the per-neuron objects of Elephant/Neo (an optional extra here) would cost far more and
would make the judged numbers depend on an optional install. tests/test_compare_network.py checks the
CV and the correlations against Elephant's ``cv`` and ``correlation_coefficient`` where it is installed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

DEFAULT_BIN = 10e-3          # s: spike-count bins of the correlation, synchrony and population rate
DEFAULT_MAX_PAIRS = 200
MIN_SPIKES_FOR_CV = 3
PAIR_SEED = 0                # the pairs are drawn with this seed: deterministic


@dataclass
class PopulationStats:
    """One population's statistics in one run, over [t_start, t_stop]."""
    name: str
    offset: int
    neurons: np.ndarray                  # global indices of the neurons counted
    t_start: float
    t_stop: float
    bin: float
    counts: np.ndarray                   # spikes in the window, per neuron (aligned with neurons)
    rates: np.ndarray                    # Hz, per neuron
    cv_neurons: np.ndarray               # global indices of the neurons with >= 3 spikes
    cv: np.ndarray                       # their ISI CV
    pairs: np.ndarray                    # (k, 2) global indices of the sampled pairs
    pair_correlations: np.ndarray        # r per pair (nan where a neuron's counts do not vary)
    synchrony: float                     # Golomb's chi, nan when undefined (no spikes, one neuron)
    rate_t: np.ndarray = field(repr=False, default=None)   # bin centres (s)
    rate: np.ndarray = field(repr=False, default=None)     # population rate (Hz per neuron)

    @property
    def size(self) -> int:
        return len(self.neurons)

    @property
    def spikes(self) -> int:
        return int(self.counts.sum())

    @property
    def mean_rate(self) -> float:
        return float(np.mean(self.rates)) if len(self.rates) else float("nan")

    @property
    def mean_cv(self) -> float:
        return float(np.mean(self.cv)) if len(self.cv) else float("nan")

    @property
    def mean_correlation(self) -> float:
        r = self.pair_correlations[np.isfinite(self.pair_correlations)]
        return float(np.mean(r)) if len(r) else float("nan")

    def summary(self) -> dict:
        """JSON-ready numbers (no per-neuron arrays)."""
        r = self.rates
        finite = np.isfinite(self.pair_correlations)
        return {"neurons": self.size, "window_s": [self.t_start, self.t_stop], "bin_s": self.bin,
                "spikes": self.spikes,
                "rate_hz": {"mean": _num(self.mean_rate), **({"median": float(np.median(r)), "std": float(np.std(r)),
                                                              "p5": float(np.percentile(r, 5)),
                                                              "p95": float(np.percentile(r, 95)),
                                                              "max": float(np.max(r)),
                                                              "silent_fraction": float(np.mean(r == 0))}
                                                           if len(r) else {})},
                "isi_cv": {"mean": _num(self.mean_cv), "neurons": int(len(self.cv)),
                           **({"median": float(np.median(self.cv))} if len(self.cv) else {})},
                "correlation": {"mean": _num(self.mean_correlation), "pairs": int(finite.sum())},
                "synchrony_chi": _num(self.synchrony)}


def _num(x: float):
    return None if x is None or not np.isfinite(x) else float(x)


# ---------------------------------------------------------------------------------------------
# The populations of a run


def populations_of(meta: dict, neurons=None) -> dict[str, tuple[int, int]]:
    """{name: (offset, size)} from meta.json ``populations``; without it one population "all" over
    the run's neurons (n_neurons, or the given ones)."""
    pops = meta.get("populations")
    if isinstance(pops, dict) and pops:
        return {str(name): (int(p["offset"]), int(p["size"])) for name, p in pops.items()}
    if meta.get("n_neurons") is not None:
        return {"all": (0, int(meta["n_neurons"]))}
    n = int(np.max(neurons)) + 1 if neurons is not None and len(neurons) else 0
    return {"all": (0, n)}


# ---------------------------------------------------------------------------------------------
# Statistics


def _in_window(spike_i, spike_t, neurons, t_start, t_stop):
    keep = (spike_t >= t_start) & (spike_t <= t_stop) & np.isin(spike_i, neurons)
    return spike_i[keep], spike_t[keep]


def _rows(neurons: np.ndarray, spike_i: np.ndarray) -> np.ndarray:
    """The position of each spike's neuron in the sorted `neurons` (all spikes are of them)."""
    if len(neurons) and neurons[-1] - neurons[0] + 1 == len(neurons):     # a contiguous range: no search
        return spike_i - neurons[0]
    return np.searchsorted(neurons, spike_i)


def _by_neuron_then_time(spike_i, spike_t) -> np.ndarray:
    """The order of the spikes by neuron, then time (two sorts: faster than lexsort; results are
    usually in time order already, which saves the first)."""
    by_time = None if len(spike_t) < 2 or np.all(spike_t[1:] >= spike_t[:-1]) else np.argsort(spike_t)
    if by_time is None:
        return np.argsort(spike_i, kind="stable")
    return by_time[np.argsort(spike_i[by_time], kind="stable")]


def isi_cv(spike_i: np.ndarray, spike_t: np.ndarray, min_spikes: int = MIN_SPIKES_FOR_CV):
    """(neurons, CV) of every neuron with at least min_spikes spikes: std/mean of its inter-spike
    intervals (ddof 0). Vectorised over all neurons."""
    if not len(spike_i):
        return np.zeros(0, np.int64), np.zeros(0)
    order = _by_neuron_then_time(spike_i, spike_t)
    i, t = spike_i[order], spike_t[order]
    same = i[1:] == i[:-1]
    isi, owner = np.diff(t)[same], i[1:][same]
    neurons, inverse, n_isi = np.unique(owner, return_inverse=True, return_counts=True)
    if not len(neurons):
        return np.zeros(0, np.int64), np.zeros(0)
    s1 = np.bincount(inverse, isi)
    mean = s1 / n_isi
    var = np.bincount(inverse, (isi - mean[inverse]) ** 2) / n_isi
    keep = (n_isi >= min_spikes - 1) & (mean > 0)
    return neurons[keep], np.sqrt(var[keep]) / mean[keep]


def binned_counts(spike_i, spike_t, neurons, t_start, t_stop, bin):
    """Sparse (len(neurons) x n_bins) spike counts, and the bin edges. Bins of (about) `bin`, as many as
    fit in the window (at least one)."""
    n_bins = max(int(round((t_stop - t_start) / bin)), 1)
    edges = np.linspace(t_start, t_stop, n_bins + 1)
    row = _rows(neurons, spike_i)
    col = np.clip(((spike_t - t_start) * (n_bins / max(t_stop - t_start, 1e-300))).astype(np.int64), 0, n_bins - 1)
    counts = sparse.csr_matrix((np.ones(len(row)), (row, col)), shape=(len(neurons), n_bins))
    counts.sum_duplicates()
    return counts, edges


def golomb_chi(counts) -> float:
    """Golomb's synchrony χ of binned counts (neurons x bins, sparse or dense): sqrt(Var_t(mean over
    neurons) / mean over neurons of Var_t). nan with fewer than 2 neurons or no variance."""
    n, n_bins = counts.shape
    if n < 2 or n_bins < 2:
        return float("nan")
    c = sparse.csr_matrix(counts)
    totals = np.asarray(c.sum(axis=1)).ravel()
    squares = np.asarray(c.multiply(c).sum(axis=1)).ravel()
    var_each = squares / n_bins - (totals / n_bins) ** 2
    population = np.asarray(c.sum(axis=0)).ravel() / n
    denominator = float(np.mean(var_each))
    if denominator <= 0:
        return float("nan")
    return float(np.sqrt(min(max(np.var(population) / denominator, 0.0), 1.0)))


def sample_pairs(candidates, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = PAIR_SEED) -> np.ndarray:
    """Up to max_pairs distinct pairs (k, 2) of the sorted candidates: all of them when there are
    few, else drawn with a fixed seed (the same pairs for the same candidates, every time)."""
    c = np.unique(np.asarray(candidates, np.int64))
    n = len(c)
    if n < 2:
        return np.zeros((0, 2), np.int64)
    if n * (n - 1) // 2 <= max_pairs:
        a, b = np.triu_indices(n, 1)
        return np.stack([c[a], c[b]], axis=1)
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[int, int], None] = {}
    while len(chosen) < max_pairs:
        a = rng.integers(0, n, 2 * max_pairs)
        b = rng.integers(0, n, 2 * max_pairs)
        for x, y in zip(a, b):
            if x != y:
                chosen.setdefault((min(x, y), max(x, y)), None)
                if len(chosen) == max_pairs:
                    break
    k = np.array(list(chosen), np.int64)
    return np.stack([c[k[:, 0]], c[k[:, 1]]], axis=1)


def pair_correlations(spike_i, spike_t, pairs, t_start, t_stop, bin) -> np.ndarray:
    """Pearson's r of the binned spike counts of each pair (nan where a neuron's counts do not vary)."""
    if not len(pairs):
        return np.zeros(0)
    members = np.unique(pairs)
    keep = np.isin(spike_i, members)
    counts, _ = binned_counts(spike_i[keep], spike_t[keep], members, t_start, t_stop, bin)
    n_bins = counts.shape[1]
    mean = np.asarray(counts.mean(axis=1)).ravel()
    product = (counts @ counts.T).toarray()         # at most 2 * max_pairs neurons
    var = np.diag(product) / n_bins - mean ** 2
    a, b = np.searchsorted(members, pairs[:, 0]), np.searchsorted(members, pairs[:, 1])
    cov = product[a, b] / n_bins - mean[a] * mean[b]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var[a] * var[b])
    r[~((var[a] > 1e-15) & (var[b] > 1e-15))] = np.nan
    return np.clip(r, -1.0, 1.0)


def population_stats(spike_i, spike_t, neurons, t_start: float, t_stop: float, name: str = "all",
                     offset: int = 0, bin: float = DEFAULT_BIN, max_pairs: int = DEFAULT_MAX_PAIRS,
                     pair_candidates=None) -> PopulationStats:
    """The statistics of the neurons (global indices) over [t_start, t_stop]. pair_candidates: the
    neurons the correlation pairs are drawn from (default: those that fire in the window)."""
    neurons = np.unique(np.asarray(neurons, np.int64))
    spike_i = np.asarray(spike_i, np.int64)
    spike_t = np.asarray(spike_t, float)
    i, t = _in_window(spike_i, spike_t, neurons, t_start, t_stop)
    span = max(t_stop - t_start, 1e-12)
    counts_per_neuron = np.bincount(_rows(neurons, i), minlength=len(neurons))
    rates = counts_per_neuron / span
    cv_neurons, cv = isi_cv(i, t)
    counts, edges = binned_counts(i, t, neurons, t_start, t_stop, bin)
    chi = golomb_chi(counts)
    bin_width = edges[1] - edges[0]
    pop_rate = np.asarray(counts.sum(axis=0)).ravel() / max(len(neurons), 1) / bin_width
    if pair_candidates is None:
        pair_candidates = neurons[counts_per_neuron > 0]
    pairs = sample_pairs(np.intersect1d(pair_candidates, neurons), max_pairs)
    r = pair_correlations(i, t, pairs, t_start, t_stop, bin)
    return PopulationStats(name, offset, neurons, t_start, t_stop, bin_width, counts_per_neuron, rates, cv_neurons, cv, pairs, r, chi,
                           (edges[:-1] + edges[1:]) / 2, pop_rate)


def network_stats(results, window=None, bin: float = DEFAULT_BIN, max_pairs: int = DEFAULT_MAX_PAIRS,
                  neurons=None) -> dict[str, PopulationStats]:
    """Per population of a loaded result (backends.results.Results): its statistics over the whole
    run, or over window = (t_start, t_stop) in s (clipped to the run). neurons: count only these
    (default: the neurons the run simulated)."""
    duration = results.duration()
    t_start, t_stop = (0.0, duration) if window is None else (max(window[0], 0.0), min(window[1], duration))
    known = results.neurons() if neurons is None else np.asarray(neurons, np.int64)
    out = {}
    for name, (offset, size) in populations_of(results.meta, known).items():
        members = known[(known >= offset) & (known < offset + size)]
        out[name] = population_stats(results.spike_i, results.spike_t, members, t_start, t_stop, name, offset,
                                     bin, max_pairs)
    return out
