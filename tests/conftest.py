"""What every test shares: the paths (paths.py), the experiment builder (builders.py) as a fixture,
the one way to run the `hhc` command, a build cache of the test session's own, and the markers
that say what a test needs (skipped, naming the missing piece, where it is absent)."""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # paths, builders, fixtures.seed_kenyon
# (nestml installs a top-level `tests` package, so `tests.fixtures` would not be ours)

from builders import write_experiment  # noqa: E402
from paths import ROOT  # noqa: E402

os.environ.setdefault("HHC_PROGRESS", "0")

# ---- the build cache: the session's own; the installs it holds by default stay where they are --

ORIGINAL_CACHE = Path(os.environ.get("HHC_CACHE", Path.home() / ".cache" / "hhc"))
# environment variable -> its install under the user's cache (set only where not set already)
INSTALLS = {"HHC_CUDA_VENV": ORIGINAL_CACHE / "cuda-venv",
            "HHC_NEST_MPI_VENV": ORIGINAL_CACHE / "nest-mpi-venv"}


def install_location(variable: str) -> Path:
    return Path(os.environ.get(variable) or INSTALLS[variable])


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """HHC_CACHE points at a folder of this test run (builds are shared between the run's tests, and
    its workers under pytest-xdist, never with the user's ~/.cache/hhc); the cuda and MPI-NEST venvs, installs rather than
    build caches, are still found where setup put them."""
    names = ["HHC_CACHE", *INSTALLS]
    saved = {name: os.environ.get(name) for name in names}
    for variable in INSTALLS:
        os.environ[variable] = str(install_location(variable))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # `pytest -n N`: the workers of one run share one cache (builds wait on each other's locks)
        cache = tmp_path_factory.getbasetemp().parent / "hhc-cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("hhc-cache")
    os.environ["HHC_CACHE"] = str(cache)
    try:
        yield cache
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ---- experiment files ---------------------------------------------------------------------------

@pytest.fixture
def make_experiment(tmp_path):
    """make_experiment(name="exp", **fields) -> Path: builders.experiment_toml(**fields) written to
    tmp_path/<name>.toml."""
    def make(name: str = "exp", **fields) -> Path:
        return write_experiment(tmp_path / f"{name}.toml", **fields)
    return make


@pytest.fixture(scope="session")
def root():
    return ROOT


# ---- the hhc command ----------------------------------------------------------------------------

class Done(NamedTuple):
    """What a run of the command gave: unpacks as (exit status, stdout, stderr)."""
    returncode: int
    stdout: str
    stderr: str


class HHC:
    """The `hhc` command, three ways:

    cli(*args)        the installed command (the one next to this Python) as a child process: a fresh
                      interpreter, as a user's would be; env: variables to set over the test's
                      environment (None removes one) -> subprocess.CompletedProcess
    cli.popen(*args)  the same, started and not waited for (a run to be killed, two runs at once)
    cli.here(*args)   the command's main() in this process (the same code path, no new interpreter per
                      case) -> Done(returncode, stdout, stderr); an exception other than SystemExit
                      escaping main() (a traceback) fails the test by itself
    """

    def command(self, *args) -> list[str]:
        exe = Path(sys.executable).with_name("hhc")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hhc.cli"]
        return cmd + [str(a) for a in args]

    @staticmethod
    def environment(env: dict | None) -> dict:
        out = dict(os.environ)
        for name, value in (env or {}).items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = str(value)
        return out

    def __call__(self, *args, env: dict | None = None, cwd=None, timeout=1800) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                              env=self.environment(env))

    def popen(self, *args, env: dict | None = None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.environment(env), **kwargs)

    def here(self, *args) -> Done:
        import hhc.cli
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                hhc.cli.main([str(a) for a in args])
            except SystemExit as exit_:
                code = exit_.code
            else:  # pragma: no cover - main() always exits
                raise AssertionError("hhc.cli.main() returned instead of exiting")
        return Done(0 if code is None else code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():
    return HHC()


# ---- what a test needs --------------------------------------------------------------------------
# marker -> (what is needed, how to get it); the check below returns None or what is missing

# (registered in pyproject.toml [tool.pytest.ini_options] markers)
NEEDS = {
    "needs_nest": "needs NEST and NESTML (scripts/setup.sh test)",
    "needs_mpi_nest": "needs NEST built with MPI (scripts/setup.d/nest_mpi.sh)",
    "needs_jneuroml": "needs jNeuroML: java and pyNeuroML (scripts/setup.d/30-neuroml.sh)",
    "needs_neuron": "needs NEURON and pyNeuroML (scripts/setup.d/30-neuroml.sh)",
    "needs_pynn": "needs PyNN (pip install -e '.[nest]')",
    "needs_nvcc": "needs nvcc, the CUDA compiler (scripts/setup.d/40-cuda.sh)",
    "needs_objdump": "needs objdump (binutils) to read object code",
}


def _backend_reason(name):
    from hhc.backends import backend_class
    return backend_class(name).unavailable_reason()


def _mpi_nest_reason():
    reason = _backend_reason("nest")
    if reason:
        return reason
    python = Path(os.environ.get("HHC_NEST_MPI_PYTHON") or install_location("HHC_NEST_MPI_VENV") / "bin" / "python")
    if not python.exists():
        return f"no {python}"
    if shutil.which("mpirun") is None:
        return "mpirun is not installed"
    done = subprocess.run([str(python), "-c", "import nest; print(nest.build_info['have_mpi'])"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or done.stdout.strip().splitlines()[-1:] != ["True"]:
        return f"the NEST of {python} has no MPI support"
    return None


def _nvcc_reason():
    from hhc.backends.brian2 import cuda
    return None if cuda.find_nvcc() else "nvcc is not installed on this machine"


CHECKS = {
    "needs_nest": lambda: _backend_reason("nest"),
    "needs_mpi_nest": _mpi_nest_reason,
    "needs_jneuroml": lambda: _backend_reason("jneuroml"),
    "needs_neuron": lambda: _backend_reason("neuron"),
    "needs_pynn": lambda: None if importlib.util.find_spec("pyNN") else "PyNN is not installed",
    "needs_nvcc": _nvcc_reason,
    "needs_objdump": lambda: None if shutil.which("objdump") else "objdump is not installed",
}


@functools.lru_cache(maxsize=None)
def missing(marker: str) -> str | None:
    """None when what `marker` needs is here, else the skip reason naming the missing piece. A check
    that itself fails (hhc cannot be imported, say) does not skip: the test runs and shows it."""
    try:
        detail = CHECKS[marker]()
    except Exception:
        return None
    return f"{NEEDS[marker]}: {detail}" if detail else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in NEEDS:
            if item.get_closest_marker(marker) is not None:
                reason = missing(marker)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
