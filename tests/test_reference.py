"""hhc reference: the IR right-hand side in SI, solved by SciPy; convergence in the tolerance."""
import numpy as np
import pytest

from hhc.api import prepare
from hhc.compiler import load_model
from hhc.backends.reference import build_rhs, compute_reference, sample_indices
from hhc.backends.results import load_results

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


@pytest.mark.slow
def test_reference_agrees_with_brian2_rk4(tmp_path, cli, experiment):
    exp = experiment("300 ms")
    assert cli("run", exp, "--out", tmp_path / "b2").returncode == 0
    assert cli("reference", exp, "--sample", "6", "--out", tmp_path / "ref").returncode == 0
    res = cli("compare", tmp_path / "b2", tmp_path / "ref", "--report", tmp_path / "rep", "--no-plots")
    assert res.returncode == 0, res.stdout
