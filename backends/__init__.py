"""Targets: each reads only the IR (hhc.compiler.ir) and implements the contract in backends/base.py.
Adding a target = adding one module (or package) here with one Backend subclass that has a `name`;
the registry below finds it.
"""
from __future__ import annotations

import importlib
import pkgutil

from hhc.compiler.errors import HHCError

from .base import Backend, Capabilities, EmitOptions
from .results import RunResult

_REGISTRY: dict[str, type[Backend]] = {}
# shared parts of the contract, not targets
_NOT_TARGETS = {"base", "cache", "codegen", "results", "segments", "reference_c"}


def _discover():
    if _REGISTRY:
        return
    # importing a target module imports none of its simulator (they load lazily in run())
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_TARGETS:
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


def backend_class(name: str) -> type[Backend]:
    _discover()
    if name not in _REGISTRY:
        raise HHCError(f"unknown backend '{name}'; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def get(name: str) -> Backend:
    return backend_class(name)()


__all__ = ["Backend", "Capabilities", "EmitOptions", "RunResult", "names", "get", "backend_class"]
