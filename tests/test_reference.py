"""hhc reference: the IR right-hand side in SI, solved by SciPy; convergence in the tolerance."""
import dataclasses

import numpy as np
import pytest

from hhc.api import prepare
from hhc.compiler import load_model
from hhc.backends.reference import build_rhs, compute_reference, sample_indices
from hhc.backends.results import NEAR_MISS_RECORDED, ill_conditioned, load_results

from builders import trace
from paths import SQUID


@pytest.fixture
def experiment(make_experiment):
    """Six Kenyon cells: 20 ms at rest, then `step` at 18 pA; v of all six every 0.1 ms."""
    def make(step):
        return make_experiment(size=6, dt="0.01 ms", method="rk4", initial={"v": "uniform(-70 mV, -60 mV)"},
                               protocol=[("20 ms", "0 pA"), (step, "18 pA")], record=None,
                               traces=[trace(["v"], "0:6", interval="0.1 ms")])
    return make


def test_rhs_matches_hand_written_squid_equations():
    cell = load_model(SQUID).cell()
    rhs = build_rhs(cell)
    assert rhs.states == ("v", "m_HHNa", "h_HHNa", "n_HHK")
    v, m, h, n, iapp = -0.060, 0.1, 0.5, 0.4, 1e-10
    out = rhs.f_scalar(v, m, h, n, iapp)
    vm = v * 1e3
    i_na = 24e-6 * m ** 3 * h * (v - 0.050)
    i_k = 7.2e-6 * n ** 4 * (v + 0.077)
    i_l = 60e-9 * (v + 0.054387)
    assert out[0] == pytest.approx((iapp - i_na - i_k - i_l) / 200e-12, rel=1e-12)
    am = 0.1 * (vm + 40) / (1 - np.exp(-(vm + 40) / 10)) * 1e3
    bm = 4 * np.exp(-(vm + 65) / 18) * 1e3
    assert out[1] == pytest.approx(am * (1 - m) - bm * m, rel=1e-10)
    # the removable singularity at -40 mV (exprel) is finite
    assert np.isfinite(rhs.f_scalar(-0.040, m, h, n, 0.0)).all()
    assert rhs.threshold == pytest.approx(0.0)


def test_sample_indices_spread():
    assert sample_indices(50000, 5).tolist() == [0, 12500, 25000, 37499, 49999]
    assert sample_indices(3, 10).tolist() == [0, 1, 2]


def test_reference_converges_in_its_tolerance(experiment):
    """Halving (here: dividing by 10) the tolerance moves spike times by far less than 0.1 ms."""
    exp, cell, _ = prepare(experiment("300 ms"))
    a = compute_reference(exp, cell, [0, 3], rtol=1e-8, variables=())
    b = compute_reference(exp, cell, [0, 3], rtol=1e-9, variables=())
    c = compute_reference(exp, cell, [0, 3], rtol=1e-10, variables=())
    assert len(a["spike_t"]) == len(b["spike_t"]) == len(c["spike_t"]) > 20
    assert np.max(np.abs(b["spike_t"] - c["spike_t"])) < 1e-7            # < 0.1 µs, default 0.1 ms
    assert np.max(np.abs(a["spike_t"] - c["spike_t"])) < 1e-6
    # a different solver family agrees too
    d = compute_reference(exp, cell, [0, 3], rtol=1e-9, method="LSODA", variables=())
    assert np.max(np.abs(d["spike_t"] - c["spike_t"])) < 1e-6


def test_reference_command_writes_hhc_results(tmp_path, cli, experiment):
    """`hhc reference` writes, in hhc's result format, what compute_reference gives for the sample
    (spread over the population) with its default solver and tolerance."""
    exp = experiment("100 ms")
    res = cli("reference", exp, "--sample", "3", "--out", tmp_path / "ref", "--variables", "v,m_NaF")
    assert res.returncode == 0, res.stderr
    r = load_results(tmp_path / "ref")
    assert r.meta["sample_neurons"] == [0, 2, 5] and r.meta["n_neurons"] == 6
    assert set(np.unique(r.spike_i)) <= {0, 2, 5} and len(r.spike_t) > 0
    t, neurons, v = r.trace("v")
    assert neurons.tolist() == [0, 2, 5] and v.shape == (len(t), 3) and np.allclose(t[1] - t[0], 1e-4)
    assert "m_NaF" in r.traces[0].variables
    # the same numbers as the reference computed here (same initial values: the experiment's seed)
    resolved, cell, _ = prepare(exp)
    direct = compute_reference(resolved, cell, [0, 2, 5], variables=())
    order = np.lexsort((r.spike_t, r.spike_i))
    direct_order = np.lexsort((direct["spike_t"], direct["spike_i"]))
    assert np.array_equal(r.spike_i[order], np.asarray(direct["spike_i"])[direct_order])
    assert np.allclose(r.spike_t[order], np.asarray(direct["spike_t"])[direct_order], rtol=0, atol=1e-12)
    # and each spike's overshoot, aligned with the spikes as written
    assert r.crossings is not None and r.crossings.threshold == pytest.approx(-0.020)
    assert np.allclose(r.crossings.overshoot[order], direct["crossings"].overshoot[direct_order], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_reference_agrees_with_brian2_rk4(tmp_path, cli, experiment):
    exp = experiment("300 ms")
    assert cli("run", exp, "--out", tmp_path / "b2").returncode == 0
    assert cli("reference", exp, "--sample", "6", "--out", tmp_path / "ref").returncode == 0
    res = cli("compare", tmp_path / "b2", tmp_path / "ref", "--report", tmp_path / "rep", "--no-plots")
    assert res.returncode == 0, res.stdout


# ---- threshold crossings: overshoots and near misses ------------------------------------------

THRESHOLD = -0.020          # the Kenyon cell's spike threshold (V)


def _fine_peaks(t, v, threshold):
    """Local maxima of a sampled trace: (times, values)."""
    k = np.flatnonzero((v[1:-1] > v[:-2]) & (v[1:-1] >= v[2:])) + 1
    return t[k], v[k]


def _excursion_max(t, v, start, threshold):
    """The highest sample from `start` until v is next below the threshold."""
    k = np.searchsorted(t, start)
    below = np.flatnonzero(v[k:] < threshold)
    stop = k + (below[0] if len(below) else len(v) - k)
    return float(v[k:stop].max())


def test_overshoot_of_a_spike_is_its_peak_above_the_threshold(make_experiment):
    """Each spike's recorded overshoot is the peak of v (sampled every 10 µs) above -20 mV: tens of mV."""
    exp, cell, _ = prepare(make_experiment(size=2, initial={"v": "uniform(-70 mV, -60 mV)"}, seed=2,
                                           protocol=[("20 ms", "0 pA"), ("100 ms", "18 pA")], record=None))
    ref = compute_reference(exp, cell, [0, 1], variables=("v",), interval=1e-5)
    c = ref["crossings"]
    assert c.threshold == pytest.approx(THRESHOLD) and c.recorded_below == NEAR_MISS_RECORDED
    assert len(c.overshoot) == len(ref["spike_t"]) >= 4
    t, neurons, v = ref["traces"][0].t, ref["traces"][0].neurons, ref["traces"][0].variables["v"]
    for n, ts, over in zip(ref["spike_i"], ref["spike_t"], c.overshoot):
        sampled = _excursion_max(t, v[:, list(neurons).index(n)], ts, THRESHOLD) - THRESHOLD
        assert over > 0.010                                  # a spike's peak goes tens of mV above
        # the samples never exceed the located peak, and come within the sampling error of it
        assert sampled <= over + 1e-7 and over - sampled < 0.1e-3
    assert len(c.near_t) == 0                                # regular firing: no peak just below -20 mV


def test_a_peak_just_below_the_threshold_is_a_near_miss(make_experiment):
    """On its way into depolarisation block (after 34 spikes at 18 pA) the Kenyon cell oscillates with
    peaks a fraction of a mV below -20 mV: recorded as near misses at the peaks of the fine trace."""
    exp, cell, _ = prepare(make_experiment(size=1, protocol=[("610 ms", "18 pA")], record=None,
                                           traces=[trace(["v"], "0:1", interval="0.01 ms",
                                                         windows=[("540 ms", "610 ms")])]))
    ref = compute_reference(exp, cell, [0], variables=("v",), interval=1e-5)
    c = ref["crossings"]
    i, when, distance = ill_conditioned(ref["spike_i"], ref["spike_t"], c, 0.5e-3)
    assert len(when) >= 1                                    # a crossing no integrator can decide
    t, v = ref["traces"][0].t, ref["traces"][0].variables["v"][:, 0]
    assert t[0] < 0.545 and t[-1] > 0.609
    peak_t, peak_v = _fine_peaks(t, v, THRESHOLD)
    band = (peak_v < THRESHOLD) & (peak_v > THRESHOLD - NEAR_MISS_RECORDED + 1e-5)
    assert band.any()
    # every peak of the fine trace in the band is a recorded near miss, at its time and height ...
    for pt, pv in zip(peak_t[band], peak_v[band]):
        k = int(np.argmin(np.abs(c.near_t - pt)))
        assert abs(c.near_t[k] - pt) < 2e-5 and pv <= c.near_peak[k] + 1e-7 and c.near_peak[k] - pv < 1e-5
    # ... and every near miss recorded in the window is one of them: below the threshold, within the band
    inside = (c.near_t > t[0] + 1e-4) & (c.near_t < t[-1] - 1e-4)
    assert inside.sum() == band.sum()
    assert np.all(c.near_peak < THRESHOLD) and np.all(c.near_peak > THRESHOLD - NEAR_MISS_RECORDED)
    # the listed crossings are the near misses within 0.5 mV and the spikes that went less than 0.5 mV above
    assert sorted(when.tolist()) == sorted(c.near_t[THRESHOLD - c.near_peak < 0.5e-3].tolist() +
                                           ref["spike_t"][c.overshoot < 0.5e-3].tolist())
    assert np.all(np.abs(distance) < 0.5e-3)


def test_an_excursion_across_phase_boundaries_has_one_peak(make_experiment):
    """Protocol phases restart the solver: a boundary on a spike's rise, and one on another spike's
    fall, change neither the spikes nor their overshoots."""
    base = make_experiment("base", size=1, protocol=[("20 ms", "0 pA"), ("100 ms", "18 pA")], record=None)
    exp, cell, _ = prepare(base)
    ref = compute_reference(exp, cell, [0], variables=("v",), interval=1e-6)
    t, v = ref["traces"][0].t, ref["traces"][0].variables["v"][:, 0]
    spikes = ref["spike_t"]
    assert len(spikes) >= 3
    # the first boundary halfway up spike 1, the second halfway down spike 2
    k1 = np.searchsorted(t, spikes[1])
    top1 = t[k1 + int(np.argmax(v[k1:k1 + 2000]))]
    rising = (spikes[1] + top1) / 2
    k2 = np.searchsorted(t, spikes[2])
    top2 = k2 + int(np.argmax(v[k2:k2 + 2000]))
    falling = t[top2 + int(np.flatnonzero(v[top2:] < THRESHOLD)[0]) // 2]
    assert spikes[1] < rising < top1 and t[top2] < falling < spikes[2] + 2e-3
    cuts = [0.020, rising, falling, 0.120]
    rest, step = exp.protocol         # phases off the dt grid: built here, not read from a file
    phases = (rest,) + tuple(dataclasses.replace(step, duration=b - a) for a, b in zip(cuts, cuts[1:]))
    split = compute_reference(dataclasses.replace(exp, protocol=phases), cell, [0], variables=())
    assert len(split["spike_t"]) == len(spikes)
    assert np.allclose(split["spike_t"], spikes, rtol=0, atol=1e-9)
    assert np.allclose(split["crossings"].overshoot, ref["crossings"].overshoot, rtol=0, atol=1e-6)


def test_the_reference_backend_writes_crossings_in_the_order_of_its_spikes(tmp_path, cli, make_experiment):
    """`hhc run --backend reference` writes the spikes in time order; the overshoots follow them."""
    path = make_experiment(size=3, method=None, backend="reference", initial={"v": "uniform(-75 mV, -55 mV)"},
                           seed=3, protocol=[("20 ms", "0 pA"), ("60 ms", "18 pA")])
    res = cli("run", path, "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    r = load_results(tmp_path / "run")
    assert r.crossings is not None and len(r.crossings.overshoot) == len(r.spike_t) >= 3
    assert len(np.unique(r.spike_i)) == 3 and np.all(np.diff(r.spike_t) >= 0)     # interleaved neurons
    exp, cell, _ = prepare(path)
    direct = compute_reference(exp, cell, [0, 1, 2], variables=())
    for n, ts, over in zip(r.spike_i, r.spike_t, r.crossings.overshoot):
        k = int(np.flatnonzero((direct["spike_i"] == n) & np.isclose(direct["spike_t"], ts, rtol=0, atol=1e-12))[0])
        assert over == pytest.approx(direct["crossings"].overshoot[k], rel=0, abs=1e-12)
