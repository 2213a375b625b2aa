"""Runs a compiled simulation binary and turns its progress lines into a progress bar.

Brian2's cpp_standalone device runs its binary through a configurable command; hhc makes that
command `python -m hhc.progress_pipe ./main ...`. The binary prints `HHC-PROGRESS start duration
completed elapsed` (hhc's report code); everything else it prints is passed through.
"""
from __future__ import annotations

import os
import subprocess
import sys

from hhc.progress import ProgressBar


def main(argv: list[str]) -> int:
    total = float(os.environ.get("HHC_PROGRESS_TOTAL", "0") or 0)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, bufsize=1)
    with ProgressBar(total, "simulating (compiled)") as bar:
        for line in proc.stdout:
            if line.startswith("HHC-PROGRESS"):
                try:
                    _, start, duration, completed, _elapsed = line.split()
                    bar.update(float(start) + float(completed) * float(duration))
                except ValueError:
                    pass
            else:
                sys.stdout.write(line)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
