"""hhc's language: .chan text → syntax tree → checked, immutable IR. Knows no simulator."""
from .parser import parse, parse_file
from .checker import load_model, compile_text
from . import ir

__all__ = ["parse", "parse_file", "load_model", "compile_text", "ir"]
