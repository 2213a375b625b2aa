"""The seed job, side by side: the researcher's script with the advice it got vs `hhc run`.

(a) tests/fixtures/seed_kenyon.py — the researcher's equations, init (`v = -80 mV*rand()*i`) and protocol
    (0 pA for 50 ms, then 18 pA) on Brian2 cpp_standalone with OpenMP threads = cores, rk4, dt 0.01 ms;
    only N, duration and the monitor (spikes only) changed.
(b) `hhc run` of examples/kenyon_50k_50s.toml with method and dt "auto" (hhc's choice under the
    default tolerance, judged on a sample over the whole 50.05 s of the experiment as written:
    identical spike counts, first spike within 0.1 ms and every spike within 0.5 ms of the
    reference), the same N, duration and threads. With --float32, also (c): (b) in single precision.
    The search's own figures (accuracy over the whole run, wall time) are printed from meta.json.
Both are timed on the simulation binary only (compilation excluded), each in its own process, one after
the other on the same cores. Accuracy of (b): a sample against hhc's SciPy reference (DOP853, rtol 1e-9).

    python benchmarks/seed_job.py --quick        # < 5 min; last line: ratio_vs_seed_standalone=<x>
    python benchmarks/seed_job.py --neurons 50000 --duration "1 s"
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import write_experiment  # noqa: E402  (the tests' experiment builder)
from paths import ROOT, SEED_EXAMPLE  # noqa: E402

FULL_JOB_S = 50.05          # biological seconds of the full seed job
DT = 1e-5

SEED_DRIVER = r"""
import json, sys, time
sys.path.insert(0, {tests!r})
from brian2 import ms, pA, prefs, set_device, device
from fixtures.seed_kenyon import build_seed_network
set_device("cpp_standalone", build_on_run=False)
prefs.devices.cpp_standalone.openmp_threads = {threads}
net, group, spikes, _ = build_seed_network({n}, method="rk4", dt=0.01 * ms, init={init!r})
for duration, current in ((50 * ms, 0 * pA), ({rest_ms} * ms, 18 * pA)):
    group.Iapp = current
    net.run(duration)
device.build(directory={build!r}, compile=True, run=False)
t0 = time.perf_counter()
device.run(directory={build!r}, with_output=False)
wall = time.perf_counter() - t0
print(json.dumps({{"wall": wall, "spikes": int(len(spikes.t_[:]))}}))
"""


def run_seed(n: int, duration: float, threads: int, init: str) -> dict:
    build = tempfile.mkdtemp(prefix="hhc-bench-seed-")
    code = SEED_DRIVER.format(tests=str(ROOT / "tests"), threads=threads, n=n, init=init,
                              rest_ms=(duration - 0.05) * 1e3, build=build)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_hhc(n: int, duration: float, threads: int, out: Path, float32: bool = False, label="(b)") -> dict:
    # the seed example with n neurons, method "auto" and these threads
    exp = write_experiment(out / "seed_job.toml", base=SEED_EXAMPLE, size=n, method="auto",
                           backend={"threads": threads})
    env = dict(os.environ, HHC_PROGRESS="0")
    run_dir = out / ("hhc32" if float32 else "hhc")
    done = subprocess.run([str(Path(sys.executable).with_name("hhc")), "run", str(exp), "--duration", f"{duration} s",
                           "--out", str(run_dir)] + (["--float32"] if float32 else []),
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"hhc run failed:\n{done.stdout}\n{done.stderr}")
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("auto:") or " @ " in line[:40]:
            print(f"{label} " + line.strip(), flush=True)
    meta = json.loads((run_dir / "meta.json").read_text())
    choice = meta.get("auto_choice") or {}
    if choice:
        print(f"{label} auto chose {meta['method']} @ {meta['dt'] * 1e3:g} ms {choice.get('summary', '')}"
              f"{' (cached advice)' if 'cached advice' in done.stderr else ''}", flush=True)
    return {"wall": meta["wall_time_s"], "method": meta["method"], "dt": meta["dt"], "exp": exp, "dir": run_dir}


def accuracy(exp: Path, run_dir: Path, duration: float, sample: int, tmp: Path, label: str = "(b)") -> str:
    import hhc
    from hhc.reference import reference_run
    ref = hhc.load_results(reference_run(exp, sample=sample, duration=f"{duration} s", out=tmp / "ref",
                                         quiet=True))
    ours = hhc.load_results(run_dir)
    neurons = np.asarray(ref.meta.get("sample_neurons", []), dtype=int)
    count_mismatch, first_err = 0, 0.0
    for k in neurons:
        a, b = np.sort(ref.spike_t[ref.spike_i == k]), np.sort(ours.spike_t[ours.spike_i == k])
        if len(a) != len(b):
            count_mismatch += 1
        if len(a) and len(b):
            first_err = max(first_err, abs(a[0] - b[0]))
    return (f"accuracy of {label} on {len(neurons)} sampled neurons vs the reference: {count_mismatch} spike-count "
            f"mismatches, first-spike error ≤ {first_err * 1e3:.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, default=50000)
    ap.add_argument("--duration", type=float, default=0.25, help="biological seconds (≥ 0.06)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--sample", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="20,000 neurons × 80 ms")
    ap.add_argument("--float32", action="store_true", help="also run (c): hhc in single precision")
    ap.add_argument("--seed-init", choices=("seed", "rest"), default="seed",
                    help="(a)'s initial v: the researcher's -80 mV*rand()*i (most cells start below -100 V, "
                         "which makes exp() overflow and costs time) or -65 mV like (b)")
    args = ap.parse_args()
    if args.quick:
        args.neurons, args.duration = 20000, 0.08
    n, T = args.neurons, args.duration
    steps_seed = round(T / DT)
    with tempfile.TemporaryDirectory(prefix="hhc-bench-") as tmp:
        tmp = Path(tmp)
        print(f"seed job: {n:,} Kenyon cells, {T * 1e3:g} ms biological, {args.threads} threads", flush=True)
        seed = run_seed(n, T, args.threads, args.seed_init)
        hhc_run = run_hhc(n, T, args.threads, tmp)
        seed_ns = seed["wall"] / (n * steps_seed) * 1e9
        ratio = seed["wall"] / hhc_run["wall"]

        def line(label, what, run_wall, steps):
            ns = run_wall / (n * steps) * 1e9
            full = run_wall / T * FULL_JOB_S * 50000 / n
            print(f"{label} {what}: {run_wall:.2f} s, {ns:.1f} ns per neuron-step ({ns * args.threads:.1f} per "
                  f"core), full job projected {full / 3600:.2f} h ({full / 60:.1f} min)")
        line("(a)", f"seed (init {args.seed_init}), cpp_standalone rk4 dt 0.01 ms", seed["wall"], steps_seed)
        line("(b)", f"hhc run, method {hhc_run['method']} dt {hhc_run['dt'] * 1e3:g} ms", hhc_run["wall"],
             round(T / hhc_run["dt"]))
        print(f"(b) is faster by ×{ratio:.2f} (same biological time, same cores)")
        print(accuracy(hhc_run["exp"], hhc_run["dir"], T, args.sample, tmp))
        if args.float32:
            single = run_hhc(n, T, args.threads, tmp, float32=True, label="(c)")
            line("(c)", f"hhc run --float32, method {single['method']} dt {single['dt'] * 1e3:g} ms", single["wall"],
                 round(T / single["dt"]))
            print(f"(c) is faster than (a) by ×{seed['wall'] / single['wall']:.2f}, than (b) by "
                  f"×{hhc_run['wall'] / single['wall']:.2f}")
            print(accuracy(single["exp"], single["dir"], T, args.sample, tmp, label="(c)"))
        print(f"ratio_vs_seed_standalone={ratio:.2f}")


if __name__ == "__main__":
    main()
