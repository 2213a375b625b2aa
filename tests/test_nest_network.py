"""Networks on NEST (issue 15): each synapse kind against its closed form, a small network spike by
spike against the network reference, thread and MPI counts giving the same spikes, and the
connections NEST holds equal to hhc's drawn lists."""
from __future__ import annotations

import math

import numpy as np
import pytest

from builders import phase, trace, write_experiment
from paths import DATA

from hhc.api import prepare, run_experiment
from hhc.backends.results import load_results
from hhc.compare import compare_runs

from test_synapses import T_ARRIVAL, closed_forms

pytestmark = pytest.mark.needs_nest

KINDS = DATA / "synapse_kinds.chan"
NET = DATA / "small_net.chan"


def _kinds(tmp_path, main="G"):
    """The synapse kinds experiment of test_synapses on NEST (rk4), with the population `main` traced."""
    proj = [{"source": "S", "target": "G", "synapse": s, "rule": "one_to_one", "weight": w, "delay": "1 ms"}
            for s, w in (("Sexp", "1 nS"), ("Salpha", "2 nS"), ("Sdouble", "3 nS"))]
    proj.append({"source": "S", "target": "I", "synapse": "Icur", "rule": "one_to_one", "weight": "10 pA",
                 "delay": "1 ms"})
    # a second, inhibitory current spike onto I at 30 ms (negative current weight)
    proj.append({"source": "S2", "target": "I", "synapse": "Icur", "rule": "one_to_one", "weight": "-10 pA",
                 "delay": "1 ms"})
    cells = {"G": "Conductances", "I": "Current"}
    other = "I" if main == "G" else "G"
    variables = ["v", "g_Sexp", "g_Salpha", "a_Sdouble", "b_Sdouble"] if main == "G" else ["v", "g_Icur"]
    return write_experiment(
        tmp_path / f"syn_{main}.toml", model=KINDS, cell=cells[main], size=1, dt="0.01 ms", method="rk4",
        initial=None, population={"name": main}, record={"spikes": "none"},
        network={"populations": {other: {"cell": cells[other], "size": 1}},
                 "sources": {"S": {"kind": "spike_times", "times": [[10.0]]},
                             "S2": {"kind": "spike_times", "times": [[30.0]]}}, "projections": proj},
        protocol=[phase("60 ms")], traces=[trace(variables, [0], interval="0.05 ms")], backend="nest")


@pytest.mark.slow
def test_each_synapse_kind_follows_its_closed_form_on_nest(tmp_path):
    res = load_results(run_experiment(_kinds(tmp_path), out=tmp_path / "run", quiet=True))
    tr = res.traces[0]
    t, got = tr.t, tr.variables
    g_exp, g_alpha, g_double = closed_forms(t)
    away = np.abs(t - T_ARRIVAL) > 1e-6          # the jump itself is at one instant
    # the source spike at 10 ms (on the grid), delay 1 ms: the jump lands at 11 ms as in the reference
    np.testing.assert_allclose(got["g_Sexp"][away, 0], g_exp[away], rtol=1e-7, atol=1e-15)
    np.testing.assert_allclose(got["g_Salpha"][away, 0], g_alpha[away], rtol=1e-7, atol=1e-15)
    g = got["a_Sdouble"] - got["b_Sdouble"]
    np.testing.assert_allclose(g[away, 0], g_double[away], rtol=1e-7, atol=1e-15)
    assert np.max(g) == pytest.approx(3e-9, rel=1e-3)            # peaks at its weight
    np.testing.assert_allclose(got["v"][:, 0], -0.070, atol=1e-12)  # E = leak E: no current
    assert res.meta["nest_connections"] == 5


@pytest.mark.slow
def test_current_based_psp_follows_its_closed_form_on_nest(tmp_path):
    """C dv/dt = -g_L (v - E_L) + I: each current spike's PSP is w tau tau_m / (C (tau_m - tau)) (e^(-s/tau_m) -
    e^(-s/tau)); the second spike (-10 pA, at 31 ms) is a hyperpolarising one."""
    res = load_results(run_experiment(_kinds(tmp_path, main="I"), out=tmp_path / "run", quiet=True))
    tr = res.traces[0]
    t, v = tr.t, tr.variables["v"][:, 0]
    tau, tau_m, c = 5e-3, 20e-3, 100e-12

    def psp(w, arrival):
        s = np.clip(t - arrival, 0, None)
        return np.where(t >= arrival, w * tau * tau_m / (c * (tau_m - tau)) * (np.exp(-s / tau_m) - np.exp(-s / tau)), 0)

    expected = -0.070 + psp(10e-12, T_ARRIVAL) + psp(-10e-12, 0.031)
    np.testing.assert_allclose(v, expected, rtol=0, atol=1e-9)
    assert v.max() + 0.070 > 0.3e-3 and v.min() + 0.070 < -0.1e-3
    g = tr.variables["g_Icur"][:, 0]                              # the current jumps by +10 pA, then -10 pA
    assert g.max() == pytest.approx(10e-12, rel=1e-3)


# ---- a small deterministic network ---------------------------------------------------------------

def _network(tmp_path, name="net"):
    net = {"sources": {"P": {"kind": "poisson", "size": 20, "rate": "40 Hz"}},
           "populations": {"I": {"cell": "HH", "size": 5}},
           "projections": [
               {"source": "P", "target": "E", "synapse": "AMPA", "rule": "fixed_indegree", "indegree": 4,
                "weight": "uniform(0.6 nS, 1.2 nS)", "delay": "uniform(1 ms, 3 ms)"},
               {"source": "E", "target": "I", "synapse": "AMPA", "rule": "fixed_probability", "probability": 0.3,
                "weight": "0.8 nS", "delay": "1.5 ms"},
               {"source": "I", "target": "E", "synapse": "GABA", "rule": "fixed_probability", "probability": 0.5,
                "weight": "uniform(0.5 nS, 1 nS)", "delay": "2 ms"},
               {"source": "E", "target": "E", "synapse": "AMPA", "rule": "fixed_probability", "probability": 0.1,
                "weight": "0.3 nS", "delay": "1 ms", "allow_autapses": False}]}
    return write_experiment(
        tmp_path / f"{name}.toml", model=NET, size=20, seed=3, initial=None, dt="0.01 ms", method="auto",
        population={"name": "E", "parameters": {"gbar_K": "uniform(33 mS/cm2, 39 mS/cm2)"}}, network=net,
        protocol=[phase("60 ms", {"Iapp": "0 pA", "I.Iapp": "0 pA"}),
                  phase("90 ms", {"Iapp": "5 pA", "I.Iapp": "2 pA"})],
        traces=[trace(["v", "g_AMPA", "a_GABA"], [0, 1], interval="0.1 ms")])


@pytest.fixture(scope="module")
def network_runs(tmp_path_factory):
    """The network on NEST (rk4 at 0.01 ms, 1 thread, NEST's connections kept) and on the reference."""
    tmp = tmp_path_factory.mktemp("nest-net")
    path = _network(tmp)
    mp = pytest.MonkeyPatch()
    mp.setenv("HHC_NEST_EDGES", "1")
    try:
        nest1 = run_experiment(path, out=tmp / "nest1", backend="nest", quiet=True, choose_auto=False)
    finally:
        mp.undo()
    return {"path": path, "tmp": tmp, "nest1": nest1}


def _same_spikes(a, b):
    ra, rb = load_results(a), load_results(b)
    np.testing.assert_array_equal(ra.spike_i, rb.spike_i)
    np.testing.assert_array_equal(ra.spike_t, rb.spike_t)
    return ra


@pytest.mark.slow
def test_network_agrees_spike_by_spike_with_the_reference(network_runs):
    tmp = network_runs["tmp"]
    ref = run_experiment(network_runs["path"], out=tmp / "ref", backend="reference", quiet=True, choose_auto=False)
    (pair,) = compare_runs([ref, network_runs["nest1"]], report=tmp / "cmp", plots=False)
    assert pair.agree and pair.network.diverged_at is None, (pair.failing, pair.population_failures)
    r, n = load_results(ref), load_results(network_runs["nest1"])
    assert len(r.spike_i) == len(n.spike_i) > 50
    assert set(np.unique(n.spike_i)) >= {0, 20}                      # both populations fire (global indices)
    assert n.meta["populations"]["I"] == {"cell": "HH", "offset": 20, "size": 5}


@pytest.mark.slow
def test_one_and_two_threads_give_the_same_spikes(network_runs):
    two = run_experiment(network_runs["path"], out=network_runs["tmp"] / "nest2", backend="nest", threads=2,
                         quiet=True, choose_auto=False)
    res = _same_spikes(network_runs["nest1"], two)
    assert load_results(two).meta["threads"] == 2 and len(res.spike_i) > 50
    np.testing.assert_array_equal(res.traces[0].variables["v"], load_results(two).traces[0].variables["v"])


@pytest.mark.slow
@pytest.mark.needs_mpi_nest
def test_two_mpi_processes_give_the_spikes_of_one(network_runs):
    two = run_experiment(network_runs["path"], out=network_runs["tmp"] / "mpi2", backend="nest", mpi=2,
                         quiet=True, choose_auto=False)
    meta = load_results(two).meta
    assert meta["mpi_processes"] == 2 and meta["have_mpi"] is True
    assert sum(meta["local_neurons_per_rank"]) == 25 and min(meta["local_neurons_per_rank"]) > 0
    assert meta["nest_connections"] == load_results(network_runs["nest1"]).meta["nest_connections"]
    _same_spikes(network_runs["nest1"], two)


@pytest.mark.slow
def test_nest_holds_exactly_the_drawn_connections(network_runs):
    from hhc.backends.nest.network import nest_edges
    exp, _, _ = prepare(network_runs["path"], choose_auto=False)
    net = exp.drawn
    held = nest_edges(network_runs["nest1"])
    expected: dict = {}
    for proj, e in zip(net.spec.projections, net.edges):
        cell = net.cells[proj.target]
        # NESTML numbers a multi-port cell's receptor types from 1 in the order of its synapses; NEST's
        # connections keep the model's port index (receptor type - 1): AMPA 0, GABA 1
        receptor = [s.name for s in cell.synapses].index(proj.synapse)
        rows = np.column_stack([e.pre, e.post, e.weight * 1e9, np.rint(e.delay / exp.dt) * exp.dt * 1e3,
                                np.full(len(e), receptor)])
        key = (proj.source, proj.target)
        expected[key] = np.vstack([expected[key], rows]) if key in expected else rows
    assert set(held) == set(expected)
    for key, rows in expected.items():
        got = held[key]
        assert got.shape == rows.shape, key
        a, b = got[np.lexsort(got.T[::-1])], rows[np.lexsort(rows.T[::-1])]
        np.testing.assert_array_equal(a[:, [0, 1, 4]], b[:, [0, 1, 4]])
        np.testing.assert_allclose(a[:, 2], b[:, 2], rtol=1e-12)       # weights in nS
        np.testing.assert_allclose(a[:, 3], b[:, 3], atol=1e-9)        # delays in ms, on NEST's grid
    assert sum(len(r) for r in expected.values()) == load_results(network_runs["nest1"]).meta["nest_connections"]


def test_nestml_model_has_a_spike_port_and_jumps_per_synapse():
    from hhc.backends.nest.nestml import nestml_text
    from hhc.compiler import load_model
    cell = next(c for c in load_model(NET).cells if c.name == "HH")
    text = nestml_text(cell, "rk4")
    assert "spikes_AMPA <- spike" in text and "spikes_GABA <- spike" in text
    assert "g_AMPA += spikes_AMPA * 1 s * (1 nS)\n" in text
    assert "a_GABA += spikes_GABA * 1 s * (1 nS) * hhc_jump_GABA" in text
    assert "b_GABA += spikes_GABA * 1 s * (1 nS) * hhc_jump_GABA" in text
    assert "k1_g_AMPA real = " in text                           # integrated with the cell
    rkf = nestml_text(cell, "rkf45")
    assert "g_AMPA' = " in rkf and "recordable inline I_GABA pA = " in rkf


def test_nestml_noise_is_an_exact_ou_step_added_to_its_input():
    from hhc.backends.base import UnsupportedError
    from hhc.backends.nest.nestml import nestml_text
    from hhc.compiler import load_model
    cell = next(c for c in load_model(NET).cells if c.name == "HH")
    text = nestml_text(cell, "rk2", noise_input="Iapp")
    assert "model hh_rk2_ou:" in text
    assert "I_noise pA = 0 pA" in text
    assert "hhc_noise_decay real = exp(-resolution() / hhc_noise_tau)" in text
    assert "hhc_noise_kick pA = hhc_noise_sigma * (1 - hhc_noise_decay**2)**0.5" in text
    # advanced before the neuron's step, then added to the input for that step
    ou = text.index("I_noise = hhc_noise_mean + (I_noise - hhc_noise_mean) * hhc_noise_decay + "
                    "hhc_noise_kick * random_normal(0, 1)")
    assert ou < text.index("p_Iapp real = (Iapp + I_noise) / (1 pA)")
    assert "I_noise" not in nestml_text(cell, "rk2")
    with pytest.raises(UnsupportedError, match="noise with the rkf45 integrator"):
        nestml_text(cell, "rkf45", noise_input="Iapp")


def _noisy(tmp_path, backend, seed, name):
    """40 HH cells driven by Ornstein-Uhlenbeck noise only (mean 0, sigma 5 pA, tau 5 ms: v fluctuates
    a few mV below threshold); one negligible synaptic event makes it a network."""
    be = {"name": backend} if backend == "nest" else {"name": backend, "device": "runtime"}
    return write_experiment(
        tmp_path / f"{name}.toml", model=NET, cell="HH", size=40, dt="0.01 ms", method="rk2", seed=seed,
        initial={"v": "-65 mV"},
        population={"name": "E", "noise": {"input": "Iapp", "mean": "0 pA", "sigma": "5 pA", "tau": "5 ms"}},
        network={"sources": {"S": {"kind": "spike_times", "times": [[5.0]]}},
                 "projections": [{"source": "S", "target": "E", "synapse": "AMPA", "rule": "all_to_all",
                                  "weight": "0.001 nS", "delay": "1 ms"}]},
        protocol=[phase("400 ms", {"Iapp": "0 pA"})], record={"spikes": "all"},
        traces=[trace(["v"], list(range(40)), interval="0.1 ms")], backend=be)


@pytest.mark.slow
def test_noise_on_nest_matches_brian2_statistically_and_repeats_with_its_seed(tmp_path):
    """The noise's random numbers differ between simulators, so runs are compared by the statistics of
    v (after 50 ms, the noise being stationary from the start): its mean and standard deviation
    pooled over 40 neurons x 350 ms (~40 x 35 independent samples, so the std is known to a few %)."""
    runs = {}
    for name, backend, seed in (("nest_a", "nest", 1), ("nest_b", "nest", 1), ("nest_c", "nest", 2),
                                ("brian2", "brian2", 1)):
        path = _noisy(tmp_path, backend, seed, name)
        runs[name] = load_results(run_experiment(path, out=tmp_path / name, quiet=True, choose_auto=False))
    stats = {}
    for name, r in runs.items():
        t, _, v = r.trace("v")
        v = np.asarray(v)[t >= 0.05] * 1e3
        stats[name] = (v.mean(), v.std())
    np.testing.assert_array_equal(runs["nest_a"].trace("v")[2], runs["nest_b"].trace("v")[2])
    assert not np.array_equal(runs["nest_a"].trace("v")[2], runs["nest_c"].trace("v")[2])
    mean_n, std_n = stats["nest_a"]
    mean_b, std_b = stats["brian2"]
    print(f"v mean/std (mV): nest {mean_n:.3f}/{std_n:.3f}, brian2 {mean_b:.3f}/{std_b:.3f}")
    assert std_b > 0.5                                   # the noise moves v (a quiet cell's std is ~0)
    assert abs(std_n - std_b) <= 0.1 * std_b
    assert abs(mean_n - mean_b) <= 0.2 * std_b
