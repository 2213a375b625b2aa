"""Builds a NESTML model into a NEST extension module (run by hhc in a child process: NESTML's
odetoolbox patches SymPy globally). Argument: JSON with model, target, install, module, nest_path,
nest_version."""
import json, sys
import odetoolbox
odetoolbox.PLOT_DEPENDENCY_GRAPH = False   # graphviz `dot` is usually absent
# NESTML writes floating-point literals into C++ with 9 significant digits (0.15503876 for
# 1/6.45): 17 keep every double hhc wrote exactly
from pynestml.codegeneration.printers.constant_printer import ConstantPrinter
ConstantPrinter.n_float_digits = 17
from pynestml.frontend.pynestml_frontend import generate_nest_target
a = json.loads(sys.argv[1])
generate_nest_target(input_path=a["model"], target_path=a["target"], install_path=a["install"],
                     module_name=a["module"], logging_level="ERROR",
                     codegen_opts={"nest_path": a["nest_path"], "nest_version": a["nest_version"]})
