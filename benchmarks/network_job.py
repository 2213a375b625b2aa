"""The mushroom-body network, side by side: written by hand in Brian2 with the maintainer's advice vs
`hhc run` of examples/mushroom_body.toml.

(a) By hand: the researcher's Kenyon-cell equations (tests/fixtures/seed_kenyon.py) with the synapses
    written out (PN -> KC exponential, GGN -> KC double exponential, KC -> GGN exponential), the GGN
    as the same equations with ten times the conductances and capacitance, on Brian2 cpp_standalone
    with OpenMP threads = cores, rk4 at dt 0.01 ms. The network is hhc's drawn one, loaded from
    arrays: the same connections, weights, delays and PN spike trains.
(b) `hhc run` of the same experiment (rk2 at 0.05 ms, cpp_standalone, the same threads).
Both are timed on the simulation binary only (compilation excluded), each in its own process, one
after the other on the same cores. Printed: each wall time, the ratio, and the projected wall time
of the full 50 s hhc run (the goal: at most 30 minutes).

    python benchmarks/network_job.py --quick       # 10,000 KCs, 1 s
    python benchmarks/network_job.py               # 50,000 KCs, 2 s
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import write_experiment  # noqa: E402
from paths import ROOT  # noqa: E402

EXAMPLE = ROOT / "examples" / "mushroom_body.toml"
FULL_S = 50.0

HAND_DRIVER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from brian2 import *
from fixtures.seed_kenyon import EQUATIONS, PARAMETERS
set_device("cpp_standalone", build_on_run=False)
prefs.devices.cpp_standalone.openmp_threads = {threads}
d = np.load({arrays!r})
dt = 0.01 * ms
SYN_KC = '''
I_PNKC = g_PNKC * v : amp
dg_PNKC/dt = -g_PNKC / (5*ms) : siemens
I_GGNKC = (a_GGNKC - b_GGNKC) * (v + 80*mV) : amp
da_GGNKC/dt = -a_GGNKC / (25*ms) : siemens
db_GGNKC/dt = -b_GGNKC / (2*ms) : siemens
'''
SYN_GGN = '''
I_KCGGN = g_KCGGN * v : amp
dg_KCGGN/dt = -g_KCGGN / (5*ms) : siemens
'''
first = "dv/dt = (Iapp - inaf - inas - ikv - iks - ika - gl*(v-el))/Cm : volt"
assert first in EQUATIONS
kc_eqs = EQUATIONS.replace(first, first.replace("gl*(v-el))", "gl*(v-el) - I_PNKC - I_GGNKC)")) + SYN_KC
ggn_eqs = EQUATIONS.replace(first, first.replace("gl*(v-el))", "gl*(v-el) - I_KCGGN)")) + SYN_GGN
ggn_ns = {{k: (v * 10 if k not in ("ena", "ek", "el") else v) for k, v in PARAMETERS.items()}}
def cells(n, eqs, ns, name):
    g = NeuronGroup(n, eqs, threshold="v > -20*mV", refractory="v > -20*mV", method="rk4",
                    namespace=ns, dt=dt, name=name)
    g.hnaf = 1; g.hnas = 1; g.hks = 1; g.hka = 1
    return g
kc = cells(int(d["n_kc"]), kc_eqs, dict(PARAMETERS), "kc")
kc.v = d["v0"] * volt
ggn = cells(1, ggn_eqs, ggn_ns, "ggn")
ggn.v = -65 * mV
pn = SpikeGeneratorGroup(int(d["n_pn"]), d["pn_i"], d["pn_t"] * second, dt=dt)
f = float(d["peak_factor"])
syns = []
for k, (src, tgt, on_pre) in enumerate([(pn, kc, "g_PNKC_post += w"), (kc, ggn, "g_KCGGN_post += w"),
                                        (ggn, kc, f"a_GGNKC_post += {{f}}*w; b_GGNKC_post += {{f}}*w")]):
    s = Synapses(src, tgt, "w : siemens", on_pre=on_pre, dt=dt)
    s.connect(i=d[f"pre{{k}}"], j=d[f"post{{k}}"])
    s.w = d[f"w{{k}}"] * siemens
    s.delay = d[f"d{{k}}"] * second
    syns.append(s)
mon = SpikeMonitor(kc)
net = Network(kc, ggn, pn, *syns, mon)
net.run({duration!r} * second)
device.build(directory={build!r}, compile=True, run=False)
t0 = time.perf_counter()
device.run(directory={build!r}, with_output=False)
print(json.dumps({{"wall": time.perf_counter() - t0, "kc_spikes": int(len(mon.t_[:]))}}))
"""


def experiment(n_kc: int, duration: float, threads: int, tmp: Path) -> Path:
    return write_experiment(tmp / "mb.toml", base=EXAMPLE, size=n_kc,
                            backend={"name": "brian2", "device": "cpp_standalone", "threads": threads})


def drawn_arrays(path: Path, duration: float, tmp: Path) -> Path:
    """hhc's drawn network of the experiment, as arrays the hand-written script loads."""
    import math
    from hhc.api import prepare
    from hhc.compiler.experiment import RunOverrides
    exp, cell, _ = prepare(path, RunOverrides(duration=f"{duration} s"), choose_auto=False)
    net = exp.drawn
    pn_i, pn_t = net.source_spikes["PN"]
    arrays = {"n_kc": net.sizes["KC"], "n_pn": net.sizes["PN"], "v0": np.asarray(exp.initial_arrays["v"], float)
              * np.ones(net.sizes["KC"])}
    # the hand-written script at 0.01 ms: one spike per source neuron and step (hhc does the same)
    from hhc.backends.brian2.network import shifted_source_times
    idx, steps, _ = shifted_source_times(pn_i, pn_t, 1e-5)
    arrays["pn_i"], arrays["pn_t"] = idx, steps * 1e-5
    for k, e in enumerate(net.edges):
        arrays.update({f"pre{k}": e.pre, f"post{k}": e.post, f"w{k}": e.weight, f"d{k}": e.delay})
    tr, td = 2e-3, 25e-3
    tp = tr * td / (td - tr) * math.log(td / tr)
    arrays["peak_factor"] = 1 / (math.exp(-tp / td) - math.exp(-tp / tr))
    out = tmp / "network.npz"
    np.savez(out, **arrays)
    return out


def run_by_hand(arrays: Path, duration: float, threads: int) -> dict:
    build = tempfile.mkdtemp(prefix="hhc-bench-mb-")
    code = HAND_DRIVER.format(tests=str(ROOT / "tests"), threads=threads, arrays=str(arrays), duration=duration,
                              build=build)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the hand-written script failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_hhc(path: Path, duration: float, tmp: Path) -> dict:
    out = tmp / "hhc-run"
    subprocess.run([sys.executable, "-m", "hhc.cli", "run", str(path), "--out", str(out), "--duration",
                    f"{duration} s", "--overwrite"], check=True, capture_output=True, text=True)
    meta = json.loads((out / "meta.json").read_text())
    with np.load(out / "spikes.npz") as s:
        kc = int(np.sum(s["i"] < meta["populations"]["KC"]["size"]))
    return {"wall": meta["wall_time_s"], "compile": meta.get("compile_time_s"), "kc_spikes": kc,
            "method": meta["method"], "dt": meta["dt"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 KCs for 1 s")
    ap.add_argument("--kcs", type=int)
    ap.add_argument("--duration", type=float, help="seconds of biological time")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    n_kc = args.kcs or (10_000 if args.quick else 50_000)
    duration = args.duration or (1.0 if args.quick else 2.0)
    tmp = Path(tempfile.mkdtemp(prefix="hhc-bench-network-"))
    path = experiment(n_kc, duration, args.threads, tmp)
    arrays = drawn_arrays(path, duration, tmp)
    hand = run_by_hand(arrays, duration, args.threads)
    ours = run_hhc(path, duration, tmp)
    ratio = hand["wall"] / ours["wall"]
    projected = ours["wall"] / duration * FULL_S * (50_000 / n_kc)
    print(f"mushroom body: {n_kc:,} KCs + 1 GGN, 800 PNs, {duration:g} s biological time, {args.threads} threads")
    print(f"  by hand (Brian2 cpp_standalone, rk4 at 0.01 ms): {hand['wall']:.1f} s wall, {hand['kc_spikes']:,} KC spikes")
    print(f"  hhc run ({ours['method']} at {ours['dt'] * 1e3:g} ms):                   {ours['wall']:.1f} s wall, "
          f"{ours['kc_spikes']:,} KC spikes")
    print(f"  ratio by hand / hhc: {ratio:.2f}")
    print(f"  projected full run (50,000 KCs, 50 s) with hhc: {projected / 60:.1f} min (goal: <= 30 min; "
          f"scaled linearly in KCs and time)")
    print(f"ratio_vs_hand_written={ratio:.3f} projected_full_hhc_min={projected / 60:.2f}")


if __name__ == "__main__":
    main()
