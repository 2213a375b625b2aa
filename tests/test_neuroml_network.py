"""Networks on the NeuroML target (issue 15): the documents of a [network] experiment pass the schema
and hold exactly hhc's drawn connections; what NeuroML cannot express is refused where it is; and
(slow) a small deterministic network run by jNeuroML and by NEURON agrees with hhc's network
reference spike by spike.

Measured (tests/test_brian2_network.small_network: 20 E + 5 I HH cells, 30 Poisson sources drawn by
hhc, 150 ms; jNeuroML and NEURON at dt 0.001 ms, the reference DOP853): both give the reference's 75
spikes (54 E, 21 I), neuron by neuron; the largest spike-time difference was 0.024 ms on jNeuroML
(forward Euler; mean +0.011 ms: spikes come late by about the integration lag) and 0.011 ms on NEURON
(implicit Euler; mean +0.005 ms). SPIKE_TOL = 0.1 ms is four times the larger one and still under a
hundredth of the shortest interspike interval here, so it cannot pair a spike with its neighbour.
A current-based PSP (exponential, 10 pA then -10 pA, peaks of 0.3 mV) follows its closed form within
PSP_TOL = 0.2 uV: measured 0.099 uV (jNeuroML) and 0.107 uV (NEURON), what an arrival one step
(1 us) away from the exact instant gives at the PSP's steepest, (w/C) dt = 0.1 uV; a wrong weight
unit or sign would miss by the size of the PSP.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from builders import phase, trace, write_experiment
from paths import DATA
from test_brian2_network import SMALL_NET, small_network
from test_synapses import T_ARRIVAL

from hhc.api import compile_model, prepare, run_experiment
from hhc.backends.base import UnsupportedError
from hhc.backends.results import load_results

pytest.importorskip("neuroml")
pytest.importorskip("lxml")
from lxml import etree  # noqa: E402

from hhc.backends.neuroml import generate as nml  # noqa: E402
from hhc.backends.neuroml.network import NetworkPlacement, experiment_documents  # noqa: E402
from hhc.backends.base import EmitOptions  # noqa: E402

KINDS = DATA / "synapse_kinds.chan"
NS = {"n": nml.NML_NS}
SPIKE_TOL = 0.1e-3
PSP_TOL = 0.2e-6


def _net_experiment(tmp_path, backend="jneuroml", name="net.toml"):
    """small_network for 80 ms (jNeuroML takes ~1.5 s per ms of it) at dt 0.001 ms (both NeuroML runners are
    first order), v recorded."""
    path = small_network(tmp_path, backend=backend, method="DOP853" if backend == "reference" else "euler",
                         variables=("v",), name=name, duration="80 ms")
    if backend != "reference":
        path.write_text(path.read_text().replace('dt = "0.01 ms"', 'dt = "0.001 ms"'))
    return path


def _documents(path):
    exp, cell, _ = prepare(path, choose_auto=False)
    return exp, cell, experiment_documents(cell, EmitOptions(experiment=exp))


# ---- documents ---------------------------------------------------------------------------------

def test_network_documents_pass_the_schema_and_hold_every_population(tmp_path):
    path = _net_experiment(tmp_path)
    files = compile_model(SMALL_NET, target="neuroml", cell="HH", experiment=path, out_dir=tmp_path / "out")
    assert set(files) == {"HH.net.nml", "LEMS_HH.xml"}
    text = files["HH.net.nml"]
    nml.validate(text)
    assert "e+" not in text
    doc = etree.fromstring(text.encode())
    # hhc's synapses as NeuroML's standard components, gbase 1 nS (the weight is in nS)
    assert doc.find("n:expOneSynapse", NS).attrib == {"id": "AMPA", "gbase": "1nS", "erev": "0mV", "tauDecay": "2ms"}
    assert doc.find("n:expTwoSynapse", NS).attrib == {"id": "GABA", "gbase": "1nS", "erev": "-80mV",
                                                       "tauRise": "0.5ms", "tauDecay": "8ms"}
    exp, _, _ = prepare(path, choose_auto=False)
    net = exp.drawn
    pops = doc.findall("n:network/n:population", NS)
    # E starts at 20 drawn v (one population, and cell copy, each), I at -65 mV: 21 cells
    cells = {p.get("component") for p in pops if not p.get("component").endswith("_spikes")}
    assert len(cells) == 21 and sum(int(p.get("size")) for p in pops if p.get("component") in cells) == 25
    # one spikeArray per connected source neuron, holding its drawn train
    arrays = {a.get("id"): [float(s.get("time")[:-2]) * 1e-3 for s in a.findall("n:spike", NS)]
              for a in doc.findall("n:spikeArray", NS)}
    idx, times = net.source_spikes["P"]
    for k in np.unique(net.edges[0].pre):
        np.testing.assert_allclose(arrays[f"P_{k}_spikes"], times[idx == k], rtol=1e-11)
    lems = files["LEMS_HH.xml"]
    # spikes of both populations, with hhc's global indices (I from 20)
    ids = [int(i) for i in re.findall(r'<EventSelection id="(\d+)"', lems)]
    assert sorted(ids) == list(range(25))
    assert '<EventSelection id="20" select="I[0]" eventPort="spike"/>' in lems


def test_connections_in_the_document_are_the_drawn_edges(tmp_path):
    exp, cell, files = _documents(_net_experiment(tmp_path))
    net = exp.drawn
    placement = NetworkPlacement(exp)
    # NeuroML population id and index → (hhc population or source, index)
    back = {}
    for pop in net.populations:
        for i, (pop_id, j) in enumerate(placement.where[pop]):
            back[f"../{pop_id}[{j}]"] = (pop, i)
    for src, members in placement.sources.items():
        for k, pop_id in members.items():
            back[f"../{pop_id}[0]"] = (src, k)
    doc = etree.fromstring(files["HH.net.nml"].encode())
    got = {k: [] for k in range(len(net.edges))}
    for proj in doc.findall("n:network/n:projection", NS):
        k = int(re.match(r"proj(\d+)_", proj.get("id")).group(1))
        assert proj.get("synapse") == net.spec.projections[k].synapse
        for c in proj.findall("n:connectionWD", NS):
            (sp, a), (tp, b) = back[c.get("preCellId")], back[c.get("postCellId")]
            assert (sp, tp) == (net.spec.projections[k].source, net.spec.projections[k].target)
            got[k].append((a, b, float(c.get("weight")) * 1e-9, float(c.get("delay")[:-2]) * 1e-3))
    for k, e in enumerate(net.edges):
        want = sorted(zip(e.pre.tolist(), e.post.tolist(), e.weight.tolist(), e.delay.tolist()))
        have = sorted(got[k])
        assert len(have) == len(want) > 0
        assert [h[:2] for h in have] == [w[:2] for w in want]
        np.testing.assert_allclose([h[2:] for h in have], [w[2:] for w in want], rtol=1e-11)


def test_per_neuron_conductances_become_cell_copies(tmp_path):
    """gbar_K drawn per neuron: one cell component per value, each with its density (S/m2 = nS/1000 um2)."""
    path = _net_experiment(tmp_path)
    path.write_text(path.read_text().replace('name = "E"', 'name = "E"\nparameters = { gbar_K = '
                                                             '"uniform(30 mS/cm2, 40 mS/cm2)" }'))
    exp, _, files = _documents(path)
    doc = etree.fromstring(files["HH.net.nml"].encode())
    nml.validate(files["HH.net.nml"])
    density = {c.get("id"): float(c.find(".//n:channelDensity[@ionChannel='K']", NS).get("condDensity")[:-8])
               for c in doc.findall("n:cell", NS)}
    placement = NetworkPlacement(exp)
    for i, g in enumerate(exp.drawn.parameters["E"]["gbar_K"]):
        pop_id, _ = placement.where["E"][i]
        component = next(x.component for x in placement.groups if x.pop_id == pop_id)
        assert density[component] == pytest.approx(g, rel=1e-11)      # S/m2


def _refusal(tmp_path, **changes):
    network = {"sources": {"S": {"kind": "spike_times", "times": [[10.0]]}},
               "projections": [{"source": "S", "target": "I", "synapse": "Icur", "rule": "one_to_one",
                                "weight": "10 pA", "delay": "1 ms"}]}
    fields = dict(model=KINDS, cell="Current", size=1, dt="0.01 ms", method=None, initial=None,
                  population={"name": "I"}, record={"spikes": "none"}, network=network,
                  protocol=[phase("20 ms")], traces=[trace(["v"], [0])])
    fields.update(changes)
    return write_experiment(tmp_path / "refused.toml", **fields)


def test_noise_is_refused_naming_the_population(tmp_path):
    path = _refusal(tmp_path, population={"name": "I", "noise": {"input": "Iapp", "mean": "0 pA", "sigma": "2 pA",
                                                                  "tau": "5 ms"}},
                    model=SMALL_NET, cell="HH", network={"sources": {"S": {"kind": "poisson", "size": 2,
                                                                           "rate": "10 Hz"}},
                                                         "projections": [{"source": "S", "target": "I",
                                                                          "synapse": "AMPA", "rule": "all_to_all",
                                                                          "weight": "1 nS", "delay": "1 ms"}]})
    with pytest.raises(UnsupportedError, match=r"noise \(.*population I\) is not supported by target neuroml"):
        compile_model(SMALL_NET, target="neuroml", cell="HH", experiment=path)


def test_current_based_double_exponential_is_refused(tmp_path):
    model = tmp_path / "dcur.chan"
    model.write_text(KINDS.read_text().replace("synapse Icur exponential { tau = 5 ms }",
                                               "synapse Icur double_exponential { tau_rise = 1 ms; tau_decay = 5 ms }"))
    path = _refusal(tmp_path, model=model)
    with pytest.raises(UnsupportedError, match="current-based double_exponential synapse Icur is not supported"):
        compile_model(model, target="neuroml", cell="Current", experiment=path)


def test_recording_a_synapse_state_is_refused(tmp_path):
    path = _refusal(tmp_path, traces=[trace(["v", "g_Icur"], [0])])
    with pytest.raises(UnsupportedError, match="recording 'g_Icur' \\(of synapse Icur\\)") as info:
        compile_model(KINDS, target="neuroml", cell="Current", experiment=path)
    assert "one synapse instance per connection" in info.value.hint


def test_per_neuron_synapse_parameter_is_refused(tmp_path):
    path = _refusal(tmp_path, size=2, population={"name": "I", "parameters": {"tau_Icur": "uniform(4 ms, 6 ms)"}},
                    network={"sources": {"S": {"kind": "spike_times", "times": [[10.0], [12.0]]}},
                             "projections": [{"source": "S", "target": "I", "synapse": "Icur", "rule": "one_to_one",
                                              "weight": "10 pA", "delay": "1 ms"}]})
    with pytest.raises(UnsupportedError, match="per-neuron parameters of synapse Icur"):
        compile_model(KINDS, target="neuroml", cell="Current", experiment=path)


@pytest.mark.needs_jneuroml
def test_a_network_above_the_runners_limit_is_refused_before_running(tmp_path):
    path = write_experiment(
        tmp_path / "big.toml", model=SMALL_NET, cell="HH", size=200, dt="0.01 ms", method=None, initial=None,
        population={"name": "E"}, network={"populations": {"I": {"cell": "HH", "size": 150}}},
        protocol=[phase("1 ms")], record={"spikes": "all"}, backend="jneuroml")
    with pytest.raises(UnsupportedError, match="a network of 350 neurons \\(at most 300\\) is not supported by "
                                               "target jneuroml"):
        run_experiment(path, out=tmp_path / "run", quiet=True, choose_auto=False)
    assert not (tmp_path / "run" / "LEMS_HH.xml").exists()


# ---- runs --------------------------------------------------------------------------------------

def _psp(tmp_path, backend):
    """The current-based exponential synapse (10 pA at 11 ms, -10 pA at 31 ms) on a passive cell."""
    path = write_experiment(
        tmp_path / f"psp_{backend}.toml", model=KINDS, cell="Current", size=1, dt="0.001 ms", method=None,
        initial=None, population={"name": "I"}, record={"spikes": "none"},
        network={"sources": {"S": {"kind": "spike_times", "times": [[10.0]]},
                             "S2": {"kind": "spike_times", "times": [[30.0]]}},
                 "projections": [{"source": "S", "target": "I", "synapse": "Icur", "rule": "one_to_one",
                                  "weight": "10 pA", "delay": "1 ms"},
                                 {"source": "S2", "target": "I", "synapse": "Icur", "rule": "one_to_one",
                                  "weight": "-10 pA", "delay": "1 ms"}]},
        protocol=[phase("60 ms")], traces=[trace(["v"], [0], interval="0.05 ms")], backend=backend)
    res = load_results(run_experiment(path, out=tmp_path / f"run_{backend}", quiet=True, choose_auto=False))
    t, v = res.traces[0].t, res.traces[0].variables["v"][:, 0]
    tau, tau_m, c = 5e-3, 20e-3, 100e-12

    def psp(w, arrival):
        s = np.clip(t - arrival, 0, None)
        return np.where(t >= arrival, w * tau * tau_m / (c * (tau_m - tau)) * (np.exp(-s / tau_m) - np.exp(-s / tau)), 0)

    expected = -0.070 + psp(10e-12, T_ARRIVAL) + psp(-10e-12, 0.031)
    assert v.max() + 0.070 > 0.3e-3 and v.min() + 0.070 < -0.1e-3
    return np.abs(v - expected).max()


@pytest.mark.slow
@pytest.mark.needs_jneuroml
def test_current_based_psp_follows_its_closed_form_on_jneuroml(tmp_path):
    assert _psp(tmp_path, "jneuroml") < PSP_TOL


@pytest.mark.slow
@pytest.mark.needs_neuron
def test_current_based_psp_follows_its_closed_form_on_neuron(tmp_path):
    assert _psp(tmp_path, "neuron") < PSP_TOL


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nml-net-ref")
    return load_results(run_experiment(_net_experiment(tmp, backend="reference", name="ref.toml"), out=tmp / "ref",
                                       quiet=True, choose_auto=False))


def _agrees_spike_by_spike(ref, run):
    assert run.meta["network_digest"] == ref.meta["network_digest"]
    assert run.meta["populations"]["I"] == {"cell": "HH", "offset": 20, "size": 5}
    for low, high in ((0, 20), (20, 25)):            # the same count per population
        assert np.sum((run.spike_i >= low) & (run.spike_i < high)) == np.sum((ref.spike_i >= low) & (ref.spike_i < high))
    assert len(ref.spike_i) > 30 and np.any(ref.spike_i >= 20)
    oa, ob = np.lexsort((ref.spike_t, ref.spike_i)), np.lexsort((run.spike_t, run.spike_i))    # by neuron, then time
    np.testing.assert_array_equal(ref.spike_i[oa], run.spike_i[ob])
    worst = np.abs(ref.spike_t[oa] - run.spike_t[ob]).max()
    assert worst < SPIKE_TOL, worst


@pytest.mark.slow
@pytest.mark.needs_jneuroml
def test_small_network_on_jneuroml_agrees_with_the_reference(tmp_path, reference_run):
    run = load_results(run_experiment(_net_experiment(tmp_path), out=tmp_path / "jn", quiet=True, choose_auto=False))
    _agrees_spike_by_spike(reference_run, run)


@pytest.mark.slow
@pytest.mark.needs_neuron
def test_small_network_on_neuron_agrees_with_the_reference(tmp_path, reference_run):
    run = load_results(run_experiment(_net_experiment(tmp_path, backend="neuron"), out=tmp_path / "nrn", quiet=True,
                                      choose_auto=False))
    _agrees_spike_by_spike(reference_run, run)
    # the source trains NEURON ran are hhc's (jNeuroML's export writes a spikeArray without its spikes)
    assert "hhc: the spike train of P_" in next((tmp_path / "nrn").glob("P_*_spikes.mod")).read_text()
