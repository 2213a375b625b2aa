"""Brian2 backend: equation strings + namespace (generate.py), run on the runtime device (Cython),
cpp_standalone with OpenMP (standalone.py) or cuda_standalone through brian2cuda (cuda.py); the
network is the same on every device (network.py).

The generated module is plain Brian2: a researcher can read it, import it and call
`build_neurons(N)` in their own script. `hhc run` imports the very module it generated, so
what runs is what one reads.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from hhc.compiler import ir
from hhc.compiler.errors import HHCError

from ..base import Backend, Capabilities, EmitOptions
from ..results import RunResult
from . import cuda
from .generate import import_generated, module_filename, module_text
from .network import build_network, check_finite, collect, population_modules, protocol_segments, set_inputs
from .standalone import run_network_standalone, run_standalone

DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")


class Brian2Backend(Backend):
    name = "brian2"
    description = "Brian2 2.9: runtime (Cython) or cpp_standalone with OpenMP threads"
    capabilities = Capabilities(
        devices=(None,) + DEVICES, threaded_devices=("cpp_standalone", "cuda_standalone"),
        # "auto" without the advisor (hhc validate asks for none): rk4 matched a 100x finer reference
        default_method="rk4", precisions=("float64", "float32"),
        advise_device="runtime",      # the same equations as cpp_standalone, no build per trial
        networks=True)

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        if options.device not in self.capabilities.devices:
            self.unsupported(f"device '{options.device}'", hint=f"devices: {', '.join(DEVICES)}")
        files = {module_filename(cell): module_text(cell)}
        if options.device == "cuda_standalone":
            # brian2cuda lives in its own environment (it pins another brian2): see cuda.py
            files.update(cuda.emit(cell, options, files))
        return files

    @classmethod
    def unavailable_reason(cls):
        try:
            import brian2  # noqa: F401
        except Exception as exc:  # brian2 fails on import with numpy >= 2.4, for one
            return f"brian2 cannot be imported: {exc}"
        return None

    def run(self, cell: ir.Cell, experiment, out_dir: Path, progress=None) -> RunResult:
        reason = self.unavailable_reason()
        if reason:
            raise HHCError(reason)
        device = experiment.backend.device or "runtime"
        if device == "cuda_standalone":
            return cuda.run(cell, experiment, out_dir, progress)
        method = experiment.method if experiment.method != "auto" else self.capabilities.default_method
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
        modules = None
        if experiment.drawn is not None:     # every population's module, beside the main one
            modules = population_modules(experiment.drawn, module, out_dir, module_text, module_filename,
                                         import_generated)
        try:
            if device == "runtime":
                return self._run_runtime(module, experiment, method, progress, modules)
            if modules is not None:
                return run_network_standalone(modules, experiment, method, out_dir, progress)
            return run_standalone(module, experiment, method, out_dir,
                                  self.memory_model(experiment, 0)["segment"], progress)
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

    @classmethod
    def full_sample_device(cls, device, steps):
        # A 20-neuron sample on the runtime device costs ~35 µs a step (Python drives every step);
        # cpp_standalone ~5 µs a step after a 30-90 s build. Measured here, runtime is cheaper below
        # about 2 million steps (50 s at 0.025 ms). Same equations on both (CUDA's are cpp_standalone's).
        return "cpp_standalone" if steps > 2_000_000 else "runtime"

    def memory_model(self, experiment, n_states: int) -> dict:
        device = experiment.backend.device or "runtime"
        return {"baseline": int(self._BASELINE.get(device, 160e6)),
                "state": int(experiment.size * (n_states + 2) * 8 * self._STATE_COPIES),
                "segment": float(experiment.segment or 1.0) if device == "cpp_standalone" else None}

    @staticmethod
    def _run_runtime(module, experiment, method, progress, modules=None) -> RunResult:
        import brian2 as b2
        b2.set_device("runtime")
        b2.prefs.codegen.target = "cython"
        b2.start_scope()
        if experiment.drawn is not None:
            b2.seed(experiment.seed)          # the noise's random numbers (the network itself is drawn)
        net, group, spikes, monitors = build_network(module, experiment, method, modules)
        groups = group if isinstance(group, dict) else {None: group}
        done = 0.0
        # a zero-length run generates and compiles (Cython) every code object, timed apart
        t_compile = time.perf_counter()
        net.run(0 * b2.second)
        compile_time = time.perf_counter() - t_compile
        t0 = time.perf_counter()
        for start, duration, inputs, active in protocol_segments(experiment):
            set_inputs(group, inputs)
            for mon, on in zip(monitors, active):
                mon.active = on

            def report(elapsed, completed, start_, duration_, _done=done):
                if progress is not None:
                    progress(_done + float(completed) * float(duration_))
            net.run(duration * b2.second, report=report, report_period=1 * b2.second)
            done += duration
            for g in groups.values():
                check_finite(g.v_[:])
        wall = time.perf_counter() - t0
        spike_i, spike_t, traces = collect(experiment, spikes, monitors)
        meta = {"device": "runtime", "codegen_target": "cython", "method": method,
                "precision": experiment.precision, "wall_time_s": wall, "compile_time_s": compile_time,
                "brian2_version": b2.__version__}
        if experiment.drawn is not None:
            meta["source_spikes_shifted"] = net.hhc_shifted_source_spikes
        return RunResult(spike_i, spike_t, traces, meta)
