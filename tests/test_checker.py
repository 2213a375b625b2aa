"""Names, units, dimensions, cycles and ranges: located errors; and the IR of good models."""
from __future__ import annotations

import re
import numpy as np
import pytest
import sympy

from hhc.compiler import compile_text, ir, load_model, rhs
from hhc.compiler.units import to_si
from hhc.compiler.errors import HHCError

from paths import KENYON, MODELS, ROOT, SQUID
from test_parser import assert_error, error_of


# A small valid channel; tests splice one wrong line into it. Line numbers are given in comments.
GATE = ("    gate m ^ 4 {\n"                                            # 5
        "        inf = 1 / (1 + exp(-(v + 37 mV) / 27 mV))\n"           # 6
        "        tau = 2 ms\n"                                          # 7
        "    }\n")                                                      # 8


def channel(extra: str = "", gate: str = GATE, tail: str = "") -> str:
    return ("channel K {\n"                 # 1
            "    ion k\n"                   # 2
            "    gbar = 6 nS\n"             # 3
            f"    E = -81 mV\n{extra}{gate}{tail}}}\n")


CELL_HEAD = "cell A {\n"


def with_cell(body: str) -> str:
    """channel(), then a cell starting at line 10 (its first body line is 11)."""
    return channel() + CELL_HEAD + body + "}\n"


def test_channel_template_is_valid():
    compile_text(with_cell("    C = 4 pF\n    channels K\n    initial { v = -65 mV }\n"))


# ---- names ---------------------------------------------------------------------------------

def test_undefined_name_with_did_you_mean():
    err = error_of(channel("    x = gbr * 2\n"))
    assert_error(err, 5, 9, "undefined name 'gbr'", "did you mean 'gbar'?")


def test_undefined_name_in_a_gate():
    err = error_of(channel(gate=GATE.replace("tau = 2 ms", "tau = 2 ms * q")))
    assert_error(err, 7, 22, "undefined name 'q'")


def test_unknown_function():
    err = error_of(channel("    x = expp(1)\n"))
    assert_error(err, 5, 9, "unknown function 'expp'", "did you mean 'exp'?")


def test_duplicate_parameter():
    err = error_of(channel("    gbar = 3 nS\n"))
    assert_error(err, 5, 5, "duplicate", "'gbar'", "first defined at t.chan:3:5")


def test_duplicate_gate():
    err = error_of(channel(tail=GATE))
    assert_error(err, 9, 5, "duplicate", "'m'", "first defined at t.chan:5:5")


def test_duplicate_helper_in_a_gate():
    err = error_of(channel(gate=GATE.replace("tau = 2 ms", "tau = 2 ms\n        tau = 3 ms")))
    assert_error(err, 8, 9, "duplicate", "'tau'")


def test_duplicate_cell():
    err = error_of(channel() + "cell A {\n    C = 4 pF\n}\ncell A {\n    C = 4 pF\n}\n")
    assert_error(err, 13, 6, "duplicate cell 'A'", "first defined at t.chan:10:6")


def test_duplicate_channel_in_one_file():
    err = error_of(channel() + channel())
    assert_error(err, 10, 9, "duplicate channel 'K'")


def test_circular_helpers():
    err = error_of(channel("    a = b * 2\n    b = a + 1\n"))
    assert_error(err, 6, 5, "circular definition in channel K", "a → b → a")


def test_circular_helpers_in_a_gate():
    err = error_of(channel(gate=GATE.replace("tau = 2 ms", "a = 1 ms + b\n        b = a\n        tau = a")))
    assert_error(err, 8, 9, "circular definition in gate m of channel K", "a → b → a")


def test_self_reference():
    err = error_of(channel("    a = a + 1\n"))
    assert_error(err, 5, 5, "circular definition", "a → a")


def test_v_cannot_be_redefined():
    err = error_of(channel("    v = 1 mV\n"))
    assert_error(err, 5, 5, "'v' is the membrane potential")


# ---- dimensions ----------------------------------------------------------------------------

def test_tau_must_be_a_time():
    err = error_of(channel(gate=GATE.replace("tau = 2 ms", "tau = 2 mV")))
    assert_error(err, 7, 15, "tau of gate m of channel K must be a time (ms)", "voltage (mV)")


def test_inf_must_be_dimensionless():
    err = error_of(channel(gate=GATE.replace("inf = 1 / (1 + exp(-(v + 37 mV) / 27 mV))", "inf = 0.5 mV")))
    assert_error(err, 6, 15, "inf of gate m of channel K must be a dimensionless number", "voltage (mV)")


def test_alpha_must_be_a_rate():
    gate = "    gate m ^ 1 {\n        alpha = 2 ms\n        beta = 1 / ms\n    }\n"
    err = error_of(channel(gate=gate))
    assert_error(err, 6, 17, "alpha of gate m of channel K must be a rate (1/time)", "time (ms)")


def test_current_must_be_a_current():
    err = error_of(channel(tail="    current = gbar * m\n"))
    assert_error(err, 9, 15, "current of channel K must be a current (pA)", "conductance (nS)")


def test_adding_mV_to_ms():
    err = error_of(channel("    x = 1 mV + 2 ms\n"))
    assert_error(err, 5, 16, "cannot add a time (ms) to a voltage (mV)")


def test_subtracting_mismatched():
    err = error_of(channel("    x = v - 2 ms\n"))
    assert_error(err, 5, 13, "cannot subtract a time (ms) from a voltage (mV)")


def test_exp_of_a_voltage():
    err = error_of(channel("    x = exp(v + 1 mV)\n"))
    assert_error(err, 5, 13, "argument of exp() must be dimensionless", "voltage (mV)", "hint: divide")


def test_dimensioned_power_needs_a_constant_exponent():
    err = error_of(channel("    x = (1 mV) ^ (v / mV)\n"))
    assert_error(err, 5, 19, "can only be raised to a constant number")


def test_exponent_must_be_dimensionless():
    err = error_of(channel("    x = 2 ^ v\n"))
    assert_error(err, 5, 13, "exponent must be dimensionless")


def test_unknown_unit_with_suggestion():
    err = error_of(channel("    x = 2 mv\n"))
    assert_error(err, 5, 11, "unknown unit 'mv'", "did you mean 'mV'?")


def test_unknown_unit_wrong_case_picks_the_prefix_written():
    err = error_of(channel("    x = 2 PF\n"))
    assert_error(err, 5, 11, "unknown unit 'PF'", "did you mean 'pF'?")


def test_default_current_needs_gbar_and_E():
    err = error_of("channel K {\n    gate m ^ 1 { inf = 0.5; tau = 1 ms }\n}\n")
    assert_error(err, 1, 9, "no 'current = ...'", "gbar and E")


def test_gbar_must_be_a_conductance():
    err = error_of(channel().replace("gbar = 6 nS", "gbar = 6 mV"))
    assert_error(err, 3, 5, "gbar of channel K must be a conductance (nS)")


def test_negative_conductance():
    err = error_of(channel().replace("gbar = 6 nS", "gbar = -6 nS"))
    assert_error(err, 3, 12, "negative")


def test_gate_mixing_forms():
    gate = "    gate m ^ 1 {\n        inf = 0.5\n        tau = 1 ms\n        alpha = 1 / ms\n    }\n"
    assert_error(error_of(channel(gate=gate)), 8, 9, "mixes inf/tau with alpha/beta")


def test_gate_missing_inf():
    gate = "    gate m ^ 1 {\n        tau = 2 ms\n    }\n"
    assert_error(error_of(channel(gate=gate)), 5, 5, "has no 'inf'", "or only inf: an instantaneous gate")


def test_gate_with_inf_alone_is_instantaneous():
    """No tau: the gate is always at its steady state, not a state variable; its power still counts."""
    gate = "    gate m ^ 2 {\n        inf = 1 / (1 + exp(-(v + 37 mV) / 27 mV))\n    }\n"
    cell = compile_text(channel(gate=gate) + "cell A {\n    C = 4 pF\n    channels K\n    initial { v = -65 mV }\n}\n").cell()
    assert cell.states == ("v",) and cell.channels[0].instantaneous[0].power == 2
    v = -0.037
    current = rhs.in_si(cell, rhs.inline(cell.channels[0].current, cell)).subs(ir.V, v)
    assert float(current) == pytest.approx(6e-9 * 0.5 ** 2 * (v + 0.081))
    q10 = gate.replace("    }\n", "        q10 = 3\n        q10_temperature = 20 degC\n    }\n")
    assert_error(error_of(channel(gate=q10)), 7, 9, "gate m of channel K is instantaneous", "nothing to scale")


def test_gate_power_zero():
    err = error_of(channel(gate=GATE.replace("m ^ 4", "m ^ 0")))
    assert_error(err, 5, 14, "power of gate m of channel K must be a positive integer, got 0")


# ---- cells ---------------------------------------------------------------------------------

def test_unknown_channel_in_a_cell():
    err = error_of(with_cell("    C = 4 pF\n    channels Kx\n"))
    assert_error(err, 12, 14, "unknown channel 'Kx'", "did you mean 'K'?")


def test_override_of_a_missing_parameter():
    err = error_of(with_cell("    C = 4 pF\n    channels K(gmax = 3 nS)\n"))
    assert_error(err, 12, 16, "channel K has no parameter 'gmax'", "parameters: gbar, E")


def test_override_with_the_wrong_dimension():
    err = error_of(with_cell("    C = 4 pF\n    channels K(gbar = 3 mV)\n"))
    assert_error(err, 12, 23, "gbar of channel K is a conductance (nS)", "override is a voltage (mV)")


def test_override_must_be_a_constant():
    err = error_of(with_cell("    C = 4 pF\n    channels K(gbar = E)\n"))
    assert_error(err, 12, 23, "must be a constant", "'E'")


def test_gate_initial_value_out_of_range():
    err = error_of(with_cell("    C = 4 pF\n    channels K\n    initial {\n        v = -65 mV\n        K.m = 1.5\n    }\n"))
    assert_error(err, 15, 15, "between 0 and 1", "K.m = 1.5")


def test_gate_initial_value_negative():
    err = error_of(with_cell("    C = 4 pF\n    channels K\n    initial { v = -65 mV; K.m = -0.1 }\n"))
    assert_error(err, 13, 33, "between 0 and 1", "-0.1")


def test_unknown_initial_target():
    err = error_of(with_cell("    C = 4 pF\n    channels K\n    initial { v = -65 mV; K.n = 0 }\n"))
    assert_error(err, 13, 27, "unknown initial value target 'K.n'", "did you mean 'K.m'?")


def test_missing_capacitance():
    err = error_of(with_cell("    channels K\n    leak { g = 1 nS; E = -65 mV }\n"))
    assert_error(err, 10, 6, "cell A has no membrane capacitance C")


def test_capacitance_dimension():
    err = error_of(with_cell("    C = 4 nS\n"))
    assert_error(err, 11, 9, "C of cell A must be a capacitance (pF)")


def test_densities_without_area():
    text = ("channel N {\n    gbar = 120 mS/cm2\n    E = 50 mV\n}\n"
            "cell A {\n    C = 1 uF/cm2\n    channels N\n    initial { v = -65 mV }\n}\n")
    err = error_of(text)
    assert_error(err, 5, 6, "cell A uses densities (channel N, C) but has no area", "area = 1000 um2")


def test_unknown_cell_setting():
    err = error_of(with_cell("    C = 4 pF\n    gbar = 1 nS\n"))
    assert_error(err, 12, 5, "unknown cell setting 'gbar'")


def test_leak_needs_E():
    err = error_of(with_cell("    C = 4 pF\n    leak { g = 1 nS }\n"))
    assert_error(err, 12, 5, "leak of cell A has no E")


def test_no_initial_v_and_no_leak():
    err = error_of(with_cell("    C = 4 pF\n    channels K\n"))
    assert_error(err, 10, 6, "has no initial v")


def test_spike_threshold_must_be_a_voltage():
    err = error_of(with_cell("    C = 4 pF\n    initial { v = -65 mV }\n    spike when v rises above 3 ms\n"))
    assert_error(err, 13, 30, "spike threshold must be a voltage (mV)")


def test_input_name_clash():
    err = error_of(with_cell("    C = 4 pF\n    channels K\n    initial { v = -65 mV }\n    input gbar_K : current\n"))
    assert_error(err, 14, 11, "input name 'gbar_K' is already used")


def test_unknown_input_kind():
    err = error_of(with_cell("    C = 4 pF\n    initial { v = -65 mV }\n    input I : voltage\n"))
    assert_error(err, 13, 15, "unknown input kind 'voltage'")


# ---- the IR of good models ------------------------------------------------------------------

def test_both_models_load():
    kenyon = load_model(KENYON)
    squid = load_model(SQUID)
    assert kenyon.cell().name == "KenyonCell"
    assert squid.cell().name == "SquidAxon"


def test_kenyon_cell_ir():
    cell = load_model(KENYON).cell()
    assert len(cell.states) == 10
    assert [ch.name for ch in cell.channels] == ["NaF", "NaS", "Kv", "Ks", "KA"]
    assert cell.states[:3] == ("v", "m_NaF", "h_NaF")
    assert [i.name for i in cell.inputs] == ["Iapp"]
    assert float(to_si(cell.threshold)) == pytest.approx(-0.020)
    assert cell.initial_value("h_NaF").value == 1
    assert {e.name for e in cell.expressions} == {"tau0_m_KA", "tau0_h_KA"}
    names = {p.name for p in cell.parameters}
    assert {"gbar_NaF", "E_KA", "C", "g_leak", "E_leak"} <= names
    naf = cell.channels[0]
    assert naf.current_name == "I_NaF" and not naf.current_is_density
    m, h, gbar, e = sympy.symbols("m_NaF h_NaF gbar_NaF E_NaF")
    assert sympy.simplify(naf.current - gbar * m**3 * h * (ir.V - e)) == 0


def test_override_changes_the_parameter_value():
    cell = compile_text(with_cell("    C = 4 pF\n    channels K(gbar = 3.5 nS)\n    initial { v = -65 mV }\n")).cell()
    (gbar,) = [p for p in cell.parameters if p.name == "gbar_K"]
    assert gbar.si_value == pytest.approx(3.5e-9)
    assert gbar.unit == "nS" and gbar.magnitude == 3.5
    # the channel's own default is untouched
    model = compile_text(with_cell("    C = 4 pF\n    channels K(gbar = 3.5 nS)\n    initial { v = -65 mV }\n"))
    assert [p.si_value for p in model.channels[0].parameters if p.name == "gbar_K"] == [pytest.approx(6e-9)]


def test_default_gate_initial_value_is_steady_state():
    cell = compile_text(with_cell("    C = 4 pF\n    channels K\n    initial { v = -65 mV }\n")).cell()
    assert cell.initial_value("m_K").value is None
    cell = compile_text(with_cell("    C = 4 pF\n    channels K\n    initial { v = -65 mV; K.m = 0.25 }\n")).cell()
    assert cell.initial_value("m_K").value == sympy.Rational(1, 4)


def test_initial_v_defaults_to_leak_E():
    cell = compile_text(with_cell("    C = 4 pF\n    leak { g = 1 nS; E = -70 mV }\n")).cell()
    assert float(to_si(cell.initial_value("v").value)) == pytest.approx(-0.070)


def test_density_form_with_area():
    text = ("channel N {\n    gbar = 120 mS/cm2\n    E = 50 mV\n"
            "    gate m ^ 3 { inf = 1 / (1 + exp(-(v + 40 mV) / 9 mV)); tau = 0.1 ms }\n}\n"
            "cell A {\n    C = 1 uF/cm2\n    area = 20000 um2\n    channels N\n"
            "    leak { g = 0.3 mS / cm2; E = -54 mV }\n    initial { v = -65 mV }\n}\n")
    cell = compile_text(text).cell()
    (ch,) = cell.channels
    assert ch.current_is_density
    area = sympy.Symbol("area")
    assert cell.channel_current(ch) == ch.current * area
    assert cell.area.si_value == pytest.approx(2e-8)
    assert cell.membrane_capacitance == sympy.Symbol("C") * area
    assert cell.leak_current.has(area)
    # 120 mS/cm2 over 20000 um2 is 24 uS
    (gbar,) = [p for p in ch.parameters if p.name == "gbar_N"]
    assert gbar.si_value * cell.area.si_value == pytest.approx(24e-6)


def test_alpha_beta_steady_state_is_alpha_over_alpha_plus_beta():
    cell = load_model(SQUID).cell()
    v_si = np.linspace(-0.1, 0.05, 31)
    for gate in cell.gates:
        assert gate.form == "alpha_beta"
        f = {name: sympy.lambdify(ir.V, to_si(expr), modules=[{"exprel": _exprel}, "numpy"])
             for name, expr in (("inf", gate.steady_state), ("tau", gate.time_constant),
                                ("alpha", gate.alpha), ("beta", gate.beta))}
        a, b = f["alpha"](v_si), f["beta"](v_si)
        np.testing.assert_allclose(f["inf"](v_si), a / (a + b), rtol=1e-12)
        np.testing.assert_allclose(f["tau"](v_si), 1 / (a + b), rtol=1e-12)
    m = cell.gates[0]
    # textbook value: m_inf(-65 mV) ≈ 0.0529
    inf = sympy.lambdify(ir.V, to_si(m.steady_state), modules=[{"exprel": _exprel}, "numpy"])
    assert inf(-0.065) == pytest.approx(0.05293, rel=1e-3)


def _exprel(x):
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-8
    safe = np.where(small, 1.0, x)
    return np.where(small, 1 + x / 2, np.expm1(safe) / safe)


def test_squid_states_and_gate_forms():
    cell = load_model(SQUID).cell()
    assert cell.states == ("v", "m_HHNa", "h_HHNa", "n_HHK")
    assert all(iv.value is None for iv in cell.initial[1:])


# ---- every ```chan example in docs/language.md compiles -------------------------------------

DOC = ROOT / "docs/language.md"


def _doc_examples():
    text = DOC.read_text()
    return [m.group(1) for m in re.finditer(r"```chan\n(.*?)```", text, re.S)]


def test_doc_has_examples():
    assert len(_doc_examples()) >= 8


@pytest.mark.parametrize("index", range(len(_doc_examples()) if DOC.exists() else 0))
def test_doc_example_compiles(index, tmp_path):
    example = _doc_examples()[index]
    # examples may import the shipped models' channel library
    path = MODELS / f"_doc_example_{index}.chan"
    compile_text(example, str(path))


def _doc_error_samples():
    """```text blocks in the doc's error list are preceded by the ```chan-error source."""
    text = DOC.read_text()
    return re.findall(r"```chan-error\n(.*?)```\n+```text\n(.*?)```", text, re.S)


@pytest.mark.parametrize("index", range(len(_doc_error_samples()) if DOC.exists() else 0))
def test_doc_error_samples_are_what_hhc_prints(index):
    source, message = _doc_error_samples()[index]
    with pytest.raises(HHCError) as info:
        compile_text(source, "example.chan")
    assert str(info.value).strip() == message.strip()


def test_parameter_named_like_a_unit_is_refused():
    text = "channel K {\n    ms = 3 ms\n    gbar = 1 nS\n    E = -80 mV\n    gate n ^ 1 { inf = 1; tau = ms }\n}\n"
    with pytest.raises(HHCError, match="'ms' is a unit name") as info:
        compile_text(text, "k.chan")
    assert (info.value.location.line, info.value.location.column) == (2, 5)


def test_zero_valued_quantities_keep_their_dimension_in_brian2():
    from brian2 import Equations  # noqa: F401 - brian2 must be importable for this backend test
    from hhc.backends.brian2 import generate as b2backend
    text = ("channel L {\n gbar = 1 nS\n E = 0 mV\n gate n ^ 1 { inf = 1; tau = 1 ms }\n}\n"
            "cell C0 {\n C = 1 pF\n channels L\n initial { v = 0 mV }\n spike when v rises above 0 mV\n}\n")
    module = b2backend.module_text(compile_text(text, "z.chan").cell())
    assert '"E_L": 0.0*volt' in module
    assert 'THRESHOLD = "v > 0.0*volt"' in module
    assert '"v": "0.0*volt"' in module
