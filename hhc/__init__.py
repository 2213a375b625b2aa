"""hhc: Hodgkin–Huxley channels written once, compiled to every simulator.

The Python API mirrors the command line:

    model = hhc.load_model("models/kenyon_cell.chan")          # checked IR
    files = hhc.compile_model(model, target="brian2")           # {filename: text}
    run_dir = hhc.run_experiment("examples/kenyon_small.toml", out="runs/small")
    results = hhc.load_results(run_dir)

Layers, each importing only those below it: hhc.compiler (the .chan language and experiment files
→ IR, errors, IR passes), hhc.backends (one module per target, the contract and the result format),
hhc (this package: running, the accuracy search, compare, plot, validate, tune, import, the CLI).
"""
from hhc.compiler.version import __version__
from hhc.compiler.errors import HHCError
from hhc.compiler import load_model
from hhc.backends.results import load_results
from hhc.api import compile_model, run_experiment

__all__ = ["HHCError", "load_model", "compile_model", "run_experiment", "load_results", "__version__"]
