"""hhc validate: the models x backends matrix."""
import pytest


def test_unknown_and_code_only_backends_are_listed_with_the_reason(tmp_path, cli):
    # no runnable backend: only the listing
    res = cli("validate", "--backends", "neuroml,nosuch", "--models", "SquidAxon", "--out", tmp_path / "v")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "neuroml: unavailable here: generates NeuroML2/LEMS documents only" in res.stdout
    assert "nosuch: unavailable here:" in res.stdout and "unknown backend" in res.stdout


@pytest.mark.slow
def test_validate_brian2_passes_on_every_model(tmp_path, cli):
    res = cli("validate", "--backends", "brian2", "--out", tmp_path / "v")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["model", "brian2"]
    assert any(line.startswith("hh_squid:SquidAxon") and "PASS" in line for line in lines)
    assert any(line.startswith("kenyon_cell:KenyonCell") and "PASS" in line for line in lines)
    assert (tmp_path / "v" / "validate.md").exists()
