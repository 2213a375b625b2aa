"""neuron: the LEMS simulation exported to NEURON by pynml -neuron, its .mod files compiled once per
content (nrnivmodl, cached)."""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from hhc.compiler import ir
from hhc.compiler.errors import HHCError

from ..base import Backend, Capabilities, EmitOptions
from ..cache import cache_root, file_lock
from ..results import RunResult
from .generate import neuron_problems
from .lems_run import (MAX_NEURONS, check_size, pyneuroml_missing, read_results, run_cells, run_tool, tool,
                       write_lems)
from .network import NetworkPlacement, experiment_documents


def neuron_version() -> str:
    return version("neuron")


def compiled_mechanisms(mod_files: list[Path]) -> Path:
    """nrnivmodl's output for these .mod files, built once per content under cache_root()/nrnivmodl."""
    digest = hashlib.sha256()
    digest.update(neuron_version().encode())
    for f in sorted(mod_files, key=lambda p: p.name):
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    build = cache_root() / "nrnivmodl" / digest.hexdigest()[:16]
    with file_lock(build / ".hhc-lock"):
        arch = build / "x86_64"
        if not (build / ".done").exists():
            for f in mod_files:
                shutil.copy(f, build / f.name)
            run_tool([tool("nrnivmodl")] + [f.name for f in mod_files], build, "nrnivmodl", timeout=1800)
            (build / ".done").write_text("ok\n")
        archs = [p for p in build.iterdir() if p.is_dir() and (p / ".libs").exists() or
                 (p.is_dir() and list(p.glob("libnrnmech*")))]
        if not archs and arch.exists():
            archs = [arch]
        if not archs:
            raise HHCError(f"nrnivmodl produced no library in {build}")
        return archs[0]


def spike_array_mod(name: str, times_ms) -> str:
    """A NEURON point process `name` that emits an event at each of times_ms. jNeuroML's NEURON export
    (org.neuroml.export 1.11) writes a spikeArray's mod file without its spikes (one event at t = 0),
    so the neuron backend writes this one over it: the same name and interface, hhc's drawn times."""
    cases = "\n".join(f"    {'if' if j == 0 else 'else if'} (j == {j}) {{ spike_time = {float(t)!r} }}"
                       for j, t in enumerate(times_ms))
    return f"""COMMENT
hhc: the spike train of {name} (ms), written over jNeuroML's export of the spikeArray.
ENDCOMMENT

NEURON {{
    POINT_PROCESS {name}
    RANGE tsince
}}

PARAMETER {{
    n = {len(times_ms)}
}}

ASSIGNED {{
    k
    tsince (ms)
}}

INITIAL {{
    k = 0
    tsince = 0
    if (n > 0) {{
        net_send(spike_time(0), 1)
    }}
}}

NET_RECEIVE(w) {{
    if (flag == 1) {{
        net_event(t)
        tsince = 0
        k = k + 1
        if (k < n) {{
            net_send(spike_time(k) - t, 1)
        }}
    }}
}}

FUNCTION spike_time(j) {{
    spike_time = 1e9
{cases}
}}
"""


class NeuronBackend(Backend):
    name = "neuron"
    description = "NEURON 9 via the jNeuroML export (pynml -neuron), .mod files compiled once per content"
    capabilities = Capabilities(default_method="NEURON default (implicit Euler, cnexp gates)",
                                max_neurons=MAX_NEURONS, fixed_step_order=1,
                                # measured: squid axon, 20 s at 3 x rheobase, dt 0.01 ms: one spike more
                                # than the reference and 2 ms of drift (h.secondorder = 2 did no better)
                                long_runs="NEURON's fixed step (implicit Euler, first order) at dt 0.01 ms drifts "
                                          "by 2 ms over 20 s of tonic firing; long runs need dt <= 0.0003 ms",
                                networks=True)

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        return experiment_documents(cell, options)

    @classmethod
    def unavailable_reason(cls):
        reason = pyneuroml_missing()
        if reason:
            return reason
        if importlib.util.find_spec("neuron") is None:     # not imported: it prints a DISPLAY warning
            return "NEURON is not installed; pip install neuron (or the neuroml extra)"
        return None

    def run(self, cell, experiment, out_dir: Path, progress=None) -> RunResult:
        check_size(self.name, experiment)
        for problem in (p for c in run_cells(cell, experiment) for p in neuron_problems(c)):
            self.unsupported(problem, hint="the jneuroml backend runs it")
        lems = write_lems(cell, experiment, out_dir)
        t0 = time.perf_counter()
        run_tool([tool("pynml"), lems.name, "-neuron", "-nogui"], out_dir, "export_neuron")
        export_time = time.perf_counter() - t0
        if experiment.drawn is not None:
            for array_id, times in NetworkPlacement(experiment).source_trains().items():
                mod = out_dir / f"{array_id}.mod"
                if not mod.exists():
                    raise HHCError(f"pynml -neuron wrote no {mod.name} for the spikeArray {array_id}; see "
                                   f"{out_dir / 'export_neuron.log'}")
                mod.write_text(spike_array_mod(array_id, np.asarray(times) * 1e3))
        arch = compiled_mechanisms(sorted(out_dir.glob("*.mod")))
        link = out_dir / arch.name
        if link.is_symlink() or link.exists():
            if link.is_symlink() or link.is_file():
                link.unlink()
            else:
                shutil.rmtree(link)
        link.symlink_to(arch, target_is_directory=True)
        script = out_dir / f"{lems.stem}_nrn.py"
        if not script.exists():
            raise HHCError(f"pynml -neuron did not write {script.name}; see {out_dir / 'export_neuron.log'}")
        t1 = time.perf_counter()
        run_tool([sys.executable, script.name, "-nogui"], out_dir, "neuron")
        wall = time.perf_counter() - t1
        if progress is not None:
            progress(experiment.duration)
        return read_results(self.name, cell, experiment, out_dir, wall,
                            {"simulator": f"NEURON {neuron_version()}",
                             "method": "NEURON default (implicit Euler, cnexp gates)", "export_time_s": export_time})
