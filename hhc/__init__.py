"""hhc: Hodgkin–Huxley channels written once, compiled to every simulator.

The Python API mirrors the command line:

    model = hhc.load_model("models/kenyon_cell.chan")          # checked IR
    files = hhc.compile_model(model, target="brian2")           # {filename: text}
    run_dir = hhc.run_experiment("examples/kenyon_small.toml", out="runs/small")
    results = hhc.load_results(run_dir)
"""
__version__ = "0.1.0"

from .errors import HHCError  # noqa: E402


def load_model(path):
    from .compiler import load_model as _load
    return _load(path)


def compile_model(model, target="brian2", cell=None, device=None, out_dir=None):
    from .api import compile_model as _compile
    return _compile(model, target=target, cell=cell, device=device, out_dir=out_dir)


def run_experiment(experiment, out=None, **overrides):
    from .api import run_experiment as _run
    return _run(experiment, out=out, **overrides)


def load_results(path):
    from .results import load_results as _load
    return _load(path)


__all__ = ["HHCError", "load_model", "compile_model", "run_experiment", "load_results", "__version__"]
