"""`hhc run` end to end: runtime and cpp_standalone give the same spikes; results load back."""
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import hhc

from builders import trace
from paths import KENYON


@pytest.fixture
def experiment(make_experiment):
    """Kenyon cells (seed 3): 50 ms at rest, then `long` at 18 pA; spikes of all; v and KA.h of the
    first `traced` neurons in two windows, 40-60 ms and 100-110 ms, every 0.1 ms."""
    def make(size, long, traced=2, **record):
        return make_experiment(size=size, dt="0.01 ms", method="rk4", seed=3,
                               initial={"v": "uniform(-70 mV, -60 mV)"},
                               protocol=[("50 ms", "0 pA"), (long, "18 pA")], record={"spikes": "all", **record},
                               traces=[trace(["v", "KA.h"], f"0:{traced}", interval="0.1 ms",
                                             windows=[("40 ms", "60 ms"), ("100 ms", "110 ms")])])
    return make


def sorted_spikes(results):
    order = np.lexsort((results.spike_t, results.spike_i))
    return results.spike_i[order], results.spike_t[order]


def run_both(tmp_path, cli, exp):
    runs = {}
    for device, extra in (("runtime", []), ("cpp_standalone", ["--threads", "2"])):
        out = tmp_path / device
        result = cli("run", exp, "--device", device, "--out", out, *extra)
        assert result.returncode == 0, result.stderr
        runs[device] = hhc.load_results(out)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("size, long", [(1, "200 ms"), (1000, "150 ms")])
def test_runtime_and_standalone_give_the_same_spikes(tmp_path, cli, experiment, size, long):
    runs = run_both(tmp_path, cli, experiment(size, long, traced=min(size, 2)))
    rt, sa = runs["runtime"], runs["cpp_standalone"]
    i_rt, t_rt = sorted_spikes(rt)
    i_sa, t_sa = sorted_spikes(sa)
    assert len(t_rt) >= size                       # every neuron fires at least once
    assert np.array_equal(i_rt, i_sa)
    assert np.array_equal(t_rt, t_sa)
    assert sa.meta["device"] == "cpp_standalone" and rt.meta["device"] == "runtime"
    # --threads reaches the binary at run time: compiled with OpenMP, the count read when it starts
    build = Path(sa.meta["build_dir"])
    assert "omp_set_num_threads(hhc_threads(" in (build / "main.cpp").read_text()
    assert any("#pragma omp parallel" in p.read_text() for p in build.glob("code_objects/*stateupdater*.cpp"))
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
def test_two_standalone_runs_at_once(tmp_path, cli, experiment):
    """Two runs of the same experiment at the same time: each gets its results, neither breaks
    the other's build (the second reuses the first's compiled code)."""
    exp = experiment(5, "60 ms")
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


def test_python_api_mirrors_the_cli(tmp_path, cli, experiment):
    """hhc.compile_model and hhc.run_experiment give what `hhc compile` and `hhc run` give."""
    exp = experiment(2, "60 ms")
    files = hhc.compile_model(hhc.load_model(KENYON), target="brian2", out_dir=tmp_path / "gen")
    assert (tmp_path / "gen" / "kenyoncell_brian2.py").read_text() == files["kenyoncell_brian2.py"]
    assert cli("compile", KENYON, "-o", tmp_path / "gen_cli").returncode == 0
    assert (tmp_path / "gen_cli" / "kenyoncell_brian2.py").read_text() == files["kenyoncell_brian2.py"]
    api = hhc.load_results(hhc.run_experiment(exp, out=tmp_path / "api", quiet=True))
    done = cli("run", exp, "--out", tmp_path / "cli")
    assert done.returncode == 0, done.stderr
    by_cli = hhc.load_results(tmp_path / "cli")
    assert api.spike_counts(2).sum() == len(api.spike_t) > 0
    assert all(np.array_equal(x, y) for x, y in zip(sorted_spikes(api), sorted_spikes(by_cli)))
    assert np.array_equal(api.trace("v")[2], by_cli.trace("v")[2])


@pytest.mark.slow
def test_a_killed_run_keeps_its_segments_and_resumes_to_the_same_result(tmp_path, cli, experiment):
    """Kill `hhc run` (SIGKILL, the whole process group) after a few segments are written; the
    segments written so far stay readable, and `hhc run --resume` finishes with exactly the spikes
    and traces of an uninterrupted run."""
    exp = experiment(3000, "550 ms", segment="25 ms")
    whole = cli("run", exp, "--device", "cpp_standalone", "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    assert not (tmp_path / "whole" / "segments").exists()        # merged and removed at the end

    run_dir = tmp_path / "killed"
    proc = cli.popen("run", exp, "--device", "cpp_standalone", "--out", run_dir,
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
def test_the_run_records_the_planners_estimate_and_its_measured_peak(tmp_path, cli, experiment):
    """Memory is known before the run and measured during it: meta.json holds both (how close they
    are is a benchmark, benchmarks/memory_plan.py, not an assertion: RSS varies with the machine)."""
    exp = experiment(2000, "20 ms")
    res = cli("run", exp, "--device", "cpp_standalone", "--threads", "2", "--out", tmp_path / "run")
    assert res.returncode == 0, res.stderr
    meta = hhc.load_results(tmp_path / "run").meta
    assert meta["peak_memory_bytes"]["hhc"] > 50e6          # a Python process with Brian2 loaded
    plan = meta["recording_estimate_bytes"]
    # the estimate is the process + state + recordings held at once, more than the recordings alone
    assert meta["memory_estimate_bytes"] > plan["memory"] > 0
    assert "in memory at peak (simulator process" in res.stdout + res.stderr
