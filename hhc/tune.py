"""hhc tune: how many threads? Short runs of the experiment at several thread counts, side by side.

Each count runs the same compiled simulation (the thread count is a run-time setting of the
binary) for a short cut of the protocol; the fastest wall time wins, except that a count is only
preferred over a smaller one when it is faster by more than `margin` (2-core machines are shared
and noisy, and a thread that buys nothing is better left to the rest of the machine).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hhc.compiler.errors import HHCError


@dataclass
class Measurement:
    threads: int
    wall_s: float              # best of the repeats, simulation only (compilation excluded)
    ns_per_neuron_step: float


def default_thread_counts() -> list[int]:
    cores = os.cpu_count() or 1
    counts = {1, cores}
    k = 2
    while k < cores:
        counts.add(k)
        k *= 2
    return sorted(counts)


def tune(experiment, *, threads=None, duration="200 ms", repeats=2, margin=0.05, say=print):
    """Returns (measurements, recommended thread count, info)."""
    from hhc.api import prepare, run_experiment
    exp, cell, _ = prepare(experiment, say=say)
    device = exp.backend.device or "runtime"
    if exp.backend.name == "brian2" and device == "runtime":
        raise HHCError("the brian2 runtime device is single-threaded: there is nothing to tune",
                       hint='set [backend] device = "cpp_standalone" (OpenMP threads)')
    counts = sorted(set(threads or default_thread_counts()))
    if not counts or counts[0] < 1:
        raise HHCError(f"thread counts must be positive, got {counts}")
    results = []
    with tempfile.TemporaryDirectory(prefix="hhc-tune-") as tmp:
        for k in counts:
            walls = []
            for r in range(repeats):
                out = run_experiment(exp, out=Path(tmp) / f"t{k}-{r}", threads=k, duration=duration, quiet=True)
                meta = json.loads((out / "meta.json").read_text())
                walls.append(float(meta["wall_time_s"]))
            steps = round(meta["duration"] / meta["dt"])
            best = min(walls)
            results.append(Measurement(k, best, best / (meta["n_neurons"] * steps) * 1e9))
            say(f"  {k:3d} threads: {best:.3f} s ({results[-1].ns_per_neuron_step:.1f} ns per neuron-step, "
                f"best of {repeats})")
    pick = results[0]
    for m in results[1:]:
        if m.wall_s < pick.wall_s * (1 - margin):
            pick = m
    info = {"backend": exp.backend.name, "device": device, "duration": meta["duration"], "dt": meta["dt"],
            "method": meta["method"], "n_neurons": meta["n_neurons"], "cores": os.cpu_count()}
    return results, pick.threads, info


def write_threads(path: Path, threads: int) -> None:
    """Set [backend] threads in an experiment file, keeping the rest of its text as written."""
    text = Path(path).read_text()
    section = re.search(r"(?m)^\[backend\][ \t]*(#.*)?$", text)
    if section is None:
        text = text.rstrip("\n") + f"\n\n[backend]\nthreads = {threads}\n"
    else:
        nxt = re.search(r"(?m)^\[", text[section.end():])
        end = section.end() + (nxt.start() if nxt else len(text) - section.end())
        body = text[section.end():end]
        if re.search(r"(?m)^threads[ \t]*=", body):
            body = re.sub(r"(?m)^threads[ \t]*=[ \t]*[^#\n]*", f"threads = {threads}", body, count=1)
            body = re.sub(r"threads = (\d+)(\S)", r"threads = \1 \2", body)
        else:
            body = f"\nthreads = {threads}" + body
        text = text[:section.end()] + body + text[end:]
    Path(path).write_text(text)
