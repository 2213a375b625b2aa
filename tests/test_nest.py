"""NEST backend: NESTML text, module builds, agreement with Brian2, MPI = 1 process.

Tolerances: hhc's fixed-step NEST models (euler, exponential_euler, rk2, rk4) are the same methods
as Brian2's of those names at the same dt, so spike times agree to rounding (asserted: same spike
counts, |Δt| < dt/2, i.e. the same step). NESTML's default rkf45 is adaptive (GSL, abs/rel
tolerance 1e-6 on each step of 0.01 ms); its spikes are checked against Brian2 rk4 with the same
counts and |Δt| <= 0.05 ms (5 steps), which covers the difference between RK4's truncation error
and rkf45's tolerance on this model. The emitted right-hand side itself is checked against the
IR's (hhc.backends.reference) to rounding.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hhc import load_results
from hhc.api import run_experiment
from hhc.backends.nest import build, nestml
from hhc.backends.nest import run as nest_run
from hhc.compiler import load_model
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import RunOverrides

from builders import trace, write_experiment
from paths import EXAMPLES, KENYON, MODELS

RhsProgram = nestml._RhsProgram      # the update block's right-hand side, checked against the IR below


@pytest.fixture(scope="module")
def cell():
    return load_model(KENYON).cell()


def _experiment(tmp_path: Path, name: str, size: int, duration: str, method: str = "rk4",
                init: str = "-65 mV", traces: bool = False, dt: str = "0.01 ms", rest: str = "20 ms") -> Path:
    """Kenyon cells (seed 3): `rest` at 0 pA, then `duration` at 18 pA; spikes of all, and with traces
    v and NaF.m of the first two neurons every 0.1 ms."""
    return write_experiment(
        tmp_path / f"{name}.toml", size=size, dt=dt, method=method, seed=3, initial={"v": init},
        protocol=[(rest, "0 pA"), (duration, "18 pA")], record={"spikes": "all"},
        traces=[trace(["v", "NaF.m"], f"0:{min(size, 2)}", interval="0.1 ms")] if traces else ())


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
    text = nestml.nestml_text(cell, "rk4")
    assert text.startswith("# NESTML model of cell KenyonCell.")
    assert "models/kenyon_cell.chan" in text.splitlines()[1]
    assert "model kenyoncell_rk4:" in text
    for name in ("gbar_NaF nS = 140 nS", "E_KA mV = -81 mV", "C pF = 4 pF", "Iapp pA = 0 pA", "g_leak nS = 0.39 nS"):
        assert name in text
    assert text.count("# stage ") == 4
    assert "equations:" not in text            # hhc integrates; NESTML does not
    assert "onCondition(V_m_old <= V_th and V_m > V_th):" in text
    # 13 distinct exponentials for the nine gates; the five whose rates are multiples of 1/240 per
    # mV (1/20, 1/15, 1/12, 1/16, 1/8) come from one exp and multiplications: 9 per stage
    stage1 = text.split("# stage 1")[1].split("# stage 2")[0]
    assert stage1.count("exp(") == 9
    assert "exp(0.004166666666666667*y_V_m)" in stage1
    # each derivative is one quotient (1/C once per step; m_NaF and m_NaS share a denominator)
    assert stage1.count("/") == 8
    assert "q0 real = 1.0 / (p_C)" in text
    # NaN/overflow detection after the step
    assert "hhc_bad_t ms = -1 ms" in text and "hhc_bad_t = t" in text


@pytest.mark.parametrize("method,stages", [("euler", 1), ("rk2", 2), ("rk4", 4), ("exponential_euler", 1)])
def test_fixed_step_methods_text(cell, method, stages):
    text = nestml.nestml_text(cell, method)
    assert f"model kenyoncell_{method}:" in text
    assert text.count("exp(0.004166666666666667*") == stages
    assert text.count("\n        k1_m_NaF real = ") == 1
    if method == "exponential_euler":
        assert "expm1(a1_V_m * h)" in text and "a1_h_KA real = " in text
    if method == "rk2":
        assert "s2_V_m real = y_V_m + 0.5 * h * k1_V_m" in text and "V_m = (y_V_m + h * k2_V_m) * (1 mV)" in text


@pytest.mark.parametrize("model", ["kenyon_cell.chan", "hh_squid.chan"])
def test_update_block_right_hand_side_equals_the_ir(model):
    """The emitted right-hand side (one quotient per state, shared exponentials, 1/C hoisted) is the
    IR's right-hand side (hhc.backends.reference, SI) to rounding, and exponential Euler's slopes are its
    derivatives with respect to each state."""
    import sympy
    from hhc.backends.reference import build_rhs
    cell = load_model(MODELS / model).cell()
    ref = build_rhs(cell, jacobian=False)
    prog = RhsProgram(cell, rates=True)
    values = {sympy.Symbol(f"p_{nestml.nest_name(p.name)}"): p.si_value / float(nestml.nest_scale(p.dimension))
              for p in cell.parameters}
    inputs = [7e-12 for _ in cell.inputs]                    # 7 pA
    for i, x in zip(cell.inputs, inputs):
        values[sympy.Symbol(f"p_{nestml.nest_name(i.name)}")] = x / float(nestml.nest_scale(i.dimension))
    rng = np.random.default_rng(1)
    per_ms = {s: 1.0 if s == "v" else 1e-3 for s in prog.states}     # SI rates -> NEST units (V/s = mV/ms)
    for v_mv in list(np.linspace(-100, 60, 17)) + [-40.0, -55.0]:
        y = [v_mv] + list(rng.uniform(0, 1, len(prog.states) - 1))
        env = dict(values)
        env.update({prog.y[s]: float(val) for s, val in zip(prog.states, y)})
        for sym, e in prog.invariant + prog.temps:
            env[sym] = float(e.xreplace(env))
        si = [y[0] * 1e-3] + y[1:]
        want = np.array(ref.f_scalar(*si, *inputs)) * np.array([per_ms[s] for s in prog.states])
        got = np.array([float(prog.derivs[s].xreplace(env)) for s in prog.states])
        assert np.allclose(got, want, rtol=1e-11, atol=1e-12 * np.abs(want).max()), (v_mv, got, want)
        for k, s in enumerate(prog.states):                      # slope = df_s/dy_s, by a central difference
            step = 1e-6 * (1 if s == "v" else 1e-3)
            up, down = list(si), list(si)
            up[k] += step
            down[k] -= step
            numeric = (ref.f_scalar(*up, *inputs)[k] - ref.f_scalar(*down, *inputs)[k]) / (2 * step) * 1e-3
            assert float(prog.slopes[s].xreplace(env)) == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_shared_exponentials_are_exact_multiples(cell):
    prog = RhsProgram(cell)
    assert prog.exp_count() == 9
    import sympy
    base = [e for s, e in prog.temps if s.name == "e0"][0]
    assert base == sympy.exp(sympy.Float(1 / 240, 17) * prog.y["v"])
    assert {s.name for s, _ in prog.temps if s.name.startswith("e0")} >= {"e0p12", "e0p15", "e0p20", "e0p30", "e0p16"}


def test_nestml_rkf45_text(cell):
    text = nestml.nestml_text(cell, "rkf45")
    assert "model kenyoncell_rkf45:" in text
    assert "m_NaF' = (m_NaF_inf - m_NaF) / m_NaF_tau" in text
    assert "inline m_NaF_inf real = 1/(exp(0.15037593984962405*(-30.1 mV - V_m)/(1 mV)) + 1)" in text
    assert "integrate_odes()" in text
    assert "recordable inline I_NaF pA" in text


def test_units_and_names(cell):
    from hhc.compiler import units
    assert nestml.nest_scale(units.VOLTAGE) == units.UNITS["mV"].scale
    assert nestml.nest_scale(units.CONDUCTANCE) == units.UNITS["nS"].scale
    assert nestml.nest_scale(units.CAPACITANCE) == units.UNITS["pF"].scale
    assert nestml.quantity(units.unit_symbol("V"), units.VOLTAGE) == "1000 mV"
    assert nestml.nest_name("v") == "V_m" and nestml.nest_name("e") == "e_" and nestml.nest_name("gbar_NaF") == "gbar_NaF"
    with pytest.raises(HHCError, match="unknown integration method 'heun'"):
        nestml._variant("heun")


def test_initial_state_is_drawn_once(cell, tmp_path):
    from hhc.compiler.experiment import load_experiment, resolve
    exp = resolve(load_experiment(_experiment(tmp_path, "init", 50, "10 ms", init="uniform(-70 mV, -60 mV)")), cell)
    a, b = nest_run.initial_state(cell, exp), nest_run.initial_state(cell, exp)
    assert set(a) == {"V_m"} | {g.state for g in cell.gates}
    assert np.array_equal(a["V_m"], b["V_m"]) and a["V_m"].min() >= -70 and a["V_m"].max() <= -60


def test_mpi_errors_name_the_missing_piece(cell, tmp_path, monkeypatch):
    from hhc.compiler.experiment import load_experiment, resolve
    exp = resolve(load_experiment(_experiment(tmp_path, "m", 4, "10 ms")), cell)
    exp = exp.with_overrides(RunOverrides(backend="nest", mpi=2))
    monkeypatch.setenv("HHC_NEST_MPI_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(HHCError, match="nest_mpi.sh"):
        nest_run._mpi_nest_python(exp)
    monkeypatch.setattr(nest_run.shutil, "which", lambda name: None)
    with pytest.raises(HHCError, match="mpirun, which is not installed"):
        nest_run._launch_command(exp, "python", Path("rank.py"), Path("spec.json"))
    launcher = exp.with_overrides(RunOverrides(launcher="srun -n 64"))
    assert nest_run._launch_command(launcher, "py", Path("r.py"), Path("s.json"))[:3] == ["srun", "-n", "64"]


# ---- builds and runs (slow) ---------------------------------------------------------------------
@pytest.mark.needs_nest
@pytest.mark.slow
def test_module_builds_and_is_cached(cell, tmp_path):
    built = build.build_module(cell, "rk4")
    assert built.so.exists() and (built.directory / "hhc-module.json").exists()
    t0 = time.perf_counter()
    again = build.build_module(cell, "rk4")
    assert again.directory == built.directory and time.perf_counter() - t0 < 10
    # hhc compile --target nest writes the model and the loadable module
    from hhc.api import compile_model
    files = compile_model(KENYON, target="nest", out_dir=tmp_path)
    assert "kenyoncell_rk4.nestml" in files and (tmp_path / built.so.name).exists()


@pytest.mark.needs_nest
@pytest.mark.slow
def test_single_cell_agrees_with_brian2(tmp_path):
    exp = _experiment(tmp_path, "one", 1, "300 ms", traces=True)
    b2 = load_results(run_experiment(exp, out=tmp_path / "b2", backend="brian2", quiet=True))
    ne = load_results(run_experiment(exp, out=tmp_path / "nest", backend="nest", quiet=True))
    _assert_agree(b2, ne, 1, tol=0.5e-5)
    # NEST itself ran hhc's fixed-step rk4 (the update block), not NESTML's rkf45
    assert ne.meta["nest_version"] and ne.meta["integrator"] == "hhc rk4 (update block)"
    tr = ne.traces[0]
    assert tr.variables["v"].shape[1] == 1
    # samples at the same times agree closely (NEST samples from t = interval, Brian2 from 0)
    bt = b2.traces[0]
    common, ia, ib = np.intersect1d(np.round(bt.t, 9), np.round(tr.t, 9), return_indices=True)
    assert len(common) > 1000
    assert np.abs(bt.variables["v"][ia] - tr.variables["v"][ib]).max() < 1e-6    # 1 uV
    rkf = load_results(_run_method(tmp_path, "one", "rkf45", size=1, duration="300 ms", traces=True))
    _assert_agree(b2, rkf, 1, tol=5e-5)


def _run_method(tmp_path: Path, name: str, method: str, **fields) -> Path:
    path = _experiment(tmp_path, f"{name}_{method}", method=method, **fields)
    return run_experiment(path, out=tmp_path / f"{name}_{method}", backend="nest", quiet=True)


@pytest.mark.needs_nest
@pytest.mark.slow
@pytest.mark.parametrize("method", ["rk4", "rk2", "exponential_euler", "euler"])
def test_population_agrees_with_brian2(tmp_path, method):
    """hhc's fixed-step methods on NEST are Brian2's methods of the same name: the same spikes to
    rounding (the same step)."""
    n = 20
    exp = _experiment(tmp_path, "pop", n, "200 ms", method=method, init="uniform(-70 mV, -60 mV)")
    b2 = load_results(run_experiment(exp, out=tmp_path / "b2", backend="brian2", quiet=True))
    ne = load_results(run_experiment(exp, out=tmp_path / "nest", backend="nest", quiet=True, threads=2))
    assert ne.meta["integrator"] == f"hhc {method} (update block)" and b2.meta["method"] == method
    _assert_agree(b2, ne, n, tol=0.5e-5)


@pytest.mark.needs_nest
@pytest.mark.slow
def test_auto_is_the_advisors_choice_on_nest(tmp_path):
    """method = "auto" on nest: the accuracy advisor runs hhc's fixed-step methods on NEST against
    the reference, cheapest first, and takes the first that meets the tolerance; the choice is kept
    in meta.json. (Which one depends on the protocol: on the first second at 18 pA it is rk2, as
    exponential Euler changes spike counts; over this short protocol exponential Euler may do.)"""
    exp = _experiment(tmp_path, "auto", 40, "1.2 s", method="auto", init="uniform(-70 mV, -60 mV)")
    res = load_results(run_experiment(exp, out=tmp_path / "out", backend="nest", quiet=True))
    assert res.meta["nest_version"]                  # NEST ran it
    choice = res.meta["auto_choice"]
    assert res.meta["method"] == choice["method"] and choice["method"] in nestml.FIXED_STEP
    assert res.meta["integrator"] == f"hhc {choice['method']} (update block)"
    assert abs(choice["dt"] - 1e-5) < 1e-15
    # screened on the first second, then judged over the whole 1.22 s: cheapest first
    tried = list(dict.fromkeys(t["method"] for t in choice["tried"]))
    assert tried == ["exponential_euler", "rk2", "rk4"][:len(tried)] and tried[-1] == choice["method"]
    assert choice["tried"][-1]["ok"] and choice["tried"][-1]["duration"] == pytest.approx(res.meta["duration"])
    assert not any(t["ok"] for t in choice["tried"][:-1] if t["duration"] == choice["tried"][-1]["duration"])
    # judged over the whole protocol, with its figures kept
    assert choice["sample_duration"] == pytest.approx(res.meta["duration"])
    assert choice["count_mismatches"] == 0 and choice["spike_time_error"] <= 0.5e-3
    assert len(choice["sample_neurons"]) == 20 and len(choice["distinct_neurons"]) == 20


@pytest.mark.needs_nest
@pytest.mark.slow
def test_blow_up_is_reported(tmp_path):
    """A state that leaves the finite numbers (forward Euler at 0.3 ms) is an error naming the
    neurons and times, not silently missing spikes."""
    # phases of whole steps of 0.3 ms: 21 ms at rest, 129 ms at 18 pA
    exp = _experiment(tmp_path, "blow", 3, "129 ms", method="euler", dt="0.3 ms", rest="21 ms")
    with pytest.raises(HHCError, match="blew up: v of 3 neuron"):
        run_experiment(exp, out=tmp_path / "out", backend="nest", quiet=True)


@pytest.mark.needs_nest
@pytest.mark.needs_mpi_nest
@pytest.mark.slow
def test_mpi_two_processes_equal_one(tmp_path):
    n = 20
    exp = _experiment(tmp_path, "mpi", n, "100 ms", init="uniform(-70 mV, -60 mV)", traces=True)
    one = load_results(run_experiment(exp, out=tmp_path / "one", backend="nest", quiet=True))
    two = load_results(run_experiment(exp, out=tmp_path / "two", backend="nest", quiet=True, mpi=2))
    assert two.meta["mpi_processes"] == 2 and two.meta["have_mpi"] is True
    assert sorted(two.meta["local_neurons_per_rank"]) == [10, 10]
    assert np.array_equal(one.spike_i, two.spike_i)
    assert np.array_equal(one.spike_t, two.spike_t)
    assert np.array_equal(one.traces[0].variables["v"], two.traces[0].variables["v"])


@pytest.mark.needs_nest
@pytest.mark.needs_pynn
@pytest.mark.slow
def test_pynn_example_same_counts_and_v_on_nest_and_brian2():
    import subprocess
    import sys
    counts, v = {}, {}
    for simulator in ("nest", "brian2"):
        out = subprocess.run([sys.executable, str(EXAMPLES / "pynn_kenyon.py"), simulator],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        line = [x for x in out.stdout.splitlines() if x.startswith(f"{simulator}: spike counts")][0]
        counts[simulator] = line.split("counts", 1)[1].strip()
        # v recorded through PyNN on both: same samples, same v before the input step (20 ms)
        v[simulator] = [x for x in out.stdout.splitlines() if x.startswith(f"{simulator}: v recorded")][0]
    assert counts["nest"] == counts["brian2"]
    assert counts["nest"] != "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"
    assert v["nest"].split(":", 1)[1] == v["brian2"].split(":", 1)[1]
    assert "30001 samples x 10 cells every 0.01 ms" in v["nest"]


@pytest.mark.needs_nest
@pytest.mark.slow
def test_traces_cover_the_whole_protocol(tmp_path, monkeypatch):
    """NEST delivers a multimeter's last min_delay of samples only after a later step; hhc runs
    past the end so no sample of the protocol is lost (and none after it is kept). The result folder
    is given relative to the working directory, as `hhc run exp.toml --out out` does."""
    exp = _experiment(tmp_path, "tr", 2, "30 ms", traces=True)
    monkeypatch.chdir(tmp_path)
    res = load_results(run_experiment(exp, out=Path("out"), backend="nest", quiet=True))
    t, _, v = res.trace("v")
    assert t.max() <= 0.050 + 1e-9
    assert t.max() >= 0.050 - 0.1e-3 - 1e-9        # the last sample interval is there
    assert np.all(np.isfinite(v))
