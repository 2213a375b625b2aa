"""Where the backends cache their builds (compiled simulations, NEST modules, NEURON mechanisms)."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    """~/.cache/hhc, or $HHC_CACHE (tests point it at a temporary folder)."""
    return Path(os.environ.get("HHC_CACHE", Path.home() / ".cache" / "hhc"))


@contextmanager
def file_lock(path: Path):
    """Exclusive lock on `path` (created if needed) for the duration of the block, so two builds of
    the same cache entry at once wait for each other instead of colliding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield          # closing the file releases the lock
