"""NEST backend: the IR as a NESTML model, built into a NEST extension module with NESTML's
toolchain, run with threads (`--threads`) and MPI processes (`--mpi P`, `--launcher`).

Integrators (the experiment's `method`):
  * "euler", "exponential_euler", "rk2", "rk4" — hhc writes one step of the fixed-step method of
    that name (Brian2's methods: the same spikes as Brian2 to rounding) into the NESTML `update`
    block, over plain numbers, with the right-hand side made cheap (see _RhsProgram: one quotient
    per state, parameter-only terms once per step, common subexpressions and shared exponentials
    once per evaluation). NESTML 9's only numeric ODE solvers are GSL rkf45 and forward Euler, so
    this is how NEST gets fixed-step 2nd/4th-order methods. A neuron whose v stops being a finite
    number is reported after the run (the state `hhc_bad_t`).
  * "auto" — the accuracy advisor (hhc.advise.choose, before the run: NestBackend.capabilities.advise_device)
    runs exponential Euler, rk2 and rk4 on a sample on NEST and takes the cheapest that meets the
    experiment's tolerance against the reference (for the Kenyon cell at dt 0.01 ms: rk2, about 8x
    cheaper per neuron-step than NESTML's default). Where nothing resolves it (PyNN cell types,
    `hhc compile`), "auto" is rk4.
  * "rkf45" — NESTML's default: the ODEs go to `equations:` and NESTML/GSL integrate them with the
    adaptive Runge–Kutta–Fehlberg 4(5) stepper (tolerances `gsl_abs_error_tol`, `gsl_rel_error_tol`).

The grown language (issue 14) maps onto NESTML as: concentrations in mM, declared `mmol/l` (NESTML's
units are astropy's, which has no M/mM; amount/um**3 in amol is the same unit), temperatures in degC,
declared `deg_C` (the number the .chan file writes; nernst() adds 273.15 itself); `a if cond else b`
as the ternary `(cond ? a : b)` with `and`/`or` (in the update block and, for rkf45, in inlines, which
NESTML hands to ODE-toolbox as a Piecewise); log as `ln`; a dynamic pool's `cai` as a state with
its ODE (recordable like every state); Q10 factors and Nernst terms of parameters only are computed
once per step. Exponential Euler follows Brian2's "conditionally linear" rule where a derivative is
not linear in its own state (cai through nernst's log): the slope is the coefficient of the state.

Spike times follow hhc's convention (Brian2's): a spike is stamped with the start of the time step
in which v crossed the threshold upwards. NEST stamps the end of that step; `run` subtracts dt.

The build and the run happen in child processes (NESTML's odetoolbox patches SymPy globally and
NEST prints to stdout on import): modules are built by `python -c <build script>` and simulations
run a small generated script that needs only `nest` and `numpy` — the same script under `mpirun`.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from hhc.compiler import ir
from hhc.compiler.errors import HHCError

from ..base import Backend, Capabilities, EmitOptions
from ..results import RunResult
from .build import build_module
from .nestml import METHODS, _variant, model_name, nestml_text
from .network import run_nest_network
from .run import run_nest


class NestBackend(Backend):
    name = "nest"
    description = "NEST 3.10 through NESTML 9: threads, and MPI processes with --mpi"
    # method/dt = "auto": the accuracy advisor chooses among hhc's fixed-step methods on a sample
    # run on NEST itself (one process, one thread)
    capabilities = Capabilities(
        devices=(None, "cpu", "runtime"), threaded_devices=(None, "cpu", "runtime"), mpi=True,
        methods=tuple(METHODS), default_method=METHODS["auto"], advise_device="cpu", networks=True)

    @classmethod
    def unavailable_reason(cls):
        if importlib.util.find_spec("nest") is None:
            return "NEST is not installed (pip install nest-simulator==3.10.0, or scripts/setup.sh test)"
        if importlib.util.find_spec("pynestml") is None:
            return "NESTML is not installed (pip install nestml==9.0.0, or scripts/setup.sh test)"
        if shutil.which("g++") is None and shutil.which("c++") is None:
            return "no C++ compiler (apt-get install g++)"
        return None

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        # the experiment's method (--experiment), if any; "auto" is rk4 here (no advisor at compile time)
        method = options.method or getattr(options.experiment, "method", None) or "auto"
        variant = _variant(method)
        files = {f"{model_name(cell, variant)}.nestml": nestml_text(cell, variant)}
        if options.out_dir is not None or options.build_only:
            reason = self.unavailable_reason()
            if reason:
                raise HHCError(f"cannot build the NEST module: {reason}")
            python = options.extra.get("nest_python")
            built = build_module(cell, variant, python=python, log=options.extra.get("log"))
            if options.out_dir is not None:
                out = Path(options.out_dir)
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy2(built.so, out / built.so.name)
            files[f"{model_name(cell, variant)}_module.json"] = json.dumps({
                "module": built.module, "model": built.model, "library": f"{built.so.name}",
                "cached_at": str(built.directory),
                "load": f"import os; os.environ['LD_LIBRARY_PATH'] = '<dir of {built.so.name}>'; "
                        f"import nest; nest.Install('{built.module}'); nest.Create('{built.model}')"}, indent=1) + "\n"
        return files

    def run(self, cell: ir.Cell, experiment, out_dir: Path, progress=None) -> RunResult:
        reason = self.unavailable_reason()
        if reason:
            raise HHCError(reason)
        if experiment.drawn is not None:            # a network: populations, sources, projections
            return run_nest_network(cell, experiment, Path(out_dir), progress)
        return run_nest(cell, experiment, Path(out_dir), progress)
