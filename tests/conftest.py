import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fixtures.seed_kenyon; nestml installs a top-level `tests` package
os.environ.setdefault("HHC_PROGRESS", "0")


def hhc_cli(*args, cwd=None, timeout=1800):
    """Run the installed `hhc` command (the one next to this Python)."""
    exe = Path(sys.executable).with_name("hhc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hhc.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.fixture
def cli():
    return hhc_cli


@pytest.fixture
def root():
    return ROOT


def write_experiment(path: Path, body: str, model=ROOT / "models" / "kenyon_cell.chan") -> Path:
    """An experiment file whose [model] points at a model by absolute path."""
    path.write_text(f'[model]\nfile = "{model}"\n' + body)
    return path
