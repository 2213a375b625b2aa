"""Syntax errors and imports: every error is an HHCError at the exact line and column."""
from __future__ import annotations

import pytest

from hhc.compiler import compile_text, load_model, parse
from hhc.compiler.errors import HHCError

from paths import KENYON


def error_of(text: str, path: str = "t.chan") -> HHCError:
    with pytest.raises(HHCError) as info:
        compile_text(text, path)
    return info.value


def assert_error(err: HHCError, line: int, column: int, *words: str):
    assert err.location is not None, str(err)
    assert (err.location.line, err.location.column) == (line, column), str(err)
    text = str(err)
    for word in words:
        assert word in text, text
    # rendering: file:line:col: error: ..., then the source line, then a caret under the column
    first, source_line, caret = text.split("\n")[:3]
    assert first.startswith(f"{err.location.path}:{line}:{column}: error: ")
    assert source_line == "    " + err.location.line_text
    assert caret == "    " + " " * (column - 1) + "^"


# ---- syntax errors -------------------------------------------------------------------------

def test_missing_closing_brace_is_unexpected_end_of_file():
    err = error_of("channel K {\n    gbar = 6 nS\n")
    assert_error(err, 2, 16, "unexpected end of file", "'}'")


def test_unexpected_end_of_file_inside_an_expression():
    err = error_of("channel K {\n    gbar = 6 nS\n    E = (1 +")
    assert_error(err, 3, 13, "unexpected end of file", "a number")


def test_bad_character():
    err = error_of("channel K {\n    gbar = 6 nS $\n}\n")
    assert_error(err, 2, 17, "unexpected character '$'")


def test_bad_token():
    err = error_of("channel K {\n    gbar = = 6 nS\n}\n")
    assert_error(err, 2, 12, "unexpected '='", "expected", "a number")


def test_missing_opening_brace():
    err = error_of("channel K\n    gbar = 6 nS\n}\n")
    assert_error(err, 1, 10, "unexpected end of line", "'{'")


def test_statement_outside_a_block():
    err = error_of("gbar = 6 nS\n")
    assert_error(err, 1, 1, "unexpected 'gbar'", "'channel'")


def test_gate_power_must_be_an_integer():
    err = error_of("channel K {\n    gate m ^ 2.5 { inf = 1; tau = 1 ms }\n}\n")
    assert_error(err, 2, 14, "power of gate m must be a positive integer, got 2.5")


def test_two_statements_on_one_line_need_a_separator():
    err = error_of("channel K {\n    gbar = 6 nS E = 0 mV\n}\n")
    assert_error(err, 2, 17, "unexpected 'E'")


def test_newlines_inside_parentheses_continue_an_expression():
    text = ("channel K {\n    gbar = 6 nS\n    E = (-80 mV\n         + 1 mV)\n"
            "    gate m ^ 1 { inf = 0.5; tau = 1 ms }\n}\n")
    model = compile_text(text)
    (param,) = [p for p in model.channels[0].parameters if p.name == "E_K"]
    assert param.si_value == pytest.approx(-0.079)


def test_comments_and_semicolons():
    text = ("# a comment\nchannel K { # trailing\n    gbar = 6 nS; E = 0 mV  # more\n\n\n"
            "    gate m ^ 1 { inf = 0.5; tau = 1 ms };\n};\n")
    assert compile_text(text).channels[0].name == "K"


def test_parse_expression_start():
    tree = parse("-80 mV * 2", start="expr")
    assert type(tree).__name__ == "BinOp"


def test_error_rendering_keeps_tabs_under_caret():
    err = error_of("channel K {\n\tgbar = = 6 nS\n}\n")
    caret = str(err).split("\n")[2]
    assert caret == "    \t" + " " * (err.location.column - 2) + "^"


# ---- imports -------------------------------------------------------------------------------

CHANNEL_K = "channel K {\n    gbar = 2 nS\n    E = 0 mV\n}\n"


def test_import_resolves_relative_to_the_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "k.chan").write_text(CHANNEL_K)
    main = tmp_path / "main.chan"
    main.write_text('import "lib/k.chan"\ncell A {\n    C = 1 pF\n    channels K\n'
                    '    initial { v = -65 mV }\n}\n')
    model = load_model(main)
    assert [c.name for c in model.channels] == ["K"]
    assert str(tmp_path / "lib" / "k.chan") in model.cell().sources


def test_missing_import_file(tmp_path):
    main = tmp_path / "main.chan"
    main.write_text('\nimport "nothere.chan"\n')
    with pytest.raises(HHCError) as info:
        load_model(main)
    assert_error(info.value, 2, 8, "cannot import nothere.chan", "no such file")
    assert info.value.location.path == str(main)


def test_circular_import(tmp_path):
    (tmp_path / "a.chan").write_text('import "b.chan"\n' + CHANNEL_K)
    (tmp_path / "b.chan").write_text('# b\nimport "a.chan"\n')
    with pytest.raises(HHCError) as info:
        load_model(tmp_path / "a.chan")
    assert_error(info.value, 2, 8, "circular import of a.chan")
    assert info.value.location.path == str(tmp_path / "b.chan")


def test_self_import_is_circular(tmp_path):
    (tmp_path / "a.chan").write_text('import "a.chan"\n')
    with pytest.raises(HHCError) as info:
        load_model(tmp_path / "a.chan")
    assert_error(info.value, 1, 8, "circular import")


def test_diamond_import_reads_the_shared_file_once(tmp_path):
    (tmp_path / "k.chan").write_text(CHANNEL_K)
    (tmp_path / "b.chan").write_text('import "k.chan"\n')
    (tmp_path / "c.chan").write_text('import "k.chan"\n')
    (tmp_path / "a.chan").write_text('import "b.chan"\nimport "c.chan"\n')
    assert [c.name for c in load_model(tmp_path / "a.chan").channels] == ["K"]


def test_duplicate_channel_across_an_import(tmp_path):
    (tmp_path / "k.chan").write_text(CHANNEL_K)
    main = tmp_path / "main.chan"
    main.write_text('import "k.chan"\n' + CHANNEL_K)
    with pytest.raises(HHCError) as info:
        load_model(main)
    assert_error(info.value, 1, 9, "duplicate channel 'K'", f"first defined at {main}:2:9")
    assert info.value.location.path == str(tmp_path / "k.chan")


def test_syntax_error_in_an_imported_file_points_into_that_file(tmp_path):
    (tmp_path / "k.chan").write_text("channel K {\n    gbar = 2 nS +\n}\n")
    main = tmp_path / "main.chan"
    main.write_text('import "k.chan"\n')
    with pytest.raises(HHCError) as info:
        load_model(main)
    assert info.value.location.path == str(tmp_path / "k.chan")
    assert info.value.location.line == 2


def test_missing_main_file(tmp_path):
    with pytest.raises(HHCError, match="no such file"):
        load_model(tmp_path / "none.chan")


# ---- the command line ----------------------------------------------------------------------

BAD = "channel K {\n    gbar = 6 nS\n    E = 1 mV + 2 ms\n}\n"


@pytest.mark.parametrize("command", [["check"], ["compile"]])
def test_cli_reports_a_located_error_without_traceback(tmp_path, cli, command):
    bad = tmp_path / "bad.chan"
    bad.write_text(BAD)
    args = [*command, bad]
    if command == ["compile"]:
        args += ["-o", tmp_path / "out"]
    result = cli(*args, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stderr
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert f"{bad}:3:16: error: cannot add a time (ms) to a voltage (mV)" in out
    assert "        E = 1 mV + 2 ms\n" in out
    assert "\n    " + " " * 15 + "^" in out


def test_cli_check_on_a_syntax_error(tmp_path, cli):
    bad = tmp_path / "bad.chan"
    bad.write_text("channel K {\n    gbar = 6 nS\n")
    result = cli("check", bad, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:2:16: error: unexpected end of file" in result.stderr


def test_cli_check_on_a_good_file(cli):
    result = cli("check", KENYON, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "cell KenyonCell: 10 states" in result.stdout
