"""The brian2 and pynn targets on every construct of the grown language (issue 14): units of
concentration, temperature and amount; `a if cond else b`; a calcium pool state; temperature, Q10,
vshift and pool parameters (tests/data/constructs.chan, two neurons of tests/data/constructs.toml).

Cheap here: the generated module, the conditional as a select, initial values (NumPy, no compiler).
Slow: runtime and cpp_standalone runs against the SciPy reference, brian2cuda generation and nvcc,
pyNN.brian2 and pyNN.nest.
"""
from __future__ import annotations

import importlib
import re
import subprocess

import numpy as np
import pytest
import sympy

from builders import write_experiment
from hhc.backends.brian2 import generate as b2gen
from hhc.backends.brian2 import network as b2net
from hhc.compiler import load_model, rhs, units
from paths import DATA

MODEL = DATA / "constructs.chan"
EXPERIMENT = DATA / "constructs.toml"
# the SciPy reference's spikes of neuron 0 (ms); the tests compare against a fresh run of it
REFERENCE_NEURON_0 = [98.89, 102.59, 106.66, 111.84, 120.23, 192.33, 223.11, 260.56, 296.14]


@pytest.fixture(scope="module")
def cell():
    return load_model(MODEL).cell()


@pytest.fixture(scope="module")
def module(cell, tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / b2gen.module_filename(cell)
    path.write_text(b2gen.module_text(cell))
    return b2gen.import_generated(path)


@pytest.fixture
def numpy_target():
    import brian2 as b2
    b2.set_device("runtime")
    b2.prefs.codegen.target = "numpy"
    b2.start_scope()
    yield b2
    b2.prefs.codegen.target = "auto"


# ---- what is generated --------------------------------------------------------------------------

def test_module_spells_every_construct(module):
    text = open(module.__file__).read()
    eqs = module.EQUATIONS
    # the pool: its own block with a comment, a concentration state in Brian2's mmolar
    assert "# pool ca (decaying): the ca currents fill a shell depth_ca" in eqs
    assert re.search(r"^dcai/dt = .*I_CaT.*\(-cai \+ resting_ca\)/decay_ca : mmolar$", eqs, re.M)
    # nernst: R T/(zF) log(cao/cai) with the degree-Celsius offset; degC is a kelvin-sized degree
    assert re.search(r"^E_CaT = .*\(temperature \+ 273\.15\*degC\)\*log\(cao/cai\).* : volt$", eqs, re.M)
    assert "degC = 1.0 * kelvin" in text
    # the conditional time constant through hhc_where, its Q10 factor with the temperature difference
    assert re.search(r"^h_CaT_tau = hhc_where\(v < -80\*mV, .*\)/q10_h_CaT\*\*\(0\.1\*\(-q10_temperature_h_CaT "
                     r"\+ temperature\)/degC\) : second$", eqs, re.M)
    assert "vshift_Kd" in eqs and "rate_factor_n_Kd" in eqs and "cai**2/(mM**2*ms)" in eqs
    # the channel grouping stays
    for ch in ("Na (na)", "Kd (k)", "CaT (ca)", "KCa (k)", "Leak"):
        assert f"# channel {ch}\n" in eqs
    # parameters as namespace constants with their units
    ns = module.NAMESPACE
    import brian2 as b2
    assert ns["temperature"] == 34 * b2.kelvin and ns["q10_CaT"] == 3 and ns["q10_h_CaT"] == 2.5
    assert ns["resting_ca"] == 100 * b2.nM and ns["cao"] == 2 * b2.mM and ns["depth_ca"] == 1 * b2.um
    assert ns["vshift_Kd"] == 2 * b2.mV and ns["hhc_where"] is module.hhc_where
    # concentrations first, gates after (w_KCa's steady state reads cai)
    assert list(module.INITIAL_VALUES)[:2] == ["v", "cai"] and module.INITIAL_VALUES["cai"] == "100*nM"
    assert module.STATES[-1] == "cai"
    equations = b2.Equations(eqs)
    assert "cai" in equations.diff_eq_names and equations["cai"].dim == b2.mmolar.dim


def test_conditional_is_a_select_on_every_code_target(module):
    text = open(module.__file__).read()
    assert "return np.where(condition, a, b)" in text
    assert "return a if condition else b" in text                               # cython
    assert text.count("{ return condition ? a : b; }") == 2                    # C++ and CUDA
    assert "__host__ __device__ static inline auto hhc_where" in text


def test_printing_of_conditions_and_functions():
    v, x = sympy.Symbol("v"), sympy.Symbol("x")
    mv = units.unit_symbol("mV")
    nested = sympy.Piecewise((1, v < -80 * mv), (x, sympy.Or(v > 0 * mv, sympy.Not(x <= 2))), (3, True))
    assert b2gen.brian_expr(nested) in ("hhc_where(v < -80*mV, 1, hhc_where((v > 0) or (x > 2), x, 3))",
                                        "hhc_where(v < -80*mV, 1, hhc_where((x > 2) or (v > 0), x, 3))")
    assert b2gen.brian_expr(sympy.Abs(v) + 1) == "abs(v) + 1"
    from hhc.backends.codegen import ConditionPrinter
    assert ConditionPrinter().doprint(sympy.Piecewise((1, sympy.And(v < 1, x > 2)), (2, True))) in \
        ("(((v < 1) && (x > 2)) ? (1) : (2))", "(((x > 2) && (v < 1)) ? (1) : (2))")   # sympy's order


def test_conditional_values_match_the_ir(module, cell, numpy_target):
    """h_CaT's time constant on both sides of -80 mV (and at it) as Brian2 computes it, against the IR."""
    b2 = numpy_target
    v = np.array([-120.0, -90.0, -80.000001, -80.0, -79.99, -40.0, 20.0]) * 1e-3
    group = module.build_neurons(len(v), method="euler", name="tau_check")
    group.v = v * b2.volt
    gate = next(g for g in cell.gates if g.state == "h_CaT")
    tau = sympy.lambdify([sympy.Symbol("v")], rhs.in_si(cell, gate.time_constant), modules=rhs.NUMERIC_MODULES)
    assert np.asarray(group.h_CaT_tau_[:]) == pytest.approx(tau(v), rel=1e-12)
    below, above = tau(np.array([-80.000001e-3])), tau(np.array([-80e-3]))
    assert abs(below - above) > 1e-3        # the branches really differ there


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_untaken_branch_that_overflows_gives_no_nan(tmp_path, numpy_target):
    """exp(-v / 0.05 mV) is inf at -70 mV; as the branch not taken it must not turn tau into NaN."""
    model = tmp_path / "overflow.chan"
    model.write_text("""
channel K {
    gbar = 1 nS
    E = -80 mV
    gate n ^ 1 {
        inf = 1 / (1 + exp(-(v + 30 mV) / 10 mV))
        tau = exp(-v / 0.05 mV) * 1 ms if v > 1000 mV and v < 2000 mV else 5 ms
    }
}
cell C { C = 10 pF; channels K; input Iapp : current; initial { v = -70 mV } }
""")
    cell = load_model(model).cell()
    path = tmp_path / b2gen.module_filename(cell)
    path.write_text(b2gen.module_text(cell))
    mod = b2gen.import_generated(path)
    assert "hhc_where((v > 1000*mV) and (v < 2000*mV), " in mod.EQUATIONS or \
           "hhc_where((v < 2000*mV) and (v > 1000*mV), " in mod.EQUATIONS
    b2 = numpy_target
    group = mod.build_neurons(3, method="rk4", dt=0.01 * b2.ms, name="overflow")
    group.v = [-70, -60, -50] * b2.mV
    b2.Network(group).run(0.1 * b2.ms)
    assert np.all(np.asarray(group.n_K_tau_[:]) == 5e-3)
    assert np.all(np.isfinite(group.n_K_[:]))


def test_initial_values_of_pool_and_gates(tmp_path, module, cell):
    """[initial] cai from the experiment reaches the pool state (mmolar); gates at their steady state
    read the cell's own initial concentration, as the reference computes them."""
    from hhc.api import prepare
    from hhc.backends import reference
    path = write_experiment(tmp_path / "init.toml", model=MODEL, size=3,
                            initial={"v": "-70 mV + i * 5 mV", "cai": "100 nM + i * 100 nM"},
                            protocol=[("1 ms", "0 pA")])
    exp, cell_, _ = prepare(path, choose_auto=False)
    state = b2net.initial_state(module, exp)
    assert state["cai"] == pytest.approx([1e-4, 2e-4, 3e-4], rel=1e-12)    # mol/m3 = mM
    want = reference.initial_matrix(exp, reference.build_rhs(cell_, jacobian=False))
    for k, name in enumerate(cell_.states):
        assert state[name] == pytest.approx(want[:, k], rel=1e-12, abs=1e-15), name


POOLS = """
channel CaL {
    ion ca
    gbar = 1 mS/cm2
    E = nernst(ca)
    gate m ^ 1 { inf = 1 / (1 + exp(-(v + 20 mV) / 5 mV)); tau = 1 ms }
}
channel KNa {
    ion k
    gbar = 1 mS/cm2
    E = -90 mV
    gate w ^ 1 { inf = nai / (nai + 10 mM); tau = 10 ms }
}
cell P {
    C = 1 uF/cm2
    area = 1000 um2
    temperature = 36 degC
    channels CaL, KNa
    pool ca { initial = 200 nM; resting = 50 nM; decay = 80 ms; rho = 3e-7 mol/m/A/s; outside = 2 mM }
    pool na { resting = 10 mM; outside = 140 mM }
    input Iapp : current
    initial { v = -65 mV }
}
"""


def test_fixed_factor_and_constant_pools(tmp_path, numpy_target):
    """The other two kinds of pool: rho x current (a state) and a constant concentration (parameters),
    one step against the IR's derivative."""
    (tmp_path / "pools.chan").write_text(POOLS)
    cell = load_model(tmp_path / "pools.chan").cell()
    path = tmp_path / b2gen.module_filename(cell)
    path.write_text(b2gen.module_text(cell))
    mod = b2gen.import_generated(path)
    assert "# pool ca (fixed factor): rho_ca x the ca current per area" in mod.EQUATIONS
    assert "dcai/dt = -I_CaL*rho_ca/area + (-cai + resting_ca)/decay_ca : mmolar" in mod.EQUATIONS
    assert "# pool na (fixed): nai and nao are constant parameters" in mod.EQUATIONS
    assert "dnai/dt" not in mod.EQUATIONS and mod.STATES == ("v", "m_CaL", "w_KNa", "cai")
    b2 = numpy_target
    assert mod.NAMESPACE["nai"] == 10 * b2.mM and mod.NAMESPACE["rho_ca"] == 3e-7 * b2.mole / b2.metre / b2.amp / b2.second
    group = mod.build_neurons(1, method="euler", dt=0.01 * b2.ms, name="pools")
    assert group.cai_[0] == pytest.approx(2e-4) and group.w_KNa_[0] == pytest.approx(0.5)
    y0 = {s: float(getattr(group, s + "_")[0]) for s in mod.STATES}
    b2.Network(group).run(0.01 * b2.ms)
    derivative = rhs.derivatives_si(cell)["cai"]
    f = sympy.lambdify([sympy.Symbol(s) for s in cell.states] + [sympy.Symbol("Iapp")], derivative)
    want = y0["cai"] + 1e-5 * f(*[y0[s] for s in cell.states], 0.0)
    assert group.cai_[0] == pytest.approx(want, rel=1e-9)


def test_units_of_the_new_dimensions():
    import brian2 as b2
    assert b2gen.brian_unit(units.CONCENTRATION) == "mmolar"
    assert b2gen.brian_unit(units.TEMPERATURE) == "kelvin"
    assert b2gen.brian_unit(units.AMOUNT) == "mole"
    assert b2gen.brian_unit(units.RATE / units.CONCENTRATION) == "metre**3 * second**-1 * mole**-1"
    # the SI value of each hhc unit as the generated module spells it
    for name in ("M", "mM", "uM", "nM", "mol", "mmol", "umol", "degC", "m3", "A", "s", "V"):
        u = units.UNITS[name]
        text = b2gen.brian_unit_name(u)
        value = eval(text, vars(b2)) if hasattr(b2, text) else eval(b2gen._unit_definition(u), vars(b2))
        assert float(value) == pytest.approx(float(u.scale), rel=1e-15), name


# ---- runs against the reference -----------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("ref") / "ref"
    done = cli("reference", EXPERIMENT, "--out", out, "--variables", "v,cai")
    assert done.returncode == 0, done.stdout + done.stderr
    from hhc.backends.results import load_results
    ref = load_results(out)
    assert ref.spike_t[ref.spike_i == 0] * 1e3 == pytest.approx(REFERENCE_NEURON_0, abs=0.006)
    return out


def _agrees(cli, reference_run, run, tmp_path) -> float:
    """`hhc compare` with its defaults says AGREE; returns the worst spike-time difference (s)."""
    from hhc.backends.results import load_results
    done = cli("compare", reference_run, run, "--report", tmp_path / "report", "--no-plots")
    assert done.returncode == 0 and "AGREE" in done.stdout, done.stdout + done.stderr
    ref, got = load_results(reference_run), load_results(run)
    worst = 0.0
    for n in (0, 1):
        a, b = ref.spike_t[ref.spike_i == n], got.spike_t[got.spike_i == n]
        assert len(a) == len(b) > 5
        worst = max(worst, float(np.max(np.abs(a - b))))
    # the pool's trace too: cai within 0.1 % of the reference's peak (measured: 5e-8)
    cai_ref, cai = ref.traces[0].variables["cai"], got.traces[0].variables["cai"]
    assert cai.shape == cai_ref.shape and np.all(cai > 0)
    assert np.max(np.abs(cai - cai_ref)) <= 1e-3 * np.max(cai_ref)
    return worst


@pytest.mark.slow
@pytest.mark.parametrize("device", ["runtime", "cpp_standalone"])
def test_runs_agree_with_the_reference(device, reference_run, tmp_path, cli):
    out = tmp_path / device
    done = cli("run", EXPERIMENT, "--device", device, "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    worst = _agrees(cli, reference_run, out, tmp_path)
    assert worst < 0.02e-3               # rk4 at 0.01 ms: within two steps of the reference
    print(f"{device}: worst spike-time difference {worst * 1e3:.4f} ms")


# ---- CUDA (generation and nvcc; no GPU here) -----------------------------------------------------

NO_GPU = {"CUDA_VISIBLE_DEVICES": "", "HHC_CUDA_COMPUTE_CAPABILITY": None}


@pytest.mark.slow
@pytest.mark.needs_nvcc
def test_cuda_project_of_the_constructs_cell(tmp_path, cli):
    """brian2cuda generates the constructs cell: the conditional as a device function, the pool state
    updated in the one state-update kernel and recorded; nvcc compiles that kernel's code object (the
    whole project's build and link are tested on the Kenyon cell, tests/test_cuda.py: 15 min here)."""
    out = tmp_path / "cuda"
    done = cli("compile", MODEL, "--device", "cuda_standalone", "--experiment", EXPERIMENT, "-o", out, env=NO_GPU)
    assert done.returncode == 0, done.stdout + done.stderr
    project = out / "cuda_project"
    kernel = (project / "code_objects" / "constructs_stateupdater_codeobject.cu").read_text()
    assert "__host__ __device__ static inline auto hhc_where(const bool condition" in kernel
    assert re.search(r"hhc_where\(v < _lio_\d+, ", kernel)
    assert re.search(r"_ptr_array_constructs_cai\[_idx\]\s*=\s*cai;", kernel)   # written back each step
    assert "_brian_log(1.0f*cao/cai)" in kernel
    assert "_array_constructs_cai" in (project / "code_objects" / "traces_0_codeobject.cu").read_text()
    obj = "code_objects/constructs_stateupdater_codeobject.o"
    made = subprocess.run(["make", obj], cwd=project, capture_output=True, text=True, timeout=1800)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (project / obj).is_file()


# ---- PyNN ---------------------------------------------------------------------------------------

def _pynn_run(simulator: str, module_dir, cell, exp):
    """The experiment's protocol through PyNN: the constructs cell type, gates started at the values the
    reference starts them at (PyNN's own default is 0), spikes and cai. Returns (spikes, cai, units)."""
    from hhc.backends import reference
    mod = b2gen.import_generated(module_dir / f"{cell.name.lower()}_pynn.py")   # by content: one per test
    sim = importlib.import_module(f"pyNN.{simulator}")
    sim.setup(timestep=exp.dt * 1e3)
    try:
        start = reference.initial_matrix(exp, reference.build_rhs(cell, jacobian=False))
        pop = sim.Population(exp.size, mod.cell_type(sim)(Iapp=0.0))
        pop.initialize(**{s: list(start[:, k] * (1e3 if s == "v" else 1.0))
                          for k, s in enumerate(cell.states) if s != "cai"})
        pop.record(["spikes", "cai"])
        for phase in exp.protocol:
            pop.set(Iapp=phase.inputs["Iapp"] * 1e9)          # nA
            sim.run(phase.duration * 1e3)
        seg = pop.get_data().segments[0]
        spikes = [np.asarray(st.rescale("ms")) for st in seg.spiketrains]
        cai = seg.filter(name="cai")[0]
        return spikes, np.asarray(cai), str(cai.units.dimensionality)
    finally:
        sim.end()


def _check_pynn_against_reference(spikes, cai, cai_unit, reference_run):
    from hhc.backends.results import load_results
    ref = load_results(reference_run)
    worst = 0.0
    for n, train in enumerate(spikes):
        want = ref.spike_t[ref.spike_i == n] * 1e3
        assert len(train) == len(want) > 5
        worst = max(worst, float(np.max(np.abs(train - want))))
    assert worst < 0.05, worst                                       # ms
    print(f"worst spike-time difference {worst:.4f} ms")
    assert cai_unit == "mM"
    assert cai[0] == pytest.approx([1e-4, 1e-4])                     # 100 nM
    assert cai.max() == pytest.approx(ref.traces[0].variables["cai"].max(), rel=0.01)   # mol/m3 = mM


@pytest.fixture(scope="module")
def resolved():
    from hhc.api import prepare
    exp, cell, _ = prepare(EXPERIMENT, choose_auto=False)
    return exp, cell


@pytest.mark.slow
@pytest.mark.needs_pynn
def test_pynn_brian2_runs_the_constructs_cell(resolved, reference_run, tmp_path):
    from hhc.backends.base import EmitOptions
    from hhc.backends.pynn import PyNNBackend
    exp, cell = resolved
    for name, text in PyNNBackend().emit(cell, EmitOptions()).items():   # no NEST build: brian2 only
        (tmp_path / name).write_text(text)
    text = (tmp_path / "constructs_pynn.py").read_text()
    assert "'temperature': (34.0, None, 1.0, 'kelvin', 'degC')" in text
    assert "'cai': ('cai', None, 1.0, 'mmolar', 'mM')" in text
    assert "temperature : kelvin" in text and "q10_CaT : 1" in text and "cao : mmolar" in text
    spikes, cai, cai_unit = _pynn_run("brian2", tmp_path, cell, exp)
    _check_pynn_against_reference(spikes, cai, cai_unit, reference_run)


@pytest.mark.slow
@pytest.mark.needs_pynn
@pytest.mark.needs_nest
def test_pynn_nest_runs_the_constructs_cell(resolved, reference_run, tmp_path, cli):
    """On pyNN.nest the cell type is the nest backend's NESTML build of the same cell."""
    exp, cell = resolved
    done = cli("compile", MODEL, "--target", "pynn", "-o", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    spikes, cai, cai_unit = _pynn_run("nest", tmp_path, cell, exp)
    _check_pynn_against_reference(spikes, cai, cai_unit, reference_run)
