""""auto" keeps its accuracy promise over the whole run: the compiled reference it is judged against,
the sample it is judged on, and a candidate whose error grows late being refused."""
import json

import numpy as np
import pytest

from builders import write_experiment
from paths import KENYON, SQUID

from hhc import advise
from hhc.api import prepare
from hhc.backends import reference_c
from hhc.backends.reference import build_rhs, compute_reference, initial_matrix


def _squid(path, duration="3 s", size=1, **fields):
    """The squid axon firing tonically (2 nA on its 20,000 µm² patch: about 68 spikes per second)."""
    fields.setdefault("initial", None)
    return write_experiment(path, model=SQUID, size=size, protocol=[(duration, {"Iapp": "2 nA"})], **fields)


def _compiled(exp, cell, rtol):
    rhs = build_rhs(cell, jacobian=False)
    y0 = initial_matrix(exp, rhs)
    inputs = advise._input_columns(exp, cell)
    return reference_c.solve(cell, y0, [p.duration for p in exp.protocol], inputs, rtol=rtol)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["squid", "kenyon"])
def test_compiled_reference_agrees_with_scipy(tmp_path, model):
    """Every spike of the compiled Dormand–Prince reference within 1 µs of SciPy's DOP853, and each
    spike's overshoot within 1 µV of the peak SciPy finds."""
    if model == "squid":
        path = _squid(tmp_path / "e.toml", duration="300 ms", size=3, initial={"v": "uniform(-70 mV, -60 mV)"})
    else:
        path = write_experiment(tmp_path / "e.toml", model=KENYON, size=3, initial={"v": "uniform(-75 mV, -55 mV)"},
                                protocol=[("20 ms", "0 pA"), ("700 ms", "18 pA")])
    exp, cell, _ = prepare(path, choose_auto=False)
    ours = _compiled(exp, cell, 1e-11)
    scipy = compute_reference(exp, cell, np.arange(exp.size), variables=())
    for n in range(exp.size):
        theirs = np.sort(scipy["spike_t"][scipy["spike_i"] == n])
        assert len(ours.trains[n]) == len(theirs) > 3
        assert np.max(np.abs(ours.trains[n] - theirs)) < 1e-6
    crossings = scipy.get("crossings")
    if crossings is not None:
        order = np.lexsort((scipy["spike_t"], scipy["spike_i"]))
        assert np.allclose(np.concatenate(ours.overshoots), crossings.overshoot[order], atol=1e-6)


@pytest.mark.slow
def test_kenyon_near_misses_are_recorded_below_the_threshold(tmp_path):
    """On its way into depolarisation block the Kenyon cell's oscillation peaks a fraction of a mV
    below -20 mV: recorded as near misses, with the peak between threshold - 2 mV and threshold."""
    path = write_experiment(tmp_path / "e.toml", model=KENYON, size=1, protocol=[("700 ms", "18 pA")])
    exp, cell, _ = prepare(path, choose_auto=False)
    sol = _compiled(exp, cell, 1e-11)
    times, peaks = sol.near[0]
    assert len(times) >= 1
    assert np.all(peaks < -20e-3) and np.all(peaks > -22e-3)
    assert times[0] > sol.trains[0][-1]          # after the last spike
    # and the last spikes' overshoots shrink towards the block
    assert sol.overshoots[0][-1] < sol.overshoots[0][0]


def test_sample_covers_spread_initial_values(tmp_path):
    """A population whose initial v is drawn at random: the sample holds the neurons with the lowest
    and highest v and the median, not only evenly spaced indices."""
    path = write_experiment(tmp_path / "e.toml", model=KENYON, size=5000, seed=3,
                            initial={"v": "uniform(-80 mV, -50 mV)"})
    exp, cell, _ = prepare(path, choose_auto=False)
    picked = advise.sample_neurons(exp, cell, 20)
    v0 = exp.initial_arrays["v"]
    assert len(picked) == 20 and len(set(picked.tolist())) == 20
    assert int(np.argmin(v0)) in picked and int(np.argmax(v0)) in picked
    covered = v0[picked]
    assert covered.min() == v0.min() and covered.max() == v0.max()
    median = np.sort(v0)[len(v0) // 2]
    assert np.min(np.abs(covered - median)) < 1e-3 * 30e-3
    # identical neurons: evenly spaced, first and last included
    same = write_experiment(tmp_path / "s.toml", model=KENYON, size=5000)
    exp, cell, _ = prepare(same, choose_auto=False)
    picked = advise.sample_neurons(exp, cell, 20)
    assert picked[0] == 0 and picked[-1] == 4999 and len(picked) == 20
    reps, rep = advise.distinct_neurons(exp, cell, picked)
    assert len(reps) == 1 and set(rep.values()) == {0}


@pytest.mark.slow
def test_a_candidate_that_drifts_late_is_rejected(tmp_path):
    """rk2 at 0.05 ms on 8 s of tonic firing: within the tolerance for the first second, but its
    phase error grows with every spike and is past 0.5 ms by the end: the whole-run judgement
    refuses it, while rk4 at 0.01 ms (the researcher's setting) meets it to the end."""
    path = _squid(tmp_path / "e.toml", duration="8 s", dt="0.01 ms", method="rk4", backend={"name": "brian2", "device": "runtime"})
    exp, cell, _ = prepare(path, choose_auto=False)
    tol = advise.AdviseTolerance()
    neurons = advise.sample_neurons(exp, cell, 20)
    reference = advise.sample_reference(exp, cell, neurons, tol, say=lambda m: None)
    reps = np.array(sorted(set(reference.representative.values())))
    from hhc.backends.reference import sample_experiment
    whole, _ = sample_experiment(exp, reps)
    first = whole.cut_to(1.0)
    early = advise.run_trial(cell, first, reps, reference, "rk2", 0.05e-3, tol, "brian2", "runtime")
    late = advise.run_trial(cell, whole, reps, reference, "rk2", 0.05e-3, tol, "brian2", "runtime")
    assert early.ok, early
    assert not late.ok and late.spike_time_error > 2 * early.spike_time_error
    researcher = advise.run_trial(cell, whole, reps, reference, "rk4", 0.01e-3, tol, "brian2", "runtime")
    assert researcher.ok and researcher.spike_time_error < 0.1 * tol.spike_time
    assert researcher.count_mismatches == 0


@pytest.mark.slow
def test_auto_over_the_whole_run_says_what_it_measured(tmp_path, cli):
    """auto on 4 s of tonic firing: the choice is judged over all 4 s, meta.json and the console give
    its figures over the whole run, and an independent check (`hhc reference` + `hhc compare` with
    the default tolerance's numbers) confirms every spike."""
    path = _squid(tmp_path / "e.toml", duration="4 s", size=4, dt="auto", method="auto",
                  backend={"name": "brian2", "device": "runtime"})
    res = cli("run", path, "--out", tmp_path / "run")
    assert res.returncode == 0, res.stdout + res.stderr
    choice = json.loads((tmp_path / "run" / "meta.json").read_text())["auto_choice"]
    assert choice["sample_duration"] == pytest.approx(4.0)
    assert choice["count_mismatches"] == 0
    assert choice["spike_time_error"] <= advise.AdviseTolerance().spike_time
    assert choice["search_wall_s"] > 0 and "every spike within" in res.stderr
    whole = [t for t in choice["tried"] if t["duration"] == pytest.approx(4.0)]
    assert whole and whole[-1]["ok"]
    assert cli("reference", path, "--sample", "1", "--out", tmp_path / "ref").returncode == 0
    tol = advise.AdviseTolerance()
    res = cli("compare", tmp_path / "run", tmp_path / "ref", "--report", tmp_path / "cmp", "--no-plots",
              "--count", "0", "--first-spike", str(tol.first_spike * 1e3), "--spike-time", str(tol.spike_time * 1e3))
    assert res.returncode == 0, res.stdout
