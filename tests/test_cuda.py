"""brian2 cuda_standalone through brian2cuda (backends/brian2/cuda.py, docs/cuda.md).

What can be checked without a GPU: the Kenyon cell's brian2cuda project is generated and compiled by
the machine's nvcc (once per test session, in the session's own HHC_CACHE; a second build of the same
project there only regenerates and re-runs make), the generated CUDA code is GPU-shaped, and a run stops with a clear message. Nothing
here executes on a GPU. Only the absence of nvcc skips (needs_nvcc); a missing cuda venv fails (setup makes it).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builders import trace, write_experiment
from hhc.backends.brian2 import cuda as brian2_cuda
from hhc.compiler.errors import HHCError
from paths import KENYON as MODEL

STATES = ("v", "m_NaF", "h_NaF", "m_NaS", "h_NaS", "m_Kv", "m_KA", "h_KA", "m_Ks", "h_Ks")

# CUDA's own switch for "no device", so the no-GPU path is taken even on a machine that has one;
# the default compute capability, 9.0
NO_GPU = {"CUDA_VISIBLE_DEVICES": "", brian2_cuda.COMPUTE_CAPABILITY_ENV: None}


def cuda_experiment(path, precision="float64"):
    """Two protocol phases (inputs set between two runs) and a trace: the shape of the seed job, small."""
    return write_experiment(path, size=100, dt="0.01 ms", method="rk4", precision=precision,
                            initial={"v": "-65 mV"}, protocol=[("5 ms", "0 pA"), ("10 ms", "18 pA")],
                            traces=[trace(["v"], "0:2", interval="0.1 ms")],
                            backend={"name": "brian2", "device": "cuda_standalone"})


@pytest.fixture(scope="module")
def experiment_file(tmp_path_factory):
    return cuda_experiment(tmp_path_factory.mktemp("cuda-exp") / "kenyon_cuda.toml")


@pytest.fixture(scope="module")
def cuda_project(tmp_path_factory, experiment_file, cli):
    """`hhc compile --device cuda_standalone --build-only` of the Kenyon cell with the experiment:
    generated and compiled by nvcc (cached in the test session's HHC_CACHE, brian2-cuda/)."""
    out = tmp_path_factory.mktemp("cuda-build")
    done = cli("compile", MODEL, "--target", "brian2", "--device", "cuda_standalone", "--build-only",
               "--experiment", experiment_file, "-o", out, env=NO_GPU)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    project = out / "cuda_project"
    assert str(project / "hhc_build.json") in done.stdout
    assert "binary: " + str(project.resolve() / "main") in done.stderr
    return project


def _code(project: Path, pattern: str) -> tuple[Path, str]:
    files = sorted(project.glob(pattern))
    assert files, f"no {pattern} in {project}"
    return files[0], files[0].read_text()


# ---- generation and compilation ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.needs_nvcc
def test_build_only_leaves_the_compiled_binary(cuda_project):
    binary = cuda_project / "main"
    assert binary.is_file() and os.access(binary, os.X_OK)
    info = json.loads((cuda_project / "hhc_build.json").read_text())
    assert info["compiled"] is True and info["binary"] == str(binary.resolve())
    assert info["compute_capability"] == brian2_cuda.DEFAULT_COMPUTE_CAPABILITY
    assert info["compute_capability_source"].startswith("default")
    assert info["brian2_version"] == "2.8.0" and info["brian2cuda_version"] == "1.0a7"
    # the experiment's precision reached the kernels: the state is read in double precision
    _, kernel = _code(cuda_project, "code_objects/*stateupdater_codeobject.cu")
    assert re.search(r"double v = _ptr_array_kenyoncell_v\[_idx\];", kernel)
    makefile = (cuda_project / "makefile").read_text()
    assert "-arch=sm_90" in makefile and "-std=c++17" in makefile
    # cuRAND from the nvidia-curand wheel, found at run time through the binary's rpath
    assert "hhc-curand" in makefile and "nvidia" in makefile
    # the binary starts (and, with no GPU here, stops at CUDA device selection)
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    assert "libcurand" in ldd and "not found" not in ldd


@pytest.mark.slow
@pytest.mark.needs_nvcc
def test_state_updater_is_one_thread_per_neuron(cuda_project):
    path, text = _code(cuda_project, "code_objects/*stateupdater_codeobject.cu")
    kernel = re.search(r"__global__ void\s+(_run_kernel_\w*stateupdater\w*)\s*\((.*?)\n\}", text, re.S)
    assert kernel, f"no state update kernel in {path.name}"
    body = kernel.group(2)
    # the thread's global index is its neuron, and threads past N do nothing
    assert re.search(r"int tid = threadIdx\.x;", body) and re.search(r"int bid = blockIdx\.x;", body)
    assert re.search(r"int _idx = bid \* blockDim\.x \+ tid;", body)
    assert re.search(r"if\s*\(\s*_vectorisation_idx >= _N\s*\)\s*\{?\s*return;", body)
    # every state is read and written at the neuron's index in device memory (no loop over neurons)
    for state in STATES:
        assert re.search(rf"_ptr_array_kenyoncell_{state}\[_idx\]\s*=", body), state
    assert not re.search(r"for\s*\(\s*int _idx", body)
    # the host side launches ceil(N / threads) blocks over the N = 100 neurons, one kernel per step
    assert re.search(r"const int64_t N = 100;", text)
    assert "num_blocks = (_N + num_threads - 1) / num_threads;" in text
    assert re.search(r"_run_kernel_kenyoncell_stateupdater_codeobject<<<num_blocks, num_threads>>>", text)
    assert "cudaMemcpy" not in text


@pytest.mark.slow
@pytest.mark.needs_nvcc
def test_no_state_crosses_between_host_and_device_per_step(cuda_project):
    network = (cuda_project / "network.cu").read_text()
    loop = network[network.index("void Network::run"):]
    assert "while(clock && clock->running())" in loop
    assert "cudaMemcpy" not in network          # the time-step loop only calls the code objects
    main = (cuda_project / "main.cu").read_text()
    # what the loop calls: the code objects added to the network before each run
    called = set(re.findall(r"network\.add\(&\w+, (_run_\w+)\);", main))
    assert any("stateupdater" in name for name in called)
    state_arrays = re.compile(r"_array_kenyoncell_(?:%s)\b" % "|".join(STATES))
    for name in called - {"_run_random_number_buffer"}:
        source = (cuda_project / "code_objects" / (name.removeprefix("_run_") + ".cu")).read_text()
        run_fn = source[source.index(f"void {name}()"):]
        for copy in re.findall(r"cudaMemcpy\w*\s*\((.*?)\);", run_fn, re.S):
            # brian2cuda's spike monitor reads the step's spike count (one int); never a state array
            assert not state_arrays.search(copy), f"{name} copies state each step: {copy}"
            assert "sizeof(int32_t)" in copy, f"{name} copies more than a count each step: {copy}"
    # the inputs of the second phase go to the device once, between the two runs
    runs = [m.start() for m in re.finditer(r"network\.run\(", main)]
    assert len(runs) == 2
    between = main[runs[0]:runs[1]]
    assert "1.8e-11" in between and "dev_array_kenyoncell_Iapp" in between


# ---- running without a GPU ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.needs_nvcc
def test_run_without_gpu_compiles_then_says_so(cuda_project, experiment_file, tmp_path, cli):
    """`hhc run` of the experiment just compiled: the cached build is reused (make has nothing to
    do), then the run stops with exit code 1 and says why, no traceback."""
    out = tmp_path / "run"
    done = cli("run", experiment_file, "--out", out, env=NO_GPU)
    assert done.returncode == 1, done.stdout + done.stderr
    err = done.stderr
    assert "Traceback" not in err
    message = " ".join(err.split())
    assert "error: no CUDA device is present" in message
    project = (out / "cuda_project").resolve()
    assert f"the project was generated and compiled in {project}" in message
    assert "run it on a GPU machine" in message
    assert (project / "main").is_file() and os.access(project / "main", os.X_OK)
    assert not (out / "meta.json").exists()


def test_missing_cuda_venv_names_the_setup_step(tmp_path, cli):
    done = cli("compile", MODEL, "--device", "cuda_standalone", "--build-only", "-o", tmp_path / "out",
               env={"HHC_CUDA_VENV": tmp_path / "no-such-venv"})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "scripts/setup.d/40-cuda.sh" in done.stderr and "no-such-venv" in done.stderr


# ---- precision, compute capability, the two environments ----------------------------------------

@pytest.mark.needs_nvcc
def test_float32_generates_single_precision_kernels(tmp_path, cli):
    exp = cuda_experiment(tmp_path / "f32.toml", precision="float32")
    done = cli("compile", MODEL, "--device", "cuda_standalone", "--experiment", exp, "-o", tmp_path / "gen",
               "--compute-capability", "8.6", env=NO_GPU)
    assert done.returncode == 0, done.stdout + done.stderr
    project = tmp_path / "gen" / "cuda_project"
    info = json.loads((project / "hhc_build.json").read_text())
    assert info["compiled"] is False                   # --build-only was not given
    assert info["compute_capability"] == 8.6 and info["compute_capability_source"] == "option"
    assert "-arch=sm_86" in (project / "makefile").read_text()
    _, text = _code(project, "code_objects/*stateupdater_codeobject.cu")
    assert re.search(r"float v = _ptr_array_kenyoncell_v\[_idx\];", text)
    assert not re.search(r"double v = _ptr_array_kenyoncell_v\[_idx\];", text)
    assert not (project / "main").exists()


def test_compute_capability_option(monkeypatch):
    parse = brian2_cuda.parse_compute_capability
    assert parse("8.6") == 8.6 and parse("90") == 9.0 and parse("sm_120") == 12.0
    for bad in ("3.5", "nine", "8.66"):
        with pytest.raises(HHCError):
            parse(bad)
    monkeypatch.delenv(brian2_cuda.COMPUTE_CAPABILITY_ENV, raising=False)
    assert brian2_cuda.compute_capability([]) == (9.0, "default (no GPU)")
    gpu = [{"name": "NVIDIA A100", "compute_capability": 8.0}]
    assert brian2_cuda.compute_capability(gpu) == (8.0, "detected (GPU 0: NVIDIA A100)")
    monkeypatch.setenv(brian2_cuda.COMPUTE_CAPABILITY_ENV, "8.9")
    assert brian2_cuda.compute_capability(gpu) == (8.9, "option")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert brian2_cuda.gpus() == []


def test_bad_compute_capability_is_refused_cleanly(tmp_path, cli):
    done = cli("compile", MODEL, "--device", "cuda_standalone", "--compute-capability", "6.1",
               "-o", tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "compute capability 6.1" in done.stderr


@pytest.mark.needs_nvcc
def test_the_two_brian2_environments_coexist():
    import brian2
    assert brian2.__version__ == "2.9.0"          # hhc's own venv keeps the newest brian2
    python = brian2_cuda.venv_python()            # fails (not skips) when setup did not make the venv
    out = subprocess.run([str(python), "-c", "import brian2, brian2cuda; print(brian2.__version__, "
                          "brian2cuda.__version__)"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2.8.0", "1.0a7"]
    assert "brian2cuda" not in sys.modules       # never imported into hhc's process
