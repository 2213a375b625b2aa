"""NEST backend: NESTML text, module builds, agreement with Brian2, MPI = 1 process.

Tolerances: hhc's rk4 NEST model is the same classic RK4 as Brian2's `rk4` at the same dt, so spike
times agree to rounding (asserted: same spike counts, |Δt| < dt/2, i.e. the same step). NESTML's
default rkf45 is adaptive (GSL, abs/rel tolerance 1e-6 on each step of 0.01 ms); its spikes are
checked against Brian2 rk4 with the same counts and |Δt| <= 0.05 ms (5 steps), which covers the
difference between RK4's truncation error and rkf45's tolerance on this model.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from hhc import load_results
from hhc.api import run_experiment
from hhc.backends import nest as nb
from hhc.compiler import load_model
from hhc.errors import HHCError

ROOT = Path(__file__).resolve().parent.parent
KENYON = ROOT / "models" / "kenyon_cell.chan"

needs_nest = pytest.mark.skipif(nb.NestBackend.unavailable_reason() is not None,
                                reason=f"NEST backend unavailable: {nb.NestBackend.unavailable_reason()}")


@pytest.fixture(scope="module")
def cell():
    return load_model(KENYON).cell()


def _experiment(tmp_path: Path, name: str, size: int, duration: str, method: str = "rk4",
                init: str = '"-65 mV"', traces: bool = False) -> Path:
    text = f"""
[model]
file = "{KENYON}"
[population]
size = {size}
[simulation]
dt = "0.01 ms"
method = "{method}"
seed = 3
[initial]
v = {init}
[[protocol]]
duration = "20 ms"
inputs = {{ Iapp = "0 pA" }}
[[protocol]]
duration = "{duration}"
inputs = {{ Iapp = "18 pA" }}
[record]
spikes = "all"
"""
    if traces:
        text += f"""
[[record.traces]]
variables = ["v", "NaF.m"]
neurons = "0:{min(size, 2)}"
interval = "0.1 ms"
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _spikes_by_neuron(res, n):
    return [np.sort(res.spike_t[res.spike_i == k]) for k in range(n)]


def _assert_agree(a, b, n, tol):
    sa, sb = _spikes_by_neuron(a, n), _spikes_by_neuron(b, n)
    counts_a, counts_b = [len(x) for x in sa], [len(x) for x in sb]
    assert counts_a == counts_b, f"spike counts differ: {counts_a} vs {counts_b}"
    worst = max((np.abs(x - y).max() for x, y in zip(sa, sb) if len(x)), default=0.0)
    assert worst <= tol, f"spike times differ by up to {worst * 1e3:.4f} ms (tolerance {tol * 1e3:g} ms)"
    assert sum(counts_a) > 0


# ---- text (fast) --------------------------------------------------------------------------------
def test_nestml_rk4_text(cell):
    text = nb.nestml_text(cell, "rk4")
    assert text.startswith("# NESTML model of cell KenyonCell.")
    assert "models/kenyon_cell.chan" in text.splitlines()[1]
    assert "model kenyoncell_rk4:" in text
    for name in ("gbar_NaF nS = 140 nS", "E_KA mV = -81 mV", "C pF = 4 pF", "Iapp pA = 0 pA", "g_leak nS = 0.39 nS"):
        assert name in text
    assert text.count("# stage ") == 4
    assert "equations:" not in text            # hhc integrates; NESTML does not
    assert "onCondition(V_m_old <= V_th and V_m > V_th):" in text
    # common subexpressions: 13 distinct exponentials per stage for the nine gates
    stage1 = text.split("# stage 1")[1].split("# stage 2")[0]
    assert stage1.count("exp(") == 13


def test_nestml_rkf45_text(cell):
    text = nb.nestml_text(cell, "rkf45")
    assert "model kenyoncell_rkf45:" in text
    assert "m_NaF' = (m_NaF_inf - m_NaF) / m_NaF_tau" in text
    assert "inline m_NaF_inf real = 1/(exp(0.15037593984962405*(-30.1 mV - V_m)/(1 mV)) + 1)" in text
    assert "integrate_odes()" in text
    assert "recordable inline I_NaF pA" in text


def test_units_and_names(cell):
    from hhc.compiler import units
    assert nb.nest_scale(units.VOLTAGE) == units.UNITS["mV"].scale
    assert nb.nest_scale(units.CONDUCTANCE) == units.UNITS["nS"].scale
    assert nb.nest_scale(units.CAPACITANCE) == units.UNITS["pF"].scale
    assert nb.quantity(units.unit_symbol("V"), units.VOLTAGE) == "1000 mV"
    assert nb.nest_name("v") == "V_m" and nb.nest_name("e") == "e_" and nb.nest_name("gbar_NaF") == "gbar_NaF"
    with pytest.raises(HHCError, match="unknown integration method 'euler'"):
        nb._variant("euler")


def test_initial_state_is_drawn_once(cell, tmp_path):
    from hhc.experiment import load_experiment, resolve
    exp = resolve(load_experiment(_experiment(tmp_path, "init", 50, "10 ms", init='"uniform(-70 mV, -60 mV)"')), cell)
    a, b = nb.initial_state(cell, exp), nb.initial_state(cell, exp)
    assert set(a) == {"V_m"} | {g.state for g in cell.gates}
    assert np.array_equal(a["V_m"], b["V_m"]) and a["V_m"].min() >= -70 and a["V_m"].max() <= -60


def test_mpi_errors_name_the_missing_piece(cell, tmp_path, monkeypatch):
    from hhc.experiment import load_experiment, resolve
    exp = resolve(load_experiment(_experiment(tmp_path, "m", 4, "10 ms")), cell).with_backend("nest", mpi=2)
    monkeypatch.setenv("HHC_NEST_MPI_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(HHCError, match="nest_mpi.sh"):
        nb._mpi_nest_python(exp)
    monkeypatch.setattr(nb.shutil, "which", lambda name: None)
    with pytest.raises(HHCError, match="mpirun, which is not installed"):
        nb._launch_command(exp, "python", Path("rank.py"), Path("spec.json"))
    launcher = exp.with_backend(launcher="srun -n 64")
    assert nb._launch_command(launcher, "py", Path("r.py"), Path("s.json"))[:3] == ["srun", "-n", "64"]


# ---- builds and runs (slow) ---------------------------------------------------------------------
@needs_nest
@pytest.mark.slow
def test_module_builds_and_is_cached(cell, tmp_path):
    built = nb.build_module(cell, "rk4")
    assert built.so.exists() and (built.directory / "hhc-module.json").exists()
    t0 = time.perf_counter()
    again = nb.build_module(cell, "rk4")
    assert again.directory == built.directory and time.perf_counter() - t0 < 10
    # hhc compile --target nest writes the model and the loadable module
    from hhc.api import compile_model
    files = compile_model(KENYON, target="nest", out_dir=tmp_path)
    assert "kenyoncell_rk4.nestml" in files and (tmp_path / built.so.name).exists()


@needs_nest
@pytest.mark.slow
def test_single_cell_agrees_with_brian2(tmp_path):
    exp = _experiment(tmp_path, "one", 1, "300 ms", traces=True)
    b2 = load_results(run_experiment(exp, out=tmp_path / "b2", backend="brian2", quiet=True))
    ne = load_results(run_experiment(exp, out=tmp_path / "nest", backend="nest", quiet=True))
    _assert_agree(b2, ne, 1, tol=0.5e-5)
    assert ne.meta["backend"] == "nest" and ne.meta["method"] == "rk4"
    tr = ne.traces[0]
    assert tr.variables["v"].shape[1] == 1
    # samples at the same times agree closely (NEST samples from t = interval, Brian2 from 0)
    bt = b2.traces[0]
    common, ia, ib = np.intersect1d(np.round(bt.t, 9), np.round(tr.t, 9), return_indices=True)
    assert len(common) > 1000
    assert np.abs(bt.variables["v"][ia] - tr.variables["v"][ib]).max() < 1e-6    # 1 uV
    rkf = load_results(_run_method(exp, tmp_path, "rkf45"))
    _assert_agree(b2, rkf, 1, tol=5e-5)


def _run_method(exp_path: Path, tmp_path: Path, method: str) -> Path:
    text = exp_path.read_text().replace('method = "rk4"', f'method = "{method}"')
    path = tmp_path / f"{exp_path.stem}_{method}.toml"
    path.write_text(text)
    return run_experiment(path, out=tmp_path / f"{exp_path.stem}_{method}", backend="nest", quiet=True)


@needs_nest
@pytest.mark.slow
def test_population_agrees_with_brian2(tmp_path):
    n = 20
    exp = _experiment(tmp_path, "pop", n, "200 ms", init='"uniform(-70 mV, -60 mV)"')
    b2 = load_results(run_experiment(exp, out=tmp_path / "b2", backend="brian2", quiet=True))
    ne = load_results(run_experiment(exp, out=tmp_path / "nest", backend="nest", quiet=True, threads=2))
    _assert_agree(b2, ne, n, tol=0.5e-5)


def _mpi_ready():
    return nb.mpi_python().exists() or os.environ.get("HHC_NEST_MPI_PYTHON")


@needs_nest
@pytest.mark.slow
def test_mpi_two_processes_equal_one(tmp_path):
    """Needs scripts/setup.d/nest_mpi.sh (run by scripts/setup.sh test)."""
    n = 20
    exp = _experiment(tmp_path, "mpi", n, "100 ms", init='"uniform(-70 mV, -60 mV)"', traces=True)
    one = load_results(run_experiment(exp, out=tmp_path / "one", backend="nest", quiet=True))
    two = load_results(run_experiment(exp, out=tmp_path / "two", backend="nest", quiet=True, mpi=2))
    assert two.meta["mpi_processes"] == 2 and two.meta["have_mpi"] is True
    assert sorted(two.meta["local_neurons_per_rank"]) == [10, 10]
    assert np.array_equal(one.spike_i, two.spike_i)
    assert np.array_equal(one.spike_t, two.spike_t)
    assert np.array_equal(one.traces[0].variables["v"], two.traces[0].variables["v"])


@needs_nest
@pytest.mark.slow
def test_pynn_example_same_counts_on_nest_and_brian2():
    import subprocess
    import sys
    counts = {}
    for simulator in ("nest", "brian2"):
        out = subprocess.run([sys.executable, str(ROOT / "examples" / "pynn_kenyon.py"), simulator],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        line = [x for x in out.stdout.splitlines() if x.startswith(f"{simulator}: spike counts")][0]
        counts[simulator] = line.split("counts", 1)[1].strip()
    assert counts["nest"] == counts["brian2"]
    assert counts["nest"] != "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"


def test_traces_cover_the_whole_protocol(tmp_path):
    """NEST delivers a multimeter's last min_delay of samples only after a later step; hhc runs
    past the end so no sample of the protocol is lost (and none after it is kept)."""
    exp = _experiment(tmp_path, "tr", 2, "30 ms", traces=True)
    res = load_results(run_experiment(exp, out=tmp_path / "out", backend="nest", quiet=True))
    t, _, v = res.trace("v")
    assert t.max() <= 0.050 + 1e-9
    assert t.max() >= 0.050 - 0.1e-3 - 1e-9        # the last sample interval is there
    assert np.all(np.isfinite(v))
