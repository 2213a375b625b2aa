"""`hhc import` of NeuroML2 as published models write it (compiler/neuroml_import.py).

The corpus (tests/data/nml_corpus/) is ours, written in the forms neuroConstruct and pyNeuroML exports
use: both gate spellings, standard and custom LEMS rate types (Constants, DerivedVariable chains,
ConditionalDerivedVariables), Q10s, Ca pools, Nernst, vShift, includes, a network and a LEMS file.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from hhc.compiler import compile_text, ir, units
from hhc.compiler.errors import HHCError

from paths import DATA

pytest.importorskip("lxml")
from hhc.compiler.neuroml_import import import_file, import_text  # noqa: E402

CORPUS = DATA / "nml_corpus"
FILES = sorted(CORPUS.glob("*.nml")) + sorted(CORPUS.glob("LEMS_*.xml"))
NML = '<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="x">\n{}\n</neuroml>\n'


def _compiled(name: str):
    imported = import_file(CORPUS / name)
    return imported, compile_text(imported.chan, str(CORPUS / name.replace(".nml", ".chan")))


def test_the_corpus_is_what_the_issue_asks_for():
    channels = list(CORPUS.glob("*.channel.nml"))
    assert len(channels) >= 12 and len(list(CORPUS.glob("*.cell.nml"))) >= 3
    assert list(CORPUS.glob("*.net.nml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_corpus_file_imports_and_compiles(path):
    imported = import_file(path)
    model = compile_text(imported.chan, str(path.with_suffix(".chan")))
    assert model.channels or model.cells


# ---------------------------------------------------------------------------------------------
# what each construct becomes

def _si_function(expr, cell=None, parameters=()):
    """A NumPy function of (v in V, cai in mol/m3) of a gate expression, every parameter inlined."""
    params = list(parameters) + (list(cell.parameters) if cell is not None else [])
    helpers = list(cell.expressions) if cell is not None else []
    for _ in range(5):
        expr = expr.xreplace({p.symbol: p.value for p in params})
        expr = expr.xreplace({e.symbol: e.expr for e in helpers})
    expr = units.to_si(expr)
    return sympy.lambdify((ir.V, sympy.Symbol("cai")), expr, modules=[{"exprel": lambda x: np.expm1(x) / x}, "numpy"])


def test_piecewise_rate_is_a_conditional_with_the_lems_cases():
    imported, model = _compiled("KdrPiecewise.channel.nml")
    assert " if v/mV < -70 else " in imported.chan and "v/mV >= -70 and v/mV <= 20" in imported.chan
    (channel,) = model.channels
    alpha = _si_function(channel.gates[0].alpha, parameters=channel.parameters)
    for v_mv in (-90, -70, -30, 20, 35):
        lems = (0.0021 * math.exp((v_mv + 70) / 8) if v_mv < -70 else
                0.0021 + 0.0004 * (v_mv + 70) if v_mv <= 20 else 0.0381) * 1e3 * 2.7   # q10Fixed 2.7
        assert float(alpha(v_mv * 1e-3, 0)) == pytest.approx(lems, rel=1e-12)


def test_custom_rate_reading_the_temperature_uses_kelvin_as_lems_does():
    imported, model = _compiled("SomaHH.cell.nml")
    cell = model.cells[0]
    km = next(c for c in cell.channels if c.name == "KM")
    alpha = _si_function(km.gates[0].alpha, cell)
    temperature = float(units.to_si(cell.temperature.value))          # 23 degC: the first Q10 reference
    phi = 2.3 ** ((temperature - 23) / 10)
    v = -0.05
    lems = 0.0033 * (temperature + 273.15) / 296.15 * math.exp((v + 0.032) / 0.009 / 2) * 1e3 * phi
    assert float(alpha(v, 0)) == pytest.approx(lems, rel=1e-9)


def test_ca_dependent_rates_read_cai_and_the_pool_follows_neuroml():
    imported, model = _compiled("CaPoolCell.cell.nml")
    cell = model.cells[0]
    kca = next(c for c in cell.channels if c.name == "KCa")
    alpha = _si_function(kca.gates[0].alpha, cell)
    ca_mM, v = 2e-4, -0.03
    assert float(alpha(v, ca_mM)) == pytest.approx(0.47 * ca_mM / (ca_mM + 0.0015 * math.exp(-0.8 * -30 / 25)) * 1e3,
                                                   rel=1e-12)
    (pool,) = cell.pools
    assert pool.kind == "decaying"
    # NeuroML's shell: thickness 0.2 um in a sphere of the segment's area (Cells.xml, pi = 3.14159)
    area = math.pi * 16e-6 * 21e-6
    r = math.sqrt(area / (4 * 3.14159))
    shell = 4 * 3.14159 / 3 * (r ** 3 - (r - 0.2e-6) ** 3)
    assert pool.depth.si_value * area == pytest.approx(shell, rel=1e-9)
    cat = next(c for c in cell.channels if c.name == "CaT")
    assert cat.nernst == "ca" and cat.ion == "ca"
    assert cell.area.si_value == pytest.approx(area, rel=1e-9)


def test_a_channel_with_nernst_and_fixed_reversal_becomes_two_channels():
    imported, model = _compiled("FixedPoolCell.cell.nml")
    cell = model.cells[0]
    names = {c.name: c.nernst for c in cell.channels}
    assert names["CaT_nernst_ca"] == "ca" and names["CaT"] is None
    (pool,) = cell.pools
    assert pool.kind == "fixed_factor" and pool.rho.si_value == pytest.approx(2.6e-4)


def test_vshift_density_becomes_the_use_site_vshift():
    imported, model = _compiled("ShiftCell.cell.nml")
    assert "NaShift(gbar = 60 mS/cm2, E = 52 mV, vshift = -7 mV)" in imported.chan
    cell = model.cells[0]
    na = next(c for c in cell.channels if c.name == "NaShift")
    inf = _si_function(na.gates[0].steady_state, cell)
    v = -0.03                                              # LEMS: 1/(1+exp(-(v - vShift - midpoint)/scale))
    assert float(inf(v, 0)) == pytest.approx(1 / (1 + math.exp(-(v + 0.007 + 0.033) / 0.0077)), rel=1e-12)
    assert cell.leak is not None                           # the gateless ionChannelHH: hhc's leak form


def test_q10_settings_and_gate_spellings():
    imported, model = _compiled("SomaHH.cell.nml")
    cell = model.cells[0]
    kdr = next(c for c in cell.channels if c.name == "KdrGate")
    assert kdr.gates[0].q10 is not None
    assert "q10 = 3" in imported.chan and "q10_temperature = 6.3 degC" in imported.chan
    assert "rate_factor = 2.7" in imported.chan
    pas = next(c for c in cell.channels if c.name == "Pas")
    assert pas.is_passive
    assert cell.area.si_value == pytest.approx(math.pi * 18.4e-6 ** 2, rel=1e-9)     # a sphere: length 0


def test_network_gives_an_experiment(tmp_path):
    from hhc.compiler.experiment import load_experiment
    imported = import_file(CORPUS / "LEMS_PulseNet.xml")
    (tmp_path / "net.chan").write_text(imported.chan)
    (tmp_path / "net.toml").write_text(imported.experiment("net.chan"))
    exp = load_experiment(tmp_path / "net.toml")
    assert exp.size == 3 and exp.temperature == pytest.approx(34)
    durations = [p.duration for p in exp.protocol]
    assert sum(durations) == pytest.approx(0.150)                   # the LEMS Simulation's length
    assert [p.inputs["Iapp"] for p in exp.protocol] == ["0 nA", "0.12 nA", "0.42 nA", "0.12 nA", "0 nA"]
    assert "temperature = 34 degC" in imported.chan


def test_import_command_writes_chan_and_experiment(cli, tmp_path):
    import shutil
    for f in CORPUS.iterdir():
        shutil.copy(f, tmp_path / f.name)
    r = cli("import", tmp_path / "PulseNet.net.nml", "-o", tmp_path / "net.chan")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "net.chan").is_file() and (tmp_path / "net.toml").is_file()
    assert "net.toml" in r.stdout and 'file = "net.chan"' in (tmp_path / "net.toml").read_text()


# ---------------------------------------------------------------------------------------------
# refusals: located, with file and line

def _error(tmp_path, files: dict, main: str) -> HHCError:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(HHCError) as info:
        import_file(tmp_path / main)
    return info.value


def test_missing_include_is_located(tmp_path):
    err = _error(tmp_path, {"a.nml": NML.format('  <include href="nothere.nml"/>')}, "a.nml")
    assert err.location.path.endswith("a.nml") and err.location.line == 2 and "nothere.nml" in err.message


def test_standard_includes_are_known(tmp_path):
    text = NML.format('  <include href="NeuroMLCoreDimensions.xml"/>\n  <ionChannelPassive id="p" conductance="1pS"/>')
    (tmp_path / "a.nml").write_text(text)
    assert "channel p {" in import_file(tmp_path / "a.nml").chan


def test_include_cycle_is_located(tmp_path):
    err = _error(tmp_path, {"a.nml": NML.format('  <include href="b.nml"/>'),
                            "b.nml": NML.format('  <ionChannelPassive id="p" conductance="1pS"/>\n'
                                                '  <include href="a.nml"/>')}, "a.nml")
    assert "include cycle" in err.message and err.location.path.endswith("b.nml") and err.location.line == 3


def test_multi_segment_cell_is_refused(tmp_path):
    cell = ('  <cell id="two"><morphology id="m">\n'
            '    <segment id="0"><proximal x="0" y="0" z="0" diameter="1"/><distal x="0" y="1" z="0" diameter="1"/></segment>\n'
            '    <segment id="1"><parent segment="0"/><distal x="0" y="2" z="0" diameter="1"/></segment>\n'
            '  </morphology></cell>')
    err = _error(tmp_path, {"c.nml": NML.format(cell)}, "c.nml")
    assert "cell two has 2 segments; hhc simulates point neurons (one segment)" in err.message
    assert err.location.line == 2 and "c.nml:2:" in str(err)


def test_unknown_gate_type_is_refused(tmp_path):
    chan = ('  <ionChannel id="k" type="ionChannelHH" conductance="1pS">\n'
            '    <gate id="n" type="gateWhatever" instances="1"/>\n  </ionChannel>')
    err = _error(tmp_path, {"k.nml": NML.format(chan)}, "k.nml")
    assert "gate type 'gateWhatever' is not supported" in err.message and err.location.line == 3


@pytest.mark.parametrize("snippet, message", [
    ('<ionChannel id="k" type="ionChannelHH" conductance="1pS"><gate id="n" type="gateHHInstantaneous" instances="1">'
     '<steadyState type="HHSigmoidVariable" rate="1" midpoint="0mV" scale="1mV"/></gate></ionChannel>',
     "gateHHInstantaneous"),
    ('<ionChannel id="k" type="ionChannelHH" conductance="1pS"><gate id="n" type="gateHHrates" instances="1">'
     '<forwardRate type="r"/><reverseRate type="HHExpRate" rate="1per_ms" midpoint="0mV" scale="1mV"/></gate>'
     '</ionChannel><ComponentType name="r" extends="baseVoltageDepRate"><Dynamics>'
     '<DerivedVariable name="r" exposure="r" dimension="per_time" value="random(1) * 1per_ms"/></Dynamics>'
     '</ComponentType>', "random"),
    ('<iafCell id="i" leakReversal="-70mV" thresh="-50mV" reset="-70mV" C="1nF" leakConductance="1nS"/>',
     "abstract point model"),
    ('<ionChannel id="k" type="ionChannelHH" conductance="1pS"><conductanceScaling type="caDep"/></ionChannel>',
     "conductanceScaling"),
])
def test_what_hhc_cannot_hold_is_refused_with_its_line(snippet, message):
    with pytest.raises(HHCError, match=message) as info:
        import_text(NML.format("    " + snippet), "bad.nml")
    assert info.value.location is not None and info.value.location.line >= 2


# ---------------------------------------------------------------------------------------------
# round trip: .chan → NeuroML (hhc's exporter) → .chan, for the new constructs

ROUND_TRIP = """
channel CaT {
    ion ca
    gbar = 1.2 mS/cm2
    E = nernst(ca)
    q10 = 3
    q10_temperature = 24 degC
    gate m ^ 2 {
        inf = 1 / (1 + exp(-(v + 57 mV) / 6.2 mV))
        tau = (0.6 ms + 1 ms / (exp(-(v + 131 mV) / 16.7 mV) + exp((v + 15.8 mV) / 18.2 mV)))
    }
    gate h ^ 1 {
        inf = 1 / (1 + exp((v + 81 mV) / 4 mV))
        tau = (exp((v + 467 mV) / 66.6 mV) * 1 ms if v < -80 mV else 28 ms + exp(-(v + 22 mV) / 10.5 mV) * 1 ms)
    }
}
channel KCa {
    ion k
    gbar = 3 mS/cm2
    E = -90 mV
    gate c ^ 1 {
        alpha = 0.5 / ms * cai / (cai + 0.002 mM)
        beta = 0.04 / ms
        rate_factor = 1.7
    }
}
channel Leak { gbar = 0.05 mS/cm2; E = -70 mV }
channel Na {
    ion na
    gbar = 90 mS/cm2
    E = 50 mV
    gate m ^ 3 {
        alpha = 0.32 / ms / exprel(-(v + 54 mV) / 4 mV)
        beta = 0.28 / ms / exprel((v + 27 mV) / 5 mV)
    }
    gate h ^ 1 {
        alpha = 0.128 / ms * exp(-(v + 50 mV) / 18 mV)
        beta = 4 / ms / (1 + exp(-(v + 27 mV) / 5 mV))
    }
}
cell RoundTrip {
    C = 1 uF/cm2
    area = 2000 um2
    temperature = 34 degC
    channels CaT, KCa, Leak, Na(vshift = -5 mV)
    pool ca { initial = 60 nM; resting = 60 nM; decay = 40 ms; depth = 0.1 um; outside = 2 mM }
    input Iapp : current
    initial { v = -70 mV }
    spike when v rises above 0 mV
}
"""


def _rate_functions(cell):
    out = {}
    for ch in cell.channels:
        for g in ch.gates:
            for kind in ("steady_state", "time_constant", "alpha", "beta"):
                expr = getattr(g, kind)
                if expr is not None:
                    out[(ch.name.lower(), g.name, kind)] = _si_function(expr, cell)
    return out


def test_round_trip_of_the_new_constructs():
    from hhc.api import compile_model
    original = compile_text(ROUND_TRIP, "roundtrip.chan")
    try:
        files = compile_model(original, target="neuroml")
    except (HHCError, TypeError) as exc:          # the exporter's side of issue 14 is not there yet
        pytest.xfail(f"the NeuroML exporter cannot write the new constructs yet: {exc}")
    nml = next(text for name, text in files.items() if name.endswith(".cell.nml"))
    back = compile_text(import_text(nml, "roundtrip.nml"), "back.chan").cell()
    cell = original.cell()
    f0, f1 = _rate_functions(cell), _rate_functions(back)
    assert set(f0) <= set(f1) or set(f0) == set(f1), (sorted(f0), sorted(f1))
    v = np.linspace(-0.1, 0.05, 301) + 1.23e-6
    for cai in np.geomspace(1e-6, 1e-2, 9):                  # mM = mol/m3
        for key, f in f0.items():
            a = np.broadcast_to(f(v, cai), v.shape).astype(float)
            b = np.broadcast_to(f1[key](v, cai), v.shape).astype(float)
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=0, err_msg=str(key))
    assert {c.name.lower(): c.nernst for c in back.channels}["cat"] == "ca"
    assert back.pools[0].kind == "decaying"
