"""hhc compare: metrics on constructed spike trains with known answers, perturbed runs flagged."""
import json

import numpy as np
import pytest

from hhc.compare import Tolerances, compare_results, compare_trains, is_marginal, match_spikes, pair_table
from hhc.backends.results import Crossings, load_results, write_results

from builders import trace

TOL = Tolerances()


def test_match_spikes_pairs_nearest_within_window():
    a = np.array([0.010, 0.020, 0.030, 0.050])
    b = np.array([0.0101, 0.0305, 0.040, 0.0502])
    ia, ib = match_spikes(a, b, window=1e-3)
    assert ia.tolist() == [0, 2, 3] and ib.tolist() == [0, 1, 3]
    assert np.allclose(b[ib] - a[ia], [0.1e-3, 0.5e-3, 0.2e-3])


def test_match_spikes_empty_and_single():
    assert match_spikes(np.array([]), np.array([0.1]), 1e-3)[0].size == 0
    ia, ib = match_spikes(np.array([0.1]), np.array([0.1003]), 1e-3)
    assert ia.tolist() == [0] and ib.tolist() == [0]


def test_identical_trains_agree_with_zero_differences():
    a = np.arange(0.01, 0.5, 0.02)
    c = compare_trains(3, a, a.copy(), 0.5, TOL)
    assert not c.failures and c.count_diff == 0 and c.first_diff == 0 and c.max_abs_diff == 0
    assert not c.marginal


def test_shift_of_one_ms_is_measured_and_flagged():
    a = np.arange(0.01, 0.5, 0.02)
    c = compare_trains(7, a, a + 1e-3, 0.6, TOL)
    assert c.count_diff == 0
    assert c.first_diff == pytest.approx(1e-3)
    assert np.allclose(c.matched_diffs, 1e-3)
    assert any("first spike" in f for f in c.failures)


def test_missing_spike_is_a_count_mismatch():
    a = np.arange(0.01, 0.5, 0.02)
    b = np.delete(a, 10)
    c = compare_trains(1, a, b, 0.5, TOL)
    assert c.count_diff == -1 and c.unmatched_a == 1 and c.unmatched_b == 0
    assert any("spike count" in f for f in c.failures)


def test_spike_crossing_the_end_is_not_a_count_mismatch():
    a = np.array([0.1, 0.2, 0.2995])        # the last spike 0.5 ms before the end...
    b = np.array([0.1, 0.2])                 # ...falls just after the end in the other run
    c = compare_trains(0, a, b, 0.3, TOL)
    assert c.count_diff == 0 and not c.failures


def test_marginal_neurons_near_rheobase():
    one = np.array([0.2])
    assert is_marginal(one, np.array([]), TOL)            # one spike here, none there
    assert is_marginal(np.array([0.1, 0.3, 0.5]), np.array([0.1, 0.3, 0.5]), TOL)   # median ISI 200 ms
    assert not is_marginal(np.arange(0.01, 0.5, 0.02), np.arange(0.01, 0.5, 0.02), TOL)
    assert not is_marginal(np.array([]), np.array([]), TOL)
    # one spike more near rheobase is tolerated, but a 1 ms shift is still a disagreement
    assert not compare_trains(0, one, np.array([]), 0.5, TOL).failures
    assert compare_trains(0, np.array([0.1, 0.3]), np.array([0.101, 0.301]), 0.5, TOL).failures
    # two spikes more is not
    assert compare_trains(0, np.array([0.1, 0.3]), np.array([]), 0.5, TOL).failures


def _write_run(path, trains, n, duration=0.5, meta=None, trace=True, crossings=None):
    i = np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)]).astype(int)
    t = np.concatenate(trains)
    groups = []
    if trace:
        tt = np.arange(0, duration, 1e-4)
        v = np.stack([-0.065 + 0.01 * np.sin(2 * np.pi * 10 * tt + k) for k in range(3)], axis=1)
        groups = [{"t": tt, "neurons": np.arange(3), "variables": {"v": v}}]
    write_results(path, spike_i=i, spike_t=t, traces=groups,
                  meta={"backend": "brian2", "device": "runtime", "method": "rk4", "dt": 1e-5,
                        "n_neurons": n, "duration": duration, **(meta or {})}, crossings=crossings)
    return path


def _trains(n=10):
    rng = np.random.default_rng(0)
    return [np.sort(rng.uniform(0.01, 0.49, 12)) + 0 * k for k in range(n)]


def test_compare_results_known_rates_and_agreement(tmp_path):
    trains = _trains()
    ra = load_results(_write_run(tmp_path / "a", trains, 10))
    rb = load_results(_write_run(tmp_path / "b", trains, 10))
    p = compare_results(ra, rb, TOL)
    assert p.agree
    assert np.allclose(p.rates_a, 12 / 0.5)
    assert p.traces and p.traces[0].variable == "v" and np.all(p.traces[0].rms == 0)


def test_perturbed_run_flagged_by_the_command(tmp_path, cli):
    trains = _trains()
    a = _write_run(tmp_path / "a", trains, 10)
    shifted = [t + (1e-3 if k == 4 else 0) for k, t in enumerate(trains)]
    b = _write_run(tmp_path / "b", shifted, 10)
    missing = [t if k != 6 else t[1:] for k, t in enumerate(trains)]
    c = _write_run(tmp_path / "c", missing, 10)
    ok = cli("compare", a, a, "--report", tmp_path / "rep0", "--no-plots")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "runs agree" in ok.stdout
    res = cli("compare", a, b, "--report", tmp_path / "rep1")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "DISAGREE neuron 4:" in res.stdout and "neuron 5" not in res.stdout.split("DISAGREE", 1)[1]
    summary = json.loads((tmp_path / "rep1" / "summary.json").read_text())
    assert summary["pairs"][0]["failing_neurons"] == [4]
    assert "neuron 4" in (tmp_path / "rep1" / "summary.md").read_text()
    import matplotlib.image as mpimg
    for name in ("pair1_raster.png", "pair1_traces.png", "pair1_spike_dt.png"):
        image = mpimg.imread(tmp_path / "rep1" / name)
        assert (image[..., :3] < 0.9).any(axis=-1).mean() > 0.005, f"{name} is blank"
    res = cli("compare", a, c, "--report", tmp_path / "rep2", "--no-plots")
    assert res.returncode == 1 and "DISAGREE neuron 6:" in res.stdout and "spike count 12 vs 11" in res.stdout


def test_looser_tolerance_on_the_command_line(tmp_path, cli):
    trains = _trains()
    a = _write_run(tmp_path / "a", trains, 10)
    b = _write_run(tmp_path / "b", [t + 1e-3 for t in trains], 10)
    res = cli("compare", a, b, "--first-spike", "1.5", "--spike-time", "1.5", "--report", tmp_path / "r", "--no-plots")
    assert res.returncode == 0, res.stdout


def test_sample_is_compared_on_common_neurons(tmp_path):
    trains = _trains()
    full = load_results(_write_run(tmp_path / "full", trains, 10))
    sample = load_results(_write_run(tmp_path / "s", trains, 10, meta={"sample_neurons": [0, 5, 9]}, trace=False))
    p = compare_results(full, sample, TOL)
    assert p.neurons.tolist() == [0, 5, 9] and p.agree and p.notes


@pytest.mark.slow
def test_brian2_runtime_and_standalone_agree_and_a_shift_is_caught(tmp_path, cli, make_experiment):
    exp = make_experiment(size=20, dt="0.01 ms", method="rk4", initial={"v": "uniform(-70 mV, -60 mV)"},
                          protocol=[("20 ms", "0 pA"), ("200 ms", "18 pA")], record=None,
                          traces=[trace(["v"], "0:3", interval="0.1 ms")])
    rt, sa = tmp_path / "rt", tmp_path / "sa"
    assert cli("run", exp, "--out", rt).returncode == 0
    r = cli("run", exp, "--out", sa, "--device", "cpp_standalone", "--threads", "2")
    assert r.returncode == 0, r.stderr
    res = cli("compare", rt, sa, "--report", tmp_path / "rep")
    assert res.returncode == 0, res.stdout + res.stderr
    run = load_results(sa)
    t = run.spike_t.copy()
    t[run.spike_i == 13] += 1e-3
    write_results(tmp_path / "shifted", spike_i=run.spike_i, spike_t=t, traces=run.traces, meta=run.meta)
    res = cli("compare", rt, tmp_path / "shifted", "--report", tmp_path / "rep2")
    assert res.returncode == 1
    assert "DISAGREE neuron 13:" in res.stdout


def test_long_latency_after_the_step_is_marginal():
    regular = np.arange(0.120, 0.5, 0.02)             # fires 20 ms after a step at 100 ms
    late = np.arange(0.170, 0.5, 0.02)                # 70 ms latency: near rheobase
    assert not is_marginal(regular, regular, TOL, phase_starts=[0.0, 0.1])
    assert is_marginal(late, late, TOL, phase_starts=[0.0, 0.1])
    c = compare_trains(0, late, late + 0.3e-3, 0.5, TOL, phase_starts=[0.0, 0.1])
    assert c.marginal and not c.failures              # 0.3 ms on a 70 ms latency: tolerated
    c = compare_trains(0, late, late + 1e-3, 0.5, TOL, phase_starts=[0.0, 0.1])
    assert c.failures                                 # 1 ms is not


# ---- ill-conditioned threshold crossings ---------------------------------------------------------

TH = -0.020          # V


def _crossings(trains, overshoot=0.03, small=None, near=()):
    """Crossings of a reference that fired `trains`: every spike `overshoot` above the threshold,
    except {(neuron, spike index): overshoot} in `small`; near misses (neuron, time, peak)."""
    over = np.concatenate([np.full(len(t), overshoot) for t in trains])
    starts = np.cumsum([0] + [len(t) for t in trains])
    for (n, k), value in (small or {}).items():
        over[starts[n] + k] = value
    near = list(near)
    return Crossings(TH, over, [n for n, _, _ in near], [t for _, t, _ in near], [p for _, _, p in near])


def _quiet_time(train):
    """A time in the middle of the longest gap of a train (far from its spikes)."""
    k = int(np.argmax(np.diff(train)))
    return float((train[k] + train[k + 1]) / 2)


def test_spikes_near_an_ill_conditioned_crossing_are_counted_not_judged():
    a = np.arange(0.01, 0.5, 0.02)
    extra = np.sort(np.append(a, 0.2005))                     # one spike more, 0.5 ms from a crossing
    c = compare_trains(0, a, extra, 0.5, TOL)
    assert c.failures and c.ill_conditioned == 0
    c = compare_trains(0, a, extra, 0.5, TOL, ignore=np.array([0.2003]))
    assert not c.failures and c.count_diff == 0 and c.ill_conditioned == 1
    assert (c.count_a, c.count_b) == (len(a), len(a) + 1)     # counted all the same
    # a crossing elsewhere (beyond the window) leaves the extra spike judged
    c = compare_trains(0, a, extra, 0.5, TOL, ignore=np.array([0.2005 + 1.5 * TOL.window]))
    assert any("spike count" in f for f in c.failures) and c.ill_conditioned == 0
    # the first spike: left out of the first-spike judgement when it is the ill-conditioned one
    early = np.sort(np.append(a, 0.004))
    assert compare_trains(0, a, early, 0.5, TOL).failures
    c = compare_trains(0, a, early, 0.5, TOL, ignore=np.array([0.004]))
    assert not c.failures and c.first_diff == 0


def test_compare_lists_a_near_miss_and_does_not_judge_the_extra_spike(tmp_path, cli):
    """A reference records a near miss (peak 0.03 mV below the threshold) where the other run
    fires: AGREE, with the crossing listed; without the reference's crossings the same extra
    spike is a disagreement."""
    trains = _trains()
    t0 = _quiet_time(trains[4])
    extra = [np.sort(np.append(t, t0)) if k == 4 else t for k, t in enumerate(trains)]
    near = [(4, t0 + 0.1e-3, TH - 0.03e-3)]
    ref = _write_run(tmp_path / "ref", trains, 10, crossings=_crossings(trains, near=near))
    plain = _write_run(tmp_path / "plain", trains, 10)
    other = _write_run(tmp_path / "other", extra, 10)

    p = compare_results(load_results(ref), load_results(other), TOL)
    assert p.agree, p.failing
    assert len(p.ill_conditioned) == 1
    n, t, d = p.ill_conditioned[0]
    assert n == 4 and t == pytest.approx(t0 + 0.1e-3) and d == pytest.approx(-0.03e-3)
    assert p.per_neuron[4].ill_conditioned == 1 and p.per_neuron[4].count_b == len(trains[4]) + 1
    assert sum(c.ill_conditioned for c in p.per_neuron) == 1
    row = dict(pair_table(p))["ill-conditioned crossings (not judged)"]
    assert row.startswith("1 ") and "neuron 4 at" in row and "0.03 mV below threshold" in row

    res = cli("compare", ref, other, "--report", tmp_path / "rep", "--no-plots")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ill-conditioned crossings (not judged)" in res.stdout and "neuron 4 at" in res.stdout
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())["pairs"][0]
    assert summary["agree"] and [c["neuron"] for c in summary["ill_conditioned_crossings"]] == [4]
    assert summary["ill_conditioned_crossings"][0]["distance_mV"] == pytest.approx(-0.03)
    assert "ill-conditioned crossings" in (tmp_path / "rep" / "summary.md").read_text()

    # the same extra spike, without the reference's crossings: judged, and a disagreement
    p = compare_results(load_results(plain), load_results(other), TOL)
    assert not p.agree and [c.neuron for c in p.failing] == [4]
    assert p.ill_conditioned is None
    assert not any("ill-conditioned" in k for k, _ in pair_table(p))
    res = cli("compare", plain, other, "--report", tmp_path / "rep2", "--no-plots")
    assert res.returncode == 1 and "DISAGREE neuron 4:" in res.stdout


def test_missing_spike_is_judged_unless_its_overshoot_is_small(tmp_path):
    trains = [np.arange(0.01, 0.49, 0.04) + 1e-3 * k for k in range(10)]     # 12 spikes 40 ms apart
    missing = [t if k != 6 else np.delete(t, 3) for k, t in enumerate(trains)]
    other = load_results(_write_run(tmp_path / "other", missing, 10))
    t0 = _quiet_time(trains[4])
    # the spike that B lacks went 30 mV above the threshold in the reference: a disagreement, even
    # though the reference lists an ill-conditioned crossing elsewhere
    ref = load_results(_write_run(tmp_path / "ref", trains, 10,
                                  crossings=_crossings(trains, near=[(4, t0, TH - 0.1e-3)])))
    p = compare_results(ref, other, TOL)
    assert not p.agree and [c.neuron for c in p.failing] == [6]
    assert [n for n, _, _ in p.ill_conditioned] == [4] and p.per_neuron[6].ill_conditioned == 0
    # it went 0.2 mV above: ill-conditioned, listed and not judged
    ref = load_results(_write_run(tmp_path / "small", trains, 10,
                                  crossings=_crossings(trains, small={(6, 3): 0.2e-3})))
    p = compare_results(ref, other, TOL)
    assert p.agree and p.ill_conditioned == [(6, pytest.approx(trains[6][3]), pytest.approx(0.2e-3))]
    assert p.per_neuron[6].ill_conditioned == 1
    # a near miss further below the threshold than the margin is not ill-conditioned
    ref = load_results(_write_run(tmp_path / "far", trains, 10,
                                  crossings=_crossings(trains, near=[(6, trains[6][3], TH - 1e-3)])))
    p = compare_results(ref, other, TOL)
    assert not p.agree and p.ill_conditioned == []
    assert dict(pair_table(p))["ill-conditioned crossings (not judged)"] == "0"


def test_concentration_traces_are_judged_relative_to_their_size(tmp_path):
    """cai of 1e-4 mM: an absolute tolerance made for gates (0.02) would pass anything; 5 % off fails,
    0.5 % off passes."""
    tt = np.arange(0, 0.5, 1e-4)
    cai = 1e-4 * (1 + 0.5 * np.sin(2 * np.pi * 4 * tt))[:, None]

    def run(name, factor):
        write_results(tmp_path / name, spike_i=np.zeros(0, int), spike_t=np.zeros(0),
                      traces=[{"t": tt, "neurons": np.arange(1), "variables": {"cai": cai * factor}}],
                      meta={"backend": "brian2", "device": "runtime", "method": "rk4", "dt": 1e-5,
                            "n_neurons": 1, "duration": 0.5})
        return load_results(tmp_path / name)
    base = run("a", 1.0)
    close, far = compare_results(base, run("b", 1.005), TOL), compare_results(base, run("c", 1.05), TOL)
    assert close.agree and not far.agree
    assert far.failing_trace_neurons == {"cai": [0]}
    assert any("relative to its RMS" in row for row, _ in pair_table(far))
