"""`hhc run` end to end: runtime and cpp_standalone give the same spikes; results load back."""
import json
import threading

import numpy as np
import pytest

import hhc

from conftest import write_experiment

EXPERIMENT = """
[population]
size = {size}

[simulation]
dt = "0.01 ms"
method = "rk4"
seed = 3

[initial]
v = "uniform(-70 mV, -60 mV)"

[[protocol]]
duration = "50 ms"
inputs = {{ Iapp = "0 pA" }}

[[protocol]]
duration = "{long}"
inputs = {{ Iapp = "18 pA" }}

[record]
spikes = "all"

[[record.traces]]
variables = ["v", "KA.h"]
neurons = "0:{traced}"
windows = [["40 ms", "60 ms"], ["100 ms", "110 ms"]]
interval = "0.1 ms"
"""


def sorted_spikes(results):
    order = np.lexsort((results.spike_t, results.spike_i))
    return results.spike_i[order], results.spike_t[order]


def run_both(tmp_path, cli, size, long):
    exp = write_experiment(tmp_path / "exp.toml", EXPERIMENT.format(size=size, long=long, traced=min(size, 2)))
    runs = {}
    for device, extra in (("runtime", []), ("cpp_standalone", ["--threads", "2"])):
        out = tmp_path / device
        result = cli("run", exp, "--device", device, "--out", out, *extra)
        assert result.returncode == 0, result.stderr
        runs[device] = hhc.load_results(out)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("size, long", [(1, "200 ms"), (1000, "150 ms")])
def test_runtime_and_standalone_give_the_same_spikes(tmp_path, cli, size, long):
    runs = run_both(tmp_path, cli, size, long)
    rt, sa = runs["runtime"], runs["cpp_standalone"]
    i_rt, t_rt = sorted_spikes(rt)
    i_sa, t_sa = sorted_spikes(sa)
    assert len(t_rt) >= size                       # every neuron fires at least once
    assert np.array_equal(i_rt, i_sa)
    assert np.array_equal(t_rt, t_sa)
    assert sa.meta["device"] == "cpp_standalone" and sa.meta["threads"] == 2
    assert rt.meta["device"] == "runtime"
    for meta in (rt.meta, sa.meta):
        assert meta["dt"] == pytest.approx(1e-5) and meta["method"] == "rk4"
        assert meta["hhc_version"] == hhc.__version__ and meta["brian2_version"]
        assert meta["wall_time_s"] > 0 and meta["n_neurons"] == size
    # traces: only inside the two windows, every 0.1 ms, in SI units
    t, neurons, v = rt.trace("v")
    assert list(neurons) == list(range(min(size, 2)))
    assert v.shape == (len(t), len(neurons))
    assert len(t) == 200 + 100
    assert np.all(((t >= 0.04 - 1e-9) & (t < 0.06)) | ((t >= 0.1 - 1e-9) & (t < 0.11)))
    assert -0.1 < v.min() and v.max() < 0.07         # volts
    t2, _, v2 = sa.trace("v")
    assert np.allclose(t, t2) and np.allclose(v, v2, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_two_standalone_runs_at_once(tmp_path, cli):
    """Two runs of the same experiment at the same time: each gets its results, neither breaks
    the other's build (the second reuses the first's compiled code)."""
    exp = write_experiment(tmp_path / "exp.toml", EXPERIMENT.format(size=5, long="60 ms", traced=2))
    results = {}

    def go(name):
        results[name] = cli("run", exp, "--device", "cpp_standalone", "--out", tmp_path / name)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results.values()), [r.stderr for r in results.values()]
    a, b = hhc.load_results(tmp_path / "a"), hhc.load_results(tmp_path / "b")
    assert np.array_equal(sorted_spikes(a)[1], sorted_spikes(b)[1])
    assert {a.meta["build_reused"], b.meta["build_reused"]} == {False, True} or \
        (a.meta["build_reused"] and b.meta["build_reused"])


def test_python_api_mirrors_the_cli(tmp_path):
    exp = write_experiment(tmp_path / "exp.toml", EXPERIMENT.format(size=2, long="60 ms", traced=2))
    files = hhc.compile_model(hhc.load_model(hhc_model()), target="brian2", out_dir=tmp_path / "gen")
    assert (tmp_path / "gen" / "kenyoncell_brian2.py").read_text() == files["kenyoncell_brian2.py"]
    out = hhc.run_experiment(exp, out=tmp_path / "run", quiet=True)
    res = hhc.load_results(out)
    assert res.spike_counts(2).sum() == len(res.spike_t) > 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["cell"] == "KenyonCell" and meta["backend"] == "brian2"


def hhc_model():
    from conftest import ROOT
    return ROOT / "models" / "kenyon_cell.chan"


@pytest.mark.slow
def test_a_killed_run_keeps_its_segments_and_resumes_to_the_same_result(tmp_path, cli):
    """Kill `hhc run` (SIGKILL, the whole process group) after a few segments are written; the
    segments written so far stay readable, and `hhc run --resume` finishes with exactly the spikes
    and traces of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    body = EXPERIMENT.format(size=3000, long="550 ms", traced=2).replace(
        'spikes = "all"', 'spikes = "all"\nsegment = "25 ms"')
    exp = write_experiment(tmp_path / "exp.toml", body)
    whole = cli("run", exp, "--device", "cpp_standalone", "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    assert not (tmp_path / "whole" / "segments").exists()        # merged and removed at the end

    exe = Path(sys.executable).with_name("hhc")
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([str(exe), "run", str(exp), "--device", "cpp_standalone", "--out", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    manifest = run_dir / "segments" / "manifest.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and len(json.loads(manifest.read_text())["segments"]) >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "meta.json").exists()
    kept = json.loads(manifest.read_text())["segments"]
    assert 4 <= len(kept) < 24
    first = np.load(run_dir / "segments" / kept[0]["file"])
    assert kept[0]["start"] == 0 and len(first["spike_i"]) == len(first["spike_t"])

    resumed = cli("run", "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    a, b = hhc.load_results(tmp_path / "whole"), hhc.load_results(run_dir)
    assert b.meta["resumed_from_segment"] >= 4 and b.meta["segments"] == a.meta["segments"]
    ia, ta = sorted_spikes(a)
    ib, tb = sorted_spikes(b)
    assert len(ta) > 3000 and np.array_equal(ia, ib) and np.array_equal(ta, tb)
    assert np.array_equal(a.trace("v")[2], b.trace("v")[2])
    assert cli("run", "--resume", run_dir).returncode == 1                      # finished: nothing to resume


@pytest.mark.slow
def test_the_run_records_the_planners_estimate_and_its_measured_peak(tmp_path, cli):
    """Memory is known before the run and measured during it: meta.json holds both (how close they
    are is a benchmark, benchmarks/memory_plan.py, not an assertion: RSS varies with the machine)."""
    exp = write_experiment(tmp_path / "exp.toml", EXPERIMENT.format(size=2000, long="20 ms", traced=2))
    res = cli("run", exp, "--device", "cpp_standalone", "--threads", "2", "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    meta = hhc.load_results(tmp_path / "run").meta
    assert meta["peak_memory_bytes"]["hhc"] > 50e6          # a Python process with Brian2 loaded
    plan = meta["recording_estimate_bytes"]
    # the estimate is the process + state + recordings held at once, more than the recordings alone
    assert meta["memory_estimate_bytes"] > plan["memory"] > 0
    assert "in memory at peak (simulator process" in res.stdout + res.stderr
