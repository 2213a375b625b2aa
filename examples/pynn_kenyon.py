"""The same PyNN script on NEST and Brian2: ten Kenyon cells (hhc's cell type), 18 pA from 20 ms.

    python examples/pynn_kenyon.py nest      # or: brian2

hhc generates the cell type (`hhc compile models/kenyon_cell.chan --target pynn`) and, for NEST,
builds the NESTML module once (cached). Records spikes and v of every cell; prints the spike count
of each neuron, its first spike, and v of neuron 0 at 10 ms (before the input step) and its peak.

On pyNN.nest, a parameter set between runs (here Iapp at 20 ms) takes effect one min_delay (one
step here) later than on pyNN.brian2: PyNN runs NEST one min_delay past the requested time so that
NEST hands over all recorded data. v agrees to rounding before the step and spike counts agree.
"""
import importlib
import sys
from pathlib import Path

from hhc.api import compile_model

HERE = Path(__file__).resolve().parent
simulator = sys.argv[1] if len(sys.argv) > 1 else "nest"
build = HERE / "build" / "pynn"
compile_model(HERE.parent / "models" / "kenyon_cell.chan", target="pynn", out_dir=build)
sys.path.insert(0, str(build))
kenyon = importlib.import_module("kenyoncell_pynn")

sim = importlib.import_module(f"pyNN.{simulator}")
sim.setup(timestep=0.01)
KenyonCell = kenyon.cell_type(sim)
cells = sim.Population(10, KenyonCell(Iapp=0.0), label="KC")   # PyNN units: nA, uS, nF, mV, ms
cells.initialize(v=[-70.0 + k for k in range(10)])            # mV; gates as in the .chan file
cells.record(["spikes", "v"])
sim.run(20.0)
cells.set(Iapp=0.018)                                          # 18 pA
sim.run(280.0)
segment = cells.get_data().segments[0]
counts = [len(st) for st in segment.spiketrains]
print(f"{simulator}: spike counts {counts}")
print(f"{simulator}: first spikes (ms) {[round(float(st[0]), 2) if len(st) else None for st in segment.spiketrains]}")
v = segment.filter(name="v")[0]                                 # mV, one column per cell
k10 = int(round(10.0 / float(v.sampling_period.rescale("ms"))))
print(f"{simulator}: v recorded: {v.shape[0]} samples x {v.shape[1]} cells every {float(v.sampling_period.rescale('ms')):g} ms; "
      f"neuron 0: v(10 ms) = {float(v[k10, 0].rescale('mV')):.6f} mV, peak {float(v[:, 0].max().rescale('mV')):.1f} mV")
sim.end()
