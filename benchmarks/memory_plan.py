"""The planner's peak-memory estimate against the measured peak, for a few runs of the seed model.

Each run is a fresh `hhc run` process (Brian2 cpp_standalone, 2 threads); meta.json holds the
planner's estimate (`memory_estimate_bytes`: simulator process + neuron state + recordings held at
once) and the measured peak resident memory of hhc's process (`peak_memory_bytes.hhc`). The goal:
within 20 %. Longer runs of firing cells show that spikes do not pile up in memory (they are
written segment by segment and streamed into spikes.npz).

    python benchmarks/memory_plan.py            # about 2 minutes
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import trace, write_experiment  # noqa: E402  (the tests' experiment builder)


def experiment(path: Path, size: int, duration: str) -> Path:
    """Kenyon cells at 18 pA, rk2 at dt 0.1 ms, on cpp_standalone with 2 threads; spikes of all
    (segments of 100 ms) and v of 10 neurons."""
    return write_experiment(path, size=size, dt="0.1 ms", method="rk2", initial={"v": "uniform(-70 mV, -60 mV)"},
                            protocol=[(duration, "18 pA")], record={"spikes": "all", "segment": "100 ms"},
                            traces=[trace(["v"], "0:10", interval="0.1 ms")],
                            backend={"name": "brian2", "device": "cpp_standalone", "threads": 2})


CASES = [(1000, "200 ms"), (50000, "200 ms"), (50000, "600 ms"), (200000, "100 ms")]


def main():
    hhc = str(Path(sys.executable).with_name("hhc"))
    print(f"{'neurons':>8} {'duration':>9} {'spikes':>10} {'estimate':>10} {'measured':>10} {'est/meas':>8}")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="hhc-mem-") as tmp:
        for size, duration in CASES:
            exp = experiment(Path(tmp) / f"e{size}-{duration.replace(' ', '')}.toml", size, duration)
            out = Path(tmp) / exp.stem
            done = subprocess.run([hhc, "run", str(exp), "--out", str(out)], capture_output=True, text=True,
                                  env=dict(os.environ, HHC_PROGRESS="0"))
            if done.returncode:
                sys.exit(done.stderr)
            meta = json.loads((out / "meta.json").read_text())
            est, peak = meta["memory_estimate_bytes"], meta["peak_memory_bytes"]["hhc"]
            spikes = len(np.load(out / "spikes.npz")["t"])
            worst = max(worst, abs(est - peak) / peak)
            print(f"{size:>8,} {duration:>9} {spikes:>10,} {est / 1e6:>8.0f}MB {peak / 1e6:>8.0f}MB {est / peak:>8.2f}")
    print(f"largest relative difference: {worst * 100:.0f} % (goal: within 20 %)")


if __name__ == "__main__":
    main()
