"""The NeuroML2 corpus (tests/data/nml_corpus/), imported, on every target: every file compiles for
brian2, nest (the NESTML text), pynn and neuroml (or is refused with the standard error); the imported
cells agree with hhc's reference on Brian2 and on NEURON (through hhc's NeuroML export) within
`hhc compare`'s defaults."""
from __future__ import annotations

import pytest

from builders import trace, write_experiment
from paths import DATA

from hhc.api import compile_model, run_experiment
from hhc.backends.base import UnsupportedError
from hhc.backends.results import load_results
from hhc.compare import Tolerances, compare_runs, compare_traces
from hhc.compiler import compile_text
from hhc.reference import reference_run

pytest.importorskip("lxml")
from hhc.compiler.neuroml_import import import_file  # noqa: E402

CORPUS = DATA / "nml_corpus"
CELLS = sorted(CORPUS.glob("*.cell.nml"))
TARGETS = ("brian2", "nest", "pynn", "neuroml")
# What a target cannot express, refused with the standard error (never dropped): NeuroML's export to
# NEURON keeps one reversal per ion, so one calcium channel used both with Nernst and a fixed E next to
# a pool cannot be written.
REFUSED = {("MixedCaReversal.cell.nml", "neuroml"): "calcium channels with different reversal potentials"}


def _imported(path, tmp_path):
    imported = import_file(path)
    chan = tmp_path / path.name.replace(".nml", ".chan")
    chan.write_text(imported.chan)
    return chan, compile_text(imported.chan, str(chan))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.nml")), ids=lambda p: p.name)
def test_every_imported_corpus_file_compiles_for_every_target(path, target, tmp_path):
    chan, model = _imported(path, tmp_path)
    if not model.cells:          # a channel file: put each channel in a cell of its own
        names = ", ".join(ch.name for ch in model.channels)
        needs = "\n".join(_cell_needs(model))
        text = chan.read_text() + (f"\ncell Probe {{\n    C = 1 uF/cm2\n    area = 1000 um2\n    channels {names}\n"
                                   f"{needs}\n    input Iapp : current\n    initial {{ v = -65 mV }}\n"
                                   f"    spike when v rises above 0 mV\n}}\n")
        chan.write_text(text)
        model = compile_text(text, str(chan))
    refusal = REFUSED.get((path.name, target))
    for cell in model.cells:
        if refusal is not None:
            with pytest.raises(UnsupportedError, match=refusal):
                compile_model(model, target=target, cell=cell.name)
            continue
        files = compile_model(model, target=target, cell=cell.name)
        assert files and all(text.strip() for text in files.values())


def _cell_needs(model) -> list[str]:
    """What a probe cell must give the channels of a channel file: a temperature, a Ca pool."""
    text = " ".join(str(x) for ch in model.channels for x in
                    [ch.current] + [e.expr for e in ch.expressions] +
                    [y for g in ch.gates for y in (g.steady_state, g.time_constant)])
    out = []
    if "temperature" in text:
        out.append("    temperature = 34 degC")
    if "cai" in text or "cao" in text:
        out.append("    pool ca { resting = 100 nM; outside = 2 mM }")
    return out


@pytest.mark.slow
# NEURON (hhc's NeuroML export, jNeuroML's NEURON export, NEURON's fixed implicit Euler) is first order in
# time: it runs at dt 0.001 ms, Brian2 (rk4) at 0.01 ms
@pytest.mark.parametrize("backend", ["brian2", pytest.param("neuron", marks=pytest.mark.needs_neuron)])
@pytest.mark.parametrize("path", CELLS, ids=lambda p: p.name)
def test_imported_cells_agree_with_the_reference(path, backend, tmp_path):
    chan, model = _imported(path, tmp_path)
    cell = model.cells[0]
    inputs = [i.name for i in cell.inputs]
    if not inputs:
        pytest.fail(f"{path.name}: the imported cell has no input to drive it")
    # a cell without a spike threshold (NeuroML's spikeThresh is optional) is compared by its v trace
    spiking = cell.threshold is not None
    exp = write_experiment(tmp_path / "e.toml", model=chan, cell=cell.name, size=1,
                           dt="0.01 ms" if backend == "brian2" else "0.001 ms",
                           method="rk4", initial=None,
                           protocol=[("50 ms", {inputs[0]: "0 pA"}), ("200 ms", {inputs[0]: "0.2 nA"})],
                           record={"spikes": "all" if spiking else "none"},
                           traces=[] if spiking else [trace(["v"], [0], interval="0.1 ms")],
                           backend=backend)
    if backend == "neuron" and (path.name, "neuroml") in REFUSED:
        with pytest.raises(UnsupportedError, match=REFUSED[(path.name, "neuroml")]):
            run_experiment(exp, out=tmp_path / backend, quiet=True)
        return
    ours = run_experiment(exp, out=tmp_path / backend, quiet=True)
    ref = reference_run(exp, sample=1, out=tmp_path / "reference", interval=None if spiking else 1e-4)
    if not spiking:
        ra, rb = load_results(ref), load_results(ours)
        (v,) = compare_traces(ra, rb, Tolerances(), ra.duration())
        assert v.variable == "v" and v.n_samples > 1000 and not v.failing, (path.name, backend, v.sub_rms)
        return
    (pair,) = compare_runs([ref, ours], plots=False)
    assert pair.agree, (path.name, backend, pair.notes, [c.failures for c in pair.failing])
