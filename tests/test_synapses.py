"""Synapses against their closed forms: the conductance time course of each kind after one
presynaptic spike, and the postsynaptic potential of a current-based synapse on a passive cell."""
from __future__ import annotations

import math

import numpy as np
import pytest

from builders import phase, trace, write_experiment
from paths import DATA

from hhc.api import run_experiment
from hhc.backends.results import load_results
from hhc.compiler import compile_text
from hhc.compiler.errors import HHCError
from test_parser import assert_error, error_of

KINDS = DATA / "synapse_kinds.chan"
T_ARRIVAL = 0.011          # the source spike at 10 ms, 1 ms delay


def _experiment(tmp_path, backend="reference", method="DOP853", dt="0.01 ms"):
    proj = [{"source": "S", "target": target, "synapse": syn, "rule": "one_to_one", "weight": w, "delay": "1 ms"}
            for target, syn, w in (("G", "Sexp", "1 nS"), ("G", "Salpha", "2 nS"), ("G", "Sdouble", "3 nS"),
                                   ("I", "Icur", "10 pA"))]
    return write_experiment(
        tmp_path / "syn.toml", model=KINDS, cell="Conductances", size=1, dt=dt, method=method, initial=None,
        population={"name": "G"}, record={"spikes": "none"},
        network={"populations": {"I": {"cell": "Current", "size": 1}},
                 "sources": {"S": {"kind": "spike_times", "times": [[10.0]]}}, "projections": proj},
        protocol=[phase("40 ms")],
        traces=[trace(["v", "g_Sexp", "g_Salpha", "a_Sdouble", "b_Sdouble"], [0], interval="0.05 ms")],
        backend=backend)


def closed_forms(t):
    s = np.clip(t - T_ARRIVAL, 0, None)
    on = t >= T_ARRIVAL
    g_exp = np.where(on, 1e-9 * np.exp(-s / 3e-3), 0)
    g_alpha = np.where(on, 2e-9 * (s / 2e-3) * np.exp(1 - s / 2e-3), 0)
    tr, td = 1e-3, 6e-3
    tp = tr * td / (td - tr) * math.log(td / tr)
    peak = math.exp(-tp / td) - math.exp(-tp / tr)
    g_double = np.where(on, 3e-9 * (np.exp(-s / td) - np.exp(-s / tr)) / peak, 0)
    return g_exp, g_alpha, g_double


@pytest.mark.slow
def test_each_synapse_kind_follows_its_closed_form_on_the_reference(tmp_path):
    res = load_results(run_experiment(_experiment(tmp_path), out=tmp_path / "run", quiet=True))
    tr = res.traces[0]
    t = tr.t
    g_exp, g_alpha, g_double = closed_forms(t)
    got = tr.variables
    away = np.abs(t - T_ARRIVAL) > 1e-6          # the jump itself is at one instant
    np.testing.assert_allclose(got["g_Sexp"][away, 0], g_exp[away], rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose(got["g_Salpha"][away, 0], g_alpha[away], rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose((got["a_Sdouble"] - got["b_Sdouble"])[away, 0], g_double[away], rtol=1e-6, atol=1e-15)
    assert np.max(got["a_Sdouble"] - got["b_Sdouble"]) == pytest.approx(3e-9, rel=1e-3)   # peaks at its weight
    np.testing.assert_allclose(got["v"][:, 0], -0.070, atol=1e-12)      # E = leak E: no current


def test_current_based_psp_follows_its_closed_form_on_the_reference(tmp_path):
    """C dv/dt = -g_L (v - E_L) + w e^(-s/tau): v - E_L = w tau tau_m / (C (tau_m - tau)) (e^(-s/tau_m) - e^(-s/tau))."""
    path = _experiment(tmp_path)
    path.write_text(path.read_text().replace('[population]', '[population]').replace(
        'variables = ["v", "g_Sexp", "g_Salpha", "a_Sdouble", "b_Sdouble"]', 'variables = ["v"]'))
    from hhc.api import prepare
    from hhc.backends.reference_network import run_network_reference
    exp, cell, _ = prepare(path, choose_auto=False)
    # the current-based cell is the second population: read it through the network reference's trace of it
    res = run_network_reference(cell, exp, "DOP853", 1e-10, record_population="I")
    t, v = res.traces[0].t, res.traces[0].variables["v"][:, 0]
    s = np.clip(t - T_ARRIVAL, 0, None)
    tau, tau_m, w, c = 5e-3, 20e-3, 10e-12, 100e-12
    expected = -0.070 + np.where(t >= T_ARRIVAL, w * tau * tau_m / (c * (tau_m - tau)) * (np.exp(-s / tau_m) - np.exp(-s / tau)), 0)
    np.testing.assert_allclose(v, expected, rtol=0, atol=1e-9)
    assert v.max() + 0.070 > 0.3e-3                                      # a PSP of about 0.4 mV


@pytest.mark.parametrize("text, where, words", [
    ("synapse A expo { tau = 2 ms }", (1, 11), ["unknown synapse kind 'expo'", "did you mean 'exponential'?"]),
    ("synapse A exponential { tau = 2 mV }", (1, 31), ["tau of synapse A must be a time"]),
    ("synapse A exponential { E = 0 mV }", (1, 9), ["synapse A (exponential) has no 'tau'"]),
    ("synapse A double_exponential { tau_rise = 5 ms; tau_decay = 2 ms }", (1, 61), ["must be longer than its tau_rise"]),
    ("synapse A alpha { tau = 2 ms; gmax = 1 nS }", (1, 31), ["unknown setting 'gmax' of synapse A"]),
    ("synapse A alpha { tau = 2 ms }\ncell C { C = 1 pF; synapses B }", (2, 29), ["unknown synapse 'B'"]),
])
def test_synapse_mistakes_are_located(text, where, words):
    assert_error(error_of(text), *where, *words)
