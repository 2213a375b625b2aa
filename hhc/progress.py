"""A progress bar over biological time, with elapsed time and ETA (rich), on stderr."""
from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """`with ProgressBar(total_seconds) as bar: bar.update(simulated_seconds)`.

    On a terminal it redraws in place; elsewhere (CI logs, pipes) it prints a line every 10 %.
    HHC_PROGRESS=0 silences it.
    """

    def __init__(self, total: float, label: str = "simulating"):
        self.total = max(float(total), 1e-12)
        self.label = label
        self.enabled = os.environ.get("HHC_PROGRESS", "1") != "0"
        self.console = Console(stderr=True)
        self.interactive = self.console.is_terminal
        self._progress = None
        self._last_decile = -1

    def __enter__(self):
        return self

    def _start(self):
        # started on the first update, so a backend that reports its own progress shows one bar
        if self._progress is None and self.enabled and self.interactive:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[bio]}"), TimeElapsedColumn(),
                                      TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, bio="")

    def update(self, simulated: float):
        if not self.enabled:
            return
        self._start()
        if self._progress is not None:
            self._progress.update(self._task, completed=simulated,
                                  bio=f"{simulated:.3g}/{self.total:.3g} s")
            return
        decile = int(10 * simulated / self.total)
        if decile > self._last_decile:
            self._last_decile = decile
            print(f"{self.label}: {simulated:.4g} of {self.total:.4g} s biological time ({10 * decile}%)",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
        return False
