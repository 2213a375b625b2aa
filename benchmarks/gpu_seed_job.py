"""The seed job on a GPU: `hhc run` of examples/kenyon_50k_50s.toml on brian2 cuda_standalone (brian2cuda).

Run it on a machine with an NVIDIA GPU (nvidia-smi lists it), after `scripts/setup.sh test` (which makes the
brian2cuda venv, scripts/setup.d/40-cuda.sh; see docs/cuda.md):

    python benchmarks/gpu_seed_job.py                           # 50,000 cells, 1 s biological, method/dt "auto"
    python benchmarks/gpu_seed_job.py --duration 5 --method rk4 --dt 0.01   # the researcher's rk4 at 0.01 ms
    python benchmarks/gpu_seed_job.py --float32                 # single precision (check it with hhc compare)

It prints the build time, the simulation's wall time (the binary's run; code generation and nvcc excluded),
ns per neuron-step and the projected time of the full job (50.05 s biological, 50,000 cells). The wall time
includes the binary's fixed start-up (device set-up, copying the initial state to the GPU, writing results),
so short --duration values over-estimate the projection; use a few seconds of biological time.
Without a GPU it refuses to run (exit code 2): this machine type has none, so it has never been run here.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import experiment_toml  # noqa: E402  (the tests' experiment builder)
from paths import ROOT, SEED_EXAMPLE  # noqa: E402

FULL_JOB_S = 50.05          # biological seconds of the full seed job
FULL_JOB_N = 50000


def experiment_text(n: int, method: str | None, dt_ms: float | None) -> str:
    """The seed example with n neurons on cuda_standalone (no thread count), method and dt as given."""
    changes = {"method": method} if method else {}
    if dt_ms:
        changes["dt"] = f"{dt_ms} ms"
    return experiment_toml(base=SEED_EXAMPLE, size=n, backend={"device": "cuda_standalone", "threads": None},
                           **changes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, default=FULL_JOB_N)
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds (default 1)")
    ap.add_argument("--method", help='integration method (default: the experiment\'s "auto")')
    ap.add_argument("--dt", type=float, help='time step in ms (default: the experiment\'s "auto")')
    ap.add_argument("--float32", action="store_true", help="single-precision state")
    ap.add_argument("--compute-capability", help="default: the GPU's own")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from hhc.backends.brian2 import cuda
    found = cuda.gpus()
    if not found:
        print("gpu_seed_job: no CUDA device is present (nvidia-smi lists no GPU, or CUDA_VISIBLE_DEVICES hides "
              "them): run this on a GPU machine. Here, `hhc compile models/kenyon_cell.chan --device "
              "cuda_standalone --build-only` checks generation and compilation.", file=sys.stderr)
        sys.exit(2)

    n, T = args.neurons, args.duration
    with tempfile.TemporaryDirectory(prefix="hhc-gpu-bench-") as tmp:
        tmp = Path(tmp)
        exp = tmp / "seed_job_gpu.toml"
        exp.write_text(experiment_text(n, args.method, args.dt))
        cmd = [str(Path(sys.executable).with_name("hhc")), "run", str(exp), "--duration", f"{T} s",
               "--out", str(tmp / "run")]
        if args.float32:
            cmd.append("--float32")
        if args.compute_capability:
            cmd += ["--compute-capability", args.compute_capability]
        names = [g["name"] + (f" (cc {g['compute_capability']})" if g["compute_capability"] else "") for g in found]
        print(f"GPU: {', '.join(names)}", flush=True)
        print(f"seed job on cuda_standalone: {n:,} Kenyon cells, {T:g} s biological", flush=True)
        done = subprocess.run(cmd, env=dict(os.environ, HHC_PROGRESS="0"), capture_output=True, text=True)
        for line in (done.stdout + done.stderr).splitlines():
            if line.startswith(("auto:", "cuda:")):
                print("  " + line.strip(), flush=True)
        if done.returncode != 0:
            sys.exit(f"hhc run failed:\n{done.stdout}\n{done.stderr}")
        meta = json.loads((tmp / "run" / "meta.json").read_text())
    wall, dt = meta["wall_time_s"], meta["dt"]
    steps = round(T / dt)
    ns = wall / (n * steps) * 1e9
    projected = wall / T * FULL_JOB_S * FULL_JOB_N / n
    print(f"method {meta['method']}, dt {dt * 1e3:g} ms, {meta['precision']}, compute capability "
          f"{meta['compute_capability']} ({meta['compute_capability_source']}), GPU {meta.get('gpu')}")
    print(f"build: generation {meta['generate_time_s']:.1f} s, nvcc {meta['compile_time_s']:.1f} s"
          f"{' (cached build)' if meta['build_reused'] else ''}")
    print(f"simulation: {wall:.2f} s wall for {T:g} s biological = {ns:.2f} ns per neuron-step")
    print(f"full job ({FULL_JOB_N:,} cells x {FULL_JOB_S} s) projected: {projected:.0f} s = {projected / 3600:.2f} h")
    print(f"ns_per_neuron_step={ns:.3f}")


if __name__ == "__main__":
    main()
