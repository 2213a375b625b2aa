"""PyNN target: a cell-type module per cell for pyNN.nest (backed by the NEST module hhc builds from
the same IR) and pyNN.brian2 (backed by hhc's Brian2 equations) (celltype.py); with a `[network]`
experiment, also one PyNN script building hhc's drawn network on either simulator (network.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hhc.compiler import ir
from hhc.compiler.errors import HHCError

from ..base import Backend, Capabilities, EmitOptions
from .. import nest as nestbackend
from ..nest import build as nest_build
from ..nest import nestml as nest_nestml
from .celltype import brian2_method, module_text
from .network import check_network, module_name, network_cells, network_data, script_name, script_text

__all__ = ["PyNNBackend", "module_text"]


class PyNNBackend(Backend):
    name = "pynn"
    description = "PyNN 0.13 cell type module for pyNN.nest (hhc's NEST module) and pyNN.brian2; network scripts"
    capabilities = Capabilities(runs=False, networks=True,
                                note="writes a PyNN cell-type module (and, with a [network] experiment, a PyNN "
                                     "script of the network); run it with PyNN on pyNN.nest or pyNN.brian2")

    def emit(self, cell: ir.Cell, options: EmitOptions) -> dict[str, str]:
        experiment = options.experiment
        drawn = getattr(experiment, "drawn", None)
        method = options.method or (experiment.method if drawn is not None else None) or "auto"
        variant = nest_nestml._variant(method)
        if drawn is not None:
            check_network(experiment)
            if options.out_dir is None:
                raise HHCError("a PyNN network script's drawn arrays go into an .npz beside it: give an output "
                               "directory (hhc compile -o DIR)")
        cells = network_cells(experiment) if drawn is not None else [cell]
        build = (options.out_dir is not None or options.build_only) and \
            nestbackend.NestBackend.unavailable_reason() is None
        files = {}
        for c in cells:
            nest_module = None
            if build:
                built = nest_build.build_module(c, variant, log=options.extra.get("log"))
                nest_module = {"module": built.module, "model": built.model, "lib_dir": str(built.lib_dir)}
            files[f"{module_name(c)}.py"] = module_text(c, variant, nest_module)
        if drawn is not None:
            spec, arrays = network_data(experiment)
            out = Path(options.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            # binary, so written here rather than returned as text; the script reads it beside itself
            np.savez(out / f"{script_name(experiment)}.npz", **arrays)
            files[f"{script_name(experiment)}.py"] = script_text(experiment, spec, variant, brian2_method(variant))
        return files
