"""NeuroML2/LEMS backend, the jNeuroML and NEURON runners, and `hhc import`.

Agreement tolerance (slow tests): same spike count as Brian2 (rk4, dt 0.01 ms, which matched a
dt 0.001 ms reference to <= 0.05 ms, measured) and every spike time within SPIKE_TOL = 1 ms.
jNeuroML integrates with forward Euler and NEURON (fixed step) with implicit Euler: both are first
order, so their error is a phase drift that grows spike by spike. At dt 0.001 ms we measured, over
16 Kenyon-cell spikes in 200 ms at 18 pA, a largest difference of 0.58 ms (jNeuroML) and 0.22 ms
(NEURON), and 0.10 / 0.03 ms over 7 squid-axon spikes. 1 ms is under a tenth of the ~13 ms
inter-spike interval, so it cannot pair a spike with its neighbour, and leaves room for the drift.
The first spike, before drift accumulates, must agree to FIRST_TOL = 0.25 ms.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sympy

from hhc.api import compile_model, run_experiment
from hhc.compiler import compile_text, ir, load_model, rhs, units
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import RunOverrides
from hhc.backends.results import load_results as read_results

from builders import trace, write_experiment
from paths import DATA, KENYON, MODELS, SQUID

pytest.importorskip("neuroml")
pytest.importorskip("lxml")
from hhc.backends.neuroml import generate as nml  # noqa: E402
from hhc.compiler.neuroml_import import import_text  # noqa: E402

MODEL_FILES = sorted(p for p in MODELS.glob("*.chan") if load_model(p).cells)
SPIKE_TOL = 1e-3
FIRST_TOL = 0.25e-3


def _jar_example(name: str) -> str:
    """A NeuroML example file shipped inside pyNeuroML's jNeuroML jar (written by the NeuroML team)."""
    import pyneuroml
    jar = next((Path(pyneuroml.__file__).parent / "lib").glob("jNeuroML*.jar"))
    with zipfile.ZipFile(jar) as z:
        return z.read(f"examples/{name}").decode()


# ---------------------------------------------------------------------------------------------
# emission
@pytest.mark.parametrize("model", MODEL_FILES, ids=lambda p: p.name)
def test_every_model_passes_the_schema(model, tmp_path):
    files = compile_model(model, target="neuroml", out_dir=tmp_path)
    for name, text in files.items():
        assert "e+" not in text
        nml.validate(text)


def test_squid_gates_use_standard_types():
    text = next(iter(compile_model(SQUID, target="neuroml").values()))
    assert "ComponentType" not in text
    assert '<forwardRate type="HHExpLinearRate" rate="1per_ms" midpoint="-40mV" scale="10mV"/>' in text
    assert '<reverseRate type="HHExpRate" rate="4per_ms" midpoint="-65mV" scale="-18mV"/>' in text
    assert '<reverseRate type="HHSigmoidRate" rate="1per_ms" midpoint="-35mV" scale="10mV"/>' in text
    assert 'condDensity="24000S_per_m2"' in text and 'specificCapacitance value="20uF_per_cm2"' in text


def test_kenyon_steady_states_standard_taus_custom():
    text = next(iter(compile_model(KENYON, target="neuroml").values()))
    assert text.count('type="HHSigmoidVariable"') == 9
    assert text.count("<ComponentType ") == 9          # every tau, the KA ones nested
    assert '<steadyState type="HHSigmoidVariable" rate="1" midpoint="-51.4mV" scale="-5.9mV"/>' in text
    # absolute conductances through a 1000 um2 cell: S/m2 equals nS
    assert 'ionChannel="NaF" condDensity="140S_per_m2" erev="58mV" ion="na"' in text
    assert 'specificCapacitance value="0.4uF_per_cm2"' in text


def test_standard_form_matching_is_numeric():
    m = nml
    u = m.U
    assert m.match_standard(sympy.Integer(3) / 2, "time") == ("fixedTimeCourse", {"tau": "1.5ms"})
    typ, attrs = m.match_standard(2 / (1 + sympy.exp((u + 30) / -7)), "variable")
    assert typ == "HHSigmoidVariable" and attrs == {"rate": "2", "midpoint": "-30mV", "scale": "7mV"}
    assert m.match_standard(1 / (1 + sympy.exp(u / 5)) + sympy.Rational(1, 10), "variable") is None
    assert m.nml_number(1.5e20) == "150000000000000000000" and m.nml_number(2e-7) == "2e-7"


def test_custom_current_is_refused():
    model = compile_text("""
channel Odd { gbar = 1 nS; E = 0 mV
  gate m ^ 1 { inf = 1 / (1 + exp(-v / 5 mV)); tau = 1 ms }
  current = gbar * m * (v - E) * (v - E) / (10 mV) }
cell C1 { C = 1 pF; channels Odd; initial { v = -65 mV } }
""")
    with pytest.raises(HHCError, match="gbar \\* gates \\* \\(v - E\\)"):
        compile_model(model, target="neuroml")


def test_lems_with_experiment(make_experiment):
    exp = make_experiment(size=3, dt="0.01 ms", method=None, initial={"gates": "steady_state"},
                          protocol=[("10 ms", "0 pA"), ("20 ms", "18 pA")], record={"spikes": "all"},
                          traces=[trace(["v", "KA.h", "I_NaF"], [0, 2])])
    files = compile_model(KENYON, target="neuroml", experiment=exp)
    assert set(files) == {"KenyonCell.cell.nml", "KenyonCell.net.nml", "LEMS_KenyonCell.xml"}
    net = files["KenyonCell.net.nml"]
    nml.validate(net)
    assert '<pulseGenerator id="stim_Iapp_1" delay="10ms" duration="20ms" amplitude="18pA"/>' in net
    assert net.count("explicitInput") == 3
    lems = files["LEMS_KenyonCell.xml"]
    assert 'length="30ms" step="0.01ms"' in lems
    assert 'quantity="pop[2]/biophys/membraneProperties/KA_all/KA/h/q"' in lems
    assert lems.count("EventSelection") == 3


def test_population_limit(make_experiment, tmp_path):
    """jNeuroML runs a few hundred neurons at most: a larger population is refused before anything
    is written or run (no Java needed to say so)."""
    exp = make_experiment(size=1000, dt="0.01 ms", method=None, initial=None, protocol=[("1 ms", None)],
                          record=None)
    with pytest.raises(HHCError, match=r"population of 1,000 neurons \(at most 300\)"):
        run_experiment(exp, out=tmp_path / "out", overrides=RunOverrides(backend="jneuroml"), quiet=True)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# round trip and import
def _rate_functions(cell: ir.Cell) -> dict:
    """Every gate's inf, tau (and alpha, beta) as numeric functions of v (volts) and cai (mol/m3), SI
    values, at the cell's temperature and with its pool's constants in."""
    out = {}
    cai = sympy.Symbol("cai")
    for ch in cell.channels:
        for g in ch.gates + ch.instantaneous:
            exprs = {"inf": g.steady_state} if g.instantaneous else {"inf": g.steady_state, "tau": g.time_constant}
            if g.alpha is not None:
                exprs.update(alpha=g.alpha, beta=g.beta)
            for k, e in exprs.items():
                e = rhs.in_si(cell, rhs.inline(e, cell))
                out[(ch.name, g.name, g.power, k)] = sympy.lambdify((ir.V, cai), e, modules=rhs.NUMERIC_MODULES)
    return out


def _absolute(cell: ir.Cell) -> dict:
    layout = nml.CellLayout(cell)
    d = {"C": layout.specific_capacitance * layout.area_m2}
    for ch, cid, density, erev, _ in layout.channels:
        d[cid] = (density * layout.area_m2, np.nan if erev is None else erev)      # None: Nernst
    if layout.leak:
        d["leak"] = (layout.leak[0] * layout.area_m2, layout.leak[1])
    return d


@pytest.mark.parametrize("model", MODEL_FILES, ids=lambda p: p.name)
def test_round_trip_gives_an_equivalent_ir(model):
    original = load_model(model).cell()
    nml = next(iter(compile_model(model, target="neuroml").values()))
    chan = import_text(nml, "roundtrip.nml")
    back = compile_text(chan, "roundtrip.chan").cell()
    f0, f1 = _rate_functions(original), _rate_functions(back)
    assert set(f0) == set(f1)
    grid = np.linspace(-0.12, 0.08, 1001) + 1.23e-6          # volts, off the 0/0 points
    for cai in (1e-6, 1e-4, 1e-2):                            # mol/m3 (mM): 1 nM to 10 uM
        for key in f0:
            a = np.broadcast_to(f0[key](grid, cai), grid.shape)
            b = np.broadcast_to(f1[key](grid, cai), grid.shape)
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=0, err_msg=str(key))
    a0, a1 = _absolute(original), _absolute(back)
    assert a0.keys() == a1.keys()
    for k in a0:
        np.testing.assert_allclose(np.array(a1[k], float), np.array(a0[k], float), rtol=1e-9, equal_nan=True)
    assert float(units.to_si(back.threshold)) == pytest.approx(float(units.to_si(original.threshold)))


def test_import_a_file_hhc_did_not_write():
    text = _jar_example("NML2_SingleCompHHCell.nml")
    chan = import_text(text, "NML2_SingleCompHHCell.nml")
    assert "alpha = 1 / ms / exprel(-(v + 40 mV) / (10 mV))" in chan
    cell = compile_text(chan, "imported.chan").cell("hhcell")
    assert [c.name for c in cell.channels] == ["naChan", "kChan"]
    assert cell.area.si_value == pytest.approx(1e-9, rel=1e-6)


def test_import_the_reference_kenyon_cell():
    # tests/data/kc_density.nml: a hand-checked NeuroML Kenyon cell
    chan = import_text((DATA / "kc_density.nml").read_text(), "kc_density.nml")
    cell = compile_text(chan, "kc.chan").cell("kc")
    ours = load_model(KENYON).cell()
    f0, f1 = _rate_functions(ours), _rate_functions(cell)
    grid = np.linspace(-0.1, 0.05, 301)
    for (ch, g, p, k), f in f0.items():
        np.testing.assert_allclose(f1[(ch.lower(), g, p, k)](grid, 1e-4), f(grid, 1e-4), rtol=1e-9)


@pytest.mark.parametrize("snippet, message", [
    ('<ionChannelKS id="ks1" conductance="10pS"/>', "kinetic schemes"),
    ('<ionChannelHH id="c" conductance="10pS"><gateHHrates id="m" instances="1">'
     '<forwardRate type="HHExpRate" rate="1per_ms" midpoint="0mV" scale="1mV"/></gateHHrates></ionChannelHH>',
     "gateHHrates with forwardRate/reverseRate"),
    ('<ionChannelHH id="c" conductance="10pS"><gateHHtauInf id="m" instances="1">'
     '<timeCourse type="caDep"/><steadyState type="HHSigmoidVariable" rate="1" midpoint="0mV" scale="1mV"/>'
     '</gateHHtauInf></ionChannelHH>\n<ComponentType name="caDep" extends="baseVoltageConcDepTime">'
     '<Requirement name="caConc" dimension="concentration"/></ComponentType>', "concentration"),
    ('<cell id="two"><morphology id="m"><segment id="0"><proximal x="0" y="0" z="0" diameter="1"/>'
     '<distal x="0" y="1" z="0" diameter="1"/></segment><segment id="1"><parent segment="0"/>'
     '<distal x="0" y="2" z="0" diameter="1"/></segment></morphology></cell>', "multi-compartment"),
])
def test_unsupported_constructs_are_located(snippet, message):
    text = f'<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="x">\n    {snippet}\n</neuroml>\n'
    with pytest.raises(HHCError, match=message) as info:
        import_text(text, "bad.nml")
    assert info.value.location is not None and info.value.location.line >= 2
    assert "bad.nml:" in str(info.value)


def test_import_command(cli, tmp_path):
    nml = tmp_path / "hh.nml"
    nml.write_text(_jar_example("NML2_SingleCompHHCell.nml"))
    r = cli("import", nml, "-o", tmp_path / "hh.chan")
    assert r.returncode == 0, r.stderr
    assert "cell hhcell" in (tmp_path / "hh.chan").read_text()
    bad = tmp_path / "bad.nml"
    bad.write_text('<neuroml xmlns="http://www.neuroml.org/schema/neuroml2">\n  <ionChannelKS id="k"/>\n</neuroml>\n')
    r = cli("import", bad)
    assert r.returncode == 1 and "bad.nml:2:3: error:" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------------------
# the official tools (Java, NEURON): slow
@pytest.mark.slow
@pytest.mark.needs_jneuroml
def test_pynml_validate_accepts_the_models(tmp_path):
    paths = []
    for model in MODEL_FILES:
        for name in compile_model(model, target="neuroml", out_dir=tmp_path / model.stem):
            paths.append(str(tmp_path / model.stem / name))
    r = subprocess.run([str(Path(sys.executable).with_name("pynml")), "-validate", *paths], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Validated {len(paths)} files: All valid" in r.stdout + r.stderr


def _experiment(path, model, dt, amplitude, step):
    """One cell: 20 ms at rest, then `step` at `amplitude`; gates start at their steady state."""
    return write_experiment(path, model=model, size=1, dt=dt, method="rk4",
                            initial={"v": "-65 mV", "gates": "steady_state"},
                            protocol=[("20 ms", "0 pA"), (step, amplitude)], record={"spikes": "all"},
                            traces=[trace(["v"], [0], interval="0.1 ms")])


AGREEMENT = {"kenyon": (KENYON, "18 pA", "200 ms"), "squid": (SQUID, "2 nA", "100 ms")}


@pytest.fixture(scope="module")
def agreement_run(tmp_path_factory):
    """agreement_run(label, backend): the run, made once per module: Brian2 at dt 0.01 ms, the
    first-order jNeuroML and NEURON at dt 0.001 ms."""
    tmp = tmp_path_factory.mktemp("agreement")
    runs = {}

    def get(label, backend):
        if (label, backend) not in runs:
            model, amp, step = AGREEMENT[label]
            dt = "0.01 ms" if backend == "brian2" else "0.001 ms"
            exp = _experiment(tmp / f"{label}_{backend}.toml", model, dt, amp, step)
            runs[(label, backend)] = read_results(run_experiment(exp, out=tmp / f"{label}_{backend}",
                                                                 backend=backend, quiet=True))
        return runs[(label, backend)]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("label", ["kenyon", "squid"])
@pytest.mark.parametrize("backend", [pytest.param("jneuroml", marks=pytest.mark.needs_jneuroml),
                                     pytest.param("neuron", marks=pytest.mark.needs_neuron)])
def test_agreement_with_brian2(agreement_run, label, backend):
    ref = agreement_run(label, "brian2").spike_t
    got = agreement_run(label, backend).spike_t
    assert len(ref) >= 5
    assert len(got) == len(ref), f"{backend}: {len(got)} spikes, brian2: {len(ref)}"
    diff = np.abs(got - ref)
    print(f"{label} {backend}: {len(got)} spikes, first-spike diff {diff[0] * 1e3:.3f} ms, "
          f"max {diff.max() * 1e3:.3f} ms")
    assert diff[0] <= FIRST_TOL
    assert diff.max() <= SPIKE_TOL
    v = agreement_run(label, backend).traces[0].variables["v"]
    assert v.shape == agreement_run(label, "brian2").traces[0].variables["v"].shape


@pytest.mark.slow
def test_imported_channel_file_runs_on_brian2(tmp_path, make_experiment):
    chan = tmp_path / "hh_imported.chan"
    chan.write_text(import_text(_jar_example("NML2_SingleCompHHCell.nml"), "NML2_SingleCompHHCell.nml"))
    exp = make_experiment("imp", model=chan, size=1, dt="0.01 ms", method=None, initial=None,
                          protocol=[("10 ms", "0 pA"), ("50 ms", "80 pA")], record={"spikes": "all"})
    res = read_results(run_experiment(exp, out=tmp_path / "run", backend="brian2", quiet=True))
    assert 2 <= len(res.spike_t) <= 10 and res.spike_t.min() > 0.010
