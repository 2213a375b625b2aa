"""Networks in experiment files (compiler/network.py): what each connectivity rule draws, that the
draw depends on the seed alone, and located errors for bad network descriptions."""
from __future__ import annotations

import numpy as np
import pytest

from builders import phase, write_experiment
from paths import DATA

from hhc.api import prepare
from hhc.compiler import network
from hhc.compiler.errors import HHCError

NET = DATA / "small_net.chan"


def _projection(**kw):
    out = {"source": "PN", "target": "E", "synapse": "AMPA", "rule": "all_to_all", "weight": "1 nS", "delay": "1 ms"}
    out.update(kw)
    return out


def _net(tmp_path, projections, sources=None, populations=None, seed=1, size=20, protocol=None, name="e.toml",
         population=None):
    net = {"sources": sources if sources is not None else {"PN": {"kind": "poisson", "size": 30, "rate": "10 Hz"}},
           "populations": populations if populations is not None else {"I": {"cell": "HH", "size": 7}},
           "projections": projections}
    path = write_experiment(tmp_path / name, model=NET, size=size, seed=seed, initial=None,
                            population={"name": "E", **(population or {})}, network=net,
                            protocol=protocol or [phase("100 ms", {"Iapp": "0 pA"})])
    return path


def _drawn(path):
    exp, cell, _ = prepare(path, choose_auto=False)
    return exp.drawn


def test_each_rule_draws_the_connections_it_names(tmp_path):
    drawn = _drawn(_net(tmp_path, [
        _projection(rule="all_to_all"),
        _projection(source="E", target="I", rule="fixed_indegree", indegree=6),
        _projection(source="I", target="E", synapse="GABA", rule="fixed_probability", probability=0.25),
        _projection(source="E", target="E", rule="one_to_one"),
        _projection(source="E", target="E", rule="fixed_indegree", indegree=19, allow_autapses=False),
    ]))
    a2a, indeg, prob, one, no_self = drawn.edges
    assert len(a2a) == 30 * 20 and len({(p, q) for p, q in zip(a2a.pre, a2a.post)}) == 600
    assert np.all(np.bincount(indeg.post, minlength=7) == 6)
    for j in range(7):                                    # distinct presynaptic neurons per target
        assert len(set(indeg.pre[indeg.post == j])) == 6
    # 7 x 20 = 140 pairs at p = 0.25: 35 expected, sd 5.1; 5 sd either way
    assert 35 - 26 < len(prob) < 35 + 26
    assert np.array_equal(one.pre, np.arange(20)) and np.array_equal(one.post, np.arange(20))
    assert not np.any(no_self.pre == no_self.post) and np.all(np.bincount(no_self.post) == 19)


def test_connections_from_a_file(tmp_path):
    (tmp_path / "edges.csv").write_text("pre,post,weight,delay\n0,1,2e-9,1.5\n3,4,1e-9,2.0\n")
    drawn = _drawn(_net(tmp_path, [_projection(rule="from_file", file="edges.csv", weight="file", delay="file")]))
    e = drawn.edges[0]
    assert e.pre.tolist() == [0, 3] and e.post.tolist() == [1, 4]
    assert e.weight.tolist() == [2e-9, 1e-9] and e.delay.tolist() == pytest.approx([1.5e-3, 2e-3])


def test_weights_and_delays_are_drawn_per_connection(tmp_path):
    drawn = _drawn(_net(tmp_path, [_projection(weight="uniform(1 nS, 2 nS)", delay="uniform(1 ms, 3 ms)")]))
    w, d = drawn.edges[0].weight, drawn.edges[0].delay
    assert 1e-9 <= w.min() and w.max() <= 2e-9 and w.std() > 0.2e-9
    assert 1e-3 <= d.min() and d.max() <= 3e-3


def test_the_draw_depends_on_the_seed_alone(tmp_path):
    proj = [_projection(rule="fixed_probability", probability=0.3, weight="uniform(1 nS, 2 nS)")]
    a = _drawn(_net(tmp_path, proj, name="a.toml"))
    b = _drawn(_net(tmp_path, proj, name="b.toml"))
    c = _drawn(_net(tmp_path, proj, seed=2, name="c.toml"))
    assert network.edge_digest(a) == network.edge_digest(b) != network.edge_digest(c)
    # another projection added does not change this one's connections
    more = _drawn(_net(tmp_path, proj + [_projection(source="E", target="I")], name="d.toml"))
    assert np.array_equal(more.edges[0].pre, a.edges[0].pre) and np.array_equal(more.edges[0].weight, a.edges[0].weight)


def test_poisson_sources_follow_the_rate_of_each_phase(tmp_path):
    drawn = _drawn(_net(tmp_path, [_projection()], sources={"PN": {"kind": "poisson", "size": 200}},
                        protocol=[phase("1 s", {"Iapp": "0 pA"}, {"PN": "5 Hz"}),
                                  phase("1 s", {"Iapp": "0 pA"}, {"PN": "50 Hz"})]))
    i, t = drawn.source_spikes["PN"]
    first, second = np.sum(t < 1.0), np.sum(t >= 1.0)
    assert abs(first - 1000) < 5 * np.sqrt(1000) and abs(second - 10000) < 5 * np.sqrt(10000)
    assert np.all(np.diff(t) >= 0) and i.min() >= 0 and i.max() < 200


def test_spike_time_sources(tmp_path):
    drawn = _drawn(_net(tmp_path, [_projection(source="S")],
                        sources={"S": {"kind": "spike_times", "times": [[10.0, 30.0], [20.0]]}}))
    i, t = drawn.source_spikes["S"]
    assert i.tolist() == [0, 1, 0] and t.tolist() == pytest.approx([0.010, 0.020, 0.030])


def test_per_neuron_parameters(tmp_path):
    drawn = _drawn(_net(tmp_path, [_projection()], population={"parameters": {
        "gbar_K": "uniform(30 mS/cm2, 40 mS/cm2)", "E_leak": "-54.4 mV - i * 0.1 mV"}}))
    g = drawn.parameters["E"]["gbar_K"]
    assert g.shape == (20,) and 300 <= g.min() and g.max() <= 400          # S/m2
    assert drawn.parameters["E"]["E_leak"][5] == pytest.approx(-0.0549)


@pytest.mark.parametrize("change, words", [
    (dict(projections=[_projection(target="KC")]), ["unknown target 'KC'", "populations and sources: E, I, PN"]),
    (dict(projections=[_projection(delay="0.005 ms")]), ["delay '0.005 ms' is below the time step dt = 0.01 ms"]),
    (dict(projections=[_projection(weight="-1 nS")]), ["negative conductances", "inhibition comes from its E"]),
    (dict(projections=[_projection(synapse="NMDA")]), ["does not receive synapse 'NMDA'", "it receives: AMPA, GABA"]),
    (dict(projections=[_projection(rule="one_to_one")]), ["one_to_one needs equal sizes (30 and 20)"]),
    (dict(projections=[_projection(rule="fixed_indegree", indegree=31)]), ["indegree 31 is more than the 30"]),
    (dict(projections=[_projection(rule="fixed_probability", probability=1.5)]), ["probability must be a number in [0, 1]"]),
    (dict(projections=[_projection(rule="ring")]), ["unknown rule 'ring'"]),
    (dict(projections=[_projection(weight="1 mV")]), ["weight must be a conductance"]),
    (dict(projections=[_projection(target="PN")]), ["target 'PN' is a spike source"]),
    (dict(sources={"PN": {"kind": "poisson", "size": 3}}), ["source PN has no rate for every protocol phase"]),
    (dict(population={"parameters": {"gbar_X": "1 nS"}}), ["has no parameter 'gbar_X'"]),
    (dict(population={"noise": {"input": "Inoise", "sigma": "5 pA"}}), ["has no input 'Inoise'"]),
])
def test_bad_network_descriptions_get_located_errors(tmp_path, change, words):
    fields = {"projections": [_projection()]} | change
    path = _net(tmp_path, **fields)
    with pytest.raises(HHCError) as info:
        prepare(path, choose_auto=False)
    text = str(info.value)
    for word in words:
        assert word in text, text
    assert info.value.location is not None and info.value.location.line > 0, text
