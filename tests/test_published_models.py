"""Published point-neuron models in models/ (issue 14): each compiles, and under its paper's current
step the SciPy reference shows the behaviour the paper describes, which the same cell without the
current responsible does not show (the control cells are the model's own text with one conductance
overridden to 0, so the assertions are about the channel, not about numbers this code produced).

- Pospischil et al. 2008 RS cell (models/pospischil_rs.chan): spike-frequency adaptation by IM.
- Pospischil et al. 2008 LTS cell (models/pospischil_lts.chan): T current + Ca2+ pool + Nernst
  reversal; an early low-threshold burst at the step, and a rebound spike after hyperpolarisation.
- Destexhe et al. 1994 RE cell (models/destexhe_re.chan): low-threshold burst; the Ca2+-activated
  K+ current (IAHP, piecewise tau) lengthens the intervals.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from hhc.api import prepare
from hhc.backends.reference import compute_reference
from hhc.compiler import load_model

from builders import write_experiment
from paths import ROOT

MODELS = ROOT / "models"
EXAMPLES = ROOT / "examples"
CASES = {  # model file -> (cell, example experiment)
    "pospischil_rs.chan": ("PospischilRS", "pospischil_rs.toml"),
    "pospischil_lts.chan": ("PospischilLTS", "pospischil_lts.toml"),
    "destexhe_re.chan": ("DestexheRE", "destexhe_re.toml"),
}


def model_text(name: str, *replacements: tuple[str, str]) -> str:
    """The model file's text with its imports made absolute and each (old, new) replaced once; a
    replacement that does not match fails (the model changed under the test)."""
    text = (MODELS / name).read_text().replace('import "channels/', f'import "{MODELS}/channels/')
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} is not in {name} exactly once"
        text = text.replace(old, new)
    return text


@functools.lru_cache(maxsize=None)
def _spikes(text: str, cell: str, protocol: tuple, v0: str, tmp: str) -> np.ndarray:
    from pathlib import Path
    folder = Path(tmp)
    key = abs(hash((text, cell, protocol, v0)))
    chan = folder / f"m{key}.chan"
    chan.write_text(text)
    exp = write_experiment(folder / f"e{key}.toml", model=str(chan), cell=cell, size=1, dt="0.01 ms",
                           method="rk4", initial={"v": v0}, protocol=list(protocol),
                           record={"spikes": "all"}, traces=[], backend="brian2")
    resolved, ir_cell, _ = prepare(exp)
    return np.asarray(compute_reference(resolved, ir_cell, [0], variables=())["spike_t"]) * 1e3  # ms


@pytest.fixture(scope="module")
def spikes(tmp_path_factory):
    """spikes(text, cell, protocol, v0) -> spike times (ms) of one neuron on the SciPy reference."""
    tmp = str(tmp_path_factory.mktemp("published"))

    def run(text, cell, protocol, v0):
        return _spikes(text, cell, tuple(protocol), v0, tmp)
    return run


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_compiles_with_its_example(name):
    cell_name, example = CASES[name]
    cell = load_model(MODELS / name).cell(cell_name)
    assert cell.temperature is not None
    assert any(i.name == "Iapp" for i in cell.inputs) and cell.threshold is not None
    exp, ir_cell, _ = prepare(EXAMPLES / example)
    assert ir_cell.name == cell_name and exp.size == 1


# ---- Pospischil et al. 2008, regular spiking: adaptation from the M current -------------------

RS_STEP = [("300 ms", "0 nA"), ("400 ms", "0.75 nA"), ("300 ms", "0 nA")]   # demo_PY_RS.hoc


def test_rs_adapts_through_the_m_current(spikes):
    with_m = spikes(model_text("pospischil_rs.chan"), "PospischilRS", RS_STEP, "-70 mV")
    without = spikes(model_text("pospischil_rs.chan", ("IM(gbar = 0.07 mS/cm2", "IM(gbar = 0 mS/cm2")),
                     "PospischilRS", RS_STEP, "-70 mV")
    # fires only during the step, and keeps firing through it
    for t in (with_m, without):
        assert len(t) >= 4 and t[0] > 300 and t[-1] < 700
    isi = np.diff(with_m)
    assert np.all(np.diff(isi) > 0), f"ISIs do not lengthen monotonically: {isi}"
    assert isi[-1] > 2.5 * isi[0]
    # without IM the same cell fires regularly, and more
    plain = np.diff(without)
    assert plain.max() < 1.2 * plain.min()
    assert len(without) > 2 * len(with_m)


def test_rs_temperature_scales_the_kinetics(spikes):
    """The Q10s act (INa/IKd 3, IM 2.3, all at 36 degC): warmer, every gate is faster and the cell
    fires sooner and more during the same step; cooler, the reverse. Still adapting at each."""
    def at(celsius):
        return spikes(model_text("pospischil_rs.chan", ("temperature = 36 degC", f"temperature = {celsius} degC")),
                      "PospischilRS", RS_STEP, "-70 mV")
    cold, normal, hot = at(26), at(36), at(46)
    assert len(cold) >= 2 and len(cold) < len(normal) < len(hot)
    assert np.diff(hot)[0] < np.diff(normal)[0] < np.diff(cold)[0]
    for t in (cold, normal, hot):
        assert np.diff(t)[-1] > 1.5 * np.diff(t)[0]


# ---- Pospischil et al. 2008, low-threshold spiking: T current, Ca2+ pool, Nernst ---------------

LTS_STEP = [("400 ms", "0 nA"), ("400 ms", "0.15 nA"), ("200 ms", "0 nA")]  # demo_PY_LTS.hoc "bursting"
LTS_REBOUND = [("400 ms", "0 nA"), ("400 ms", "-0.075 nA"), ("400 ms", "0 nA")]  # its "LTS" setting


def test_lts_bursts_at_the_step_through_the_t_current(spikes):
    with_t = spikes(model_text("pospischil_lts.chan"), "PospischilLTS", LTS_STEP, "-84 mV")
    without = spikes(model_text("pospischil_lts.chan", ("IT(gbar = 0.4 mS/cm2)", "IT(gbar = 0 mS/cm2)")),
                     "PospischilLTS", LTS_STEP, "-84 mV")
    assert len(with_t) >= 2 and with_t[0] > 400 and with_t[-1] < 800
    # a low-threshold spike: the first spike comes early, the first two close together, and the
    # step gives more spikes than without IT, whose first spike comes late
    assert with_t[0] - 400 < 50
    assert with_t[1] - with_t[0] < 25
    assert len(without) < len(with_t)
    assert len(without) == 0 or without[0] - 400 > 2 * (with_t[0] - 400)


def test_lts_rebound_after_hyperpolarisation(spikes):
    rebound = ("E = -85 mV", "E = -60 mV")
    with_t = spikes(model_text("pospischil_lts.chan", rebound), "PospischilLTS", LTS_REBOUND, "-60 mV")
    without = spikes(model_text("pospischil_lts.chan", rebound, ("IT(gbar = 0.4 mS/cm2)", "IT(gbar = 0 mS/cm2)")),
                     "PospischilLTS", LTS_REBOUND, "-60 mV")
    assert len(without) == 0
    # silent at rest and during the hyperpolarisation, a spike within 150 ms of its end
    assert len(with_t) >= 1 and np.all((with_t > 800) & (with_t < 950))


def test_lts_pool_and_nernst_reversal():
    cell = load_model(MODELS / "pospischil_lts.chan").cell("PospischilLTS")
    assert "cai" in cell.states
    it = next(ch for ch in cell.channels if ch.name == "IT")
    assert it.nernst == "ca"


# ---- Destexhe et al. 1994, thalamic reticular cell: IK[Ca] ------------------------------------

RE_STEP = [("200 ms", "0 nA"), ("300 ms", "0.2 nA"), ("200 ms", "0 nA")]


def test_re_burst_and_its_calcium_activated_ahp(spikes):
    text = model_text("destexhe_re.chan")
    with_ahp = spikes(text, "DestexheRE", RE_STEP, "-90 mV")
    without = spikes(model_text("destexhe_re.chan", ("IAHP(gbar = 10 mS/cm2)", "IAHP(gbar = 0 mS/cm2)")),
                     "DestexheRE", RE_STEP, "-90 mV")
    no_t = spikes(model_text("destexhe_re.chan", ("ITs(gbar = 1.75 mS/cm2", "ITs(gbar = 0 mS/cm2")),
                  "DestexheRE", RE_STEP, "-90 mV")
    # a low-threshold burst: several spikes at > 200 Hz at the start of the step, none without ITs
    assert len(with_ahp) >= 5 and np.all(np.diff(with_ahp[:5]) < 5) and with_ahp[0] > 200
    assert len(no_t) == 0 or no_t[0] - 200 > 2 * (with_ahp[0] - 200)
    # the same burst start without IK[Ca] (it needs the burst's calcium first) ...
    assert without[0] == pytest.approx(with_ahp[0], abs=0.5)
    # ... but IK[Ca] then lengthens the intervals: each of the burst's later intervals is longer,
    # and the step holds fewer spikes
    n = 8
    assert len(with_ahp) > n and len(without) > n
    late = slice(4, n)
    assert np.all(np.diff(with_ahp)[late] > np.diff(without)[late])
    assert len(with_ahp) < len(without)
