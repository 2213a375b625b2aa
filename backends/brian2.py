"""Brian2 backend: equation strings + namespace, run on runtime (Cython) or cpp_standalone (OpenMP).

The generated module is plain Brian2: a researcher can read it, import it and call
`build_neurons(N)` in their own script. `hhc run` imports the very module it generated, so
what runs is what one reads.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import sympy

from hhc import __version__
from hhc.compiler import ir, units
from hhc.errors import HHCError

from . import Backend, DoublePrinter, EmitOptions, cache_root, decimal_form, file_lock

DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")

# Brian2's name for each SI base dimension's unit, to spell units Brian2 does not predefine.
_BRIAN_BASE = {units.VOLTAGE: "volt", units.CURRENT: "amp", units.CONDUCTANCE: "siemens",
               units.CAPACITANCE: "farad", units.TIME: "second", units.LENGTH: "metre",
               units.AREA: "metre**2", units.RESISTANCE: "ohm", units.RATE: "Hz"}
_BRIAN_KNOWN = {"mV", "volt", "ms", "second", "us", "nS", "uS", "mS", "siemens", "pA", "nA", "uA", "mA",
                "amp", "pF", "nF", "uF", "farad", "um", "cm", "mm", "metre", "um2", "cm2", "mm2", "ohm",
                "kohm", "Mohm", "Hz", "kHz", "MHz"}


class BrianPrinter(DoublePrinter):
    """SymPy → Brian2 expression text: units by name, exact rationals as doubles."""

    def _print_Symbol(self, expr):
        unit = units.unit_of_symbol(expr)
        return unit.name if unit else expr.name

    def _print_exprel(self, expr):
        return f"exprel({self._print(expr.args[0])})"


def brian_expr(expr: sympy.Expr) -> str:
    return BrianPrinter().doprint(decimal_form(expr))


def brian_unit(dim: units.Dimension) -> str:
    """The unit text after ':' in a Brian2 equation."""
    if dim.is_dimensionless:
        return "1"
    if dim in _BRIAN_BASE:
        return _BRIAN_BASE[dim]
    parts = []
    for base, exp in zip(("metre", "kilogram", "second", "amp"), dim._vec()):
        if exp:
            parts.append(base if exp == 1 else f"{base}**{exp}")
    return " * ".join(parts)


def _unit_definition(unit: units.Unit) -> str:
    base = _BRIAN_BASE.get(unit.dimension)
    if base is None:
        raise HHCError(f"the Brian2 backend cannot express unit {unit.name}")
    return f"{float(unit.scale)!r} * {base}"


def equations(cell: ir.Cell) -> str:
    """The Brian2 equation string of a cell, grouped by channel, one line per quantity."""
    lines = [f"dv/dt = {brian_expr(cell.dv_dt)} : volt"]
    for ch in cell.channels:
        lines.append("")
        lines.append(f"# channel {ch.name}" + (f" ({ch.ion})" if ch.ion else ""))
        lines.append(f"{ch.current_name} = {brian_expr(cell.channel_current(ch))} : amp")
        for expr in ch.expressions:
            lines.append(f"{expr.name} = {brian_expr(expr.expr)} : {brian_unit(expr.dimension)}")
        for g in ch.gates:
            x = g.state
            if g.form == "alpha_beta":
                lines.append(f"d{x}/dt = {x}_alpha * (1 - {x}) - {x}_beta * {x} : 1")
                lines.append(f"{x}_alpha = {brian_expr(g.alpha)} : Hz")
                lines.append(f"{x}_beta = {brian_expr(g.beta)} : Hz")
                lines.append(f"{x}_inf = {x}_alpha / ({x}_alpha + {x}_beta) : 1")
            else:
                lines.append(f"d{x}/dt = ({x}_inf - {x}) / {x}_tau : 1")
                lines.append(f"{x}_inf = {brian_expr(g.steady_state)} : 1")
                lines.append(f"{x}_tau = {brian_expr(g.time_constant)} : second")
    lines.append("")
    lines.append(f"I_leak = {brian_expr(cell.leak_current)} : amp")
    for inp in cell.inputs:
        lines.append(f"{inp.name} : {brian_unit(inp.dimension)}  # input, set by the protocol")
    return "\n".join(lines) + "\n"


def brian_quantity(value: sympy.Expr, dim: units.Dimension) -> str:
    """A constant with its unit; a bare number (`E = 0 mV` is stored as 0) gets the SI unit of its
    dimension, since Brian2 would read a plain 0 as dimensionless."""
    if dim.is_dimensionless or value.free_symbols:
        return brian_expr(value)
    return f"{float(units.to_si(value))!r}*{brian_unit(dim)}"


def _parameter_text(p: ir.Parameter) -> str:
    return brian_quantity(p.value, p.dimension)


def module_text(cell: ir.Cell) -> str:
    """A readable, importable Python module for the cell."""
    used_units = sorted({units.unit_of_symbol(s) for s in cell.unit_symbols()} |
                        {units.unit_of_symbol(s) for p in cell.parameters for s in p.value.free_symbols},
                        key=lambda u: u.name)
    imports = sorted({"NeuronGroup", "volt", "amp", "second", "Hz", "siemens", "farad", "metre", "ohm"} |
                     {u.name for u in used_units if u.name in _BRIAN_KNOWN})
    extra_units = [u for u in used_units if u.name not in _BRIAN_KNOWN]
    sources = ", ".join(Path(s).name for s in cell.sources)
    out = [
        f'"""Brian2 model of cell {cell.name}.',
        "",
        f"Generated by hhc {__version__} from {cell.source} (reads: {sources}).",
        "Do not edit: change the .chan file and run `hhc compile` again.",
        '"""',
        f"from brian2 import {', '.join(imports)}",
        "",
    ]
    if extra_units:
        out.append("# units Brian2 does not predefine")
        for u in extra_units:
            out.append(f"{u.name} = {_unit_definition(u)}")
        out.append("")
    out += [f'CELL = "{cell.name}"', f'SOURCE = "{cell.source}"', f'HHC_VERSION = "{__version__}"', "",
            'EQUATIONS = """', equations(cell).rstrip("\n"), '"""', "",
            "# Parameters (overridable through build_neurons(namespace=...))", "NAMESPACE = {"]
    for p in cell.parameters:
        out.append(f'    "{p.name}": {_parameter_text(p)},' + (f"  # {p.doc}" if p.doc else ""))
    for u in extra_units:
        out.append(f'    "{u.name}": {u.name},')
    out.append("}")
    out.append("")
    out.append("# Initial values: constants, or the gate's steady state at the initial v")
    out.append("INITIAL_VALUES = {")
    for iv in cell.initial:
        value = f"{iv.state}_inf" if iv.value is None else brian_quantity(iv.value, cell.state_dimension(iv.state))
        out.append(f'    "{iv.state}": "{value}",')
    out.append("}")
    out.append(f"STATES = {tuple(cell.states)!r}")
    out.append(f"INPUTS = {tuple(i.name for i in cell.inputs)!r}")
    if cell.threshold is not None:
        th = f"v > {brian_quantity(cell.threshold, units.VOLTAGE)}"
        out.append("# a spike is an upward crossing: no new spike until v falls back below threshold")
        out.append(f'THRESHOLD = "{th}"')
        out.append(f'REFRACTORY = "{th}"')
    else:
        out.append("THRESHOLD = None")
        out.append("REFRACTORY = False")
    out += [
        "",
        "",
        f'def build_neurons(N, method="rk4", dt=None, namespace=None, name="{cell.name.lower()}", **kwargs):',
        f'    """N {cell.name} neurons as a Brian2 NeuronGroup, initialised (v first, then the gates)."""',
        "    ns = dict(NAMESPACE)",
        "    ns.update(namespace or {})",
        "    group = NeuronGroup(N, EQUATIONS, threshold=THRESHOLD, refractory=REFRACTORY, method=method,",
        "                        namespace=ns, dt=dt, name=name, **kwargs)",
        "    for state, value in INITIAL_VALUES.items():",
        "        setattr(group, state, value)",
        "    return group",
        "",
    ]
    return "\n".join(out)


def module_filename(cell: ir.Cell) -> str:
    return f"{cell.name.lower()}_brian2.py"


def import_generated(path: Path):
    """Import a generated module from its file, under a name unique to its content."""
    # by content and place: a module imported from a since-deleted temporary folder is not reused
    digest = hashlib.sha1(path.read_bytes() + str(path.resolve()).encode()).hexdigest()[:12]
    name = f"hhc_generated_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_OMP_FOR = "#pragma omp parallel for schedule(static)"


def _machine_arch_flag() -> str:
    """-march=native when the C++ compiler accepts it here (it targets this CPU's vector width:
    AVX-512 gives 8 doubles per exp call); otherwise a flag every x86-64 of the last decade has."""
    import functools
    import shutil
    import subprocess

    @functools.lru_cache(maxsize=None)
    def probe(compiler):
        if compiler is None:
            return "-O3"
        ok = subprocess.run([compiler, "-march=native", "-x", "c++", "-E", "-", "-o", os.devnull],
                            input="", capture_output=True, text=True).returncode == 0
        return "-march=native" if ok else "-march=x86-64-v2"
    return probe(shutil.which(os.environ.get("CXX", "g++")))


def _make_chunked_main(build_dir: Path, n_monitors: int):
    """Make main.cpp run one chunk: its duration from $HHC_CHUNK_DURATION, and trace monitor k
    left out of the network when $HHC_TRACES_k_OFF is set (the chunk is outside its windows)."""
    import re
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


def _vectorise_state_update(build_dir: Path) -> int:
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


class Brian2Backend(Backend):
    name = "brian2"
    description = "Brian2 2.9: runtime (Cython) or cpp_standalone with OpenMP threads"
    precisions = ("float64", "float32")
    advise_device = "runtime"      # the same equations as cpp_standalone, no build per trial

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        if options.device not in (None,) + DEVICES:
            raise HHCError(f"device '{options.device}' is not supported by the brian2 target "
                           f"(supported: {', '.join(DEVICES)})")
        files = {module_filename(cell): module_text(cell)}
        if options.device == "cuda_standalone":
            # brian2cuda lives in its own environment (it pins another brian2): see brian2_cuda
            from . import brian2_cuda
            files.update(brian2_cuda.emit(self, cell, options, files))
        return files

    @classmethod
    def unavailable_reason(cls):
        try:
            import brian2  # noqa: F401
        except Exception as exc:  # brian2 fails on import with numpy >= 2.4, for one
            return f"brian2 cannot be imported: {exc}"
        return None

    def run(self, cell: ir.Cell, experiment, out_dir: Path, progress=None) -> dict:
        reason = self.unavailable_reason()
        if reason:
            raise HHCError(reason)
        device = experiment.backend.device or "runtime"
        if device not in DEVICES:
            raise HHCError(f"device '{device}' is not supported by the brian2 backend "
                           f"(supported: {', '.join(DEVICES)})")
        if device == "cuda_standalone":
            from . import brian2_cuda
            return brian2_cuda.run(self, cell, experiment, out_dir, progress)
        # "auto" still here: the advisor was not asked (hhc.api choose_auto=False, as hhc validate
        # does); rk4 matched a 100x finer reference on this model (DESIGN.md)
        method = experiment.method if experiment.method != "auto" else "rk4"
        from brian2.stateupdaters.base import StateUpdateMethod
        if method not in StateUpdateMethod.stateupdaters:
            raise HHCError(f"unknown integration method '{method}' for brian2; known: "
                           f"{', '.join(StateUpdateMethod.stateupdaters)} (or auto)")
        if device == "runtime" and (experiment.backend.threads or 1) > 1:
            print(f"note: --threads {experiment.backend.threads} is ignored on the runtime device "
                  f"(single-threaded); use --device cpp_standalone for OpenMP threads", file=sys.stderr)
        out_dir.mkdir(parents=True, exist_ok=True)
        module_path = out_dir / module_filename(cell)
        module_path.write_text(module_text(cell))
        module = import_generated(module_path)
        try:
            if device == "runtime":
                return self._run_runtime(module, experiment, method, progress)
            return self._run_standalone(module, experiment, method, out_dir, progress)
        except HHCError:
            raise
        except Exception as exc:   # Brian2 refusing the model or method: say so, without a traceback
            from brian2.core.base import BrianObjectException
            from brian2.stateupdaters.base import UnsupportedEquationsException
            cause = exc.__cause__ if isinstance(exc, BrianObjectException) and exc.__cause__ else exc
            if isinstance(cause, (ZeroDivisionError, FloatingPointError, OverflowError)):
                raise HHCError(f"the simulation failed numerically ({type(cause).__name__}: {cause}) with "
                               f"method {method} at dt {experiment.dt * 1e3:g} ms",
                               hint="check the initial values (warnings above) or use a smaller dt or "
                                    "another method") from None
            if isinstance(cause, (UnsupportedEquationsException, ValueError, KeyError)):
                raise HHCError(f"Brian2 could not run the model with method {method} on {device}: "
                               f"{type(cause).__name__}: {cause}",
                               hint="the generated module is in " + str(module_path)) from None
            raise

    # Measured here (Python 3.11, Brian2 2.9, numpy 2.3; `hhc run` in a fresh process, meta.json
    # peak_memory_bytes; benchmarks/memory_plan.py): the process peaks at about 160 MB with a tiny
    # population on cpp_standalone (155 MB on runtime), and each neuron adds about 4 copies of its
    # state (the group's arrays, the segment's command-line arrays, the results read back, the
    # segment written): 200,000 Kenyon cells add about 85 MB.
    _BASELINE = {"runtime": 155e6, "cpp_standalone": 160e6}
    _STATE_COPIES = 4

    def memory_model(self, experiment, n_states: int) -> dict:
        device = experiment.backend.device or "runtime"
        return {"baseline": int(self._BASELINE.get(device, 160e6)),
                "state": int(experiment.size * (n_states + 2) * 8 * self._STATE_COPIES),
                "segment": float(experiment.segment or 1.0) if device == "cpp_standalone" else None}

    # ---- shared: network construction --------------------------------------------------------
    @staticmethod
    def _set_initial(group, module, experiment):
        """The experiment's initial values: v first, since gates left at their steady state are
        computed from it."""
        import brian2 as b2
        import numpy as np
        group.v = np.asarray(experiment.initial_arrays["v"]) * b2.volt
        for state in module.STATES[1:]:
            values = experiment.initial_arrays.get(state)
            setattr(group, state, f"{state}_inf" if values is None else np.asarray(values))

    def _build_network(self, module, experiment, method):
        import brian2 as b2
        import numpy as np
        # float32 state (Brian2's own preference, honoured by every device); float64 otherwise
        b2.prefs.core.default_float_dtype = np.float32 if experiment.precision == "float32" else np.float64
        dt = experiment.dt * b2.second
        group = module.build_neurons(experiment.size, method=method, dt=dt)
        self._set_initial(group, module, experiment)
        objects = [group]
        spikes = None
        if experiment.record_spikes is not None:
            spikes = b2.SpikeMonitor(group, record=True, name="spikes")
            objects.append(spikes)
        monitors = []
        for k, tr in enumerate(experiment.traces):
            mon = b2.StateMonitor(group, list(tr.variables), record=list(tr.neurons),
                                  dt=tr.interval * b2.second, name=f"traces_{k}")
            monitors.append(mon)
            objects.append(mon)
        net = b2.Network(*objects)
        return net, group, spikes, monitors

    def _segments(self, experiment):
        """Protocol phases cut at trace window edges: (duration, inputs, active monitor flags)."""
        edges = {0.0}
        t = 0.0
        phase_starts = []
        for phase in experiment.protocol:
            phase_starts.append((t, phase))
            t += phase.duration
            edges.add(t)
        total = t
        for tr in experiment.traces:
            for start, stop in tr.windows or ():
                edges.update(x for x in (start, stop) if 0 < x < total)
        edges = sorted(edges)
        segments = []
        for a, b in zip(edges, edges[1:]):
            if b - a <= 0:
                continue
            phase = next(p for s, p in reversed(phase_starts) if s <= a + 1e-15)
            active = [tr.windows is None or any(s <= a + 1e-15 and b <= e + 1e-15 for s, e in tr.windows)
                      for tr in experiment.traces]
            segments.append((a, b - a, phase.inputs, active))
        return segments

    def _collect(self, experiment, spikes, monitors):
        import numpy as np
        spike_i = np.asarray(spikes.i[:], dtype=np.int64) if spikes is not None else np.zeros(0, np.int64)
        spike_t = np.asarray(spikes.t_[:], dtype=float) if spikes is not None else np.zeros(0)
        if spikes is not None and experiment.record_spikes is not True:
            keep = np.isin(spike_i, np.asarray(experiment.record_spikes))
            spike_i, spike_t = spike_i[keep], spike_t[keep]
        groups = []
        for tr, mon in zip(experiment.traces, monitors):
            variables = {var: np.asarray(getattr(mon, var + "_")).T.copy() for var in tr.variables}
            groups.append({"t": np.asarray(mon.t_[:], dtype=float), "neurons": np.asarray(tr.neurons),
                           "variables": variables})
        return spike_i, spike_t, groups

    # ---- runtime ---------------------------------------------------------------------------
    def _run_runtime(self, module, experiment, method, progress):
        import brian2 as b2
        b2.set_device("runtime")
        b2.prefs.codegen.target = "cython"
        b2.start_scope()
        net, group, spikes, monitors = self._build_network(module, experiment, method)
        segments = self._segments(experiment)
        done = 0.0
        # a zero-length run generates and compiles (Cython) every code object, timed apart
        t_compile = time.perf_counter()
        net.run(0 * b2.second)
        compile_time = time.perf_counter() - t_compile
        t0 = time.perf_counter()
        for start, duration, inputs, active in segments:
            for name, value in inputs.items():
                setattr(group, name, value * b2.amp)
            for mon, on in zip(monitors, active):
                mon.active = on

            def report(elapsed, completed, start_, duration_, _done=done):
                if progress is not None:
                    progress(_done + float(completed) * float(duration_))
            net.run(duration * b2.second, report=report, report_period=1 * b2.second)
            done += duration
            self._check_finite(group.v_[:])
        wall = time.perf_counter() - t0
        spike_i, spike_t, groups = self._collect(experiment, spikes, monitors)
        return {"spike_i": spike_i, "spike_t": spike_t, "traces": groups,
                "meta": {"device": "runtime", "codegen_target": "cython", "method": method,
                         "precision": experiment.precision,
                         "wall_time_s": wall, "compile_time_s": compile_time, "brian2_version": b2.__version__}}

    @staticmethod
    def _check_finite(v, when: str = ""):
        """Stop with a clear message when v (volts, one per neuron) is NaN or infinite anywhere:
        with finite math the compiled code does not notice by itself."""
        import numpy as np
        bad = ~np.isfinite(np.asarray(v))
        if bad.any():
            raise HHCError(f"the simulation blew up{when}: v is NaN or infinite in {int(bad.sum())} neurons "
                           f"(first: neuron {int(np.argmax(bad))}); try a smaller dt or another method")

    # ---- cpp_standalone ----------------------------------------------------------------------
    # One binary runs the experiment as a series of chunks (each one process run): the chunk's
    # duration, inputs and starting state are given on its command line, and each trace monitor
    # can be switched off for chunks outside its windows. After every chunk its spikes, samples and
    # final state are written as a segment (hhc.segments), so a killed run keeps what it had and
    # `hhc run --resume` continues from the last segment; memory holds one chunk's recordings.

    def _chunks(self, experiment, segment: float):
        """(start, duration, inputs, active monitors) pieces of at most `segment` seconds, cut at
        phase and window edges, each a whole number of steps (of every trace interval where possible)."""
        import math
        dt = experiment.dt
        grid = 1
        for tr in experiment.traces:
            grid = math.lcm(grid, max(1, round(tr.interval / dt)))
        chunks = []
        for start, duration, inputs, active in self._segments(experiment):
            steps = round(duration / dt)
            pieces = max(1, math.ceil(duration / segment - 1e-9))
            per = max(grid, (steps // pieces) // grid * grid) if steps >= grid * pieces else steps
            done = 0
            while done < steps:
                n = per if steps - done >= 2 * per else steps - done   # the remainder joins the last piece
                chunks.append((start + done * dt, n * dt, inputs, active))
                done += n
        return chunks

    @staticmethod
    def _build_dir(module, experiment, method, fast) -> Path:
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

    def _standalone_binary(self, build_dir, module, experiment, method, threads, fast):
        """Build (or reuse) the chunk binary in build_dir: returns (group, spikes, monitors, info)."""
        import brian2 as b2
        b2.set_device("cpp_standalone", directory=str(build_dir), build_on_run=False)
        b2.device.reinit()
        b2.device.activate(directory=str(build_dir), build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = max(threads, 1)   # OpenMP code; count set per run
        net, group, spikes, monitors = self._build_network(module, experiment, method)
        net.run(experiment.dt * b2.second)        # its duration is replaced by the chunk's at run time
        info = {"build_dir": str(build_dir), "build_reused": (build_dir / "main").exists(), "compile_time_s": 0.0,
                "compile_flags": self._compile_flags(fast), "vectorised_loops": 0}
        t0 = time.perf_counter()
        b2.prefs.codegen.cpp.extra_compile_args_gcc = info["compile_flags"]
        b2.device.build(directory=str(build_dir), compile=False, run=False, with_output=False)
        if not info["build_reused"]:
            info["vectorised_loops"] = _vectorise_state_update(build_dir) if fast else 0
            _make_chunked_main(build_dir, len(monitors))
            from brian2.codegen.cpp_prefs import get_compiler_and_args
            b2.device.compile_source(str(build_dir), get_compiler_and_args()[0], False, False)
            info["compile_time_s"] = time.perf_counter() - t0
        return group, spikes, monitors, info

    def _run_standalone(self, module, experiment, method, out_dir, progress):
        import brian2 as b2
        import numpy as np

        from hhc.segments import Segment, SegmentStore
        threads = int(experiment.backend.threads or 1)
        fast = os.environ.get("HHC_BRIAN2_FAST", "1") != "0"
        segment_len = self.memory_model(experiment, 0)["segment"]
        chunks = self._chunks(experiment, segment_len)
        store = SegmentStore(out_dir, f"{experiment.fingerprint()} {method} {segment_len!r}")
        first, state = store.resume_point()
        states = list(module.STATES) + ["not_refractory"]
        if state is None:          # the experiment's initial values, gates at steady state from v
            state = self._initial_state(module, experiment)
        build_dir = self._build_dir(module, experiment, method, fast)
        try:
            with file_lock(build_dir / ".hhc-lock"):
                group, spikes, monitors, info = self._standalone_binary(build_dir, module, experiment, method,
                                                                        threads, fast)
                wall = 0.0
                if progress is not None and first:
                    progress(chunks[first - 1][0] + chunks[first - 1][1])
                for index in range(first, len(chunks)):
                    start, duration, inputs, active = chunks[index]
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
                    self._check_finite(state["v"], f" between {start:g} s and {start + duration:g} s")
                    spike_i, spike_t, groups = self._collect(experiment, spikes, monitors)
                    # absolute times as Brian2's clocks spell them (step x dt), chunk by chunk
                    dt = experiment.dt
                    spike_t = (round(start / dt) + np.round(spike_t / dt)) * dt
                    for g, (tr, on) in enumerate(zip(experiment.traces, active)):
                        iv = tr.interval
                        groups[g]["t"] = (round(start / iv) + np.round(groups[g]["t"] / iv)) * iv
                        keep = self._in_windows(tr, groups[g]["t"], start + duration) if on else \
                            np.zeros(len(groups[g]["t"]), bool)
                        groups[g] = {"t": groups[g]["t"][keep],
                                     "variables": {v: a[keep] for v, a in groups[g]["variables"].items()}}
                    store.write(Segment(index, start, start + duration, spike_i, spike_t, groups, state))
                    if progress is not None:
                        progress(start + duration)
        finally:
            b2.device.run_environment_variables.clear()
            b2.device.reinit()
            b2.set_device("runtime")
        spike_i, spike_t, groups = store.merge(experiment.traces)
        meta = {"device": "cpp_standalone", "method": method, "threads": threads, "precision": experiment.precision,
                "wall_time_s": wall, "brian2_version": b2.__version__, "segments": len(chunks),
                "segment_length_s": segment_len, "resumed_from_segment": first or None}
        meta.update(info)
        return {"spike_i": spike_i, "spike_t": spike_t, "traces": groups, "meta": meta}

    @staticmethod
    def _in_windows(tr, t, chunk_stop):
        import numpy as np
        keep = t < chunk_stop - 1e-12
        if tr.windows is not None:
            inside = np.zeros(len(t), bool)
            for a, b in tr.windows:
                inside |= (t >= a - 1e-12) & (t < b - 1e-12)
            keep &= inside
        return keep

    @staticmethod
    def _initial_state(module, experiment):
        """State arrays at t = 0 from the experiment's initial values, computed by Brian2's runtime
        (the same expressions the module's INITIAL_VALUES give, steady states from the initial v)."""
        import brian2 as b2
        import numpy as np
        b2.set_device("runtime")
        b2.prefs.codegen.target = "numpy"       # a few expressions, once: not worth a Cython build
        b2.start_scope()
        group = module.build_neurons(experiment.size, method="euler", name="hhc_initial")
        group._network = "hhc-initial-values"   # never run by design: no "unused object" warning
        Brian2Backend._set_initial(group, module, experiment)
        out = {name: np.array(getattr(group, name + "_")[:]) for name in module.STATES}
        b2.prefs.codegen.target = "auto"
        out["not_refractory"] = np.ones(experiment.size, dtype=bool)
        return out

    @staticmethod
    def _compile_flags(fast: bool) -> list[str]:
        """Brian2's defaults are -ffast-math -fno-finite-math-only; the latter hides glibc's
        vectorised exp (libmvec). With fast=True hhc allows finite math — NaN/inf are then detected
        explicitly after every segment (numpy on the state), not by the compiler. The instruction
        set is this machine's (-march=native where the compiler knows the CPU, else a generic x86-64-v2)."""
        flags = ["-w", "-O3", "-ffast-math", _machine_arch_flag(), "-fopenmp-simd"]
        if not fast:
            flags.insert(3, "-fno-finite-math-only")
        return flags
