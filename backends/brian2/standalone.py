"""cpp_standalone: one compiled binary runs the experiment as a series of chunks (one process run
each). The chunk's duration, inputs, starting state and thread count are given when it starts, and
each trace monitor can be switched off for chunks outside its windows. After every chunk its spikes,
samples and final state are written as a segment (backends/segments.py), so a killed run keeps what
it had and `hhc run --resume` continues from the last segment; memory holds one chunk's recordings.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from unittest import mock

import numpy as np

from hhc.compiler.errors import HHCError

from ..cache import cache_root, file_lock
from ..results import RunResult
from ..segments import Segment, SegmentStore
from .network import build_network, check_finite, collect, initial_state, protocol_segments, run_protocol

_OMP_FOR = "#pragma omp parallel for schedule(static)"


@functools.lru_cache(maxsize=None)
def _arch_flag(compiler: str | None) -> str:
    if compiler is None:
        return "-O3"
    ok = subprocess.run([compiler, "-march=native", "-x", "c++", "-E", "-", "-o", os.devnull],
                        input="", capture_output=True, text=True).returncode == 0
    return "-march=native" if ok else "-march=x86-64-v2"


def machine_arch_flag() -> str:
    """-march=native when the C++ compiler accepts it here (it targets this CPU's vector width:
    AVX-512 gives 8 doubles per exp call); otherwise a flag every x86-64 of the last decade has."""
    return _arch_flag(shutil.which(os.environ.get("CXX", "g++")))


def compile_flags(fast: bool) -> list[str]:
    """Brian2's defaults are -ffast-math -fno-finite-math-only; the latter hides glibc's
    vectorised exp (libmvec). With fast=True hhc allows finite math — NaN/inf are then detected
    explicitly after every segment (numpy on the state), not by the compiler. The instruction
    set is this machine's (-march=native where the compiler knows the CPU, else a generic x86-64-v2)."""
    flags = ["-w", "-O3", "-ffast-math", machine_arch_flag(), "-fopenmp-simd"]
    if not fast:
        flags.insert(3, "-fno-finite-math-only")
    return flags


def make_chunked_main(build_dir: Path, n_monitors: int):
    """Make main.cpp run one chunk: its duration from $HHC_CHUNK_DURATION, and trace monitor k
    left out of the network when $HHC_TRACES_k_OFF is set (the chunk is outside its windows)."""
    path = build_dir / "main.cpp"
    text = path.read_text()
    helper = ("static double hhc_chunk_duration(double fallback) {\n"
              "    const char* s = std::getenv(\"HHC_CHUNK_DURATION\"); return s ? std::strtod(s, nullptr) : fallback; }\n"
              "static int hhc_threads(int fallback) {\n"
              "    const char* s = std::getenv(\"HHC_THREADS\"); return s ? std::atoi(s) : fallback; }\n")
    text = text.replace("int main(int argc, char **argv)", helper + "int main(int argc, char **argv)", 1)
    # the thread count is the run's, not the build's: one binary serves every --threads (and hhc tune)
    text, n_threads = re.subn(r"omp_set_num_threads\((\d+)\);", r"omp_set_num_threads(hhc_threads(\1));", text)
    if n_threads != 1:
        raise HHCError(f"cannot set the thread count of Brian2's main.cpp at run time ({n_threads} places)")
    text, runs = re.subn(r"network\.run\(([^,]+),", r"network.run(hhc_chunk_duration(\1),", text)
    for k in range(n_monitors):
        text, n = re.subn(rf"(\n\s*)(network\.add\(&traces_{k}_clock, [^;]+;)",
                          rf'\1if (!std::getenv("HHC_TRACES_{k}_OFF")) \2', text)
        if n != 1:
            raise HHCError(f"cannot make Brian2's main.cpp run in chunks (trace monitor {k} found {n} times)")
    if runs != 1:
        raise HHCError(f"cannot make Brian2's main.cpp run in chunks ({runs} network runs, expected 1)")
    path.write_text(text)


def vectorise_state_update(build_dir: Path) -> int:
    """Ask for SIMD on the neuron loop of the state updaters only (their iterations are
    independent; the thresholder's are not). With -fopenmp and finite math, gcc then calls
    glibc's vector exp. Returns the number of loops changed."""
    changed = 0
    for path in (build_dir / "code_objects").glob("*stateupdater*.cpp"):
        text = path.read_text()
        if _OMP_FOR in text:
            path.write_text(text.replace(_OMP_FOR, "#pragma omp parallel for simd schedule(static)"))
            changed += text.count(_OMP_FOR)
        elif "for(int _idx=0; _idx<_N; _idx++)" in text and "#pragma omp simd" not in text:
            path.write_text(text.replace("for(int _idx=0; _idx<_N; _idx++)",
                                         "#pragma omp simd\n    for(int _idx=0; _idx<_N; _idx++)", 1))
            changed += 1
    return changed


def chunks(experiment, segment: float):
    """(start, duration, inputs, active monitors) pieces of at most `segment` seconds, cut at
    phase and window edges, each a whole number of steps (of every trace interval where possible)."""
    dt = experiment.dt
    grid = 1
    for tr in experiment.traces:
        grid = math.lcm(grid, max(1, round(tr.interval / dt)))
    out = []
    for start, duration, inputs, active in protocol_segments(experiment):
        steps = round(duration / dt)
        pieces = max(1, math.ceil(duration / segment - 1e-9))
        per = max(grid, (steps // pieces) // grid * grid) if steps >= grid * pieces else steps
        done = 0
        while done < steps:
            n = per if steps - done >= 2 * per else steps - done   # the remainder joins the last piece
            out.append((start + done * dt, n * dt, inputs, active))
            done += n
    return out


def build_dir_for(module, experiment, method, fast) -> Path:
    """The cached project of one chunk binary: what the binary depends on (not the protocol or
    the initial values, which each chunk gets on its command line)."""
    import brian2 as b2
    key = hashlib.sha1(json.dumps({
        "module": Path(module.__file__).read_text(), "size": experiment.size, "dt": experiment.dt,
        "method": method, "brian2": b2.__version__, "fast": fast, "layout": 3,
        "precision": experiment.precision, "spikes": experiment.record_spikes is not None,
        "traces": [(tr.variables, tr.neurons, tr.interval) for tr in experiment.traces]},
        sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_root() / "brian2-standalone" / key


def standalone_binary(build_dir, module, experiment, method, threads, fast):
    """Build (or reuse) the chunk binary in build_dir: returns (group, spikes, monitors, info)."""
    import brian2 as b2
    from brian2.codegen.cpp_prefs import get_compiler_and_args
    b2.set_device("cpp_standalone", directory=str(build_dir), build_on_run=False)
    b2.device.reinit()
    b2.device.activate(directory=str(build_dir), build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = max(threads, 1)   # OpenMP code; count set per run
    net, group, spikes, monitors = build_network(module, experiment, method)
    net.run(experiment.dt * b2.second)        # its duration is replaced by the chunk's at run time
    info = {"build_dir": str(build_dir), "build_reused": (build_dir / "main").exists(), "compile_time_s": 0.0,
            "compile_flags": compile_flags(fast), "vectorised_loops": 0}
    t0 = time.perf_counter()
    b2.prefs.codegen.cpp.extra_compile_args_gcc = info["compile_flags"]
    b2.device.build(directory=str(build_dir), compile=False, run=False, with_output=False)
    if not info["build_reused"]:
        info["vectorised_loops"] = vectorise_state_update(build_dir) if fast else 0
        make_chunked_main(build_dir, len(monitors))
        try:
            # Brian2 builds with os.system, during which the C library ignores SIGINT in hhc's process:
            # through subprocess, a Ctrl-C stops hhc too instead of looking like a compiler error
            with mock.patch.object(os, "system", lambda command: subprocess.call(command, shell=True)):
                b2.device.compile_source(str(build_dir), get_compiler_and_args()[0], False, False)
        except RuntimeError as exc:
            raise HHCError(f"the C++ compilation of the simulation failed: {exc}",
                           hint=f"the project is in {build_dir} (run make there to see the compiler's messages)") from None
        info["compile_time_s"] = time.perf_counter() - t0
    return group, spikes, monitors, info


def in_windows(tr, t, chunk_stop):
    keep = t < chunk_stop - 1e-12
    if tr.windows is not None:
        inside = np.zeros(len(t), bool)
        for a, b in tr.windows:
            inside |= (t >= a - 1e-12) & (t < b - 1e-12)
        keep &= inside
    return keep


def run_standalone(module, experiment, method, out_dir, segment_len, progress) -> RunResult:
    import brian2 as b2
    threads = int(experiment.backend.threads or 1)
    fast = os.environ.get("HHC_BRIAN2_FAST", "1") != "0"
    pieces = chunks(experiment, segment_len)
    store = SegmentStore(out_dir, f"{experiment.fingerprint()} {method} {segment_len!r}")
    first, state = store.resume_point()
    states = list(module.STATES) + ["not_refractory"]
    if state is None:          # the experiment's initial values, gates at steady state from v
        state = initial_state(module, experiment)
    build_dir = build_dir_for(module, experiment, method, fast)
    try:
        with file_lock(build_dir / ".hhc-lock"):
            group, spikes, monitors, info = standalone_binary(build_dir, module, experiment, method, threads, fast)
            wall = 0.0
            if progress is not None and first:
                progress(pieces[first - 1][0] + pieces[first - 1][1])
            for index in range(first, len(pieces)):
                start, duration, inputs, active = pieces[index]
                run_args = {getattr(group, name): b2.Quantity(values, dim=group.variables[name].dim)
                            if not group.variables[name].dim.is_dimensionless else np.asarray(values)
                            for name, values in state.items()}
                for name, value in inputs.items():
                    run_args[getattr(group, name)] = value * b2.amp
                env = {"HHC_CHUNK_DURATION": repr(duration), "HHC_THREADS": str(threads)}
                env.update({f"HHC_TRACES_{k}_OFF": "1" for k, on in enumerate(active) if not on})
                b2.device.run_environment_variables.clear()
                b2.device.run_environment_variables.update(env)
                for var in b2.device.array_cache:    # every value comes from this chunk's results
                    b2.device.array_cache[var] = None
                for mon in monitors:                 # Brian2 sizes 2-d records from the last read
                    for var in mon.variables.values():
                        if isinstance(getattr(var, "size", None), tuple) and len(var.size) == 2:
                            var.size = (0, var.size[1])
                t1 = time.perf_counter()
                try:
                    b2.device.run(directory=str(build_dir), with_output=True, run_args=run_args)
                except RuntimeError as exc:
                    raise HHCError(f"the compiled simulation failed in the chunk at {start:g} s: {exc}") from None
                finally:
                    for name in env:                 # Brian2 leaves them in os.environ
                        os.environ.pop(name, None)
                wall += time.perf_counter() - t1
                for name in b2.device.run_args_arrays:      # the chunk's inputs: not needed again
                    Path(build_dir, "static_arrays", name).unlink(missing_ok=True)
                state = {name: np.array(getattr(group, name + "_")[:]) if name != "not_refractory"
                         else np.array(group.not_refractory[:]) for name in states}
                check_finite(state["v"], f" between {start:g} s and {start + duration:g} s")
                spike_i, spike_t, groups = collect(experiment, spikes, monitors)
                # absolute times as Brian2's clocks spell them (step x dt), chunk by chunk
                dt = experiment.dt
                spike_t = (round(start / dt) + np.round(spike_t / dt)) * dt
                samples = []
                for tr, group_k, on in zip(experiment.traces, groups, active):
                    iv = tr.interval
                    t = (round(start / iv) + np.round(group_k.t / iv)) * iv
                    keep = in_windows(tr, t, start + duration) if on else np.zeros(len(t), bool)
                    samples.append({"t": t[keep], "variables": {v: a[keep] for v, a in group_k.variables.items()}})
                store.write(Segment(index, start, start + duration, spike_i, spike_t, samples, state))
                if progress is not None:
                    progress(start + duration)
    finally:
        b2.device.run_environment_variables.clear()
        b2.device.reinit()
        b2.set_device("runtime")
    spike_i, spike_t, groups = store.merge(experiment.traces)
    meta = {"device": "cpp_standalone", "method": method, "threads": threads, "precision": experiment.precision,
            "wall_time_s": wall, "brian2_version": b2.__version__, "segments": len(pieces),
            "segment_length_s": segment_len, "resumed_from_segment": first or None}
    meta.update(info)
    return RunResult(spike_i, spike_t, groups, meta)


# ---- networks -------------------------------------------------------------------------------------
#
# A network runs in one piece: its spikes in flight (delays) and the sources' positions live in the
# binary, not in the neurons' state a chunk hands to the next, so there are no segments and no
# --resume. The protocol is compiled in (one run per phase, inputs set between them); the binary is
# cached by everything it depends on, the thread count set when it starts.

def network_build_dir(modules, experiment, method, fast) -> Path:
    """The project folder of a network's binary, by what its code depends on: the cells, sizes,
    projections, method, dt, monitors and protocol shape. The drawn connections, weights, delays,
    parameters and spike trains are data files Brian2 rewrites per run; `make` then recompiles only
    the sources that changed (the protocol's values are in main.cpp)."""
    import brian2 as b2
    net = experiment.drawn
    key = hashlib.sha1(json.dumps({
        "modules": {pop: Path(m.__file__).read_text() for pop, m in modules.items()},
        "method": method, "dt": experiment.dt, "brian2": b2.__version__, "fast": fast, "layout": 2,
        "precision": experiment.precision, "noise": [net.spec.main_noise is not None] +
        [p.noise is not None for p in net.spec.populations], "sizes": net.sizes,
        "parameters": {pop: sorted(v) for pop, v in net.parameters.items()},
        "projections": [(p.source, p.target, p.synapse) for p in net.spec.projections],
        "spikes": experiment.record_spikes is not None,
        "traces": [(tr.variables, tr.neurons, tr.interval) for tr in experiment.traces]},
        sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_root() / "brian2-network" / key


def _threads_from_environment(build_dir: Path) -> None:
    path = build_dir / "main.cpp"
    text = path.read_text()
    if "hhc_threads" in text:           # kept from the last build (Brian2 left it unchanged)
        return
    helper = ("static int hhc_threads(int fallback) {\n"
              "    const char* s = std::getenv(\"HHC_THREADS\"); return s ? std::atoi(s) : fallback; }\n")
    text = text.replace("int main(int argc, char **argv)", helper + "int main(int argc, char **argv)", 1)
    text, n = re.subn(r"omp_set_num_threads\((\d+)\);", r"omp_set_num_threads(hhc_threads(\1));", text)
    if n != 1:
        raise HHCError(f"cannot set the thread count of Brian2's main.cpp at run time ({n} places)")
    path.write_text(text)


def run_network_standalone(modules, experiment, method, out_dir, progress) -> RunResult:
    """A network experiment on cpp_standalone (OpenMP): built once per network, run in one piece."""
    import brian2 as b2
    from brian2.codegen.cpp_prefs import get_compiler_and_args
    threads = int(experiment.backend.threads or 1)
    fast = os.environ.get("HHC_BRIAN2_FAST", "1") != "0"
    build_dir = network_build_dir(modules, experiment, method, fast)
    main = next(iter(modules.values()))
    try:
        with file_lock(build_dir / ".hhc-lock"):
            b2.set_device("cpp_standalone", directory=str(build_dir), build_on_run=False)
            b2.device.reinit()
            b2.device.activate(directory=str(build_dir), build_on_run=False)
            b2.prefs.devices.cpp_standalone.openmp_threads = max(threads, 1)
            b2.seed(experiment.seed)       # the noise's random numbers (the network itself is drawn)
            t0 = time.perf_counter()
            net, groups, spikes, monitors = build_network(main, experiment, method, modules)
            run_protocol(net, groups, monitors, experiment)
            info = {"build_dir": str(build_dir), "build_reused": (build_dir / "main").exists(),
                    "compile_time_s": 0.0, "compile_flags": compile_flags(fast), "vectorised_loops": 0,
                    "source_spikes_shifted": net.hhc_shifted_source_spikes}
            b2.prefs.codegen.cpp.extra_compile_args_gcc = info["compile_flags"]
            # linked with -ffast-math, the binary flushes denormals to zero: a synaptic conductance
            # decaying for seconds without input (the GGN's, between odours) would otherwise reach
            # denormal numbers, whose arithmetic is ~100x slower
            link = [a for a in b2.prefs.codegen.cpp.extra_link_args if a != "-ffast-math"]
            b2.prefs.codegen.cpp.extra_link_args = link + (["-ffast-math"] if fast else [])
            b2.device.build(directory=str(build_dir), compile=False, run=False, with_output=False)
            info["generate_time_s"] = time.perf_counter() - t0
            # make rebuilds what changed since the last network of this shape (everything the first time)
            t0 = time.perf_counter()
            info["vectorised_loops"] = vectorise_state_update(build_dir) if fast else 0
            _threads_from_environment(build_dir)
            try:
                with mock.patch.object(os, "system", lambda command: subprocess.call(command, shell=True)):
                    b2.device.compile_source(str(build_dir), get_compiler_and_args()[0], False, False)
            except RuntimeError as exc:
                raise HHCError(f"the C++ compilation of the simulation failed: {exc}",
                               hint=f"the project is in {build_dir} (run make there to see the compiler's "
                                    f"messages)") from None
            info["compile_time_s"] = time.perf_counter() - t0
            env = {"HHC_THREADS": str(threads)}
            b2.device.run_environment_variables.clear()
            b2.device.run_environment_variables.update(env)
            t1 = time.perf_counter()
            try:
                b2.device.run(directory=str(build_dir), with_output=True)
            except RuntimeError as exc:
                raise HHCError(f"the compiled network simulation failed: {exc}") from None
            finally:
                os.environ.pop("HHC_THREADS", None)
            wall = time.perf_counter() - t1
            for g in groups.values():
                check_finite(g.v_[:], " by the end of the run")
            spike_i, spike_t, traces = collect(experiment, spikes, monitors)
            dt = experiment.dt
            spike_t = np.round(spike_t / dt) * dt
    finally:
        b2.device.run_environment_variables.clear()
        b2.prefs.codegen.cpp.extra_link_args = [a for a in b2.prefs.codegen.cpp.extra_link_args
                                                if a != "-ffast-math"]
        b2.device.reinit()
        b2.set_device("runtime")
    if progress is not None:
        progress(experiment.duration)
    meta = {"device": "cpp_standalone", "method": method, "threads": threads, "precision": experiment.precision,
            "wall_time_s": wall, "brian2_version": b2.__version__, "segments": 1}
    meta.update(info)
    return RunResult(spike_i, spike_t, traces, meta)
