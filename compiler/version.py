"""hhc's version, written into every generated file's header and every run's meta.json."""
__version__ = "0.1.0"
