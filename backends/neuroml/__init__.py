"""NeuroML2 + LEMS: the neuroml target writes the documents (generate.py; a [network] experiment's in
network.py); the jneuroml and neuron backends run them (jneuroml.py, nrn.py, sharing lems_run.py)."""
from __future__ import annotations

from hhc.compiler import ir

from ..base import Backend, Capabilities, EmitOptions
from . import jneuroml, nrn  # noqa: F401  (their backends register with the registry)
from .network import experiment_documents


class NeuroMLBackend(Backend):
    name = "neuroml"
    description = "NeuroML2 documents + LEMS simulation (run them with --backend jneuroml or neuron)"
    capabilities = Capabilities(runs=False, note="generates NeuroML2/LEMS documents only; run them with "
                                                 "--backend jneuroml or --backend neuron",
                                networks=True)

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        return experiment_documents(cell, options)
