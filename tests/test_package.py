"""Packaging: the import names are namespaced and a regular (non-editable) install works."""
import subprocess
import sys
from pathlib import Path

import pytest

from paths import ROOT


@pytest.mark.slow
def test_regular_install_has_only_namespaced_packages(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=600)
    top = {p.name for p in target.iterdir()}
    assert "hhc" in top
    assert "compiler" not in top and "backends" not in top and "models" not in top
    pkg = target / "hhc"
    assert (pkg / "compiler" / "grammar.lark").is_file()
    for package in ("brian2", "nest", "neuroml"):      # the backends that are packages
        assert (pkg / "backends" / package / "__init__.py").is_file()
    assert (pkg / "backends" / "nest" / "scripts" / "rank.py").is_file()      # package data
    assert (pkg / "models" / "kenyon_cell.chan").is_file()
    assert (pkg / "models" / "channels" / "kenyon.chan").is_file()
    assert (target / "bin" / "hhc").is_file()
    # the installed copy (not this checkout) compiles the packaged model
    code = ("import hhc, hhc.compiler, pathlib; assert hhc.__file__.startswith(%r), hhc.__file__; "
            "m = hhc.load_model(pathlib.Path(hhc.__file__).parent / 'models' / 'kenyon_cell.chan'); "
            "print(len(m.cell().states))") % str(target)
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10"


def test_cli_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    listed = result.stdout.split("Commands:", 1)[1]
    commands = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"check", "compile", "run", "compare", "plot", "reference", "advise", "tune", "validate",
            "import", "backends"} <= commands


def test_backends_registry_lists_brian2(cli):
    from hhc import backends
    assert "brian2" in backends.names()
    result = cli("backends")
    assert result.returncode == 0 and "brian2" in result.stdout


def test_the_test_session_has_its_own_cache(isolated_cache):
    """Builds made by tests go to the session's folder, not the user's ~/.cache/hhc; the installed
    venvs there (cuda, MPI NEST) are still found."""
    import os
    from hhc.backends.cache import cache_root
    from conftest import install_location
    assert cache_root() == isolated_cache != Path.home() / ".cache" / "hhc"
    from hhc.backends.brian2 import cuda
    from hhc.backends.nest import build
    assert cuda.venv_dir() == Path(os.environ["HHC_CUDA_VENV"]) == install_location("HHC_CUDA_VENV")
    assert build.mpi_python().parent.parent == install_location("HHC_NEST_MPI_VENV")
    assert not str(install_location("HHC_CUDA_VENV")).startswith(str(isolated_cache))
