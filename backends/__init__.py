"""Targets. Each module here holds one Backend subclass that reads the IR (hhc.compiler.ir) and
nothing else of the compiler. Adding a target = adding one module; it registers itself by
subclassing Backend.
"""
from __future__ import annotations

import fcntl
import importlib
import os
import pkgutil
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import sympy
from sympy.printing.str import StrPrinter

from hhc.errors import HHCError


# ---- shared by the code generators ------------------------------------------------------------

def cache_root() -> Path:
    """Where builds are cached (compiled simulations, NEST modules, NEURON mechanisms)."""
    return Path(os.environ.get("HHC_CACHE", Path.home() / ".cache" / "hhc"))


@contextmanager
def file_lock(path: Path):
    """Exclusive lock on `path` (created if needed) for the duration of the block, so two builds of
    the same cache entry at once wait for each other instead of colliding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield          # closing the file releases the lock


def decimal_form(expr: sympy.Expr) -> sympy.Expr:
    """Exact fractions → floats (beyond double precision), so 93/1000*ms prints as 0.093*ms."""
    fractions = {r: sympy.Float(r, 20) for r in expr.atoms(sympy.Rational) if not r.is_Integer}
    return expr.xreplace(fractions) if fractions else expr


class DoublePrinter(StrPrinter):
    """A SymPy printer that writes every number as the double it stands for (C-like targets)."""

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Float(self, expr):
        return repr(float(expr))


@dataclass
class EmitOptions:
    """What `hhc compile` passes to a backend besides the cell."""
    device: str | None = None
    method: str | None = None
    experiment: object = None          # a resolved hhc.experiment.Experiment, for targets that
                                       # emit a simulation too (LEMS, PyNN scripts)
    out_dir: Path | None = None        # where the files go, for targets that build (NESTML, CUDA)
    build_only: bool = False
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    """The small interface every target implements.

    emit: IR cell → generated files (name → text), readable, with a header naming the source.
    run:  an experiment on this simulator → a dict with
          spike_i (int array), spike_t (s), traces (list of {"t", "neurons", "variables": {name: (time, neuron) array}})
          and meta (dict: device, method, wall_time_s, simulator versions ...);
          hhc.api writes it in hhc's one result format (hhc.results).
          `experiment` is resolved (hhc.experiment.resolve): inputs and initial values are SI numbers.
    """
    name: ClassVar[str]                 # used by --target / --backend
    description: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("float64",)   # experiment.precision values run() honours
    # method/dt = "auto": the device hhc's accuracy advisor runs its sample trials on before the run
    # (None: the backend chooses for "auto" itself and dt = "auto" is refused)
    advise_device: ClassVar[str | None] = None

    @abstractmethod
    def emit(self, cell, options: EmitOptions) -> dict[str, str]:
        ...

    def run(self, cell, experiment, out_dir: Path, progress=None) -> dict:
        raise HHCError(f"backend '{self.name}' can generate code but cannot run experiments yet")

    def memory_model(self, experiment, n_states: int) -> dict:
        """The run's memory besides its recordings, for the planner: {"baseline": bytes of the
        process with the simulator loaded, "state": bytes of the neurons' state, "segment": seconds
        of recordings held in memory at a time, or None when all are held to the end}. Unknown: 0."""
        return {"baseline": 0, "state": 0, "segment": None}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the simulator can run on this machine, else what is missing."""
        return None


_REGISTRY: dict[str, type[Backend]] = {}


def _discover():
    if _REGISTRY:
        return
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for cls in _all_subclasses(Backend):
        if getattr(cls, "name", None):
            _REGISTRY[cls.name] = cls


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> Backend:
    _discover()
    if name not in _REGISTRY:
        raise HHCError(f"unknown backend '{name}'; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()
