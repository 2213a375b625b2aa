"""What makes the Brian2 path fast, checked on the compiled code; float32 on every Brian2 device."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy

import hhc
from builders import trace
from paths import KENYON


@pytest.fixture
def experiment(make_experiment):
    """20 Kenyon cells: 20 ms at rest, 130 ms at 18 pA; v of neurons 0 and 1 every 0.1 ms."""
    def make(dt, method, precision=None):
        return make_experiment(size=20, dt=dt, method=method, precision=precision,
                               initial={"v": "uniform(-70 mV, -60 mV)"},
                               protocol=[("20 ms", "0 pA"), ("130 ms", "18 pA")], record={"spikes": "all"},
                               traces=[trace(["v"], [0, 1], interval="0.1 ms")])
    return make


def _is_float32(values) -> bool:
    """Every value is a float32 number (a float64 state rounds to float32 almost nowhere exactly)."""
    values = np.asarray(values, dtype=np.float64)
    return bool(np.array_equal(values.astype(np.float32).astype(np.float64), values))


def _exponentials(cell):
    written = []
    for ch in cell.channels:
        for g in ch.gates:
            for e in ((g.alpha, g.beta) if g.form == "alpha_beta" else (g.steady_state, g.time_constant)):
                written += [a for a in sympy.preorder_traversal(e) if isinstance(a, sympy.exp)]
    return written


@pytest.mark.slow
@pytest.mark.needs_objdump
def test_shared_rate_exponentials_are_computed_once_per_stage(tmp_path, cli, experiment):
    """The Kenyon cell writes 18 exponentials per RHS evaluation, 13 distinct (channels share rate
    functions). The compiled rk2 state updater calls scalar exp exactly 13 x 2 times: each shared
    rate is computed once per stage, not once per gate."""
    cell = hhc.load_model(KENYON).cell("KenyonCell")
    written = _exponentials(cell)
    distinct = len(set(written))
    assert distinct < len(written)
    exp = experiment("0.1 ms", "rk2")
    res = cli("run", exp, "--device", "cpp_standalone", "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    build = Path(hhc.load_results(tmp_path / "run").meta["build_dir"])
    objects = list(build.glob("code_objects/*stateupdater*.o"))
    assert objects
    dump = subprocess.run(["objdump", "-dr", str(objects[0])], capture_output=True, text=True, check=True).stdout
    scalar_calls = len(re.findall(r"R_X86_64_PLT32\s+exp-0x4", dump))
    vector_calls = len(re.findall(r"R_X86_64_PLT32\s+_ZGV\w+_exp", dump))
    assert scalar_calls == 2 * distinct, (scalar_calls, distinct)
    assert vector_calls > 0            # glibc's vector exp on the SIMD loop


def test_float32_experiment_makes_float32_state_in_brian2(make_experiment):
    """precision = "float32" reaches Brian2: every state array of the network's neuron group is
    float32 (and float64 without it)."""
    import brian2 as b2
    from hhc.api import prepare
    from hhc.backends.brian2.generate import import_generated, module_filename, module_text
    from hhc.backends.brian2.network import build_network
    dtypes = {}
    saved = b2.prefs.core.default_float_dtype, b2.prefs.codegen.target
    try:
        for precision in ("float32", "float64"):
            path = make_experiment(precision, size=3, dt="0.01 ms", method="rk4", precision=precision,
                                   initial={"v": "-65 mV"}, protocol=[("1 ms", "0 pA")])
            exp, cell, _ = prepare(path, choose_auto=False)
            module_path = path.parent / f"{precision}_{module_filename(cell)}"
            module_path.write_text(module_text(cell))
            module = import_generated(module_path)
            b2.set_device("runtime")
            b2.prefs.codegen.target = "numpy"         # a few initial values: no Cython build
            b2.start_scope()
            _, group, _, _ = build_network(module, exp, "rk4")
            group._network = "inspected, never run"     # no "unused object" warning
            dtypes[precision] = {np.dtype(group.variables[s].dtype) for s in cell.states}
            assert _is_float32(group.v_[:]) == (precision == "float32")
    finally:
        b2.prefs.core.default_float_dtype, b2.prefs.codegen.target = saved
    assert dtypes == {"float32": {np.dtype(np.float32)}, "float64": {np.dtype(np.float64)}}


@pytest.mark.slow
@pytest.mark.parametrize("device", ["runtime", "cpp_standalone"])
def test_float32_runs_in_single_precision_within_compares_tolerance(tmp_path, cli, device, experiment):
    """--float32 on each device: the simulated state is float32 (recorded v holds float32 numbers, a
    cpp_standalone build declares float arrays), the run is not the float64 one, and `hhc compare`
    finds its spikes within its default tolerance of float64's."""
    exp = experiment("0.01 ms", "rk4")
    for name, extra in (("f64", []), ("f32", ["--float32"])):
        res = cli("run", exp, "--device", device, "--out", tmp_path / name, *extra)
        assert res.returncode == 0, res.stderr
    f32, f64 = hhc.load_results(tmp_path / "f32"), hhc.load_results(tmp_path / "f64")
    _, _, v32 = f32.trace("v")
    _, _, v64 = f64.trace("v")
    assert np.isfinite(v32).all() and v32.max() > 0          # it spikes
    assert _is_float32(v32) and not _is_float32(v64)
    assert np.abs(v32 - v64).max() > 0                       # a different computation...
    if device == "cpp_standalone":
        declared = {}
        for name, run in (("f32", f32), ("f64", f64)):
            objects = (Path(run.meta["build_dir"]) / "objects.cpp").read_text()
            found = re.search(r"\b(float|double)\s*\*\s*_array_kenyoncell_v\s*;", objects)
            assert found, f"no declaration of v's array in the {name} build"
            declared[name] = found.group(1)
        assert declared == {"f32": "float", "f64": "double"}
    res = cli("compare", tmp_path / "f64", tmp_path / "f32", "--report", tmp_path / "cmp", "--no-plots")
    assert res.returncode == 0, res.stdout                   # ...whose spikes agree within tolerance


def test_float32_is_refused_where_a_backend_cannot_honour_it(tmp_path, cli, experiment):
    exp = experiment("0.01 ms", "rk4", precision="float32")
    res = cli("run", exp, "--backend", "jneuroml", "--out", tmp_path / "run")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "precision float32" in res.stderr and "jneuroml runs in float64" in res.stderr
