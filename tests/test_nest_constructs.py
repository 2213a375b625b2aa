"""NEST backend and the grown language (issue 14): temperature and Q10, a calcium pool, nernst(),
a piecewise time constant, a passive channel and a voltage shift, all in tests/data/constructs.chan.

Tolerances: hhc's fixed-step rk4 at dt 0.01 ms against the SciPy reference (DOP853, rtol 1e-9):
`hhc compare`'s defaults must say AGREE; every spike is the reference's to within one step (hhc
stamps a spike with the start of the step in which v crossed, so |dt| < dt = 0.01 ms; measured
0.0095 ms); the pool's calcium and the calcium-gated w, sampled every 0.1 ms, within 1e-5 of their
peak (measured: cai 2e-10 mM off at a peak of 3.8e-3 mM, 5e-8 of it; w 1.3e-10 at 4.8e-3). The
emitted right-hand side is the IR's to rounding (1e-11 relative), on both sides of the piecewise
boundary.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sympy

from hhc.backends.base import UnsupportedError
from hhc.backends.nest import nestml
from hhc.compiler import ir, load_model, units

from paths import DATA

CONSTRUCTS = DATA / "constructs.chan"
EXPERIMENT = DATA / "constructs.toml"


@pytest.fixture(scope="module")
def cell():
    return load_model(CONSTRUCTS).cell()


# ---- text (fast) --------------------------------------------------------------------------------
def test_header_units_and_grouping(cell):
    text = nestml.nestml_text(cell, "rk4")
    lines = text.splitlines()
    assert lines[0] == "# NESTML model of cell Constructs." and "constructs.chan" in lines[1]
    assert "concentrations mM (NESTML: mmol/l)" in text and "temperatures degC (NESTML: deg_C)" in text
    state = text.split("    state:")[1].split("    parameters:")[0]
    for heading in ("# channel Na", "# channel CaT", "# channel KCa", "# pool ca: decaying pool"):
        assert heading in state
    assert "# channel Leak" not in state                         # passive: no state
    assert "#   dcai/dt = -(I_CaT) / (2 F area depth_ca) - (cai - resting_ca) / decay_ca" in state
    assert "cai mmol/l = 0.0001 * ((1 mmol) / (1 l))    # ca concentration inside, mM" in state
    params = text.split("    parameters:")[1].split("    output:")[0]
    for line in ("# cell", "temperature deg_C = 34 deg_C", "# channel Kd (k)", "vshift_Kd mV = 2 mV",
                 "rate_factor_n_Kd real = 1.5", "# channel CaT (ca)", "q10_CaT real = 3",
                 "q10_temperature_h_CaT deg_C = 24 deg_C", "# channel Leak (passive)", "gbar_Leak nS/um**2 = ",
                 "# pool ca (decaying)", "resting_ca mmol/l = 0.0001 * ((1 mmol) / (1 l))",
                 "cao mmol/l = 2 * ((1 mmol) / (1 l))", "decay_ca ms = 20 ms", "depth_ca um = 1 um"):
        assert line in params, line
    # every parameter of the IR once, in its group
    assert sorted(nestml.nest_name(p.name) for p in cell.parameters) == sorted(
        line.split()[0] for line in params.splitlines() if line.strip() and not line.strip().startswith("#")
        and line.split()[0] not in ("Iapp", "V_th"))


def test_update_block_has_every_construct(cell):
    text = nestml.nestml_text(cell, "rk4")
    before, stage1 = text.split("# stage 1")[0], text.split("# stage 1")[1].split("# stage 2")[0]
    # Q10 factors once per step (not per evaluation), with 1/(C area)
    assert "real = p_q10_CaT**(" in before and "real = p_q10_h_CaT**(" in before
    assert "p_q10" not in stage1
    # piecewise tau: a ternary; Nernst: ln; the pool's state in mM
    assert "(y_V_m < -80.0 ? " in stage1
    assert "ln(p_cao/y_cai)" in stage1
    assert "y_cai real = cai / ((1 mmol) / (1 l))" in before
    assert "cai = (y_cai + h / 6 * (k1_cai + 2 * k2_cai + 2 * k3_cai + k4_cai)) * ((1 mmol) / (1 l))" in text
    assert "p_temperature real = temperature / (1 deg_C)" in before
    assert "p_q10_CaT real = q10_CaT\n" in before                   # dimensionless: no "/ 1"


def test_rkf45_text(cell):
    text = nestml.nestml_text(cell, "rkf45")
    eq = text.split("    equations:")[1].split("    parameters:")[0]
    assert "inline E_CaT mV = (0.04308666631140991*(temperature + 273.15 deg_C)*ln(cao/cai)) * ((1 mV) / (1 deg_C))" in eq
    assert "inline phi_m_CaT real = q10_CaT**(" in eq and "/phi_m_CaT" in eq
    assert "inline phi_n_Kd real = rate_factor_n_Kd    # fixed rate factor" in eq
    assert "inline h_CaT_tau ms = (V_m < -80 mV ? " in eq
    assert "cai' = " in eq and "# pool ca: decaying pool" in eq
    assert "recordable inline I_Leak pA = area*gbar_Leak*(-E_Leak + V_m)" in eq
    assert "recordable inline I_leak pA = 0 pA" in eq              # no cell leak: a typed zero


def test_units_of_the_new_dimensions():
    conc, temp = units.CONCENTRATION, units.TEMPERATURE
    assert nestml.nest_scale(conc) == 1 and nestml.nest_scale(temp) == 1     # mM = mol/m3; degC
    assert nestml.nestml_unit(conc) == "mmol/l" and nestml.nestml_unit(temp) == "deg_C"
    assert nestml.quantity(50 * units.unit_symbol("nM"), conc) == "5e-05 * ((1 mmol) / (1 l))"
    assert nestml.quantity(34 * units.unit_symbol("degC"), temp) == "34 deg_C"
    # dimensions without a name are composed of NEST's units: a fixed-factor pool's rho, a rate per mM
    rho = units.AMOUNT / (units.LENGTH * units.CURRENT * units.TIME)
    assert nestml.nestml_unit(rho) == "amol/(um*ms*pA)"
    assert nestml.nest_scale(rho) == nestml.nest_scale(units.AMOUNT) / (
        nestml.nest_scale(units.LENGTH) * nestml.nest_scale(units.CURRENT) * nestml.nest_scale(units.TIME))
    assert nestml.nestml_unit(units.RATE / conc) == "l/(ms*mmol)"
    assert nestml.one_unit(units.RATE / conc) == "((1 l) / ((1 ms) * (1 mmol)))"


def test_piecewise_and_logic_print_as_nestml():
    v, mv, ms = ir.V, units.unit_symbol("mV"), units.unit_symbol("ms")
    e = sympy.Piecewise((ms, sympy.And(v < -80 * mv, v > -100 * mv)), (2 * ms, sympy.Or(v <= 3 * mv, v >= 4 * mv)),
                        (3 * ms, True))
    # the update block (C++ as written): and/or
    assert nestml.PlainPrinter().doprint(nestml._to_nest_numbers(e)) == (
        "(V_m > -100.0 and V_m < -80.0 ? 1.0 : (V_m >= 4.0 or V_m <= 3.0 ? 2.0 : 3.0))")
    # equations (rkf45, read by ODE-toolbox, which takes no and/or): nested single comparisons
    assert nestml.nestml_expr(e) == (
        "(V_m > -100 mV ? (V_m < -80 mV ? (1 ms) : (V_m >= 4 mV ? 2 ms : (V_m <= 3 mV ? 2 ms : 3 ms))) : "
        "(V_m >= 4 mV ? 2 ms : (V_m <= 3 mV ? 2 ms : 3 ms)))")
    with pytest.raises(UnsupportedError, match="without a final 'else' branch is not supported by target nest"):
        nestml.nestml_expr(sympy.Piecewise((ms, v < 0 * mv)))


_POOL = "pool ca { resting = 100 nM; decay = 20 ms; depth = 1 um; outside = 2 mM }"
POOLS = {"decaying": _POOL,
         "fixed_factor": "pool ca { initial = 50 nM; resting = 100 nM; decay = 20 ms; rho = 3e-7 mol/m/A/s; "
                         "outside = 2 mM }",
         "fixed": "pool ca { resting = 100 nM; outside = 2 mM }"}


def _with_pool(kind: str) -> ir.Cell:
    from hhc.compiler.checker import compile_text
    text = CONSTRUCTS.read_text()
    assert _POOL in text
    return compile_text(text.replace(_POOL, POOLS[kind]), str(CONSTRUCTS)).cell()


@pytest.mark.parametrize("kind", list(POOLS))
def test_right_hand_side_equals_the_ir(kind):
    """The update block's right-hand side (Q10 hoisted, piecewise as a ternary, the pool of each
    kind) is the IR's (hhc.backends.reference, SI) to rounding, on both sides of the piecewise
    boundary; exponential Euler's slope is the derivative for the gates and, for cai (not linear in
    itself through nernst's log), Brian2's: the coefficient of cai, -1/decay."""
    from hhc.backends.reference import build_rhs
    cell = _with_pool(kind)
    assert ("cai" in cell.states) == (kind != "fixed")
    ref = build_rhs(cell, jacobian=False)
    prog = nestml._RhsProgram(cell, rates=True)
    values = {sympy.Symbol(f"p_{nestml.nest_name(p.name)}"): p.si_value / float(nestml.nest_scale(p.dimension))
              for p in cell.parameters}
    values[sympy.Symbol("p_Iapp")] = 7.0                         # pA
    rng = np.random.default_rng(4)
    for v_mv in list(np.linspace(-100, 40, 15)) + [-80.001, -79.999]:
        y = [v_mv] + list(rng.uniform(0, 1, len(cell.gates)))
        if kind != "fixed":
            y.append(rng.uniform(1e-5, 5e-3))                    # cai in mM
        env = dict(values)
        env.update({prog.y[s]: float(val) for s, val in zip(prog.states, y)})
        for sym, e in prog.invariant + prog.temps:
            value = e.xreplace(env)
            env[sym] = value if isinstance(value, sympy.logic.boolalg.BooleanAtom) else float(value)
        si = [y[0] * 1e-3] + y[1:]                                # mV -> V; mM = mol/m3
        want = np.array(ref.f_scalar(*si, 7e-12)) * np.array([1.0] + [1e-3] * (len(si) - 1))   # per ms
        got = np.array([float(prog.derivs[s].xreplace(env)) for s in prog.states])
        assert np.allclose(got, want, rtol=1e-11, atol=0), (v_mv, got, want)
        if kind != "fixed":
            assert float(prog.slopes["cai"].xreplace(env)) == pytest.approx(-1 / 20)   # -1/decay, per ms
        k = prog.states.index("h_CaT")
        step = 1e-7
        up, down = list(si), list(si)
        up[k] += step
        down[k] -= step
        numeric = (ref.f_scalar(*up, 7e-12)[k] - ref.f_scalar(*down, 7e-12)[k]) / (2 * step) * 1e-3
        assert float(prog.slopes["h_CaT"].xreplace(env)) == pytest.approx(numeric, rel=1e-6)


def test_other_pools_text():
    ff = nestml.nestml_text(_with_pool("fixed_factor"), "rk4")
    assert "#   dcai/dt = -rho_ca (I_CaT) / area - (cai - resting_ca) / decay_ca" in ff
    assert "rho_ca amol/(um*ms*pA) = 3e-10 * ((1 amol) / ((1 um) * (1 ms) * (1 pA)))" in ff   # 3e-7 mol/m/A/s
    assert "cai mmol/l = 5e-05 * ((1 mmol) / (1 l))" in ff                                    # initial 50 nM
    fixed = nestml.nestml_text(_with_pool("fixed"), "rk4")
    assert "# pool ca (constant: resting)\n        cai mmol/l = 0.0001 * ((1 mmol) / (1 l))" in fixed
    assert "y_cai" not in fixed and "real = ln(p_cao/p_cai)" in fixed.split("# stage 1")[0]   # E_Ca once per step


def test_initial_state_has_the_pool(cell, tmp_path):
    from hhc.backends.nest import run as nest_run
    from hhc.compiler.experiment import load_experiment, resolve
    exp = resolve(load_experiment(EXPERIMENT), cell)
    init = nest_run.initial_state(cell, exp)
    assert set(init) == {"V_m", "cai"} | {g.state for g in cell.gates}
    assert np.allclose(init["cai"], 1e-4)                        # 100 nM in mM
    assert np.allclose(init["V_m"], [-70, -67])


# ---- NESTML itself: its checks of the rkf45 model (about a minute: odetoolbox analyses the ODEs) ---
_CHECK = r"""
import sys, odetoolbox
odetoolbox.PLOT_DEPENDENCY_GRAPH = False
from pynestml.frontend.pynestml_frontend import generate_target
generate_target(input_path=sys.argv[1], target_platform="NONE", target_path=sys.argv[2], logging_level="WARNING")
"""


@pytest.mark.needs_nest
@pytest.mark.slow
def test_nestml_accepts_the_rkf45_model(tmp_path):
    """NESTML's own checks and ODE-toolbox's analysis (units, types, ln, deg_C and mmol/l, the pool's
    ODE, a nested conditional with `and` in an inline) pass on the rkf45 model, without building it
    (the rk4 model is built below): no ERROR. In a child process, as the build: odetoolbox patches
    SymPy."""
    from hhc.compiler.checker import compile_text
    text = CONSTRUCTS.read_text()
    assert "if v < -80 mV else " in text
    text = text.replace("if v < -80 mV else ", "if v < -80 mV else 30 ms if v > 0 mV and v < 10 mV else ")
    cell = compile_text(text, str(CONSTRUCTS)).cell()
    model = tmp_path / "constructs_rkf45.nestml"
    model.write_text(nestml.nestml_text(cell, "rkf45"))
    assert "(V_m > 0 ? (V_m < 10 mV ? 30 ms : " in model.read_text()
    done = subprocess.run([sys.executable, "-c", _CHECK, str(model), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "ERROR" not in log and "Traceback" not in log, log[-3000:]
    assert "constructs_rkf45" in log                                  # it was read


# ---- a build and runs (slow) ---------------------------------------------------------------------
@pytest.mark.needs_nest
@pytest.mark.slow
def test_constructs_on_nest_agree_with_the_reference(tmp_path):
    """One NESTML build (rk4, the experiment's method): NEST agrees with the SciPy reference by
    `hhc compare`'s defaults, spike for spike within a step; cai and w traces agree; 2 threads give
    the same results (the same module)."""
    from hhc import load_results
    from hhc.api import run_experiment
    from hhc.compare import compare_runs
    from hhc.reference import reference_run
    ref_dir = reference_run(EXPERIMENT, sample=2, out=tmp_path / "reference", variables=("v", "cai", "w_KCa"),
                            quiet=True)
    nest_dir = run_experiment(EXPERIMENT, out=tmp_path / "nest", backend="nest", quiet=True)
    (pair,) = compare_runs([ref_dir, nest_dir], plots=False)
    assert pair.agree, (pair.notes, [c.failures for c in pair.failing])
    ref, ne = load_results(ref_dir), load_results(nest_dir)
    assert ne.meta["integrator"] == "hhc rk4 (update block)"
    for n in range(2):
        a, b = np.sort(ref.spike_t[ref.spike_i == n]), np.sort(ne.spike_t[ne.spike_i == n])
        assert len(a) == len(b) > 0 and np.abs(a - b).max() < 1e-5, (n, a, b)
    assert np.allclose(np.sort(ref.spike_t[ref.spike_i == 0]) * 1e3,
                       [98.89, 102.59, 106.66, 111.84, 120.23, 192.33, 223.11, 260.56, 296.14], atol=0.01)
    rt, nt = ref.traces[0], ne.traces[0]
    common, ia, ib = np.intersect1d(np.round(rt.t, 9), np.round(nt.t, 9), return_indices=True)
    assert len(common) > 2900
    for var in ("cai", "w_KCa"):
        a, b = rt.variables[var][ia], nt.variables[var][ib]
        assert a.max() > 0 and np.abs(a - b).max() < 1e-5 * np.abs(a).max(), var
    assert nt.variables["cai"].max() > 1e-3                      # the pool filled: > 1 uM during the bursts
    threads = load_results(run_experiment(EXPERIMENT, out=tmp_path / "threads", backend="nest", threads=2, quiet=True))
    assert np.array_equal(threads.spike_t, ne.spike_t)
    assert np.array_equal(threads.traces[0].variables["cai"], nt.variables["cai"])
