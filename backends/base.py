"""The contract every target implements: what it can do (Capabilities), what it makes (emit → files),
what a run gives back (RunResult), and the one way to say "this target cannot express that"
(Backend.unsupported). A new target is one module in backends/ with one Backend subclass; the
registry (backends/__init__.py) finds it by its `name`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from hhc.compiler.errors import HHCError, SourceLocation

from .results import RunResult


class UnsupportedError(HHCError):
    """A construct or request the target cannot express: `<construct> is not supported by target <name>`."""

    def __init__(self, target: str, construct: str, location: SourceLocation | None = None, hint: str | None = None):
        super().__init__(f"{construct} is not supported by target {target}", location, hint)
        self.target = target
        self.construct = construct


def unsupported(target: str, construct: str, location: SourceLocation | None = None, hint: str | None = None):
    """Raise the one error for something target `target` cannot express or do (for a generator's
    helper functions; a Backend says Backend.unsupported)."""
    raise UnsupportedError(target, construct, location, hint)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared once; the run checks, validate, tune and the accuracy advisor
    read this instead of tables keyed by backend name."""
    runs: bool = True                                   # False: a code generator only (files for another runner)
    devices: tuple[str | None, ...] = (None,)           # the first is the default (None: the backend has one)
    threaded_devices: tuple[str | None, ...] = ()       # devices whose thread count matters (hhc tune)
    mpi: bool = False                                   # runs as several MPI processes (--mpi P)
    methods: tuple[str, ...] = ()                       # integration methods it takes (empty: any it knows)
    default_method: str | None = None                   # what method = "auto" becomes without the advisor
    precisions: tuple[str, ...] = ("float64",)          # experiment.precision values run() honours
    max_neurons: int | None = None                      # larger populations are refused before the run
    records: tuple[str, ...] = ("spikes", "states")     # what it can record: spikes, states (v and gates)
    # method/dt = "auto": the device the accuracy advisor runs its sample trials on before the run
    # (None: the backend chooses for "auto" itself and dt = "auto" stands at the provisional dt)
    advise_device: str | None = None
    validate_dt: float | None = None                    # dt for `hhc validate` when its default does not suit
    # why `hhc validate`'s long runs (20 s of tonic firing) are out of this backend's reach at that dt
    long_runs: str | None = None
    networks: bool = False                              # runs [network] experiments (synapses, sources, projections)
    # the order of a fixed-step integrator it always uses (validate then tells its integration error at a
    # dt from a model mismatch by halving dt); None: it runs hhc's methods, or adapts its step
    fixed_step_order: int | None = None
    note: str = ""                                      # why it does not run, for a code generator


@dataclass
class EmitOptions:
    """What `hhc compile` passes to a backend besides the cell."""
    device: str | None = None
    method: str | None = None
    experiment: object = None          # a resolved hhc.compiler.experiment.Experiment, for targets that
                                       # emit a simulation too (LEMS, PyNN scripts)
    out_dir: Path | None = None        # where the files go, for targets that build (NESTML, CUDA)
    build_only: bool = False
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    """emit: IR cell → generated files (name → text), readable, with a header naming the source.
    run:  a resolved experiment (hhc.compiler.experiment.resolve: inputs and initial values are SI
          numbers) on this simulator → RunResult, which hhc writes in its one result format."""
    name: ClassVar[str]                 # used by --target / --backend
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities(runs=False)

    @abstractmethod
    def emit(self, cell, options: EmitOptions) -> dict[str, str]:
        ...

    def run(self, cell, experiment, out_dir: Path, progress=None) -> RunResult:
        raise HHCError(f"backend '{self.name}' generates code only: {self.capabilities.note or 'it has no run()'}")

    def memory_model(self, experiment, n_states: int) -> dict:
        """The run's memory besides its recordings, for the planner: {"baseline": bytes of the
        process with the simulator loaded, "state": bytes of the neurons' state, "segment": seconds
        of recordings held in memory at a time, or None when all are held to the end}. Unknown: 0."""
        return {"baseline": 0, "state": 0, "segment": None}

    @classmethod
    def full_sample_device(cls, device: str | None, steps: int) -> str | None:
        """Where the accuracy advisor runs a small sample for `steps` time steps (a whole protocol)
        for an experiment on `device`: the cheapest place that computes what the experiment will."""
        return cls.capabilities.advise_device

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the simulator can run on this machine, else what is missing."""
        return None

    @classmethod
    def unsupported(cls, construct: str, location: SourceLocation | None = None, hint: str | None = None):
        """Raise the one error for something this target cannot express or do."""
        unsupported(cls.name, construct, location, hint)

    @classmethod
    def check_cell(cls, cell) -> None:
        """Refuse a cell with constructs the declared capabilities rule out (synapses need networks)."""
        if cell.synapses and not cls.capabilities.networks:
            cls.unsupported(f"synapses (cell {cell.name} receives {', '.join(s.name for s in cell.synapses)})",
                            hint="docs/networks.md lists the backends that run networks")

    @classmethod
    def check_run(cls, experiment) -> None:
        """Refuse, before anything is built, what the declared capabilities rule out."""
        caps = cls.capabilities
        device = experiment.backend.device
        if not caps.runs:
            cls.unsupported("running an experiment", hint=caps.note or None)
        if device not in caps.devices:
            known = ", ".join(d for d in caps.devices if d) or "none"
            cls.unsupported(f"device '{device}'", hint=f"devices of {cls.name}: {known}")
        if caps.methods and experiment.method not in caps.methods + ("auto",):
            cls.unsupported(f"method '{experiment.method}'", hint=f"methods of {cls.name}: {', '.join(caps.methods)}")
        if experiment.precision not in caps.precisions:
            cls.unsupported(f"precision {experiment.precision}",
                            hint=f"{cls.name} runs in {', '.join(caps.precisions)}; drop --float32 / precision, "
                                 f"or use the brian2 backend")
        if experiment.backend.mpi and not caps.mpi:
            cls.unsupported("--mpi (several MPI processes)", hint="the nest backend runs with MPI")
        if getattr(experiment, "drawn", None) is not None and not caps.networks:
            cls.unsupported("a network (populations, sources, projections: [network] or per-neuron parameters)",
                            hint="docs/networks.md lists the backends that run networks")
        if caps.max_neurons is not None and experiment.size > caps.max_neurons:
            cls.unsupported(f"a population of {experiment.size:,} neurons (at most {caps.max_neurons:,})")

