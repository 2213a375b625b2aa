"""NEST integrators on the Kenyon cell, side by side in one run: NESTML's default output (GSL rkf45,
adaptive), hhc's choice for NEST (method = "auto" on the nest backend: the accuracy advisor's
cheapest fixed-step method that meets the tolerance; hhc writes its step into the NESTML update
block), hhc's rk4 on NEST, and the Brian2 backend (cpp_standalone, 1 thread).

Cost: ns per neuron-step = wall time of the simulation loop / (neurons x steps), one thread, the
best of --repeat runs (the machine may be shared; the best run is the least disturbed one).

Accuracy: every variant runs the same sample (--sample neurons spread over the population, the
first second of the protocol) and is compared with hhc's reference for those neurons (the advisor's
compiled reference: hhc.advise.sample_reference) under the accuracy advisor's default tolerance:
identical spike counts on every sampled neuron, first-spike error <= 0.1 ms and every matched spike
within 0.5 ms (hhc.advise.run_trial).

Part 1 runs everything at the NEST resolution the researcher chose, dt = 0.01 ms. Part 2 lets hhc
choose dt as well (dt = "auto") and runs NESTML's default at that same resolution.

    .venv/bin/python benchmarks/nest_integrators.py [--neurons 1000] [--duration "200 ms"] [--repeat 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from hhc import load_results
from hhc.advise import AdviseTolerance, run_trial, sample_neurons, sample_reference
from hhc.api import prepare, run_experiment
from hhc.backends.reference import sample_experiment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import write_experiment  # noqa: E402  (the tests' experiment builder)


def experiment(tmp: Path, tag: str, *, size: int, duration: str, method: str, dt: str, backend: str = "nest",
               device: str | None = None) -> Path:
    """Kenyon cells (seed 7): 50 ms at rest, then `duration` at 18 pA; spikes of all."""
    return write_experiment(tmp / f"{tag}.toml", size=size, dt=dt, method=method, seed=7,
                            initial={"v": "uniform(-70 mV, -60 mV)"},
                            protocol=[("50 ms", "0 pA"), (duration, "18 pA")], record={"spikes": "all"},
                            backend={"name": backend, "device": device})


def ms(x: float) -> str:
    return f"{x * 1e3:g} ms"


def cost(tmp: Path, tag: str, backend: str, method: str, dt: float, device, size: int, duration: str,
         repeat: int) -> float:
    """Seconds of wall time per neuron-step, best of `repeat` runs."""
    path = experiment(tmp, tag, size=size, duration=duration, method=method, dt=ms(dt), backend=backend,
                      device=device)
    best = float("inf")
    for r in range(repeat):
        res = load_results(run_experiment(path, out=tmp / f"{tag}_{r}", quiet=True, threads=1, choose_auto=False))
        steps = round(res.meta["duration"] / res.meta["dt"])
        best = min(best, res.meta["wall_time_s"] / (size * steps))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=1000, help="population of the timed runs")
    ap.add_argument("--duration", default="200 ms", help="the 18 pA phase of the timed runs (after 50 ms at rest)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per variant (the best counts)")
    ap.add_argument("--sample", type=int, default=20, help="neurons compared with the reference")
    ap.add_argument("--no-auto-dt", action="store_true", help="skip part 2 (dt chosen by hhc)")
    args = ap.parse_args()
    os.environ.setdefault("HHC_PROGRESS", "0")
    tmp = Path(tempfile.mkdtemp(prefix="hhc-nest-bench-"))
    n, dur = args.neurons, args.duration
    tol = AdviseTolerance()

    # hhc's choice: method = "auto" (and dt = "auto" in part 2) on the nest backend, resolved by
    # the accuracy advisor on the first second of the protocol (cached after the first time)
    def choice(dt: str):
        exp, _, _ = prepare(experiment(tmp, f"choose_{dt}", size=n, duration="1 s", method="auto", dt=dt),
                            say=lambda m: print("  " + m))
        return exp.method, exp.dt

    print(f"hhc's choice on nest at dt = 0.01 ms (method = \"auto\"):")
    auto_method, _ = choice("0.01 ms")
    coarse = None
    if not args.no_auto_dt:
        print("hhc's choice on nest with dt = \"auto\" too:")
        coarse = choice("auto")

    # the reference and the sample every variant is judged on
    acc_exp, cell, _ = prepare(experiment(tmp, "accuracy", size=n, duration="1 s", method="rk4", dt="0.01 ms"),
                               choose_auto=False)
    neurons = sample_neurons(acc_exp, cell, args.sample)
    reference = sample_reference(acc_exp, cell, neurons, tol, say=lambda m: print("  " + m))
    neurons = np.array(sorted(set(reference.representative.values())))
    sample_exp, _ = sample_experiment(acc_exp, neurons)
    sample_exp = dataclasses.replace(sample_exp, traces=())

    def accuracy(backend, method, dt, device):
        # Brian2: the runtime device runs the same equations and method as cpp_standalone
        device = "runtime" if backend == "brian2" else device
        t = run_trial(cell, sample_exp, neurons, reference, method, dt, tol, backend, device)
        if t.error:
            return f"failed: {t.error}"
        return (f"{'meets' if t.ok else 'MISSES'}: {len(neurons) - t.count_mismatches}/{len(neurons)} same counts, "
                f"first spike {(t.first_spike_error or 0) * 1e3:.3f} ms, any spike "
                f"{(t.spike_time_error or 0) * 1e3:.3f} ms")

    rows, done = [], set()
    dt = 1e-5
    for label, backend, method, device in (
            ("NEST, NESTML default (GSL rkf45)", "nest", "rkf45", None),
            (f"NEST, hhc's choice ({auto_method})", "nest", auto_method, None),
            ("NEST, hhc rk4", "nest", "rk4", None),
            (f"Brian2 cpp_standalone {auto_method}", "brian2", auto_method, "cpp_standalone"),
            ("Brian2 cpp_standalone rk4", "brian2", "rk4", "cpp_standalone")):
        if (backend, method) in done:
            continue
        done.add((backend, method))
        c = cost(tmp, f"t_{backend}_{method}", backend, method, dt, device, n, dur, args.repeat)
        rows.append((label, dt, c, accuracy(backend, method, dt, device)))

    total = 0.05 + float(dur.split()[0]) * {"ms": 1e-3, "s": 1.0}[dur.split()[1]]
    print()
    print(f"Kenyon cell, {n} neurons x {total * 1e3:g} ms, 1 thread, best of {args.repeat}; accuracy on "
          f"{len(neurons)} neurons x 1.05 s against hhc's reference (SciPy DOP853 rtol 1e-9), tolerance: identical "
          f"spike counts and first-spike error <= {tol.first_spike * 1e3:g} ms")
    print(f"\nPart 1: dt = NEST resolution = 0.01 ms")
    base = rows[0][2]
    print(f"{'':40s} {'ns/neuron-step':>14s} {'vs NESTML default':>18s}   accuracy vs reference")
    for label, _, c, acc in rows:
        print(f"{label:40s} {c * 1e9:14.1f} {base / c:17.2f}x   {acc}")

    if coarse is not None:
        m, dtc = coarse
        part2 = []
        for label, backend, method, device in (
                (f"NEST, NESTML default (GSL rkf45)", "nest", "rkf45", None),
                (f"NEST, hhc's choice ({m})", "nest", m, None)):
            c = cost(tmp, f"c_{backend}_{method}", backend, method, dtc, device, n, dur, args.repeat)
            part2.append((label, c, accuracy(backend, method, dtc, device)))
        print(f"\nPart 2: dt = \"auto\": hhc chose {m} at {ms(dtc)}; NESTML's default at the same resolution "
              f"(per biological second: relative to NESTML's default at 0.01 ms)")
        print(f"{'':40s} {'ns/neuron-step':>14s} {'vs NESTML default':>18s} {'per bio. second':>16s}   accuracy")
        for label, c, acc in part2:
            print(f"{label:40s} {c * 1e9:14.1f} {part2[0][1] / c:17.2f}x {base / dt / (c / dtc):15.1f}x   {acc}")
    print(f"\n(scratch files: {tmp})")


if __name__ == "__main__":
    main()
