"""The NeuroML2/LEMS export of the grown language (issue 14), on tests/data/constructs.chan (every
construct in one cell): each construct is written with NeuroML's own element, the documents pass
the NeuroML v2.3.1 schema, and what NeuroML computes from them is what the IR says.

The rates are checked numerically: a small evaluator of the LEMS in the documents (standard rate
types, hhc's custom ComponentTypes with Constants, DerivedVariables and ConditionalDerivedVariables,
q10Settings at the network's temperature, the density's vShift) gives every gate's steady state and
time constant as NeuroML defines them (gateHHrates: inf = a/(a+b), tau = 1/((a+b) q10); gateHHtauInf:
tau = t/q10), compared with the IR's on a grid of v and cai.

The runs (slow): jNeuroML integrates with forward Euler and NEURON (fixed step) with implicit Euler,
both first order; on the constructs experiment their spike-time error halved with dt (measured:
jNeuroML 0.87 ms at dt 0.001 ms, 0.45 ms at 0.0005 ms; NEURON 1.96 ms at 0.01 ms, 0.31 ms at 0.001 ms,
worst neuron), so they run at 0.0005 ms and 0.001 ms and must meet `hhc compare`'s default tolerances
against the SciPy reference.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import sympy

from hhc.api import compile_model, run_experiment
from hhc.backends.base import EmitOptions, UnsupportedError
from hhc.backends.results import load_results
from hhc.compare import compare_results
from hhc.reference import reference_run
from hhc.compiler import compile_text, ir, load_model, rhs
from hhc.compiler.experiment import RunOverrides, load_experiment, resolve

from paths import DATA

pytest.importorskip("neuroml")
pytest.importorskip("lxml")
from lxml import etree  # noqa: E402

from hhc.backends.neuroml import generate as nml  # noqa: E402

CONSTRUCTS = DATA / "constructs.chan"
EXPERIMENT = DATA / "constructs.toml"
NS = {"n": nml.NML_NS}


@pytest.fixture(scope="module")
def documents():
    return compile_model(CONSTRUCTS, target="neuroml", experiment=EXPERIMENT)


@pytest.fixture(scope="module")
def cell_doc(documents):
    return etree.fromstring(documents["Constructs.cell.nml"].encode())


@pytest.fixture(scope="module")
def cell():
    return load_model(CONSTRUCTS).cell()


def _channel_text(source: str, name: str) -> str:
    return re.search(rf"channel {name} {{.*?\n}}", source, re.S).group(0)


def _variant(replace: dict[str, str]) -> str:
    """constructs.chan with some text replaced."""
    text = CONSTRUCTS.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


# ---------------------------------------------------------------------------------------------
# a small LEMS evaluator: what NeuroML computes from the documents (SI units)
_SI = {"V": 1.0, "mV": 1e-3, "s": 1.0, "ms": 1e-3, "per_s": 1.0, "per_ms": 1e3, "Hz": 1.0, "mM": 1.0, "M": 1e3,
       "mol_per_m3": 1.0, "K": 1.0, "um": 1e-6, "m": 1.0, "": 1.0}


def si(text: str) -> float:
    """A NeuroML/LEMS quantity in SI ('1.5mV' → 0.0015; '24degC' → 297.15 K)."""
    number, unit = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([A-Za-z_0-9]*)\s*", text).groups()
    if unit == "degC":
        return float(number) + 273.15
    return float(number) * _SI[unit]


def _python(expr: str) -> str:
    for lems, py in ((".lt.", "<"), (".gt.", ">"), (".leq.", "<="), (".geq.", ">="), (".eq.", "=="),
                     (".neq.", "!="), (".and.", " and "), (".or.", " or "), ("^", "**")):
        expr = expr.replace(lems, py)
    return expr


_FUNCTIONS = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt}


def _standard(element, env) -> float:
    """NeuroML's standard rate/variable/time types (Channels.xml)."""
    kind = element.get("type")
    if kind == "fixedTimeCourse":
        return si(element.get("tau"))
    rate = si(element.get("rate"))
    x = (env["v"] - si(element.get("midpoint"))) / si(element.get("scale"))
    if kind in ("HHExpRate", "HHExpVariable"):
        return rate * math.exp(x)
    if kind in ("HHSigmoidRate", "HHSigmoidVariable"):
        return rate / (1 + math.exp(-x))
    if kind in ("HHExpLinearRate", "HHExpLinearVariable"):
        return rate * x / (1 - math.exp(-x)) if x != 0 else rate
    raise AssertionError(f"unknown standard type {kind}")


def evaluate(root, element, env: dict) -> float:
    """The value of a gate's forwardRate/reverseRate/timeCourse/steadyState element at env (v, caConc,
    temperature, vShift in SI): a standard type, or hhc's ComponentType of that name."""
    kind = element.get("type")
    types = {t.get("name"): t for t in root.findall("n:ComponentType", NS)}
    if kind not in types:
        return _standard(element, env)
    ct = types[kind]
    scope = dict(env)
    for c in ct.findall("n:Constant", NS):
        scope[c.get("name")] = si(c.get("value"))
    dynamics = ct.find("n:Dynamics", NS)
    pending = list(dynamics)
    exposure = None
    while pending:                       # in dependency order, whatever the order written
        progress = False
        for d in list(pending):
            try:
                if etree.QName(d).localname == "DerivedVariable":
                    value = eval(_python(d.get("value")), dict(_FUNCTIONS), scope)
                else:                    # ConditionalDerivedVariable: the first Case that holds
                    value = None
                    for case in d.findall("n:Case", NS):
                        cond = case.get("condition")
                        if cond is None or eval(_python(cond), dict(_FUNCTIONS), scope):
                            value = eval(_python(case.get("value")), dict(_FUNCTIONS), scope)
                            break
                    assert value is not None
            except NameError:
                continue
            scope[d.get("name")] = value
            if d.get("exposure"):
                exposure = d.get("name")
            pending.remove(d)
            progress = True
        assert progress, f"{kind}: cannot evaluate {[d.get('name') for d in pending]}"
    return scope[exposure]


def q10_factor(gate, temperature_k: float) -> float:
    q = gate.find("n:q10Settings", NS)
    if q is None:
        return 1.0
    if q.get("type") == "q10Fixed":
        return float(q.get("fixedQ10"))
    assert q.get("type") == "q10ExpTemp"
    return float(q.get("q10Factor")) ** ((temperature_k - si(q.get("experimentalTemp"))) / 10)


def neuroml_gate(root, channel_id: str, gate_id: str, env: dict, temperature_k: float) -> tuple[float, float]:
    """(inf, tau) of a gate as NeuroML computes them."""
    channel = root.find(f"*[@id='{channel_id}']")
    gate = channel.find(f"*[@id='{gate_id}']")
    kind = etree.QName(gate).localname if etree.QName(gate).localname != "gate" else gate.get("type")
    scale = q10_factor(gate, temperature_k)
    if kind == "gateHHrates":
        a = evaluate(root, gate.find("n:forwardRate", NS), env)
        b = evaluate(root, gate.find("n:reverseRate", NS), env)
        return a / (a + b), 1 / ((a + b) * scale)
    assert kind == "gateHHtauInf", kind
    inf = evaluate(root, gate.find("n:steadyState", NS), env)
    return inf, evaluate(root, gate.find("n:timeCourse", NS), env) / scale


# ---------------------------------------------------------------------------------------------
def test_documents_pass_the_schema(documents):
    for name in ("Constructs.cell.nml", "Constructs.net.nml"):
        nml.validate(documents[name])


# CaT with a vshift: NeuroML has no channelDensityNernst with a vShift, so its rates are written shifted
NERNST_SHIFTED = {"channels Na, Kd(vshift = 2 mV), CaT,": "channels Na, Kd(vshift = 2 mV), CaT(vshift = -3 mV),"}


@pytest.mark.parametrize("variant", [{}, NERNST_SHIFTED], ids=["constructs", "nernst_channel_shifted"])
def test_every_gate_computes_what_the_ir_says(variant):
    """Q10 (q10Settings over the base rates), rate_factor (q10Fixed), vshift (channelDensityVShift,
    or rates written shifted), piecewise (ConditionalDerivedVariable), cai (caConc), exprel: inf and
    tau as NeuroML computes them equal the IR's at the network's temperature, on a grid of v and cai."""
    model = compile_text(_variant(variant), str(CONSTRUCTS))
    cell = model.cell()
    documents = compile_model(model, target="neuroml", experiment=EXPERIMENT)
    cell_doc = etree.fromstring(documents["Constructs.cell.nml"].encode())
    net = etree.fromstring(documents["Constructs.net.nml"].encode())
    temperature_k = si(net.find("n:network", NS).get("temperature"))
    assert temperature_k == pytest.approx(34 + 273.15)
    densities = {d.get("ionChannel"): d for d in cell_doc.iter(f"{{{nml.NML_NS}}}channelDensityVShift")}
    cai = ir.inside("ca")
    checked = 0
    for ch in cell.channels:
        vshift = si(densities[ch.name].get("vShift")) if ch.name in densities else 0.0
        for g in ch.gates:
            exprs = [rhs.in_si(cell, rhs.inline(e, cell)) for e in (g.steady_state, g.time_constant)]
            inf_ir, tau_ir = (sympy.lambdify((ir.V, cai), e, modules=rhs.NUMERIC_MODULES) for e in exprs)
            for v in np.linspace(-0.1, 0.04, 57) + 1.7e-6:
                for c in (1e-4, 1e-3, 1e-2):       # mol/m3 = mM
                    env = {"v": v, "caConc": c, "temperature": temperature_k, "vShift": vshift}
                    inf, tau = neuroml_gate(cell_doc, ch.name, g.name, env, temperature_k)
                    assert inf == pytest.approx(float(inf_ir(v, c)), rel=1e-9, abs=1e-15), (g.state, v, c)
                    assert tau == pytest.approx(float(tau_ir(v, c)), rel=1e-9), (g.state, v, c)
                    checked += 1
    assert checked == 6 * 57 * 3


def test_q10_settings(cell_doc):
    cat = cell_doc.find("n:ionChannelHH[@id='CaT']", NS)
    m, h = cat.find("*[@id='m']"), cat.find("*[@id='h']")
    assert dict(m.find("n:q10Settings", NS).attrib) == {"type": "q10ExpTemp", "q10Factor": "3",
                                                         "experimentalTemp": "24degC"}
    assert dict(h.find("n:q10Settings", NS).attrib) == {"type": "q10ExpTemp", "q10Factor": "2.5",
                                                         "experimentalTemp": "24degC"}   # the gate's own wins
    n = cell_doc.find("n:ionChannelHH[@id='Kd']/n:gateHHrates[@id='n']", NS)
    assert dict(n.find("n:q10Settings", NS).attrib) == {"type": "q10Fixed", "fixedQ10": "1.5"}
    assert cell_doc.find("n:ionChannelHH[@id='Na']//n:q10Settings", NS) is None
    # the base rates: the standard steady state of CaT.m, and a time constant without the factor
    assert m.find("n:steadyState", NS).get("type") == "HHSigmoidVariable"
    env = {"v": -0.06}
    assert evaluate(cell_doc, m.find("n:timeCourse", NS), env) == pytest.approx(
        (0.612 + 1 / (math.exp(-(-60 + 132) / 16.7) + math.exp((-60 + 16.8) / 18.2))) * 1e-3, rel=1e-9)


def test_temperature_is_the_networks_and_an_experiment_can_change_it(documents, make_experiment):
    assert '<network id="net" type="networkWithTemperature" temperature="34degC">' in documents["Constructs.net.nml"]
    exp = make_experiment(model=CONSTRUCTS, size=1, dt="0.01 ms", method=None, initial=None,
                          protocol=[("1 ms", None)], record=None)
    text = exp.read_text().replace("[model]\n", '[model]\ntemperature = "22 degC"\n')
    exp.write_text(text)
    experiment = load_experiment(exp)
    cell = experiment.cell_of(load_model(CONSTRUCTS))        # what a run emits: the cell at 22 degC
    files = nml.emit_documents(cell, EmitOptions(experiment=resolve(experiment, cell)))
    assert 'type="networkWithTemperature" temperature="22degC"' in files["Constructs.net.nml"]
    # without a temperature no networkWithTemperature
    plain = compile_text(_variant({"    temperature = 34 degC\n": "", "    E = nernst(ca)\n": "    E = 120 mV\n",
                                   "    q10 = 3\n    q10_temperature = 24 degC\n": "",
                                   "        q10 = 2.5\n        q10_temperature = 24 degC\n": ""}), "plain.chan")
    files = compile_model(plain, target="neuroml", experiment=make_experiment(
        "plain", model=CONSTRUCTS, size=1, dt="0.01 ms", method=None, initial=None, protocol=[("1 ms", None)],
        record=None))
    assert '<network id="net">' in files["Constructs.net.nml"]


def test_decaying_pool_and_species(cell_doc, cell):
    pool = cell_doc.find("n:decayingPoolConcentrationModel", NS)
    assert {k: pool.get(k) for k in ("id", "ion", "restingConc", "decayConstant")} == {
        "id": "ca_pool", "ion": "ca", "restingConc": "0.0001mM", "decayConstant": "20ms"}
    # NeuroML's shell (Cells.xml): thickness t under the surface of a sphere of the cell's area,
    # volume 4/3 pi (r^3 - (r - t)^3) with pi = 3.14159; hhc's is area x depth
    area, depth = 20000e-12, 1e-6
    t = si(pool.get("shellThickness"))
    r = math.sqrt(area / (4 * 3.14159))
    assert 4 / 3 * 3.14159 * (r ** 3 - (r - t) ** 3) == pytest.approx(area * depth, rel=1e-10)
    assert nml.shell_depth(area, nml.shell_thickness(area, depth)) == pytest.approx(depth, rel=1e-12)
    species = cell_doc.find(".//n:intracellularProperties/n:species", NS)
    assert dict(species.attrib) == {"id": "ca", "ion": "ca", "concentrationModel": "ca_pool",
                                    "initialConcentration": "0.0001mM", "initialExtConcentration": "2mM"}
    # the schema's order: pool models after the channels, before the cell
    tags = [etree.QName(e).localname for e in cell_doc if isinstance(e.tag, str)]
    assert tags.index("decayingPoolConcentrationModel") > tags.index("ionChannelHH")
    assert tags.index("decayingPoolConcentrationModel") < tags.index("cell")


def test_fixed_factor_and_constant_pools():
    rho = compile_text(_variant({"depth = 1 um": "rho = 5.182 mol/m/A/s"}), "rho.chan")
    doc = next(iter(compile_model(rho, target="neuroml").values()))
    nml.validate(doc)
    assert ('<fixedFactorConcentrationModel id="ca_pool" ion="ca" restingConc="0.0001mM" decayConstant="20ms" '
            'rho="5.182mol_per_m_per_A_per_s"/>') in doc
    constant = compile_text(_variant({"decay = 20 ms; depth = 1 um; ": ""}), "constant.chan")
    doc = next(iter(compile_model(constant, target="neuroml").values()))
    nml.validate(doc)       # no current in, at rest from the start: cai stays at resting
    assert ('<fixedFactorConcentrationModel id="ca_pool" ion="ca" restingConc="0.0001mM" decayConstant="1s" '
            'rho="0mol_per_m_per_A_per_s"/>') in doc


def test_nernst_passive_and_vshift_densities(cell_doc):
    densities = {d.get("ionChannel"): d for d in cell_doc.find(".//n:membraneProperties", NS)
                 if d.get("ionChannel")}
    cat = densities["CaT"]
    assert etree.QName(cat).localname == "channelDensityNernst"
    assert cat.get("ion") == "ca" and cat.get("erev") is None and cat.get("condDensity") == "15S_per_m2"
    kd = densities["Kd"]
    assert etree.QName(kd).localname == "channelDensityVShift"
    assert kd.get("vShift") == "2mV" and kd.get("erev") == "-90mV" and kd.get("ion") == "k"
    leak = cell_doc.find("n:ionChannel[@id='Leak']", NS)
    assert leak.get("type") == "ionChannelPassive" and len(leak.findall("*[@id]")) == 0
    assert etree.QName(densities["Leak"]).localname == "channelDensity"
    assert densities["Leak"].get("erev") == "-70mV" and densities["Leak"].get("condDensity") == "0.5S_per_m2"
    # the shifted channel's rates read vShift (as v - vShift); the others do not
    kd_types = [t for t in cell_doc.findall("n:ComponentType", NS) if t.get("name").startswith("hhc_Kd_")]
    assert kd_types and all(t.find("n:Requirement[@name='vShift']", NS) is not None for t in kd_types)
    assert "vShift" not in etree.tostring(cell_doc.find("n:ionChannelHH[@id='Na']", NS)).decode()


def test_piecewise_and_calcium_rates_are_custom_types(cell_doc):
    h_tau = cell_doc.find("n:ComponentType[@name='hhc_CaT_h_timeCourse']", NS)
    assert h_tau.get("extends") == "baseVoltageDepTime"
    cases = h_tau.findall("n:Dynamics/n:ConditionalDerivedVariable[@name='t']/n:Case", NS)
    assert [c.get("condition") for c in cases] == ["(v) .lt. (-80*unit_mV)", None]
    w = cell_doc.find("n:ComponentType[@name='hhc_KCa_w_forwardRate']", NS)
    assert w.get("extends") == "baseVoltageConcDepRate"
    assert 'value="caConc / unit_mM"' in etree.tostring(w).decode()


def test_a_nernst_channel_with_a_vshift_gets_shifted_rates():
    """NeuroML has no channelDensityNernst with a vShift: such a channel's rates are written shifted."""
    model = compile_text(_variant({"channels Na, Kd(vshift = 2 mV), CaT,": "channels Na, Kd, CaT(vshift = -3 mV),"}),
                         "shifted.chan")
    doc = next(iter(compile_model(model, target="neuroml").values()))
    nml.validate(doc)
    assert "channelDensityVShift" not in doc and '<Requirement name="vShift"' not in doc
    assert '<steadyState type="HHSigmoidVariable" rate="1" midpoint="-60mV" scale="6.2mV"/>' in doc  # -57 - 3


def test_per_neuron_initial_v_gives_a_population_each(documents):
    net, lems = documents["Constructs.net.nml"], documents["LEMS_Constructs.xml"]
    assert '<population id="pop0" component="Constructs" size="1"/>' in net
    assert '<population id="pop1" component="Constructs_start1" size="1"/>' in net
    assert '<initMembPotential value="-67mV"/>' in net
    assert '<initMembPotential value="-70mV"/>' in documents["Constructs.cell.nml"]
    assert '<EventSelection id="1" select="pop1[0]" eventPort="spike"/>' in lems
    assert '<OutputColumn id="cai_1" quantity="pop1[0]/caConc"/>' in lems
    assert '<OutputColumn id="w_KCa_0" quantity="pop0[0]/biophys/membraneProperties/KCa_all/KCa/w/q"/>' in lems


def test_mixed_gate_kinds_use_the_generic_gate_element():
    """The schema lets an ionChannelHH hold one kind of specific gate element; mixed kinds are all
    written <gate type="...">."""
    model = compile_text(_variant({"""    gate h ^ 1 {
        alpha = 0.128 / ms * exp((17 mV - (v - vt)) / 18 mV)
        beta = 4 / ms / (1 + exp((40 mV - (v - vt)) / 5 mV))
    }""": """    gate h ^ 1 {
        inf = 1 / (1 + exp((v + 60 mV) / 6 mV))
        tau = 1 ms
    }"""}), "mixed.chan")
    doc = next(iter(compile_model(model, target="neuroml").values()))
    nml.validate(doc)
    assert '<gate id="m" type="gateHHrates" instances="3">' in doc
    assert '<gate id="h" type="gateHHtauInf" instances="1">' in doc


_CAT_HEAD = "channel CaT {                                 # low-threshold calcium current\n    ion ca\n"
_KCA_HEAD = "channel KCa {                                 # calcium-activated potassium (AHP)\n    ion k\n"
_POOL = "    pool ca { resting = 100 nM; decay = 20 ms; depth = 1 um; outside = 2 mM }\n"


@pytest.mark.parametrize("replace, message", [
    # NeuroML's channelDensityNernst is calcium's (zCa = 2, caConc)
    ({_CAT_HEAD: _CAT_HEAD.replace("ion ca", "ion na"), "E = nernst(ca)": "E = nernst(na)",
      _POOL: _POOL + "    pool na { resting = 10 mM; decay = 20 ms; depth = 1 um; outside = 140 mM }\n"},
     r"E = nernst\(na\) in channel CaT is not supported by target neuroml"),
    # its concentration models are driven by iCa only
    ({_POOL: _POOL + "    pool na { resting = 10 mM; decay = 20 ms; depth = 1 um; outside = 140 mM }\n"},
     "a na pool is not supported by target neuroml"),
    # NEURON keeps one E per ion, and every ca current must feed the pool
    ({_KCA_HEAD: _KCA_HEAD.replace("ion k", "ion ca")},
     "calcium channels with different reversal potentials .* is not supported by target neuroml"),
    # NeuroML's shell lies inside a sphere of the cell's area (radius 39.9 um)
    ({"depth = 1 um": "depth = 20 um"}, "a pool 20 um deep .* is not supported by target neuroml"),
])
def test_what_neuroml_cannot_express_is_refused(replace, message):
    model = compile_text(_variant(replace), "bad.chan")
    with pytest.raises(UnsupportedError, match=message):
        compile_model(model, target="neuroml")


def test_neuron_refuses_a_non_specific_current_that_reads_calcium():
    """NEURON's export gives a non-specific current no calcium: a Ca-dependent channel whose ion's
    channels have different E (so it would be written non-specific) is refused by the neuron backend."""
    model = compile_text(_variant({"    E = -90 mV\n    gate w": "    E = -95 mV\n    gate w"}), "k.chan")
    cell = model.cell()
    layout = nml.CellLayout(cell)
    ions = {entry[1]: entry[4] for entry in layout.channels}
    assert ions["KCa"] == "k" and ions["Kd"] is None      # the Ca reader keeps its ion
    assert nml.neuron_problems(cell) == []
    model = compile_text(_variant({_KCA_HEAD: "channel KCa {\n"}), "nonspecific.chan")
    assert any("calcium-dependent channel KCa as a non-specific current" in p
               for p in nml.neuron_problems(model.cell()))


# ---------------------------------------------------------------------------------------------
# the runs (slow)
def _experiment(tmp_path: Path, dt: str) -> Path:
    text = EXPERIMENT.read_text().replace('file = "constructs.chan"', f'file = "{CONSTRUCTS}"')
    text = text.replace('dt = "0.01 ms"', f'dt = "{dt}"')
    path = tmp_path / f"constructs_{dt.replace(' ', '')}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("constructs_reference")
    return load_results(reference_run(EXPERIMENT, out=tmp / "ref", quiet=True))


@pytest.mark.slow
@pytest.mark.parametrize("backend, dt", [pytest.param("jneuroml", "0.0005 ms", marks=pytest.mark.needs_jneuroml),
                                         pytest.param("neuron", "0.001 ms", marks=pytest.mark.needs_neuron)])
def test_runs_agree_with_the_reference(reference, tmp_path, backend, dt):
    out = run_experiment(_experiment(tmp_path, dt), out=tmp_path / backend, overrides=RunOverrides(backend=backend),
                         quiet=True)
    run = load_results(out)
    np.testing.assert_array_equal(run.spike_counts(), reference.spike_counts())
    assert reference.spike_counts().tolist() == [9, 7]
    pair = compare_results(reference, run)
    assert pair.agree, [c.failures for c in pair.per_neuron] + pair.population_failures
    # the calcium pool and the Ca-activated gate are recorded from NeuroML's own species and gate
    t, _, cai = run.trace("cai")
    assert cai[0] == pytest.approx([1e-4, 1e-4], rel=1e-6)
    assert cai.max() > 1e-3                     # the spikes' calcium
