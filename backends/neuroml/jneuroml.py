"""jneuroml: the LEMS simulation run by the jNeuroML shipped in pyNeuroML (forward Euler)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from hhc.compiler import ir

from ..base import Backend, Capabilities, EmitOptions
from ..results import RunResult
from .lems_run import MAX_NEURONS, check_size, pyneuroml_missing, read_results, run_tool, tool, write_lems
from .network import experiment_documents


class JNeuroMLBackend(Backend):
    name = "jneuroml"
    description = "LEMS run by the jNeuroML shipped in pyNeuroML (forward Euler; small populations)"
    # forward Euler: compared with the reference at dt <= 0.001 ms
    capabilities = Capabilities(default_method="euler", max_neurons=MAX_NEURONS,
                                validate_dt=1e-6, fixed_step_order=1,   # jLEMS: forward Euler
                                networks=True)

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        return experiment_documents(cell, options)

    @classmethod
    def unavailable_reason(cls):
        return pyneuroml_missing()

    def run(self, cell, experiment, out_dir: Path, progress=None) -> RunResult:
        check_size(self.name, experiment)
        lems = write_lems(cell, experiment, out_dir)
        if experiment.method not in ("auto", "euler"):
            print(f"note: jNeuroML integrates with forward Euler; method {experiment.method} is ignored",
                  file=sys.stderr)
        t0 = time.perf_counter()
        run_tool([tool("pynml"), lems.name, "-nogui"], out_dir, "jneuroml")
        wall = time.perf_counter() - t0
        if progress is not None:
            progress(experiment.duration)
        return read_results(self.name, cell, experiment, out_dir, wall,
                            {"simulator": "jNeuroML (jLEMS)", "method": "euler"})
