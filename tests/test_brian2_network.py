"""Networks on Brian2 (runtime and cpp_standalone): each synapse kind against its closed form, a
small deterministic network spike by spike against the network reference, the devices against each
other, the drawn connections Brian2 got, and noise (statistics, seeds)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from builders import phase, trace, write_experiment
from paths import DATA
from test_synapses import T_ARRIVAL, closed_forms

from hhc.api import prepare, run_experiment
from hhc.backends.results import load_results

SMALL_NET = DATA / "small_net.chan"


def _kinds(tmp_path, device="runtime", name="syn.toml"):
    from test_synapses import _experiment
    path = _experiment(tmp_path, backend="brian2", method="rk4", dt="0.01 ms")
    text = path.read_text().replace('[backend]\nname = "brian2"', f'[backend]\nname = "brian2"\ndevice = "{device}"')
    assert f'device = "{device}"' in text
    out = tmp_path / name
    out.write_text(text)
    return out


def small_network(tmp_path, device="runtime", backend="brian2", method="rk4", duration="150 ms", noise=None,
                  seed=3, name="net.toml", threads=None,
                  variables=("v", "g_AMPA", "a_GABA", "b_GABA")):
    """20 excitatory HH cells (E, main) and 5 inhibitory (I), driven by 30 Poisson sources drawn by hhc;
    E -> I excitation, I -> E inhibition (double exponential), E -> E sparse weak excitation. The
    source and E -> I connections are strong enough that single arrivals fire a cell (spike timing
    then does not hang on a near-threshold sum, where a step's difference decides), so a run is
    comparable spike by spike."""
    be = {"name": backend}
    if backend == "brian2":
        be["device"] = device
        if threads:
            be["threads"] = threads
    population = {"name": "E"}
    if noise:
        population["noise"] = noise
    network = {
        "populations": {"I": {"cell": "HH", "size": 5, "initial": {"v": "-65 mV"}}},
        "sources": {"P": {"kind": "poisson", "size": 30, "rate": "10 Hz"}},
        "projections": [
            {"source": "P", "target": "E", "synapse": "AMPA", "rule": "fixed_indegree", "indegree": 3,
             "weight": "uniform(3 nS, 4 nS)", "delay": "uniform(1 ms, 3 ms)"},
            {"source": "E", "target": "I", "synapse": "AMPA", "rule": "fixed_indegree", "indegree": 2,
             "weight": "4 nS", "delay": "1.5 ms"},
            {"source": "I", "target": "E", "synapse": "GABA", "rule": "all_to_all", "weight": "uniform(0.5 nS, 1 nS)",
             "delay": "1 ms"},
            {"source": "E", "target": "E", "synapse": "AMPA", "rule": "fixed_probability", "probability": 0.1,
             "allow_autapses": False, "weight": "0.3 nS", "delay": "2 ms"},
        ]}
    return write_experiment(
        tmp_path / name, model=SMALL_NET, cell="HH", size=20, dt="0.01 ms", method=method, seed=seed,
        initial={"v": "uniform(-70 mV, -60 mV)"}, population=population, network=network,
        protocol=[phase(duration, {"Iapp": "0 pA", "I.Iapp": "0 pA"})],
        traces=[trace(list(variables), [0, 1], interval="0.1 ms")],
        record={"spikes": "all"}, backend=be)


def _runtime_numpy():
    import brian2 as b2
    b2.set_device("runtime")
    b2.prefs.codegen.target = "numpy"
    b2.start_scope()


def test_generated_module_has_synapse_equations_and_jumps():
    from hhc.backends.brian2.generate import module_text
    from hhc.compiler import load_model
    text = module_text(load_model(SMALL_NET).cell("HH"))
    assert "dv/dt = (-I_AMPA - I_GABA - I_K - I_Na - I_leak + Iapp)/(C*area) : volt" in text
    assert "I_AMPA = g_AMPA*(-E_AMPA + v) : amp" in text
    assert "dg_AMPA/dt = -g_AMPA/tau_AMPA : siemens" in text
    assert "da_GABA/dt = -a_GABA/tau_decay_GABA : siemens" in text
    assert '"AMPA": ("siemens", "g_AMPA_post += w")' in text
    # the double exponential's peak factor (tau_rise 0.5 ms, tau_decay 8 ms), so one spike peaks at w
    tr, td = 0.5e-3, 8e-3
    tp = tr * td / (td - tr) * math.log(td / tr)
    f = 1 / (math.exp(-tp / td) - math.exp(-tp / tr))
    assert f'"GABA": ("siemens", "a_GABA_post += {f!r} * w; b_GABA_post += {f!r} * w")' in text


def test_source_spikes_in_one_step_move_to_the_next_free_step():
    from hhc.backends.brian2.network import shifted_source_times
    dt = 1e-4
    idx, steps, moved = shifted_source_times(np.array([0, 0, 0, 1]), np.array([0.00101, 0.00102, 0.00103, 0.00102]), dt)
    assert moved == 2
    # arrivals on the nearest step boundary: emitted one step before it
    assert sorted(zip(idx.tolist(), steps.tolist())) == [(0, 9), (0, 10), (0, 11), (1, 9)]


def test_brian2_gets_the_drawn_connections_weights_delays_and_parameters(tmp_path):
    """The network Brian2 builds (runtime, numpy: no compilation) has exactly hhc's drawn edges."""
    import brian2 as b2
    from hhc.backends.brian2.generate import import_generated, module_filename, module_text
    from hhc.backends.brian2.network import build_network, population_modules
    path = small_network(tmp_path)
    text = path.read_text().replace('name = "E"', 'name = "E"\nparameters = { gbar_K = "uniform(30 mS/cm2, 40 mS/cm2)" }')
    path.write_text(text)
    exp, cell, _ = prepare(path, choose_auto=False)
    net = exp.drawn
    module_path = tmp_path / module_filename(cell)
    module_path.write_text(module_text(cell))
    main = import_generated(module_path)
    modules = population_modules(net, main, tmp_path, module_text, module_filename, import_generated)
    _runtime_numpy()
    try:
        network, groups, spikes, monitors = build_network(main, exp, "rk4", modules)
        synapses = sorted((o for o in network.objects if isinstance(o, b2.Synapses)), key=lambda s: s.name)
        assert len(synapses) == len(net.edges) == 4
        for syn, edges in zip(synapses, net.edges):
            got = sorted(zip(syn.i[:].tolist(), syn.j[:].tolist(), syn.w_[:].tolist(), syn.delay_[:].tolist()))
            want = sorted(zip(edges.pre.tolist(), edges.post.tolist(), edges.weight.tolist(),
                              edges.delay.tolist()))
            assert len(got) == len(want) > 0
            np.testing.assert_array_equal([g[:2] for g in got], [w[:2] for w in want])
            np.testing.assert_allclose([g[2:] for g in got], [w[2:] for w in want], rtol=1e-12)
        np.testing.assert_allclose(groups["E"].gbar_K_[:], net.parameters["E"]["gbar_K"])
        assert "gbar_K" not in groups["E"].namespace
        assert [(m.source.name, off) for m, off, _ in spikes] == [("pop_e", 0), ("pop_i", 20)]
    finally:
        b2.prefs.codegen.target = "auto"


@pytest.mark.slow
def test_each_synapse_kind_follows_its_closed_form_on_brian2(tmp_path):
    res = load_results(run_experiment(_kinds(tmp_path), out=tmp_path / "run", quiet=True))
    tr = res.traces[0]
    t = tr.t
    g_exp, g_alpha, g_double = closed_forms(t)
    got = tr.variables
    away = np.abs(t - T_ARRIVAL) > 1e-6
    # rk4 at 0.01 ms: relative errors of (dt/tau)^4/120 and less
    np.testing.assert_allclose(got["g_Sexp"][away, 0], g_exp[away], rtol=1e-7, atol=1e-18)
    np.testing.assert_allclose(got["g_Salpha"][away, 0], g_alpha[away], rtol=1e-6, atol=1e-17)
    np.testing.assert_allclose((got["a_Sdouble"] - got["b_Sdouble"])[away, 0], g_double[away], rtol=1e-6, atol=1e-17)
    assert np.max(got["a_Sdouble"] - got["b_Sdouble"]) == pytest.approx(3e-9, rel=1e-3)
    np.testing.assert_allclose(got["v"][:, 0], -0.070, atol=1e-12)


@pytest.mark.slow
def test_current_based_psp_follows_its_closed_form_on_brian2(tmp_path):
    from test_synapses import KINDS
    path = write_experiment(
        tmp_path / "psp.toml", model=KINDS, cell="Current", size=1, dt="0.01 ms", method="rk4", initial=None,
        population={"name": "I"}, record={"spikes": "none"},
        network={"sources": {"S": {"kind": "spike_times", "times": [[10.0]]}},
                 "projections": [{"source": "S", "target": "I", "synapse": "Icur", "rule": "one_to_one",
                                  "weight": "10 pA", "delay": "1 ms"}]},
        protocol=[phase("40 ms")], traces=[trace(["v", "g_Icur", "I_Icur"], [0], interval="0.05 ms")],
        backend={"name": "brian2", "device": "runtime"})
    res = load_results(run_experiment(path, out=tmp_path / "run", quiet=True))
    t, v = res.traces[0].t, res.traces[0].variables["v"][:, 0]
    s = np.clip(t - T_ARRIVAL, 0, None)
    tau, tau_m, w, c = 5e-3, 20e-3, 10e-12, 100e-12
    expected = -0.070 + np.where(t >= T_ARRIVAL + 1e-9,
                                 w * tau * tau_m / (c * (tau_m - tau)) * (np.exp(-s / tau_m) - np.exp(-s / tau)), 0)
    np.testing.assert_allclose(v, expected, rtol=0, atol=1e-9)
    assert v.max() + 0.070 > 0.3e-3
    # the synapse's current (outward-positive: -g for a current-based synapse) is recorded too
    np.testing.assert_allclose(res.traces[0].variables["I_Icur"][:, 0], -res.traces[0].variables["g_Icur"][:, 0])


@pytest.mark.slow
def test_small_network_agrees_spike_by_spike_with_the_reference(tmp_path):
    from hhc.compare import compare_runs
    ref = run_experiment(small_network(tmp_path, backend="reference", method="DOP853", name="ref.toml"),
                         out=tmp_path / "ref", quiet=True)
    b2 = run_experiment(small_network(tmp_path), out=tmp_path / "b2", quiet=True)
    a, b = load_results(ref), load_results(b2)
    assert a.meta["network_digest"] == b.meta["network_digest"]
    assert len(a.spike_i) > 40 and len(np.unique(a.spike_i[a.spike_i < 20])) >= 15   # E cells fire a few spikes
    from hhc.compare import SPIKE_BY_SPIKE
    pair = compare_runs([ref, b2], report=None)[0]
    assert pair.agree
    assert pair.network is not None and pair.network.same_network and pair.network.judged == SPIKE_BY_SPIKE
    assert pair.network.diverged_at is None
    oa, ob = np.lexsort((a.spike_t, a.spike_i)), np.lexsort((b.spike_t, b.spike_i))    # by neuron, then time
    np.testing.assert_array_equal(a.spike_i[oa], b.spike_i[ob])
    assert np.abs(a.spike_t[oa] - b.spike_t[ob]).max() < 0.05e-3


@pytest.mark.slow
def test_runtime_and_cpp_standalone_give_identical_network_spikes(tmp_path):
    rt = load_results(run_experiment(small_network(tmp_path, variables=("v", "g_AMPA", "I_AMPA", "I_GABA")),
                                     out=tmp_path / "rt", quiet=True))
    cpp = load_results(run_experiment(small_network(tmp_path, device="cpp_standalone", threads=2, name="cpp.toml",
                                                    variables=("v", "g_AMPA", "I_AMPA", "I_GABA")),
                                      out=tmp_path / "cpp", quiet=True))
    assert len(rt.spike_i) > 40
    np.testing.assert_array_equal(rt.spike_i, cpp.spike_i)
    np.testing.assert_allclose(rt.spike_t, cpp.spike_t, rtol=0, atol=1e-12)
    for var in ("v", "g_AMPA", "I_AMPA", "I_GABA"):
        np.testing.assert_allclose(rt.traces[0].variables[var], cpp.traces[0].variables[var], rtol=1e-9,
                                   atol=1e-20)
    assert cpp.meta["network_digest"] == rt.meta["network_digest"]
    assert cpp.meta["populations"]["I"] == {"cell": "HH", "offset": 20, "size": 5}


@pytest.mark.slow
def test_noise_runs_differ_by_seed_and_repeat_with_one(tmp_path):
    noise = {"input": "Iapp", "mean": "2 pA", "sigma": "10 pA", "tau": "5 ms"}
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        path = small_network(tmp_path, noise=noise, seed=seed, name=f"{name}.toml", duration="200 ms")
        runs[name] = load_results(run_experiment(path, out=tmp_path / name, quiet=True))
    a, b, c = runs["a"], runs["b"], runs["c"]
    np.testing.assert_array_equal(a.spike_i, b.spike_i)
    np.testing.assert_array_equal(a.spike_t, b.spike_t)
    # seed 2 draws another network too; with the same network the noise alone must differ: compare v
    assert not (len(a.spike_i) == len(c.spike_i) and np.array_equal(a.spike_t, c.spike_t))
    # statistics: the noise moves v (its std over time above the quiet cell's), rates stay moderate
    for r in (a, c):
        rate = np.sum(r.spike_i < 20) / 20 / 0.2
        assert 2 < rate < 100, rate


@pytest.mark.slow
@pytest.mark.needs_nvcc
def test_cuda_project_of_a_network(tmp_path, cli):
    """brian2cuda generates the network (a NeuronGroup per population, the sources, a Synapses per
    projection; every population's module written beside the main one), and nvcc compiles a synapse's
    spike-propagation code object, which reads Brian2's defaultclock (undefined there until the network
    ran on it). No GPU runs it here."""
    import re
    import subprocess
    from test_cuda import NO_GPU
    path = small_network(tmp_path, device="cuda_standalone", duration="20 ms")
    out = tmp_path / "cuda"
    done = cli("compile", SMALL_NET, "--cell", "HH", "--target", "brian2", "--device", "cuda_standalone",
               "--experiment", path, "-o", out, env=NO_GPU)
    assert done.returncode == 0, done.stdout + done.stderr
    project = out / "cuda_project"
    codes = sorted(p.name for p in (project / "code_objects").glob("proj_*_pre_codeobject.cu"))
    assert codes == ["proj_0_ampa_pre_codeobject.cu", "proj_1_ampa_pre_codeobject.cu",
                     "proj_2_gaba_pre_codeobject.cu", "proj_3_ampa_pre_codeobject.cu"]
    assert re.search(r"defaultclock", (project / "code_objects" / codes[0]).read_text())
    obj = f"code_objects/{codes[0].replace('.cu', '.o')}"
    made = subprocess.run(["make", obj], cwd=project, capture_output=True, text=True, timeout=1800)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert (project / obj).is_file()
