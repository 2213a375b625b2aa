"""hhc compare on network runs: spike-by-spike while it holds, population statistics once it has
diverged (known statistics of constructed spike trains; cheap: no simulation)."""
import json

import numpy as np
import pytest

from hhc import network_stats
from hhc.backends.results import load_results, write_results
from hhc.compare import SPIKE_BY_SPIKE, STATISTICS, Tolerances, compare_results, compare_trains

DURATION = 2.0
POPS = {"E": {"offset": 0, "size": 60, "cell": "HH"}, "I": {"offset": 60, "size": 40, "cell": "HH"}}
N = 100
SPLIT = 0.5          # "chaos": the runs are the same up to here, independent after


def poisson(rng, rate, t0=0.0, t1=DURATION):
    return np.sort(rng.uniform(t0, t1, rng.poisson(rate * (t1 - t0))))


def asynchronous(seed, rates, t0=0.0, common=None):
    """Independent Poisson trains; with `common`, equal to it before SPLIT."""
    rng = np.random.default_rng(seed)
    out = []
    for k, rate in enumerate(rates):
        train = poisson(rng, rate, SPLIT if common is not None else t0)
        out.append(train if common is None else np.concatenate([common[k][common[k] < SPLIT], train]))
    return out


def synchronous(seed, n, rate, jitter=1e-3):
    """n neurons all firing with one 'mother' train of `rate` (uniform spike times, each jittered by up
    to `jitter` in each neuron)."""
    rng = np.random.default_rng(seed)
    mother = np.sort(rng.uniform(0.01, DURATION - 0.01, int(round(rate * DURATION))))
    return [np.sort(mother + rng.uniform(-jitter, jitter, len(mother))) for _ in range(n)]


def write_run(path, trains, digest="a1b2c3d4", pops=POPS):
    i = np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)]).astype(np.int64)
    t = np.concatenate(trains)
    write_results(path, spike_i=i, spike_t=t,
                  meta={"backend": "brian2", "device": "runtime", "method": "rk2", "dt": 5e-5, "n_neurons": len(trains),
                        "duration": DURATION, "populations": pops, "network_digest": digest,
                        "sources": {"PN": {"kind": "poisson", "size": 50, "spikes": 1000}},
                        "projections": [{"source": "PN", "target": "E", "synapse": "AMPA", "rule": "fixed_indegree",
                                         "connections": 800}]})
    return path


def compare(ra, rb, **tol):
    return compare_results(load_results(ra), load_results(rb), Tolerances(**tol), distances=False)


def population(p, name):
    return next(pc for pc in p.network.populations if pc.name == name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """a: the network; b: the same; c: the same until SPLIT, then other spikes at the same rates;
    d: population I 30 % faster (from the start); e: population E synchronous at E's rate."""
    root = tmp_path_factory.mktemp("netruns")
    a = asynchronous(1, [10.0] * N)
    return {"a": write_run(root / "a", a),
            "b": write_run(root / "b", [t.copy() for t in a]),
            "c": write_run(root / "c", asynchronous(2, [10.0] * N, common=a)),
            "d": write_run(root / "d", a[:60] + asynchronous(3, [13.0] * 40)),
            "e": write_run(root / "e", synchronous(4, 60, 10.0) + a[60:]),
            "other": write_run(root / "other", asynchronous(5, [10.0] * N), digest="ffff0000ffff0000")}


# ---- the statistics, on trains with known answers -------------------------------------------------

def test_rates_cv_and_population_rate_of_regular_trains():
    regular = [np.arange(0.005 + 0.001 * k, 1.0, 0.05) for k in range(10)]       # 20 Hz, CV 0
    i = np.concatenate([np.full(len(t), k) for k, t in enumerate(regular)])
    s = network_stats.population_stats(i, np.concatenate(regular), np.arange(10), 0.0, 1.0)
    assert np.allclose(s.rates, 20.0) and np.allclose(s.cv, 0.0, atol=1e-9) and len(s.cv_neurons) == 10
    assert s.rate.mean() == pytest.approx(20.0) and len(s.rate_t) == 100
    window = network_stats.population_stats(i, np.concatenate(regular), np.arange(10), 0.5, 1.0)
    assert np.allclose(window.rates, 20.0) and window.spikes == 100


def test_isi_cv_needs_three_spikes_and_is_one_for_poisson():
    rng = np.random.default_rng(0)
    trains = [poisson(rng, 50.0, 0, 20.0) for _ in range(20)] + [np.array([0.1, 0.2])]
    i = np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)])
    neurons, cv = network_stats.isi_cv(i, np.concatenate(trains))
    assert 20 not in neurons and len(neurons) == 20          # two spikes: no CV
    assert cv.mean() == pytest.approx(1.0, abs=0.05)


def test_synchrony_and_correlation_tell_synchronous_from_asynchronous():
    sync = synchronous(0, 50, 10.0)
    asyn = asynchronous(0, [10.0] * 50)
    stats = {}
    for name, trains in (("sync", sync), ("async", asyn)):
        i = np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)])
        stats[name] = network_stats.population_stats(i, np.concatenate(trains), np.arange(50), 0.0, DURATION)
    assert stats["sync"].synchrony > 0.8 and stats["sync"].mean_correlation > 0.7
    assert stats["async"].synchrony == pytest.approx(1 / np.sqrt(50), abs=0.05)     # chi ~ 1/sqrt(N)
    assert abs(stats["async"].mean_correlation) < 0.03
    assert len(stats["async"].pairs) == 200 and np.array_equal(      # the same pairs every time
        stats["async"].pairs, network_stats.sample_pairs(np.arange(50), 200))


def test_statistics_match_elephant():
    """The CV and the pairwise correlations computed here are Elephant's (cv of isi; Pearson's r of
    BinnedSpikeTrain counts), on the same trains and bins."""
    pytest.importorskip("elephant")
    import neo
    import quantities as pq
    from elephant.conversion import BinnedSpikeTrain
    from elephant.spike_train_correlation import correlation_coefficient
    from elephant.statistics import cv, isi
    trains = synchronous(7, 5, 20.0, jitter=8e-3) + asynchronous(7, [15.0] * 5)
    i = np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)])
    s = network_stats.population_stats(i, np.concatenate(trains), np.arange(10), 0.0, DURATION, bin=0.01)
    expected_cv = [cv(isi(t)) for t in trains]
    assert np.allclose(s.cv, expected_cv)
    neo_trains = [neo.SpikeTrain(t * pq.s, t_start=0 * pq.s, t_stop=DURATION * pq.s) for t in trains]
    r = correlation_coefficient(BinnedSpikeTrain(neo_trains, bin_size=10 * pq.ms))
    assert np.allclose(s.pair_correlations, r[s.pairs[:, 0], s.pairs[:, 1]])


def test_network_stats_of_a_run_uses_its_populations(runs):
    stats = network_stats.network_stats(load_results(runs["d"]))
    assert list(stats) == ["E", "I"] and stats["I"].neurons.tolist() == list(range(60, 100))
    assert stats["I"].mean_rate > stats["E"].mean_rate
    one = network_stats.network_stats(load_results(runs["a"]), window=(1.0, 5.0))
    assert one["E"].t_start == 1.0 and one["E"].t_stop == DURATION


def test_divergence_of_two_trains_is_the_first_spike_that_parts():
    a = np.array([0.10, 0.20, 0.30, 0.40])
    moved = compare_trains(0, a, np.array([0.10, 0.20, 0.305, 0.40]), 1.0, Tolerances())   # beyond the window
    assert moved.diverged_at == pytest.approx(0.30) and "only in" in moved.divergence
    late = compare_trains(0, a, np.array([0.10, 0.20, 0.3004, 0.4]), 1.0, Tolerances())     # 0.4 ms: within
    assert late.diverged_at is None
    shifted = compare_trains(0, a, a + np.array([0, 0, 1e-3, 1e-3]), 1.0, Tolerances())
    assert shifted.diverged_at == pytest.approx(0.30) and "moved by +1.0000 ms" in shifted.divergence


# ---- the judging rule ---------------------------------------------------------------------------

def test_identical_network_runs_agree_spike_by_spike(runs):
    p = compare(runs["a"], runs["b"])
    assert p.agree and p.network.judged == SPIKE_BY_SPIKE and p.network.diverged_at is None
    assert all(pc.statistics_agree for pc in p.network.populations)


def test_same_statistics_other_spikes_agree_by_statistics_with_the_divergence(runs):
    p = compare(runs["a"], runs["c"])
    assert p.network.judged == STATISTICS and p.agree, p.population_failures
    assert SPLIT <= p.network.diverged_at < SPLIT + 0.05
    assert p.failing                                                 # per neuron they differ: not judged
    text = p.network.judged_text()
    assert text.startswith(f"spike-by-spike diverged at t = {p.network.diverged_at * 1e3:.4g} ms in population ")
    assert text.endswith("judged by population statistics")


def test_a_population_firing_faster_disagrees_naming_it(runs):
    p = compare(runs["a"], runs["d"])
    assert not p.agree and p.network.judged == STATISTICS
    assert population(p, "E").diverged_at is None and population(p, "I").diverged_at is not None
    assert population(p, "E").statistics_agree
    fails = population(p, "I").failures
    assert any(f.startswith("population I: mean rate") for f in fails), fails
    assert p.population_failures == fails


def test_synchronous_against_asynchronous_disagrees_on_synchrony(runs):
    p = compare(runs["a"], runs["e"])
    assert not p.agree
    e = population(p, "E")
    assert any(f.startswith("population E: synchrony") for f in e.failures), e.failures
    assert not any("mean rate" in f for f in e.failures)            # the same rate
    assert population(p, "I").statistics_agree


def test_different_networks_are_an_experiment_difference_unless_allowed(runs):
    p = compare(runs["a"], runs["other"])
    assert not p.agree and any(f.startswith("different networks: network_digest a1b2c3d4 vs ffff0000ffff0000")
                               for f in p.population_failures)
    allowed = compare(runs["a"], runs["other"], allow_different_experiments=True)
    assert allowed.agree and allowed.network.judged == STATISTICS and not allowed.network.same_network
    assert any(n.startswith("different networks") for n in allowed.notes)
    assert "the networks differ" in allowed.network.judged_text()


# ---- the command and its report ------------------------------------------------------------------

def test_command_reports_which_comparison_it_judged(runs, cli, tmp_path):
    same = cli.here("compare", runs["a"], runs["b"], "--no-plots", "--report", tmp_path / "r0")
    assert same.returncode == 0 and "judged spike-by-spike" in same.stdout
    chaos = cli.here("compare", runs["a"], runs["c"], "--report", tmp_path / "r1")
    assert chaos.returncode == 0, chaos.stdout + chaos.stderr
    assert "judged by population statistics" in chaos.stdout and "DISAGREE neuron" not in chaos.stdout
    assert "runs agree within tolerances (pair 1 spike-by-spike diverged at t = " in chaos.stdout
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    net = summary["pairs"][0]["network"]
    assert net["judged"] == STATISTICS and set(net["populations"]) == {"E", "I"}
    assert net["populations"]["E"]["a"]["rate_hz"]["mean"] == pytest.approx(10.0, rel=0.1)
    assert {c["statistic"] for c in net["populations"]["I"]["checks"]} >= {"mean rate (Hz)", "synchrony (Golomb's chi)"}
    md = (tmp_path / "r1" / "summary.md").read_text()
    assert "### Network: spike-by-spike diverged at t = " in md and "| I (40) | synchrony (Golomb's chi) |" in md
    import matplotlib.image as mpimg
    image = mpimg.imread(tmp_path / "r1" / "pair1_population_rates.png")
    assert (image[..., :3] < 0.9).any(axis=-1).mean() > 0.005

    faster = cli.here("compare", runs["a"], runs["d"], "--no-plots", "--report", tmp_path / "r2")
    assert faster.returncode == 1 and "DISAGREE population I: mean rate (Hz)" in faster.stdout
    sync = cli.here("compare", runs["a"], runs["e"], "--no-plots", "--report", tmp_path / "r3")
    assert sync.returncode == 1 and "DISAGREE population E: synchrony (Golomb's chi)" in sync.stdout
    loose = cli.here("compare", runs["a"], runs["e"], "--no-plots", "--report", tmp_path / "r4", "--synchrony", "1",
                     "--correlation", "1", "--cv", "1", "--rate-ks-d", "1")
    assert loose.returncode == 0, loose.stdout


def test_traces_are_judged_up_to_the_divergence(tmp_path):
    """After the spikes part every trace differs: judged by statistics, the traces count only before."""
    a = asynchronous(1, [10.0] * N)
    tt = np.arange(0, DURATION, 1e-3)
    base = -0.065 + 0.002 * np.sin(2 * np.pi * 5 * tt)[:, None] * np.ones((1, 3))

    def with_trace(path, trains, v):
        write_run(path, trains)
        r = load_results(path)
        write_results(path, spike_i=r.spike_i, spike_t=r.spike_t, meta=r.meta,
                      traces=[{"t": tt, "neurons": np.arange(3), "variables": {"v": v}}])
        return path
    ra = with_trace(tmp_path / "a", a, base)
    after = with_trace(tmp_path / "after", asynchronous(2, [10.0] * N, common=a), base + 0.01 * (tt >= SPLIT)[:, None])
    p = compare(ra, after)
    assert p.network.judged == STATISTICS and p.agree, (p.population_failures, p.failing_trace_neurons)
    assert any(n.startswith("traces compared up to the divergence at t = ") for n in p.notes)
    before = with_trace(tmp_path / "before", asynchronous(2, [10.0] * N, common=a), base + 0.005)
    p = compare(ra, before)
    assert not p.agree and p.failing_trace_neurons == {"v": [0, 1, 2]}
