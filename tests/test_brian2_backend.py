"""The Brian2 backend: what it generates, and that it simulates the seed model exactly."""
import numpy as np
import pytest
import sympy

from hhc.backends.brian2 import generate as b2backend
from hhc.compiler import load_model, units

from paths import KENYON, SQUID


@pytest.fixture(scope="module")
def kenyon():
    return load_model(KENYON).cell("KenyonCell")


@pytest.fixture(scope="module")
def module(kenyon, tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / b2backend.module_filename(kenyon)
    path.write_text(b2backend.module_text(kenyon))
    return b2backend.import_generated(path)


def test_header_names_source_and_version(module):
    import hhc
    text = open(module.__file__).read()
    assert "models/kenyon_cell.chan" in text.splitlines()[2] or "kenyon_cell.chan" in text[:300]
    assert f"hhc {hhc.__version__}" in text[:300]


def test_equations_parse_in_brian2_with_the_expected_variables(module):
    from brian2 import Equations
    eqs = Equations(module.EQUATIONS)
    assert set(eqs.diff_eq_names) == {"v", "m_NaF", "h_NaF", "m_NaS", "h_NaS", "m_Kv", "m_Ks", "h_Ks",
                                      "m_KA", "h_KA"}
    from brian2 import volt
    assert eqs["v"].dim == volt.dim
    assert {"I_NaF", "I_NaS", "I_Kv", "I_Ks", "I_KA", "I_leak"} <= set(eqs.subexpr_names)
    assert "Iapp" in eqs.parameter_names


# The researcher's formulas, written out by hand (v in mV, times in ms).
def _sig(x):
    return 1 / (1 + np.exp(x))


SEED_FORMULAS = {
    "m_NaF_inf": lambda v: _sig((-30.1 - v) / 6.65),
    "m_NaF_tau": lambda v: 0.093 + (0.83 - 0.093) * _sig((v + 20.3) / 6.45),
    "h_NaF_inf": lambda v: _sig((v + 51.4) / 5.9),
    "h_NaF_tau": lambda v: 0.12 + (1.66 - 0.12) * _sig((v + 8.03) / 8.69),
    "h_NaS_tau": lambda v: 1.9 + (12.24 - 1.9) * _sig((v + 32.6) / 8),
    "m_Kv_inf": lambda v: _sig((-37.6 - v) / 27.24),
    "m_Kv_tau": lambda v: 1.85 + (3.53 - 1.85) * _sig((v - 45) / 13.71),
    "m_Ks_tau": lambda v: 0.5 + (5 - 0.5) * _sig((v - 20) / 20),
    "h_Ks_tau": lambda v: 150 + (200 - 150) * _sig((v - 52) / 15),
    "h_KA_inf": lambda v: _sig((v + 74.7) / 7),
    "m_KA_inf": lambda v: _sig((-20.1 - v) / 16.1),
    "m_KA_tau": lambda v: 0.35 + (1.65 - 0.35) * _sig((v - 20) / 20) * _sig((v + 20) / 12),
    "h_KA_tau": lambda v: 2.5 + (90 - 2.5) * _sig((v - 52) / 15) * _sig((v + 62) / 16),
}


@pytest.mark.parametrize("name", sorted(SEED_FORMULAS))
def test_gate_functions_equal_the_seed_formulas(kenyon, name):
    gate = next(g for g in kenyon.gates if name.startswith(g.state + "_"))
    expr = gate.steady_state if name.endswith("_inf") else gate.time_constant
    helpers = {e.symbol: e.expr for e in kenyon.expressions}
    expr = units.to_si(expr.xreplace(helpers))
    f = sympy.lambdify(sympy.Symbol("v"), expr, "numpy")
    v_mv = np.linspace(-120, 60, 37)
    got = f(v_mv * 1e-3) * (1e3 if name.endswith("_tau") else 1)
    assert got == pytest.approx(SEED_FORMULAS[name](v_mv), rel=1e-12)


def test_numbers_are_printed_to_double_precision():
    x = sympy.Rational(20, 133) * sympy.Symbol("v")
    assert b2backend.brian_expr(x) == "0.15037593984962405*v"
    assert float(b2backend.brian_expr(sympy.Rational(1, 3))) == 1 / 3


def test_squid_rates_use_exprel(tmp_path):
    cell = load_model(SQUID).cell()
    text = b2backend.equations(cell)
    assert text.count("exprel(") == 2
    from brian2 import Equations
    Equations(text)


def _spikes(group_spikes):
    i, t = group_spikes
    order = np.lexsort((t, i))
    return i[order], t[order]


def test_seed_equivalence(module):
    """hhc's compiled Kenyon cell and a hand transcription of the seed script give identical spike
    trains for the same method and dt (rk4, 0.01 ms), on runtime."""
    import brian2 as b2
    from fixtures.seed_kenyon import run_seed
    protocol = ((50 * b2.ms, 0 * b2.pA), (300 * b2.ms, 18 * b2.pA))
    seed_i, seed_t = _spikes(run_seed(3, protocol, method="rk4", dt=0.01 * b2.ms, init="rest"))

    b2.start_scope()
    group = module.build_neurons(3, method="rk4", dt=0.01 * b2.ms)
    mon = b2.SpikeMonitor(group)
    net = b2.Network(group, mon)
    for duration, current in protocol:
        group.Iapp = current
        net.run(duration)
    hhc_i, hhc_t = _spikes((np.asarray(mon.i[:]), np.asarray(mon.t_[:])))
    assert len(seed_t) > 30                      # the cells really fire
    assert np.array_equal(seed_i, hhc_i)
    assert np.array_equal(seed_t, hhc_t)


@pytest.mark.slow
def test_against_fine_step_reference(module):
    """rk4 at dt 0.01 ms against rk4 at dt 0.001 ms (a reference 10× finer): the same spike count
    and spike times within 0.05 ms (stated tolerance: 5 steps of the coarse run)."""
    import brian2 as b2

    def run(dt):
        b2.start_scope()
        group = module.build_neurons(1, method="rk4", dt=dt)
        mon = b2.SpikeMonitor(group)
        net = b2.Network(group, mon)
        group.Iapp = 0 * b2.pA
        net.run(50 * b2.ms)
        group.Iapp = 18 * b2.pA
        net.run(300 * b2.ms)
        return np.asarray(mon.t_[:])

    coarse, fine = run(0.01 * b2.ms), run(0.001 * b2.ms)
    assert len(coarse) == len(fine) > 10
    assert np.max(np.abs(coarse - fine)) <= 0.05e-3


def test_initial_values_follow_the_experiment(module):
    """A gate the experiment puts at its steady state (None) starts there at its neuron's v, even
    where the cell's own initial block gives it a value; a given value is kept; a state the
    experiment does not name keeps the cell's value (NaF.h = 1 in the Kenyon cell)."""
    import brian2 as b2
    from hhc.backends.brian2.network import set_population_initial
    b2.start_scope()
    group = module.build_neurons(2, method="rk4", dt=0.01 * b2.ms)
    v = np.array([-65.0, -58.0])
    arrays = {"v": v * 1e-3, "m_NaF": None, "h_KA": None, "m_Kv": np.array([0.25, 0.5])}
    set_population_initial(group, module, arrays)
    assert np.asarray(group.m_NaF[:]) == pytest.approx(SEED_FORMULAS["m_NaF_inf"](v), rel=1e-12)
    assert np.asarray(group.h_KA[:]) == pytest.approx(SEED_FORMULAS["h_KA_inf"](v), rel=1e-12)
    assert list(group.m_Kv[:]) == [0.25, 0.5]
    assert list(group.h_NaF[:]) == [1.0, 1.0]
