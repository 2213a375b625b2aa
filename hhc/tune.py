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

from hhc import backends
from hhc.api import prepare, run_experiment
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import RunOverrides, parse_duration


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
    exp, cell, _ = prepare(experiment, say=say)
    duration = min(parse_duration(duration), exp.duration)     # a short protocol is tried whole
    caps = backends.backend_class(exp.backend.name).capabilities
    if exp.backend.device not in caps.threaded_devices:
        threaded = ", ".join(d for d in caps.threaded_devices if d) or "none"
        raise HHCError(f"{exp.backend.name} {exp.backend.device or 'with its default device'} runs single-threaded: "
                       f"there is nothing to tune", hint=f"devices of {exp.backend.name} with threads: {threaded}")
    device = exp.backend.device or "default"
    counts = sorted(set(threads or default_thread_counts()))
    if not counts or counts[0] < 1:
        raise HHCError(f"thread counts must be positive, got {counts}")
    results = []
    with tempfile.TemporaryDirectory(prefix="hhc-tune-") as tmp:
        for k in counts:
            walls = []
            for r in range(repeats):
                out = run_experiment(exp, out=Path(tmp) / f"t{k}-{r}", quiet=True,
                                     overrides=RunOverrides(threads=k, duration=duration))
                meta = json.loads((out / "meta.json").read_text())
                walls.append(float(meta["wall_time_s"]))
            steps = round(meta["duration"] / meta["dt"])
            best = min(walls)
            results.append(Measurement(k, best, best / (meta["n_neurons"] * steps) * 1e9))
            say(f"  {k:3d} threads: {best:.3f} s ({results[-1].ns_per_neuron_step:.1f} ns per neuron-step, "
                f"best of {repeats})")
    info = {"backend": exp.backend.name, "device": device, "duration": meta["duration"], "dt": meta["dt"],
            "method": meta["method"], "n_neurons": meta["n_neurons"], "cores": os.cpu_count()}
    return results, recommend(results, margin), info


def recommend(measurements: list[Measurement], margin: float = 0.05) -> int:
    """The thread count to use: going up from the fewest threads, a count is preferred over the one
    chosen so far only when it is faster by more than `margin`."""
    ordered = sorted(measurements, key=lambda m: m.threads)
    pick = ordered[0]
    for m in ordered[1:]:
        if m.wall_s < pick.wall_s * (1 - margin):
            pick = m
    return pick.threads


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
