"""Brian2 on NVIDIA GPUs: the brian2 backend's `cuda_standalone` device, through brian2cuda.

Part of the brian2 backend (its emit() and run() call emit() and run() here), not a Backend of its
own; the network it builds is the other devices' (network.py).

brian2cuda 1.0a7, the last release for Python 3.11, pins brian2 2.8.0, while hhc's environment has
brian2 2.9.0. So brian2cuda lives in a venv of its own, `cache_root()/cuda-venv` (made by
scripts/setup.d/40-cuda.sh; HHC_CUDA_VENV overrides the place), which holds hhc[cuda] too. This
module has two halves:

* in hhc's process, emit() and run() write the generated Brian2 module and a job file and start the
  driver in that venv (`<cuda-venv>/bin/python -c _BOOTSTRAP job`); nothing of brian2cuda (nor of
  brian2 2.8) is imported into hhc's process.
* in the cuda venv, driver_main() builds the network with the brian2 backend's own code (the same
  generated module, network and protocol segments as runtime and cpp_standalone), sets brian2cuda's
  preferences (no GPU detection, an explicit compute capability, nvcc -std=c++17, cuRAND from the
  nvidia-curand wheel), generates the CUDA project and compiles it with the machine's nvcc; on a GPU
  it then runs it and hands the results back (an .npz and a .json).

Projects are cached under cache_root()/brian2-cuda/<key>: code generation is redone every time (a
few seconds) and make recompiles only what changed, so a repeated build costs no nvcc time.

Verified on a machine without a GPU: generation and compilation with nvcc (CUDA 13.0). Running on a
GPU is untested (docs/cuda.md); without one, run() compiles the project and then says so.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import importlib.util
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from hhc.compiler.errors import HHCError

from hhc.compiler.experiment import PROVISIONAL_DT, BackendSettings, Experiment, Phase, resolve

from ..cache import cache_root, file_lock
from ..results import RunResult
from .generate import import_generated, module_filename, module_text
from .network import build_network, check_finite, collect, initial_state, run_protocol

DEFAULT_COMPUTE_CAPABILITY = 9.0        # Hopper (H100); CUDA 13's nvcc builds sm_75 and newer
MIN_COMPUTE_CAPABILITY = 7.5
COMPUTE_CAPABILITY_ENV = "HHC_CUDA_COMPUTE_CAPABILITY"   # set by --compute-capability
VENV_ENV = "HHC_CUDA_VENV"
SETUP_STEP = "scripts/setup.d/40-cuda.sh"
PROJECT = "cuda_project"                # the project's folder in an output or run directory
# `hhc compile --device cuda_standalone` without --experiment: this many neurons for this long
DEFAULT_SIZE = 1000
DEFAULT_DURATION = 0.1                  # s
_LAYOUT = 2                             # bump when the project's layout or build settings change
_COPY_IGNORE = (".hhc-lock", "hhc-job.pkl", "hhc-result.json", "hhc-result.npz", "*.o", "results")


# ---- the environment ---------------------------------------------------------------------------

def venv_dir() -> Path:
    return Path(os.environ.get(VENV_ENV) or cache_root() / "cuda-venv")


def venv_python() -> Path:
    python = venv_dir() / "bin" / "python"
    if not python.exists():
        raise HHCError(f"brian2cuda's environment {venv_dir()} is missing: --device cuda_standalone runs "
                       f"brian2cuda 1.0a7 (which pins brian2 2.8.0) from a venv of its own",
                       hint=f"create it with {SETUP_STEP} (part of `scripts/setup.sh test`; it needs nvcc); "
                            f"see docs/cuda.md")
    return python


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda", "/opt/cuda"):
        if home and Path(home, "bin", "nvcc").exists():
            return str(Path(home, "bin", "nvcc"))
    return None


def cuda_home(nvcc: str) -> str:
    """The CUDA installation brian2cuda compiles with: a folder with bin/nvcc and the runtime headers
    (/usr/local/bin/nvcc may be a wrapper script, so its own parent is not always it)."""
    candidates = [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"),
                  str(Path(os.path.realpath(nvcc)).parent.parent), "/usr/local/cuda", "/opt/cuda"]
    for home in candidates:
        if home and Path(home, "bin", "nvcc").exists() and Path(home, "include", "cuda_runtime.h").exists():
            return home
    raise HHCError(f"cannot find the CUDA installation of {nvcc} (a folder with bin/nvcc and "
                   f"include/cuda_runtime.h)", hint="set CUDA_PATH to it, e.g. /usr/local/cuda")


def nvcc_version(nvcc: str) -> str:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    release = [line for line in out.splitlines() if "release" in line]
    return release[-1].strip() if release else "unknown"


def gpus() -> list[dict]:
    """The NVIDIA GPUs nvidia-smi sees: [{"name", "compute_capability" (float or None)}]; [] when
    there is none (or no driver). CUDA_VISIBLE_DEVICES="" or -1 hides them, as it does from CUDA."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []

    def query(*args):
        try:
            done = subprocess.run([smi, *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    out = query("--query-gpu=name,compute_cap", "--format=csv,noheader")
    if out is not None:
        found = []
        for line in out.splitlines():
            name, _, cap = line.rpartition(",")
            if name.strip():
                try:
                    found.append({"name": name.strip(), "compute_capability": float(cap)})
                except ValueError:
                    found.append({"name": name.strip(), "compute_capability": None})
        return found
    out = query("-L")           # drivers older than compute_cap: the GPUs, capability unknown
    return [{"name": line.split(":", 1)[-1].split("(")[0].strip(), "compute_capability": None}
            for line in (out or "").splitlines() if line.startswith("GPU ")]


def parse_compute_capability(text) -> float:
    """"8.6" → 8.6 (also "86", "sm_86")."""
    raw = str(text).strip().lower().removeprefix("sm_")
    match = re.fullmatch(r"(\d+)\.(\d)", raw) or re.fullmatch(r"(\d+)(\d)", raw)
    if not match:
        raise HHCError(f"compute capability must look like 8.6 or 9.0, got {text!r}")
    value = float(f"{match.group(1)}.{match.group(2)}")
    if value < MIN_COMPUTE_CAPABILITY:
        raise HHCError(f"compute capability {value} is older than CUDA 13's nvcc builds for "
                       f"(sm_75, {MIN_COMPUTE_CAPABILITY}, and newer)")
    return value


def compute_capability(found: list[dict]) -> tuple[float, str]:
    """The capability to compile for, and where it came from: --compute-capability, else GPU 0's
    (the GPU the project runs on), else the default."""
    text = os.environ.get(COMPUTE_CAPABILITY_ENV)
    if text:
        return parse_compute_capability(text), "option"
    if found and found[0]["compute_capability"]:
        return float(found[0]["compute_capability"]), f"detected (GPU 0: {found[0]['name']})"
    return DEFAULT_COMPUTE_CAPABILITY, "default" + (" (no GPU)" if not found else " (GPU 0's capability unknown)")


# ---- hhc's side --------------------------------------------------------------------------------

def _default_experiment(cell):
    """`hhc compile` without --experiment: DEFAULT_SIZE neurons, rk4 at 0.01 ms, inputs at 0, spikes."""
    exp = Experiment(path=str(cell.source), model_file=Path(cell.source), cell_name=cell.name,
                     size=DEFAULT_SIZE, dt=1e-5, method="rk4", seed=1, initial={},
                     protocol=(Phase(DEFAULT_DURATION, {i.name: 0.0 for i in cell.inputs}),),
                     record_spikes=True, traces=(), backend=BackendSettings("brian2", "cuda_standalone"))
    return resolve(exp, cell)


def _method(experiment, requested=None) -> str:
    method = requested or experiment.method
    return "rk4" if method in (None, "auto") else method    # as the brian2 backend's own default


def _venv_brian2cuda(python: Path) -> str:
    """brian2cuda's installed distribution in the venv (part of the build cache key)."""
    infos = sorted(p.name for p in python.parent.parent.glob("lib/python*/site-packages/*rian2*uda-*.dist-info"))
    return ",".join(infos) or "unknown"


def _build_dir(module_text: str, experiment, method: str, cc: float, python: Path, nvcc: str) -> Path:
    key = hashlib.sha1(json.dumps({
        "module": module_text, "experiment": experiment.fingerprint(), "method": method, "cc": cc,
        "brian2cuda": _venv_brian2cuda(python), "nvcc": nvcc_version(nvcc), "layout": _LAYOUT},
        sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "brian2-cuda" / key


def _drive(mode: str, cell, experiment, method: str, build_dir: Path, module_path: Path,
           modules: dict | None = None) -> dict:
    """Run the driver in the cuda venv: mode "generate", "build" (generate + compile) or "run"
    (build + run on GPU 0). Returns its result (and, for "run", the arrays in result["arrays"])."""
    python = venv_python()
    nvcc = find_nvcc()
    if nvcc is None:
        raise HHCError("nvcc (the CUDA compiler) was not found: --device cuda_standalone compiles with it",
                       hint="install the CUDA toolkit (or put its bin/ on PATH, or set CUDA_PATH)")
    found = gpus()
    cc, cc_source = compute_capability(found)
    build_dir.mkdir(parents=True, exist_ok=True)
    job_path, result_path, log_path = (build_dir / "hhc-job.pkl", build_dir / "hhc-result.json",
                                       build_dir / "hhc-build.log")
    job = {"mode": mode, "module": str(module_path), "experiment": experiment, "method": method,
           "build_dir": str(build_dir), "compute_capability": cc, "cuda_home": cuda_home(nvcc),
           "make_jobs": int(os.environ.get("HHC_CUDA_MAKE_JOBS", os.cpu_count() or 1)),
           "result": str(result_path), "modules": modules}
    with file_lock(build_dir / ".hhc-lock"):
        result_path.unlink(missing_ok=True)
        job_path.write_bytes(pickle.dumps(job))
        env = dict(os.environ, PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)             # the driver's imports are the cuda venv's (and hhc's own)
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            done = subprocess.run([str(python), "-c", _BOOTSTRAP, json.dumps(_package_dirs()), str(job_path)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(build_dir))
        elapsed = time.perf_counter() - t0
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        job_path.unlink(missing_ok=True)
        result_path.unlink(missing_ok=True)
        if done.returncode != 0 or not result.get("ok"):
            raise HHCError(_failure(result, log_path, done.returncode))
        if mode == "run":
            with np.load(build_dir / "hhc-result.npz") as arrays:
                result["arrays"] = {k: arrays[k] for k in arrays.files}
            (build_dir / "hhc-result.npz").unlink()
    result.update({"compute_capability": cc, "compute_capability_source": cc_source, "gpus": found,
                   "nvcc": nvcc, "nvcc_version": nvcc_version(nvcc), "cuda_venv": str(venv_dir()),
                   "driver_time_s": elapsed, "build_log": str(log_path)})
    return result


def _failure(result: dict, log_path: Path, returncode: int) -> str:
    error = result.get("error") or f"the brian2cuda driver exited with code {returncode}"
    tail = [line for line in log_path.read_text(errors="replace").splitlines()
            if line.strip()][-40:] if log_path.exists() else []
    errors = [line for line in tail if " error" in line.lower() or line.lower().startswith("error")][-8:]
    shown = "\n    ".join(errors or tail[-12:])
    return (f"brian2cuda failed: {error}\n  from the build log {log_path}:\n    {shown}")


def _package_dirs() -> dict:
    """Where this process's hhc packages are, so the driver imports this very checkout of hhc whatever
    the cuda venv's editable install points at (another checkout, a deleted CI clone)."""
    dirs = {}
    for name in ("hhc", "hhc.compiler", "hhc.backends", "hhc.models"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs[name] = list(spec.submodule_search_locations)[0]
    return dirs


# The driver's entry point, run by the cuda venv's python: map the hhc packages to the caller's
# folders (a meta path finder ahead of the venv's own), then hand over to driver_main.
_BOOTSTRAP = r"""
import importlib.abc, importlib.util, json, os, sys
_DIRS = json.loads(sys.argv[1])
class _HHCFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        where = _DIRS.get(fullname)
        if where is None:
            return None
        return importlib.util.spec_from_file_location(fullname, os.path.join(where, "__init__.py"),
                                                      submodule_search_locations=[where])
sys.meta_path.insert(0, _HHCFinder())
from hhc.backends.brian2.cuda import driver_main
driver_main(sys.argv[2])
"""


def _copy_project(build_dir: Path, dest: Path) -> Path:
    """The compiled project (sources, makefile, static arrays, binary) into dest."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(build_dir, dest, symlinks=True, ignore=shutil.ignore_patterns(*_COPY_IGNORE))
    (dest / "results").mkdir(exist_ok=True)          # the binary writes there (relative to its folder)
    return dest


def _build_info(result: dict, project: Path, experiment, method: str, **extra) -> dict:
    keys = ("brian2_version", "brian2cuda_version", "precision", "compute_capability", "compute_capability_source",
            "nvcc", "nvcc_version", "generate_time_s", "compile_time_s", "build_reused", "cuda_venv", "gpus")
    info = {k: result.get(k) for k in keys}
    info.update({"device": "cuda_standalone", "project": str(project), "binary": str(project / "main"),
                 "n_neurons": experiment.size, "dt": experiment.dt, "method": method,
                 "duration": experiment.duration, "build_log": result.get("build_log")})
    info.update(extra)
    return info


def _network_modules(experiment, module_path: Path, out_dir: Path) -> dict | None:
    """A network's populations' generated modules (the main one at module_path; the others written into
    out_dir), or None for a single population."""
    if experiment.drawn is None:
        return None
    modules = {experiment.drawn.spec.main: str(module_path)}
    for pop in experiment.drawn.populations[1:]:
        pop_cell = experiment.drawn.cells[pop]
        path = (out_dir / module_filename(pop_cell)).resolve()
        path.write_text(module_text(pop_cell))
        modules[pop] = str(path)
    return modules


def emit(cell, options, files: dict) -> dict:
    """`hhc compile --device cuda_standalone`: the brian2cuda project of the cell (of options.experiment,
    else DEFAULT_SIZE neurons for DEFAULT_DURATION) into out_dir/cuda_project, compiled with
    --build-only. Returns {"cuda_project/hhc_build.json": what was built}."""
    if options.out_dir is None:
        if options.build_only:
            raise HHCError("--build-only with --device cuda_standalone needs an output directory (-o DIR)")
        return {}
    experiment = options.experiment if options.experiment is not None else _default_experiment(cell)
    if experiment.dt_auto:
        experiment = experiment.with_dt(PROVISIONAL_DT)
    method = _method(experiment, options.method)
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = module_filename(cell)
    module_path = (out_dir / name).resolve()
    module_path.write_text(files[name])
    project = (out_dir / PROJECT).resolve()
    if options.build_only:
        nvcc = find_nvcc() or "nvcc"
        build_dir = _build_dir(files[name], experiment, method, compute_capability(gpus())[0], venv_python(), nvcc)
        print(f"cuda: generating the brian2cuda project and compiling it with nvcc (minutes on first build) "
              f"in {build_dir}", file=sys.stderr, flush=True)
        result = _drive("build", cell, experiment, method, build_dir, module_path,
                        _network_modules(experiment, module_path, out_dir))
        _copy_project(build_dir, project)
        print(f"cuda: compiled in {result['compile_time_s']:.0f} s"
              f"{' (reused the cached build)' if result['build_reused'] else ''} for compute capability "
              f"{result['compute_capability']} ({result['compute_capability_source']}); binary: {project / 'main'}",
              file=sys.stderr, flush=True)
        info = _build_info(result, project, experiment, method, compiled=True, cache_dir=str(build_dir))
    else:
        result = _drive("generate", cell, experiment, method, project, module_path,
                        _network_modules(experiment, module_path, out_dir))
        print(f"cuda: generated the brian2cuda project in {project} (not compiled: add --build-only)",
              file=sys.stderr, flush=True)
        info = _build_info(result, project, experiment, method, compiled=False)
    return {f"{PROJECT}/hhc_build.json": json.dumps(info, indent=1, default=str) + "\n"}


def run(cell, experiment, out_dir: Path, progress=None) -> RunResult:
    """`hhc run --device cuda_standalone`: build (or reuse) the experiment's project; run it on GPU 0
    if there is one, else stop with an HHCError saying where the compiled project is."""
    method = _method(experiment)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = module_text(cell)
    module_path = (out_dir / module_filename(cell)).resolve()
    module_path.write_text(text)
    python = venv_python()
    nvcc = find_nvcc() or "nvcc"
    found = gpus()
    build_dir = _build_dir(text, experiment, method, compute_capability(found)[0], python, nvcc)
    print(f"cuda: generating and compiling the brian2cuda project in {build_dir} (nvcc: minutes on first build)",
          file=sys.stderr, flush=True)
    modules = _network_modules(experiment, module_path, out_dir)
    result = _drive("run" if found else "build", cell, experiment, method, build_dir, module_path, modules)
    if not found:
        project = _copy_project(build_dir, out_dir / PROJECT)
        raise HHCError(
            f"no CUDA device is present on this machine (nvidia-smi lists no GPU), so the simulation was not "
            f"run: the project was generated and compiled in {project} (binary {project / 'main'}, compute "
            f"capability {result['compute_capability']}, {result['compute_capability_source']}); run it on a GPU "
            f"machine", hint="there, `hhc run` the same experiment with --device cuda_standalone (it detects the "
                             "GPU's compute capability), or `cd` into the project and run ./main after `make`")
    arrays = result.pop("arrays")
    spike_i = arrays["spike_i"].astype("int64")
    spike_t = arrays["spike_t"].astype(float)
    groups = []
    for k, tr in enumerate(experiment.traces):
        groups.append({"t": arrays[f"traces_{k}_t"], "neurons": list(tr.neurons),
                       "variables": {v: arrays[f"traces_{k}_{v}"] for v in tr.variables}})
    if progress is not None:
        progress(experiment.duration)
    meta = {"device": "cuda_standalone", "method": method, "precision": experiment.precision,
            "wall_time_s": result["wall_time_s"], "compile_time_s": result["compile_time_s"],
            "generate_time_s": result["generate_time_s"], "build_dir": str(build_dir),
            "build_reused": result["build_reused"], "brian2_version": result["brian2_version"],
            "brian2cuda_version": result["brian2cuda_version"], "compute_capability": result["compute_capability"],
            "compute_capability_source": result["compute_capability_source"], "gpu": found[0]["name"],
            "nvcc_version": result["nvcc_version"], "cuda_venv": result["cuda_venv"]}
    return RunResult(spike_i, spike_t, groups, meta)


# ---- the driver, in the cuda venv ----------------------------------------------------------------

def driver_main(job_path: str) -> None:
    """Entry point in the cuda venv: do the job, write its result JSON; exit 1 on failure."""
    job = pickle.loads(Path(job_path).read_bytes())
    result = {"ok": False}
    try:
        result.update(_driver_job(job))
        result["ok"] = True
    except HHCError as exc:
        result["error"] = str(exc.message)
    except Exception as exc:      # shown by hhc with the build log's error lines, not a traceback
        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    Path(job["result"]).write_text(json.dumps(result, default=str))
    sys.stdout.flush()
    sys.exit(0 if result["ok"] else 1)


def _curand_dirs() -> tuple[str, str, str]:
    """cuRAND from the nvidia-curand wheel: (include dir, link dir, runtime dir). The wheel ships only
    libcurand.so.10, so a libcurand.so link for the linker's -lcurand is made beside the venv's libs."""
    site = [p for p in sys.path if p.endswith("site-packages")]
    for base in site:
        headers = sorted(glob.glob(os.path.join(base, "nvidia", "*", "include", "curand.h")) +
                         glob.glob(os.path.join(base, "nvidia", "curand", "include", "curand.h")))
        if headers:
            include = os.path.dirname(headers[-1])
            libdir = os.path.join(os.path.dirname(include), "lib")
            libs = sorted(glob.glob(os.path.join(libdir, "libcurand.so*")))
            if not libs:
                continue
            link = os.path.join(sys.prefix, "lib", "hhc-curand")
            os.makedirs(link, exist_ok=True)
            target = os.path.join(link, "libcurand.so")
            if os.path.realpath(target) != os.path.realpath(libs[-1]):
                tmp = f"{target}.{os.getpid()}"
                os.symlink(libs[-1], tmp)
                os.replace(tmp, target)
            return include, link, libdir
    # a CUDA toolkit that has cuRAND itself needs nothing more
    return "", "", ""


def _driver_job(job: dict) -> dict:
    import brian2 as b2
    import brian2cuda  # noqa: F401  (registers the cuda_standalone device)

    from brian2.stateupdaters.base import StateUpdateMethod

    mode, experiment, method = job["mode"], job["experiment"], job["method"]
    build_dir = job["build_dir"]
    if method not in StateUpdateMethod.stateupdaters:
        raise HHCError(f"unknown integration method '{method}' for brian2; known: "
                       f"{', '.join(StateUpdateMethod.stateupdaters)} (or auto)")
    module = import_generated(Path(job["module"]))
    # initial values as numbers, computed as the brian2 backend does for cpp_standalone (Brian2's runtime,
    # gates at their steady state from v): the project gets them as static arrays, not one
    # nvcc-compiled kernel per gate that build_neurons' INITIAL_VALUES would add
    modules = None
    if job.get("modules"):          # a network: the populations' modules (initial values set in the project)
        modules = {pop: import_generated(Path(path)) for pop, path in job["modules"].items()}
    else:
        state = initial_state(module, experiment)
        experiment = dataclasses.replace(experiment, initial_arrays={
            **experiment.initial_arrays, **{name: state[name] for name in module.STATES}})
        module.INITIAL_VALUES = {}
    build_reused = Path(build_dir, "main").exists()

    b2.set_device("cuda_standalone", directory=build_dir, build_on_run=False)
    cuda = b2.prefs.devices.cuda_standalone.cuda_backend
    cuda.detect_gpus = False            # no deviceQuery: the capability comes from hhc (option, nvidia-smi)
    cuda.gpu_id = 0
    cuda.compute_capability = float(job["compute_capability"])
    cuda.cuda_path = job["cuda_home"]
    # CUDA 13's Thrust/libcu++ need C++17 (brian2cuda's makefile says c++11 first; the last one wins)
    cuda.extra_compile_args_nvcc = [f for f in cuda.extra_compile_args_nvcc if not f.startswith("-std=")] + \
        ["-std=c++17"]
    # host code: brian2's gcc defaults without -std=c++11 (and without -march=native, so the project
    # can be rebuilt or run on a GPU machine with another CPU)
    b2.prefs.codegen.cpp.extra_compile_args_gcc = ["-w", "-O3", "-ffast-math", "-fno-finite-math-only",
                                                   "-std=c++17"]
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{max(1, job['make_jobs'])}"]
    include, link, libdir = _curand_dirs()
    if include:
        b2.prefs.codegen.cpp.include_dirs = list(b2.prefs.codegen.cpp.include_dirs) + [include]
        b2.prefs.codegen.cpp.library_dirs = list(b2.prefs.codegen.cpp.library_dirs) + [link]
        b2.prefs.codegen.cpp.runtime_library_dirs = list(b2.prefs.codegen.cpp.runtime_library_dirs) + [libdir]

    # the brian2 backend's network (float32/float64 from experiment.precision) and protocol segments;
    # in standalone mode each run's code objects are generated here, the project files in build()
    t0 = time.perf_counter()
    if experiment.drawn is not None:
        b2.seed(experiment.seed)
    net, group, spikes, monitors = build_network(module, experiment, method, modules)
    run_protocol(net, group, monitors, experiment)
    b2.device.build(directory=build_dir, compile=False, run=False, with_output=False)
    generate_time = time.perf_counter() - t0
    result = {"brian2_version": b2.__version__, "brian2cuda_version": getattr(brian2cuda, "__version__", None),
              "precision": experiment.precision, "generate_time_s": generate_time, "compile_time_s": 0.0,
              "build_reused": False, "wall_time_s": None}
    if mode == "generate":
        return result
    from brian2.codegen.cpp_prefs import get_compiler_and_args
    t0 = time.perf_counter()
    b2.device.compile_source(build_dir, get_compiler_and_args()[0], False, False)
    result["compile_time_s"] = time.perf_counter() - t0
    result["build_reused"] = build_reused
    if not Path(build_dir, "main").exists():
        raise HHCError(f"nvcc produced no binary in {build_dir}")
    if mode == "build":
        return result

    t0 = time.perf_counter()
    try:
        b2.device.run(directory=build_dir, with_output=True)
    except RuntimeError as exc:
        raise HHCError(f"the CUDA simulation failed: {exc}") from None
    result["wall_time_s"] = time.perf_counter() - t0
    for g in (group.values() if isinstance(group, dict) else [group]):
        check_finite(g.v_[:])
    spike_i, spike_t, groups = collect(experiment, spikes, monitors)
    arrays = {"spike_i": spike_i, "spike_t": spike_t}
    for k, g in enumerate(groups):
        arrays[f"traces_{k}_t"] = g.t
        for var, values in g.variables.items():
            arrays[f"traces_{k}_{var}"] = values
    np.savez(Path(build_dir, "hhc-result.npz"), **arrays)
    return result
