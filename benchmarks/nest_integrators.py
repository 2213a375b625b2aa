"""NEST integrators side by side on the Kenyon cell: NESTML's default output (GSL rkf45, adaptive)
vs hhc's emitted RK4 update, vs the Brian2 backend (cpp_standalone), in one run.

Prints the cost per neuron-step of each and their ratios, and each one's accuracy against a
reference (Brian2 rk4 at dt = 0.001 ms, 10x finer): spike counts and the largest spike-time error.

    .venv/bin/python benchmarks/nest_integrators.py [--neurons 1000] [--duration "200 ms"]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from hhc import load_results
from hhc.api import run_experiment

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = """
[model]
file = "{model}"
[population]
size = {size}
[simulation]
dt = "{dt}"
method = "{method}"
seed = 7
[initial]
v = "uniform(-70 mV, -60 mV)"
[[protocol]]
duration = "{duration}"
inputs = {{ Iapp = "18 pA" }}
[record]
spikes = "all"
[backend]
name = "{backend}"
{device}
"""


def run(tmp: Path, tag: str, backend: str, method: str, size: int, duration: str, dt="0.01 ms", device=None,
        threads=1):
    path = tmp / f"{tag}.toml"
    path.write_text(TEMPLATE.format(model=ROOT / "models" / "kenyon_cell.chan", size=size, dt=dt, method=method,
                                    duration=duration, backend=backend,
                                    device=f'device = "{device}"' if device else ""))
    return load_results(run_experiment(path, out=tmp / tag, quiet=True, threads=threads))


def accuracy(res, ref, n):
    counts_equal, worst = 0, 0.0
    for k in range(n):
        a, b = np.sort(res.spike_t[res.spike_i == k]), np.sort(ref.spike_t[ref.spike_i == k])
        if len(a) == len(b):
            counts_equal += 1
            if len(a):
                worst = max(worst, float(np.abs(a - b).max()))
    return counts_equal, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--neurons", type=int, default=1000)
    ap.add_argument("--duration", default="200 ms")
    ap.add_argument("--accuracy-neurons", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hhc-nest-bench-"))
    n, dur = args.neurons, args.duration
    # warm-up: module builds and Brian2 compilation are not what is timed
    for m in ("rk4", "rkf45"):
        run(tmp, f"warm_{m}", "nest", m, 2, "1 ms")

    timed = {}
    for tag, backend, method, device in (("nest_rkf45 (NESTML default)", "nest", "rkf45", None),
                                         ("nest_rk4 (hhc)", "nest", "rk4", None),
                                         ("brian2 cpp_standalone rk4", "brian2", "rk4", "cpp_standalone")):
        res = run(tmp, tag.split()[0], backend, method, n, dur, device=device)
        steps = round(res.meta["duration"] / res.meta["dt"])
        timed[tag] = res.meta["wall_time_s"] / (n * steps)

    m = args.accuracy_neurons
    ref = run(tmp, "reference", "brian2", "rk4", m, "200 ms", dt="0.001 ms", device="cpp_standalone")
    acc = {}
    for tag, backend, method, device in (("nest_rkf45 (NESTML default)", "nest", "rkf45", None),
                                         ("nest_rk4 (hhc)", "nest", "rk4", None),
                                         ("brian2 cpp_standalone rk4", "brian2", "rk4", "cpp_standalone")):
        res = run(tmp, "acc_" + tag.split()[0], backend, method, m, "200 ms", device=device)
        acc[tag] = accuracy(res, ref, m)

    base = timed["nest_rkf45 (NESTML default)"]
    print(f"Kenyon cell, {n} neurons x {dur} at dt 0.01 ms, 1 thread; accuracy on {m} neurons x 200 ms "
          f"against Brian2 rk4 at dt 0.001 ms")
    print(f"{'':32s} {'ns/neuron-step':>15s} {'vs NESTML default':>18s} {'same counts':>12s} {'max |dt_spike|':>15s}")
    for tag, cost in timed.items():
        same, worst = acc[tag]
        print(f"{tag:32s} {cost * 1e9:15.1f} {base / cost:17.2f}x {same:>7d}/{m:<4d} {worst * 1e3:12.4f} ms")


if __name__ == "__main__":
    main()
