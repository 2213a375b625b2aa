"""The constructs published point-neuron models are made of (issue 14): temperature and Q10, ion
pools, Nernst reversals, calcium-dependent gates, piecewise rates, passive channels, voltage shifts.
Their meaning is checked against values worked out by hand, their mistakes against located errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from builders import write_experiment
from paths import ROOT
from test_parser import assert_error, error_of

from hhc.api import prepare
from hhc.backends import reference_c
from hhc.backends.reference import build_rhs, compute_reference, initial_matrix
from hhc.compiler import compile_text, ir, rhs, units
from hhc.compiler.errors import HHCError
from hhc import advise

CONSTRUCTS = ROOT / "tests" / "data" / "constructs.chan"
CONSTRUCTS_TOML = ROOT / "tests" / "data" / "constructs.toml"


def _value(expr, cell, **at):
    """A cell expression's SI value at v and concentrations given in SI (parameters put in)."""
    si = rhs.in_si(cell, rhs.inline(expr, cell))
    return float(si.xreplace({sympy.Symbol(k) if k != "v" else ir.V: val for k, val in at.items()}))


def _cell(body: str, channels: str = "", cell_lines: str = "") -> ir.Cell:
    return compile_text(channels + "cell A {\n    C = 1 uF/cm2\n    area = 1000 um2\n" + cell_lines + body
                        + "    initial { v = -65 mV }\n}\n").cell()


K_CHANNEL = """channel K {
    ion k
    gbar = 5 mS/cm2
    E = -90 mV
    q10 = 3
    q10_temperature = 22 degC
    gate n ^ 4 {
        inf = 1 / (1 + exp(-(v + 30 mV) / 10 mV))
        tau = 4 ms
    }
    gate a ^ 1 {
        alpha = 0.1 / ms
        beta = 0.3 / ms
        q10 = 2
        q10_temperature = 30 degC
    }
}
"""


# ---- temperature and Q10 ----------------------------------------------------------------------

def test_q10_divides_tau_and_multiplies_rates_by_the_temperature_factor():
    cell = _cell("    temperature = 37 degC\n    channels K\n", K_CHANNEL)
    n, a = cell.gates
    assert _value(n.time_constant, cell, v=-0.05) == pytest.approx(4e-3 / 3 ** 1.5, rel=1e-12)
    # the gate's own q10 wins over the channel's
    assert _value(a.alpha, cell, v=-0.05) == pytest.approx(100 * 2 ** 0.7, rel=1e-12)
    assert _value(a.beta, cell, v=-0.05) == pytest.approx(300 * 2 ** 0.7, rel=1e-12)
    assert _value(a.steady_state, cell, v=-0.05) == pytest.approx(0.25, rel=1e-12)
    # NeuroML's q10Settings need the rates at the reference temperature
    assert _value(n.base_time_constant, cell, v=-0.05) == pytest.approx(4e-3, rel=1e-12)
    assert _value(a.base_alpha, cell, v=-0.05) == pytest.approx(100, rel=1e-12)


def test_rate_factor_is_a_fixed_q10():
    cell = _cell("    channels F\n", "channel F { gbar = 1 nS; E = 0 mV\n gate x ^ 1 { inf = 0.5; tau = 6 ms; "
                                    "rate_factor = 3 } }\n")
    assert _value(cell.gates[0].time_constant, cell) == pytest.approx(2e-3)
    assert cell.gates[0].q10.fixed is not None


def test_experiment_temperature_replaces_the_cells(tmp_path):
    chan = tmp_path / "k.chan"
    chan.write_text(K_CHANNEL + "cell A {\n C = 1 uF/cm2\n area = 1000 um2\n temperature = 22 degC\n channels K\n"
                                " input Iapp : current\n initial { v = -65 mV }\n}\n")
    path = write_experiment(tmp_path / "e.toml", model=chan, protocol=[("1 ms", "0 pA")], record={"spikes": "none"})
    text = path.read_text().replace("[model]\n", '[model]\ntemperature = "32 degC"\n')
    path.write_text(text)
    exp, cell, _ = prepare(path, choose_auto=False)
    assert _value(cell.gates[0].time_constant, cell) == pytest.approx(4e-3 / 3, rel=1e-12)
    path.write_text(text.replace('"32 degC"', '"32 mV"'))
    with pytest.raises(HHCError, match=r"temperature must be a temperature"):
        prepare(path, choose_auto=False)


@pytest.mark.parametrize("lines, where, words", [
    ("    q10 = 3\n", (5, 5), ["channel K has q10 but no q10_temperature", "hint:"]),
    ("    q10 = 3\n    q10_temperature = 22 mV\n", (6, 23), ["q10_temperature must be a temperature"]),
    ("    q10 = 3 * v / 1 mV\n    q10_temperature = 22 degC\n", (5, 11), ["must be a constant"]),
    ("    rate_factor = 2\n    q10 = 3\n    q10_temperature = 22 degC\n", (6, 5), ["both q10 and rate_factor"]),
    ("    temperature = 3 degC\n", (5, 5), ["'temperature' is the cell's temperature"]),
    ("    cai = 3 mM\n", (5, 5), ["'cai' is the ca concentration inside the cell"]),
    ("    E2 = nernst(xx)\n", (5, 10), ["nernst() takes the name of an ion", "ions: ca, na, k"]),
    ("    x = 1 mV if v < 3 ms else 2 mV\n", (5, 21), ["cannot compare a voltage (mV) with a time (ms)"]),
    ("    x = 1 mV if v < 3 mV else 2 ms\n", (5, 31), ["both branches of 'if ... else' must have the same"]),
])
def test_mistakes_in_the_new_constructs_are_located(lines, where, words):
    text = ("channel K {\n    ion k\n    gbar = 6 nS\n    E = -81 mV\n" + lines
            + "    gate m ^ 4 {\n        inf = 1 / (1 + exp(-(v + 37 mV) / 27 mV))\n        tau = 2 ms\n    }\n}\n")
    assert_error(error_of(text), *where, *words)


def test_a_cell_must_give_what_its_channels_read():
    q10 = K_CHANNEL
    err = error_of(q10 + "cell A {\n    C = 4 pF\n    area = 100 um2\n    channels K\n    initial { v = -65 mV }\n}\n")
    assert_error(err, 18, 6, "channel K depends on temperature", "add e.g. `temperature = 36 degC`")
    kca = "channel KCa { gbar = 1 nS; E = -90 mV\n gate w ^ 1 { alpha = 1 / ms * cai / 1 mM; beta = 1 / ms } }\n"
    err = error_of(kca + "cell A {\n    C = 4 pF\n    channels KCa\n    initial { v = -65 mV }\n}\n")
    assert_error(err, 3, 6, "channel KCa reads cai", "no pool for ca", "pool ca {")


@pytest.mark.parametrize("pool, where, words", [
    ("pool xx { resting = 1 nM; outside = 2 mM }", (4, 10), ["unknown ion 'xx'"]),
    ("pool ca { resting = 1 nM }", (4, 10), ["pool ca of cell A has no 'outside'"]),
    ("pool ca { resting = 1 nM; outside = 2 mM; depth = 1 um }", (4, 10), ["has depth but no decay"]),
    ("pool ca { resting = 1 nM; outside = 2 mM; decay = 5 ms }", (4, 10), ["neither depth", "nor rho"]),
    ("pool ca { resting = 1 mV; outside = 2 mM }", (4, 25), ["resting of pool ca of cell A must be a concentration"]),
    ("pool ca { resting = 1 nM; outside = 2 mM; decay = -5 ms; depth = 1 um }", (4, 55), ["must be positive"]),
    ("pool ca { resting = 1 nM; outside = 2 mM; decay = 5 ms; depth = 1 um; rho = 1 mol/m/A/s }", (4, 10),
     ["both depth", "and rho"]),
    ("pool ca { resting = 1 nM; outside = 2 mM; decay = 5 ms; depth = 1 um }", (1, 6), ["uses densities (pool ca)",
                                                                                       "but has no area"]),
])
def test_pool_mistakes_are_located(pool, where, words):
    err = error_of(f"cell A {{\n    C = 4 pF\n    initial {{ v = -65 mV }}\n    {pool}\n}}\n")
    assert_error(err, *where, *words)


def test_temperature_out_of_range_is_refused():
    err = error_of("cell A {\n    C = 4 pF\n    temperature = 310 degC\n}\n")
    assert_error(err, 3, 19, "temperature of cell A is 310 degC", "degrees Celsius")


# ---- Nernst, piecewise, passive channels, vshift ------------------------------------------------------

def test_nernst_reversal_of_calcium_at_body_temperature():
    cell = _cell("    temperature = 36 degC\n    channels Ca\n    pool ca { resting = 100 nM; outside = 2 mM }\n",
                 "channel Ca { ion ca; gbar = 1 nS; E = nernst(ca) }\n")
    e_ca = next(e for e in cell.expressions if e.name == "E_Ca")
    # R T / (2 F) ln(2 mM / 100 nM) at 309.15 K: 13.32 mV × ln(20000) = 131.9 mV
    assert _value(e_ca.expr, cell) == pytest.approx(0.1319, abs=2e-4)
    assert cell.channels[0].nernst == "ca" and cell.channels[0].is_passive


def test_piecewise_rate_takes_the_branch_its_condition_names():
    cell = compile_text(CONSTRUCTS.read_text(), str(CONSTRUCTS)).cell()
    h = next(g for g in cell.gates if g.state == "h_CaT")
    factor = 2.5 ** ((34 - 24) / 10)
    assert _value(h.time_constant, cell, v=-0.09) == pytest.approx(math.exp((-90 + 467) / 66.6) * 1e-3 / factor)
    assert _value(h.time_constant, cell, v=-0.05) == pytest.approx((28 + math.exp(-(-50 + 22) / 10.5)) * 1e-3 / factor)


def test_vshift_moves_the_gate_curves_not_the_driving_force():
    shifted = compile_text(CONSTRUCTS.read_text(), str(CONSTRUCTS)).cell()
    plain = compile_text(CONSTRUCTS.read_text().replace("Kd(vshift = 2 mV)", "Kd"), str(CONSTRUCTS)).cell()
    g_shift = next(g for g in shifted.gates if g.state == "n_Kd")
    g_plain = next(g for g in plain.gates if g.state == "n_Kd")
    for v in (-0.07, -0.04, 0.0):
        assert _value(g_shift.steady_state, shifted, v=v) == pytest.approx(_value(g_plain.steady_state, plain,
                                                                                  v=v - 0.002), rel=1e-12)
    kd = next(ch for ch in shifted.channels if ch.name == "Kd")
    assert kd.vshift is not None and rhs.inline(kd.current, shifted).has(ir.V)
    assert not kd.current.has(kd.vshift.symbol)


# ---- pools in the references -----------------------------------------------------------------------

POOL_CELL = """channel CaLeak { ion ca; gbar = 0.01 mS/cm2; E = 120 mV }
cell P {
    C = 1 uF/cm2
    area = 1000 um2
    channels CaLeak
    leak { g = 0.1 mS/cm2; E = -70 mV }
    pool ca { initial = 1 uM; resting = 100 nM; decay = 20 ms; depth = 0.5 um; outside = 2 mM }
    input Iapp : current
    initial { v = -70 mV }
    spike when v rises above 0 mV
}
"""


def test_pool_follows_its_closed_form(tmp_path):
    """With a constant inward calcium current (v settles within a few ms, the channel has no gates),
    cai relaxes with the pool's decay time to resting + the current's share:
    cai(∞) = resting + (-I_Ca) decay / (2 F area depth)."""
    chan = tmp_path / "p.chan"
    chan.write_text(POOL_CELL)
    path = write_experiment(tmp_path / "e.toml", model=chan, protocol=[("400 ms", "0 pA")],
                            initial=None, traces=[{"variables": ["v", "cai"], "neurons": [0], "interval": "1 ms"}])
    exp, cell, _ = prepare(path, choose_auto=False)
    out = compute_reference(exp, cell, [0], variables=("v", "cai"), interval=1e-3)
    t = out["traces"][0].t
    v, cai = (out["traces"][0].variables[k][:, 0] for k in ("v", "cai"))
    g_ca, area = 0.1 * 1e-9 / 1e-12 * 1e-12, 1000e-12      # 0.01 mS/cm2 = 0.1 S/m2, times 1000 um2
    g_ca = 0.1 * area
    i_ca = g_ca * (v[-1] - 0.120)                            # outward-positive, so negative here
    f = 96485.33212
    expected = 1e-4 + (-i_ca) * 0.020 / (2 * f * area * 0.5e-6)
    assert cai[-1] == pytest.approx(expected, rel=1e-6)
    # after v has settled (its time constant is 9 ms), the distance to the end value decays with 20 ms
    late = t > 0.08
    distance = cai[late] - expected
    rate = -np.polyfit(t[late][:60], np.log(np.abs(distance[:60])), 1)[0]
    assert rate == pytest.approx(1 / 0.020, rel=1e-3)
    assert cai[0] == pytest.approx(1e-3)                     # the pool's initial 1 uM, in mol/m3


def test_constructs_cell_spikes_agree_between_the_compiled_and_scipy_references():
    """The C printer and the NumPy printer both read Piecewise, log and the pool: every spike of the
    constructs cell (a rebound burst, then adapting spikes) within 1 µs between the two solvers."""
    exp, cell, _ = prepare(CONSTRUCTS_TOML, choose_auto=False)
    ref = build_rhs(cell, jacobian=False)
    compiled = reference_c.solve(cell, initial_matrix(exp, ref), [p.duration for p in exp.protocol],
                                 advise._input_columns(exp, cell), rtol=1e-11)
    scipy = compute_reference(exp, cell, np.arange(exp.size), variables=())
    for n in range(exp.size):
        theirs = np.sort(scipy["spike_t"][scipy["spike_i"] == n])
        assert len(compiled.trains[n]) == len(theirs) >= 7
        assert np.max(np.abs(compiled.trains[n] - theirs)) < 1e-6
        # the rebound burst: spikes within 30 ms of the end of the hyperpolarising step, before any current
        assert np.sum((theirs > 0.05) & (theirs < 0.15)) >= 3


def test_kca_adaptation_comes_from_the_pool():
    """Spikes fill the pool; the calcium-activated potassium current then lengthens the intervals:
    with the KCa conductance at zero the cell fires more and its longest pause is shorter."""
    exp, cell, _ = prepare(CONSTRUCTS_TOML, choose_auto=False)
    text = CONSTRUCTS.read_text()
    no_kca = compile_text(text.replace("channels Na, Kd(vshift = 2 mV), CaT, KCa, Leak",
                                       "channels Na, Kd(vshift = 2 mV), CaT, KCa(gbar = 0 mS/cm2), Leak"),
                          str(CONSTRUCTS)).cell()
    with_kca = compute_reference(exp, cell, [0], variables=())
    without = compute_reference(exp, no_kca, [0], variables=())
    assert len(without["spike_t"]) > len(with_kca["spike_t"])
    assert np.diff(with_kca["spike_t"]).max() > 1.5 * np.diff(without["spike_t"]).max()


def test_units_of_concentration_and_temperature():
    assert units.UNITS["mM"].dimension == units.CONCENTRATION
    assert float(units.to_si(units.UNITS["nM"].symbol)) == pytest.approx(1e-6)    # mol/m3
    assert units.UNITS["degC"].dimension == units.TEMPERATURE
    assert "K" not in units.UNITS          # no kelvin scale to mix with Celsius values


def test_conditions_group_like_python():
    """`and` binds tighter than `or`; parentheses group conditions."""
    def at(expr_text, v_mv):
        cell = _cell(f"    channels P\n", f"channel P {{ gbar = 1 nS; E = 0 mV; x = {expr_text} }}\n")
        x = next(e for e in cell.expressions if e.name == "x_P")
        return _value(x.expr, cell, v=v_mv * 1e-3)
    loose = "1 if v < -50 mV or v > 0 mV and v < 10 mV else 2"
    grouped = "1 if (v < -50 mV or v > 0 mV) and v < 10 mV else 2"
    assert at(loose, -60) == 1 and at(grouped, -60) == 1
    assert at(loose, 20) == 2 and at(grouped, 20) == 2
    assert at(loose, -70) == 1 and at("1 if (v < -50 mV or v > 0 mV) and v > -65 mV else 2", -70) == 2
