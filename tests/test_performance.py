"""What makes the Brian2 path fast, checked on the compiled code; float32 on every Brian2 device."""
import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy

import hhc
from conftest import ROOT, write_experiment

BODY = """
[population]
size = 20
[simulation]
dt = "%s"
method = "%s"
%s
[initial]
v = "uniform(-70 mV, -60 mV)"
[[protocol]]
duration = "20 ms"
inputs = { Iapp = "0 pA" }
[[protocol]]
duration = "130 ms"
inputs = { Iapp = "18 pA" }
[record]
spikes = "all"
[[record.traces]]
variables = ["v"]
neurons = [0, 1]
interval = "0.1 ms"
"""


def _exponentials(cell):
    written = []
    for ch in cell.channels:
        for g in ch.gates:
            for e in ((g.alpha, g.beta) if g.form == "alpha_beta" else (g.steady_state, g.time_constant)):
                written += [a for a in sympy.preorder_traversal(e) if isinstance(a, sympy.exp)]
    return written


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is needed to read the object code")
def test_shared_rate_exponentials_are_computed_once_per_stage(tmp_path, cli):
    """The Kenyon cell writes 18 exponentials per RHS evaluation, 13 distinct (channels share rate
    functions). The compiled rk2 state updater calls scalar exp exactly 13 x 2 times: each shared
    rate is computed once per stage, not once per gate."""
    cell = hhc.load_model(ROOT / "models" / "kenyon_cell.chan").cell("KenyonCell")
    written = _exponentials(cell)
    distinct = len(set(written))
    assert distinct < len(written)
    exp = write_experiment(tmp_path / "e.toml", BODY % ("0.1 ms", "rk2", ""))
    res = cli("run", exp, "--device", "cpp_standalone", "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    build = hhc.load_results(tmp_path / "run").meta["build_dir"]
    objects = list((ROOT / build if not build.startswith("/") else __import__("pathlib").Path(build))
                   .glob("code_objects/*stateupdater*.o"))
    assert objects
    dump = subprocess.run(["objdump", "-dr", str(objects[0])], capture_output=True, text=True, check=True).stdout
    scalar_calls = len(re.findall(r"R_X86_64_PLT32\s+exp-0x4", dump))
    vector_calls = len(re.findall(r"R_X86_64_PLT32\s+_ZGV\w+_exp", dump))
    assert scalar_calls == 2 * distinct, (scalar_calls, distinct)
    assert vector_calls > 0            # glibc's vector exp on the SIMD loop


@pytest.mark.slow
@pytest.mark.parametrize("device", ["runtime", "cpp_standalone"])
def test_float32_runs_and_compare_reports_its_accuracy(tmp_path, cli, device):
    exp = write_experiment(tmp_path / "e.toml", BODY % ("0.01 ms", "rk4", ""))
    for name, extra in (("f64", []), ("f32", ["--float32"])):
        res = cli("run", exp, "--device", device, "--out", tmp_path / name, *extra)
        assert res.returncode == 0, res.stderr
    f32 = hhc.load_results(tmp_path / "f32")
    assert f32.meta["precision"] == "float32" and hhc.load_results(tmp_path / "f64").meta["precision"] == "float64"
    t, _, v = f32.trace("v")
    assert np.isfinite(v).all() and v.max() > 0          # it spikes
    res = cli("compare", tmp_path / "f64", tmp_path / "f32", "--report", tmp_path / "cmp", "--no-plots")
    assert "spike" in res.stdout                        # the accuracy of float32 against float64, reported
    assert res.returncode == 0, res.stdout              # and within compare's default tolerance here


def test_float32_is_refused_where_a_backend_cannot_honour_it(tmp_path, cli):
    exp = write_experiment(tmp_path / "e.toml", BODY % ("0.01 ms", "rk4", 'precision = "float32"'))
    res = cli("run", exp, "--backend", "jneuroml", "--out", tmp_path / "run")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "float64 only" in res.stderr
