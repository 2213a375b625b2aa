"""Removable 0/0 rate singularities are rewritten with exprel and evaluate exactly at the root."""
from __future__ import annotations

import numpy as np
import pytest
import sympy
from scipy.special import exprel as scipy_exprel

from hhc.compiler import compile_text, ir, load_model
from hhc.compiler.errors import HHCError
from hhc.compiler.singularities import has_removable_singularity, remove_singularities
from hhc.compiler.units import to_si

from paths import SQUID

V = ir.V
MV, PER_MS = 1e-3, 1e3
NUMPY = [{"exprel": scipy_exprel}, "numpy"]


@pytest.fixture(scope="module")
def squid():
    return load_model(SQUID).cell()


def _gate(cell, state):
    return next(g for g in cell.gates if g.state == state)


def _si_function(expr):
    """expr (with units and exprel) → a numpy function of v in volts, result in SI."""
    return sympy.lambdify(V, to_si(expr), modules=NUMPY)


# The formulas as written in hh_squid.chan, for comparison away from the singular point (SI).
def naive_alpha_m(v):
    return 0.1 / MV * (v + 40 * MV) / (1 - np.exp(-(v + 40 * MV) / (10 * MV))) * PER_MS


def naive_alpha_n(v):
    return 0.01 / MV * (v + 55 * MV) / (1 - np.exp(-(v + 55 * MV) / (10 * MV))) * PER_MS


@pytest.mark.parametrize("state", ["m_HHNa", "n_HHK"])
def test_squid_rates_are_rewritten_with_exprel(squid, state):
    gate = _gate(squid, state)
    assert gate.alpha.has(ir.exprel)
    assert not gate.beta.has(ir.exprel)
    assert gate.steady_state.has(ir.exprel) and gate.time_constant.has(ir.exprel)


def test_rates_without_a_singularity_are_left_alone(squid):
    h = _gate(squid, "h_HHNa")
    assert not h.alpha.has(ir.exprel) and not h.beta.has(ir.exprel)


@pytest.mark.parametrize("state, v_mV, limit", [("m_HHNa", -40.0, 1e3), ("n_HHK", -55.0, 0.1e3)])
def test_alpha_at_the_singular_point_is_the_analytic_limit(squid, state, v_mV, limit):
    alpha = _si_function(_gate(squid, state).alpha)
    value = alpha(v_mV * MV)
    assert np.isfinite(value)
    assert value == pytest.approx(limit, rel=1e-12)       # 1/ms and 0.1/ms


def test_naive_formula_is_nan_at_the_singular_point():
    """Why the rewrite matters: the formula as written is 0/0 exactly at the root."""
    with np.errstate(all="ignore"):
        assert np.isnan(naive_alpha_m(np.float64(-0.04)))
        assert np.isnan(naive_alpha_n(np.float64(-0.055)))


@pytest.mark.parametrize("state, naive", [("m_HHNa", naive_alpha_m), ("n_HHK", naive_alpha_n)])
@pytest.mark.parametrize("offset_mV", [-30.0, -5.0, -2.0, 2.0, 3.0, 7.5, 40.0])
def test_rewritten_alpha_matches_the_naive_formula_away_from_the_root(squid, state, naive, offset_mV):
    root = -40.0 if state == "m_HHNa" else -55.0
    v = (root + offset_mV) * MV
    alpha = _si_function(_gate(squid, state).alpha)
    assert alpha(v) == pytest.approx(naive(v), rel=1e-9)


@pytest.mark.parametrize("state", ["m_HHNa", "n_HHK"])
def test_steady_state_and_tau_are_finite_and_continuous_at_the_root(squid, state):
    gate = _gate(squid, state)
    root = -40.0 if state == "m_HHNa" else -55.0
    vs = np.array([root - 1e-6, root, root + 1e-6]) * MV
    for expr in (gate.steady_state, gate.time_constant):
        values = _si_function(expr)(vs)
        assert np.all(np.isfinite(values))
        assert values[1] == pytest.approx(values[0], rel=1e-6)
        assert values[1] == pytest.approx(values[2], rel=1e-6)


def test_exprel_function_itself():
    x = sympy.Symbol("x")
    assert ir.exprel(0) == 1
    assert ir.exprel(x).rewrite(sympy.exp) == (sympy.exp(x) - 1) / x
    # derivative agrees with the limit form numerically
    d = sympy.lambdify(x, sympy.diff(ir.exprel(x), x))
    assert d(0.5) == pytest.approx(float(sympy.diff((sympy.exp(x) - 1) / x, x).subs(x, 0.5)))


# ---- which forms are rewritten --------------------------------------------------------------

mV = sympy.Symbol("unit_mV", positive=True)


def test_textbook_form_with_exp_minus_one_in_the_denominator():
    expr = (V + 40 * mV) / (sympy.exp((V + 40 * mV) / (10 * mV)) - 1)
    rewritten = remove_singularities(expr, V)
    assert rewritten.has(ir.exprel)
    f = sympy.lambdify(V, to_si(rewritten), modules=NUMPY)
    assert f(-0.04) == pytest.approx(0.01)                  # limit: 10 mV in volts


def test_non_removable_singularity_is_left_unchanged():
    # 1/(1 - exp(...)) alone: a pole at -40 mV, not 0/0 — nothing to rewrite
    expr = 1 / (1 - sympy.exp(-(V + 40 * mV) / (10 * mV)))
    assert remove_singularities(expr, V) == expr
    assert not has_removable_singularity(expr, V)


def test_numerator_with_a_different_root_is_left_unchanged():
    expr = (V + 30 * mV) / (1 - sympy.exp(-(V + 40 * mV) / (10 * mV)))
    assert remove_singularities(expr, V) == expr


def test_nonlinear_exponent_is_left_unchanged():
    expr = (V + 40 * mV) / (1 - sympy.exp(-((V + 40 * mV) / (10 * mV)) ** 2))
    assert remove_singularities(expr, V) == expr


def test_non_removable_form_in_a_channel_is_refused_at_its_line():
    """Not rewritten (not 0/0), so the rate is infinite at -40 mV: the checker says so there."""
    text = ("channel P {\n    gbar = 1 nS\n    E = 0 mV\n    gate m ^ 1 {\n"
            "        alpha = 1 / ms / (1 - exp(-(v + 40 mV) / 10 mV))\n        beta = 1 / ms\n    }\n}\n")
    with pytest.raises(HHCError, match="alpha of gate m of channel P is not finite at v = -40 mV") as info:
        compile_text(text)
    assert info.value.location.line == 5


def test_rewrite_inside_a_helper_and_a_sum():
    text = ("channel P {\n    gbar = 1 nS\n    E = 0 mV\n    gate m ^ 1 {\n"
            "        alpha = 0.1 / ms + 0.1 / mV / ms * (v + 40 mV) / (1 - exp(-(v + 40 mV) / 10 mV))\n"
            "        beta = 1 / ms\n    }\n}\n")
    alpha = compile_text(text).channels[0].gates[0].alpha
    assert alpha.has(ir.exprel)
    assert _si_function(alpha)(-0.04) == pytest.approx(100 + 1000)
