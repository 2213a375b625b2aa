"""Property test: any mutation of a valid .chan text either compiles or raises HHCError.

Never a Python exception of another type (a crash is an hhc bug), and a located error points at a
line that exists in the text. The regression examples for crashes this found are explicit tests
at the bottom of this file.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hhc.compiler import compile_text
from hhc.compiler.errors import HHCError

from paths import KENYON as KENYON_FILE
from paths import MODELS, SQUID as SQUID_FILE

CHANNELS = (MODELS / "channels" / "kenyon.chan").read_text()
SQUID = SQUID_FILE.read_text()
# The Kenyon cell without its import, followed by its channels, so mutations hit cells too.
KENYON = CHANNELS + "\n" + KENYON_FILE.read_text().replace(
    'import "channels/kenyon.chan"', "")
TEXTS = [SQUID, KENYON]

UNIT_WORDS = ["mV", "ms", "nS", "pF", "pA", "um2", "cm2", "mS", "Hz", "uS", "V", "s", "mv", "xx", ""]
TOKENS = ["(", ")", "{", "}", ";", "\n", "=", "+", "-", "*", "/", "^", "**", ",", ".", ":", "#",
          "0", "1e400", "1e-400", "0/0", "1/0", "99999999", "-1", "2.5", "v", "m", "h", "gbar", "E",
          "exp", "log", "sqrt", "exprel", "tau", "inf", "alpha", "beta", "gate", "channel", "cell",
          "import", "current", "ion", "leak", "initial", "gates", "steady_state", "spike", "when",
          "rises", "above", "input", "channels", '"x.chan"', '"', "\\", "\t", "é", "\x00", "mV",
          " ^ 99999999", " ^ -99999", "(((", ")))", "----", "abs(", "tanh("]
_TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|\S")


def _tokens(text):
    return [(m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


@st.composite
def mutation(draw, text):
    kind = draw(st.sampled_from(["delete_char", "insert_char", "replace_char", "delete_token",
                                 "insert_token", "replace_token", "swap_unit", "duplicate_line",
                                 "delete_line", "truncate", "swap_lines"]))
    lines = text.split("\n")
    if kind in ("delete_char", "insert_char", "replace_char"):
        i = draw(st.integers(0, len(text)))
        char = draw(st.characters(codec="utf-8") | st.sampled_from(list("(){};=+-*/^,.\n\"#0123456789")))
        if kind == "delete_char":
            return text[:i] + text[i + 1:]
        if kind == "insert_char":
            return text[:i] + char + text[i:]
        return text[:i] + char + text[i + 1:]
    if kind in ("delete_token", "insert_token", "replace_token"):
        spans = _tokens(text) or [(0, 0)]
        start, end = spans[draw(st.integers(0, len(spans) - 1))]
        token = draw(st.sampled_from(TOKENS))
        if kind == "delete_token":
            return text[:start] + text[end:]
        if kind == "insert_token":
            return text[:start] + token + " " + text[start:]
        return text[:start] + token + text[end:]
    if kind == "swap_unit":
        units = [m for m in re.finditer(r"(?<=\d )[A-Za-z][A-Za-z0-9]*", text)]
        if not units:
            return text
        m = units[draw(st.integers(0, len(units) - 1))]
        return text[:m.start()] + draw(st.sampled_from(UNIT_WORDS)) + text[m.end():]
    i = draw(st.integers(0, max(0, len(lines) - 1)))
    if kind == "duplicate_line":
        j = draw(st.integers(0, len(lines)))
        return "\n".join(lines[:j] + [lines[i]] + lines[j:])
    if kind == "delete_line":
        return "\n".join(lines[:i] + lines[i + 1:])
    if kind == "swap_lines":
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    return text[:draw(st.integers(0, len(text)))]          # truncate


@st.composite
def mutated_text(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        text = draw(mutation(text))
    return text


def assert_compiles_or_hhc_error(text: str):
    try:
        compile_text(text, "mutant.chan")
    except HHCError as exc:
        if exc.location is not None:
            n_lines = max(1, len(text.splitlines()))
            assert 1 <= exc.location.line <= n_lines + 1, (exc.location, n_lines)
            assert exc.location.column >= 1
        str(exc)     # rendering never fails either


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_text())
def test_mutated_models_compile_or_raise_hhc_error(text):
    assert_compiles_or_hhc_error(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(TOKENS + [" ", " mV", " ms"]), max_size=40).map("".join))
def test_random_token_soup_in_an_expression(soup):
    """Arbitrary token sequences in the place of a parameter value."""
    assert_compiles_or_hhc_error(f"channel K {{\n    gbar = 6 nS\n    E = {soup}\n    gate m ^ 1 {{ inf = 0.5; tau = 1 ms }}\n}}\n")


# ---- regressions: crashes found by the property tests (each fixed in compiler/) -------------

REGRESSIONS = {
    # sympy makes nan/zoo of these; they used to become parameter values silently
    "zero_over_zero": "channel K {\n    x = 0/0\n}\n",
    "one_over_zero_mV": "channel K {\n    x = 1 / (0 mV)\n}\n",
    "log_of_zero": "channel K {\n    x = log(0)\n}\n",
    "sqrt_of_negative": "channel K {\n    x = sqrt(-1 mV)\n}\n",
    # 2^99999999 was computed exactly (hang / ValueError from int→str); 1e999999999 likewise
    "huge_power": "channel K {\n    x = 2 ^ 99999999\n}\n",
    "huge_symbolic_power": "channel K {\n    x = (v + 1 mV) ^ 99999999\n}\n",
    "huge_literal": "channel K {\n    x = 1e999999999 mV\n}\n",
    "tiny_literal": "channel K {\n    x = 1e-999999999 mV\n}\n",
    "repeated_power": "channel K {\n    x = ((2 ^ 1000) ^ 1000) ^ 1000\n}\n",
    # RecursionError in the tree transform and checker
    "deep_unary_minus": "channel K {\n    x = " + "-" * 5000 + "1\n}\n",
    "deep_power_chain": "channel K {\n    x = " + "2 ^ " * 3000 + "1\n}\n",
    # HHCErrors raised inside the Lark transformer came out wrapped in lark's VisitError
    "ion_twice": "channel K {\n    ion k\n    ion na\n}\n",
    "two_currents": "channel K {\n    current = 1 pA\n    current = 2 pA\n}\n",
    "two_spikes": "cell A {\n    C = 1 pF\n    spike when v rises above 0 mV\n    spike when v rises above 1 mV\n}\n",
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_raises_located_hhc_error(name):
    text = REGRESSIONS[name]
    with pytest.raises(HHCError) as info:
        compile_text(text, "r.chan")
    assert info.value.location is not None
    assert 1 <= info.value.location.line <= len(text.splitlines())


def test_regression_messages():
    def message(text):
        with pytest.raises(HHCError) as info:
            compile_text(text, "r.chan")
        return str(info.value)
    assert "division by zero" in message(REGRESSIONS["zero_over_zero"])
    assert "not a real number" in message(REGRESSIONS["sqrt_of_negative"])
    assert "too large" in message(REGRESSIONS["huge_power"])
    assert "out of range" in message(REGRESSIONS["huge_literal"])
    assert "nested too deeply" in message(REGRESSIONS["deep_unary_minus"])
    assert "declares its ion twice" in message(REGRESSIONS["ion_twice"])
    assert "r.chan:3:9" in message(REGRESSIONS["ion_twice"])
    assert "two spike conditions" in message(REGRESSIONS["two_spikes"])
