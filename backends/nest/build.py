"""Building a cell's NESTML model into a NEST extension module, cached per model, NEST and NESTML
(cache_root()/nest-modules). NESTML runs in a child process (scripts/nestml_build.py): its
odetoolbox patches SymPy globally. The pip-installed NEST's own nest-config reports the wheel
builder's paths, so NESTML gets hhc's (scripts/nest-config.sh)."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hhc.compiler import ir
from hhc.compiler.errors import HHCError
from hhc.compiler.version import __version__

from ..cache import cache_root, file_lock
from .nestml import NEST_VERSION_TAG, model_name, nestml_text

SCRIPTS = Path(__file__).parent / "scripts"
_SHIM = SCRIPTS / "nest-config.sh"
_BUILD_SCRIPT = SCRIPTS / "nestml_build.py"
_LOAD_CHECK = SCRIPTS / "load_check.py"


def mpi_python() -> Path:
    venv = Path(os.environ.get("HHC_NEST_MPI_VENV", cache_root() / "nest-mpi-venv"))
    return venv / "bin" / "python"



def nest_identity(python: str) -> dict:
    """What a module build depends on in a NEST installation (without importing nest)."""
    code = ("import importlib.util, importlib.metadata, json, os\n"
            "s = importlib.util.find_spec('nest')\n"
            "d = os.path.dirname(s.origin) if s else None\n"
            "k = os.path.join(d, 'nestkernel_api.so') if d else None\n"
            "st = os.stat(k) if k and os.path.exists(k) else None\n"
            "print(json.dumps({'dir': d, 'version': importlib.metadata.version('nest-simulator') if s else None,"
            " 'kernel': [st.st_size, int(st.st_mtime)] if st else None}))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        ident = json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:
        raise HHCError(f"cannot inspect the NEST installation of {python}: {exc}") from None
    if not ident["dir"]:
        raise HHCError(f"NEST is not installed for {python} (pip install nest-simulator==3.10.0, "
                       f"or scripts/setup.sh test)")
    return ident


class BuiltModule:
    def __init__(self, directory: Path, module: str, model: str, python: str):
        self.directory = directory
        self.module = module
        self.model = model
        self.python = python

    @property
    def lib_dir(self) -> Path:
        return self.directory / "lib"

    @property
    def so(self) -> Path:
        return self.lib_dir / f"{self.module}.so"


def build_module(cell: ir.Cell, variant: str = "rk4", python: str | None = None, log=None,
                 noise_input: str | None = None) -> BuiltModule:
    """Generate the NESTML model and build it for the NEST of `python` (default: this venv's),
    cached under ~/.cache/hhc/nest-modules/<hash> (written atomically: built in a temporary
    directory, renamed into place; concurrent builds of one key wait on a lock)."""
    python = python or sys.executable
    text = nestml_text(cell, variant, noise_input)
    ident = nest_identity(python)
    try:
        nestml_version = importlib.metadata.version("nestml")
    except Exception:
        raise HHCError("NESTML is not installed (pip install nestml==9.0.0, or scripts/setup.sh test)") from None
    key = hashlib.sha256(json.dumps({"model": text, "nest": ident, "nestml": nestml_version,
                                     "shim": _SHIM.read_text(), "build": _BUILD_SCRIPT.read_text()}, sort_keys=True).encode()).hexdigest()[:16]
    model = model_name(cell, variant, noise_input)
    module = f"hhc_{model}_{key[:8]}_module"
    root = cache_root() / "nest-modules"
    final = root / key
    built = BuiltModule(final, module, model, python)
    if (final / "hhc-module.json").exists():
        return built
    with file_lock(root / f".{key}.lock"):
        if (final / "hhc-module.json").exists():
            return built
        tmp = root / f".{key}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "nest_path" / "bin").mkdir(parents=True)
        shim = tmp / "nest_path" / "bin" / "nest-config"
        shim.write_text(_SHIM.read_text().replace("__PY__", python))
        shim.chmod(0o755)
        (tmp / f"{model}.nestml").write_text(text)
        args = {"model": str(tmp / f"{model}.nestml"), "target": str(tmp / "build"),
                "install": str(tmp / "lib"), "module": module, "nest_path": str(tmp / "nest_path"),
                "nest_version": NEST_VERSION_TAG}
        if log:
            log(f"building NEST module {module} with NESTML (about a minute, once per model and NEST)")
        t0 = time.perf_counter()
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        proc = subprocess.run([sys.executable, str(_BUILD_SCRIPT), json.dumps(args)], capture_output=True,
                              text=True, env=env, cwd=tmp)
        (tmp / "build.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        so = tmp / "lib" / f"{module}.so"
        if proc.returncode != 0 or not so.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            failed = root / f"{key}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(tmp, failed)          # kept for inspection; the next build starts afresh
            raise HHCError(f"NESTML could not build the NEST module for {cell.name} "
                           f"(model and log: {failed}):\n{tail}")
        check = subprocess.run([python, str(_LOAD_CHECK), json.dumps({"lib": str(tmp / "lib"), "module": module,
                                                                        "model": model})],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise HHCError(f"the built NEST module {so} does not load into NEST ({python}): "
                           f"{(check.stdout + check.stderr).strip().splitlines()[-1:]}")
        shutil.rmtree(tmp / "build" / "CMakeFiles", ignore_errors=True)
        (tmp / "hhc-module.json").write_text(json.dumps({
            "module": module, "model": model, "cell": cell.name, "variant": variant, "source": cell.source,
            "nest": ident, "nest_python": python, "nestml": nestml_version, "hhc": __version__,
            "build_time_s": time.perf_counter() - t0}, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:                 # someone else finished first (no lock on another filesystem)
            shutil.rmtree(tmp, ignore_errors=True)
    return built
