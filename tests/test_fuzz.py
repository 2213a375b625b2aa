"""Fuzzing the two front doors: mutated .chan text (hhc.compiler.compile_text) and mutated experiment
files (hhc.api.prepare, which loads, resolves and plans a run without simulating it).

The shipped models and examples/kenyon_small.toml are mutated the ways hand edits go wrong: a
character deleted, inserted or replaced, a token replaced by another, a number replaced by an
extreme value (0, -1, 1e308, nan, 1e999 ...), a unit swapped for another, a line duplicated or
dropped. Whatever the text, hhc must either accept it or refuse it with an HHCError; any other
exception escaping is a bug in hhc (docs: compiler/errors.py).

The search is derandomized with a fixed budget (max_examples), so every run tries the same inputs
(about 15 s per test while hhc passes).
"""
from __future__ import annotations

import re
import traceback

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from hhc.api import prepare
from hhc.compiler import compile_text
from hhc.compiler.errors import HHCError

from builders import experiment_toml
from paths import EXAMPLES, KENYON, MODELS

CHAN_FILES = sorted(MODELS.glob("*.chan")) + sorted((MODELS / "channels").glob("*.chan"))
EXPERIMENT = EXAMPLES / "kenyon_small.toml"

# No shrinking: a failing input is reported as found (note() prints its text), within the time budget;
# the crashes found so far are kept, minimised by hand, as plain cases at the end of this file.
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---- mutations ----------------------------------------------------------------------------------

TOKEN = re.compile(r"\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|\S")
NUMBER = re.compile(r"(?<![A-Za-z_0-9.])(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
UNITS = ["mV", "V", "uV", "ms", "s", "us", "nS", "uS", "mS", "pS", "S", "pA", "nA", "uA", "A", "pF", "uF", "F",
         "Hz", "kHz", "ohm", "um", "um2", "cm2", "mS/cm2", "uF/cm2", "1/ms", "mV/ms", "mv", "sec", ""]
UNIT_WORD = re.compile(r"(?<![A-Za-z_0-9])(?:" + "|".join(sorted((re.escape(u) for u in UNITS if u and "/" not in u),
                                                                  key=len, reverse=True)) + r")(?![A-Za-z_0-9])")
EXTREMES = ["0", "-1", "1e308", "-1e308", "1e-308", "1e999", "nan", "NaN", "inf", "-inf", "0.0", "-0",
            "99999999999999999999", "1e-400", "4e307", ".", "1e", "0x10", "1_000", "+5"]
CHARS = list("(){}[]=+-*/^,;:.\"'#\\\n\t ") + ["0", "9", "e", "v", "x", "\u00b5", "\u00e9", "\x00", "\ufeff"]


def _tokens(text):
    return [(m.start(), m.end()) for m in TOKEN.finditer(text)]


def _pick(items, k):
    return items[k % len(items)] if items else None


def apply(text: str, op: str, k: int, j: int) -> str:
    """One mutation of text; k chooses where, j chooses what (both reduced modulo what there is)."""
    if not text:
        return text
    if op == "delete_char":
        p = k % len(text)
        return text[:p] + text[p + 1:]
    if op == "insert_char":
        p = k % (len(text) + 1)
        return text[:p] + _pick(CHARS, j) + text[p:]
    if op == "replace_char":
        p = k % len(text)
        return text[:p] + _pick(CHARS, j) + text[p + 1:]
    if op in ("delete_token", "replace_token", "duplicate_token"):
        tokens = _tokens(text)
        if not tokens:
            return text
        a, b = _pick(tokens, k)
        if op == "delete_token":
            return text[:a] + text[b:]
        if op == "duplicate_token":
            return text[:b] + " " + text[a:b] + text[b:]
        c, d = _pick(tokens, j)
        return text[:a] + text[c:d] + text[b:]
    if op == "extreme_number":
        numbers = list(NUMBER.finditer(text))
        if not numbers:
            return text
        m = _pick(numbers, k)
        return text[:m.start()] + _pick(EXTREMES, j) + text[m.end():]
    if op == "swap_unit":
        found = list(UNIT_WORD.finditer(text))
        if not found:
            return text
        m = _pick(found, k)
        return text[:m.start()] + _pick(UNITS, j) + text[m.end():]
    lines = text.split("\n")
    n = k % len(lines)
    if op == "duplicate_line":
        return "\n".join(lines[:n + 1] + [lines[n]] + lines[n + 1:])
    if op == "drop_line":
        return "\n".join(lines[:n] + lines[n + 1:])
    if op == "swap_lines":
        m = j % len(lines)
        lines[n], lines[m] = lines[m], lines[n]
        return "\n".join(lines)
    raise AssertionError(op)


OPS = ["delete_char", "insert_char", "replace_char", "delete_token", "replace_token", "duplicate_token",
       "extreme_number", "extreme_number", "swap_unit", "swap_unit", "duplicate_line", "drop_line", "swap_lines"]
MUTATIONS = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10**6), st.integers(0, 10**6)),
                     min_size=1, max_size=4)


def mutate(text, mutations):
    for op, k, j in mutations:
        text = apply(text, op, k, j)
    return text


def clean_error_or_success(action, text: str, what: str):
    """Run action(); an HHCError or success passes, anything else fails naming the input."""
    try:
        action()
    except HHCError as exc:
        assert str(exc).strip(), "an HHCError with an empty message"
    except RecursionError:       # reported like any other crash, with the input
        pytest.fail(f"{what}: RecursionError on this input:\n{text}\n{traceback.format_exc(limit=-8)}")
    except Exception as exc:
        pytest.fail(f"{what}: {type(exc).__name__} escaped (not an HHCError) on this input:\n"
                    f"---\n{text}\n---\n{traceback.format_exc(limit=-12)}")


# ---- .chan text ---------------------------------------------------------------------------------

def test_the_mutations_change_the_models():
    """The mutations do reach the text (a fuzzer whose mutations were no-ops would pass vacuously)."""
    text = KENYON.read_text()
    assert apply(text, "extreme_number", 0, 2) != text
    assert apply(text, "swap_unit", 3, 5) != text
    assert "1e308" in apply(text, "extreme_number", 1, 2)
    assert all(apply(text, op, 17, 4) != text for op in set(OPS) - {"swap_lines"})


@FUZZ
@given(source=st.sampled_from(CHAN_FILES), mutations=MUTATIONS)
def test_mutated_chan_files_compile_or_give_an_hhc_error(source, mutations):
    text = mutate(source.read_text(), mutations)
    note(f"source {source.name}, mutations {mutations}\n---\n{text}\n---")
    # the real path, so `import "channels/kenyon.chan"` resolves as it does for the shipped model
    clean_error_or_success(lambda: compile_text(text, str(source)), text, f"compile_text({source.name})")


# ---- experiment files ---------------------------------------------------------------------------

def experiment_text() -> str:
    """examples/kenyon_small.toml as the experiment builder writes it: its model path made absolute
    (the copy lives elsewhere)."""
    text = experiment_toml(base=EXPERIMENT)
    assert f'file = "{KENYON}"' in text
    return text


def test_the_unmutated_experiment_prepares(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(experiment_text())
    exp, cell, _ = prepare(path, choose_auto=False)
    assert exp.size == 100 and cell.name == "KenyonCell"


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-experiments")


@FUZZ
@given(mutations=MUTATIONS)
def test_mutated_experiment_files_prepare_or_give_an_hhc_error(fuzz_dir, mutations):
    text = mutate(experiment_text(), mutations)
    note(f"mutations {mutations}\n---\n{text}\n---")
    path = fuzz_dir / "experiment.toml"
    path.write_text(text, encoding="utf-8")
    clean_error_or_success(lambda: prepare(path, choose_auto=False), text, "prepare(experiment)")


# ---- what the fuzzer found, kept as plain cases (minimised by hand) ------------------------------

GATE = "channel K {{\n    gbar = 6 nS\n    E = -81 mV\n    gate m ^ 1 {{\n        {}\n    }}\n}}\n"


@pytest.mark.parametrize("text", [
    'import "channels/kenyon\x00.chan"\n',                                        # NUL in an import path
    GATE.format("inf = 1 / (1 + exp((v + 30 mV) * 1e308 / mV)); tau = 1 ms"),    # beyond float64 in SI
    GATE.format("alpha = 1e308 / ms * exp(-v / 20 mV); beta = 1 / ms"),
], ids=["nul-in-import", "huge-slope", "huge-rate"])
def test_chan_inputs_the_fuzzer_found(text):
    clean_error_or_success(lambda: compile_text(text, str(MODELS / "found.chan")), text, "compile_text")


@pytest.mark.parametrize("replace", [
    ('dt = "0.01 ms"', 'dt = "1e-308 ms"'),                       # phase / dt overflows to inf steps
    ('duration = "50 ms"', 'duration = "1e308 ms"'),             # the same from the other side
    ('interval = "0.1 ms"', 'interval = "1e308 ms"'),            # interval / dt overflows
    ('neurons = "0:3"', 'neurons = "0:99999999999999999999"'),   # a range beyond any index
    ('spikes = "all"', 'spikes = "0:99999999999999999999"'),
], ids=["tiny-dt", "huge-duration", "huge-interval", "huge-trace-range", "huge-spike-range"])
def test_experiment_inputs_the_fuzzer_found(tmp_path, replace):
    old, new = replace
    text = experiment_text()
    assert old in text
    text = text.replace(old, new)
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    clean_error_or_success(lambda: prepare(path, choose_auto=False), text, "prepare(experiment)")
