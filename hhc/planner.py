"""The recording planner: how much memory and disk will a run's recordings take, and does it fit?

Recording is what makes long simulations of many neurons fail late and expensively: a voltage
trace of 50,000 neurons every 0.01 ms for 50 s is 2 TB, and Brian2's StateMonitor holds all of
it in memory until the run ends. So before anything is built, the experiment's recording plan
is estimated and refused if it cannot fit, with cheaper alternatives computed from the plan.

Byte model (float64 / int64 everywhere, as the result format stores them):

* spikes: 8 bytes (int64 neuron index) + 8 bytes (float64 time) per spike, in memory and on
  disk. The number of spikes is unknown before the run, so it is estimated from ``rate_hz``
  (default 50 Hz: a tonically driven Hodgkin-Huxley cell such as the Kenyon-cell seed fires at
  about 45-50 Hz at 18 pA; quiet networks fire far less, so this errs on the generous side).
* traces: 8 bytes per sample per neuron per variable, plus 8 bytes per sample for the time
  axis. A StateMonitor keeps every sample in memory until the end of the run, so memory = disk.

Sampling follows Brian2's clocks: a monitor with interval ``dt_rec`` samples at times
``k * dt_rec`` (k = 0, 1, ...) for ``t < duration``; restricted to windows, it samples at the
same grid times inside each ``[start, stop)`` window. Overlapping windows are merged (a time is
either recorded or not).
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from hhc.compiler.errors import HHCError

BYTES_PER_SPIKE = 8 + 8          # int64 index + float64 time
BYTES_PER_VALUE = 8              # float64 sample
DEFAULT_RATE_HZ = 50.0           # see module docstring
MEMORY_FRACTION = 0.8            # leave room for the simulator, the OS and everything else

# Relative tolerance when deciding whether a time falls exactly on a sampling grid point:
# 50.05 s / 0.01 ms is 5004999.999... in floating point, and must count as 5,005,000.
_GRID_TOLERANCE = 1e-9


# ---------------------------------------------------------------------------------------------
# The plan: plain data, so the experiment loader can build it from a TOML/YAML file.


@dataclass
class TracePlan:
    """Record ``variables`` of ``neurons`` every ``interval`` seconds, within ``windows``.

    neurons: list of neuron indices, or None for all neurons of the run.
    windows: list of (start, stop) in seconds, or None for the whole run.
    """

    variables: list[str]
    neurons: Sequence[int] | None = None
    interval: float | None = None      # seconds; None means every time step (the run's dt)
    windows: list[tuple[float, float]] | None = None


@dataclass
class RecordingPlan:
    """Everything a run will record. Times in seconds."""

    n_neurons: int
    duration: float
    dt: float
    spike_neurons: int | None = None   # how many neurons' spikes are recorded; None = all
    trace_groups: list[TracePlan] = field(default_factory=list)
    rate_hz: float = DEFAULT_RATE_HZ   # assumed firing rate, for the spike estimate
    # the simulator process itself (measured per backend: Backend.memory_model), so the estimate is
    # of the run's peak memory, not of its recordings alone
    baseline_bytes: int = 0            # the process with its simulator loaded
    state_bytes: int = 0               # the neurons' state, with the simulator's copies of it
    segment: float | None = None       # s: spikes are held one segment at a time (None: all, to the end)
    # method/dt = "auto": the measured peak of the accuracy search, which ran before the run in a
    # process of its own (hhc.api._search_in_own_process); said beside the total, not part of it
    search_peak_bytes: int | None = None


# ---------------------------------------------------------------------------------------------
# Arithmetic


def _grid_index_at_or_after(time: float, interval: float) -> int:
    """Smallest k with k * interval >= time (grid points that land on `time` count)."""
    q = time / interval
    nearest = round(q)
    if abs(q - nearest) <= _GRID_TOLERANCE * max(1.0, abs(q)):
        return int(nearest)
    return math.ceil(q)


def merged_windows(windows: list[tuple[float, float]] | None, duration: float) -> list[tuple[float, float]]:
    """Windows clipped to [0, duration], sorted, overlaps merged, empty ones dropped.
    None means the whole run."""
    if windows is None:
        return [(0.0, duration)] if duration > 0 else []
    clipped = []
    for start, stop in windows:
        if stop < start:
            raise HHCError(f"recording window ({start:g} s, {stop:g} s) ends before it starts")
        start, stop = max(0.0, start), min(duration, stop)
        if stop > start:
            clipped.append((start, stop))
    clipped.sort()
    merged: list[tuple[float, float]] = []
    for start, stop in clipped:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def samples_in_windows(windows: list[tuple[float, float]] | None, duration: float, interval: float) -> int:
    """Number of grid times k*interval with start <= t < stop in some window (and t < duration)."""
    return sum(
        _grid_index_at_or_after(stop, interval) - _grid_index_at_or_after(start, interval)
        for start, stop in merged_windows(windows, duration)
    )


def format_bytes(n: float) -> str:
    """Decimal units, as disks are sold: 2.0 TB is 2e12 bytes."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def format_seconds(t: float) -> str:
    """0.01 ms, 250 ms, 50.05 s: milliseconds below one second."""
    if t < 1.0:
        return f"{t * 1e3:.6g} ms"
    return f"{t:.6g} s"


def _nice_interval_at_least(minimum: float, dt: float) -> float:
    """The smallest 1-2-5 multiple of dt (dt, 2dt, 5dt, 10dt, ...) that is >= minimum, so the
    suggested interval lies on the simulation grid and reads well."""
    multiple = 1
    while multiple * dt < minimum * (1 - _GRID_TOLERANCE):
        for step in (2, 5 / 2, 2):  # 1 -> 2 -> 5 -> 10
            multiple = round(multiple * step)
            if multiple * dt >= minimum * (1 - _GRID_TOLERANCE):
                break
    return multiple * dt


# ---------------------------------------------------------------------------------------------
# Estimate


@dataclass
class GroupEstimate:
    variables: list[str]
    n_neurons: int
    interval: float
    n_windows: int | None        # None: the whole run
    samples: int                 # time points recorded
    bytes: int

    def line(self) -> str:
        names = ", ".join(self.variables)
        when = "whole run" if self.n_windows is None else f"{self.n_windows} window{'s' * (self.n_windows != 1)}"
        return (
            f"traces: {names} of {self.n_neurons} neuron{'s' * (self.n_neurons != 1)}, {when}, "
            f"every {format_seconds(self.interval)}: {format_bytes(self.bytes)}"
        )


@dataclass
class RecordingEstimate:
    plan: RecordingPlan
    expected_spikes: int
    spike_bytes: int
    trace_bytes: int
    memory_bytes: int
    disk_bytes: int
    groups: list[GroupEstimate]
    recording_memory_bytes: int = 0

    @property
    def samples(self) -> list[int]:
        """Time points recorded, per trace group."""
        return [g.samples for g in self.groups]

    def lines(self) -> list[str]:
        plan = self.plan
        n_spiking = plan.n_neurons if plan.spike_neurons is None else plan.spike_neurons
        lines = [
            f"spikes: {n_spiking} neuron{'s' * (n_spiking != 1)} at ~{plan.rate_hz:g} Hz (assumed) "
            f"for {format_seconds(plan.duration)}: ~{self.expected_spikes:,} spikes, "
            f"{format_bytes(self.spike_bytes)}"
        ]
        lines += [g.line() for g in self.groups]
        if plan.baseline_bytes or plan.state_bytes:
            parts = (f" (simulator process {format_bytes(plan.baseline_bytes)}, neuron state "
                     f"{format_bytes(plan.state_bytes)}, recordings {format_bytes(self.recording_memory_bytes)}"
                     + (f", written every {format_seconds(plan.segment)}" if plan.segment else "") +
                     "; of hhc's own process, not of compilers or simulator binaries it starts)")
        else:
            parts = " (recordings only: this backend's own memory is not modelled)"
        lines.append(f"total: {format_bytes(self.memory_bytes)} in memory at peak{parts}, "
                     f"{format_bytes(self.disk_bytes)} on disk")
        if plan.search_peak_bytes:
            lines.append(f"method/dt = \"auto\" accuracy search: peak {format_bytes(plan.search_peak_bytes)} in its "
                         f"own process, before the run (not in the total)")
        return lines


def _group_bytes(n_variables: int, n_neurons: int, samples: int) -> int:
    # one float64 per (sample, neuron, variable), plus the float64 time axis
    return samples * (n_variables * n_neurons + 1) * BYTES_PER_VALUE


def _estimate_group(group: TracePlan, plan: RecordingPlan) -> GroupEstimate:
    interval = plan.dt if group.interval is None else group.interval
    if interval < plan.dt * (1 - _GRID_TOLERANCE):
        raise HHCError(
            f"recording interval {format_seconds(interval)} is shorter than the time step "
            f"{format_seconds(plan.dt)}; a variable cannot be sampled more often than it is computed"
        )
    if not group.variables:
        raise HHCError("a trace group records no variables")
    n_neurons = plan.n_neurons if group.neurons is None else len(group.neurons)
    samples = samples_in_windows(group.windows, plan.duration, interval)
    return GroupEstimate(
        variables=list(group.variables),
        n_neurons=n_neurons,
        interval=interval,
        # windows as recorded: clipped to the run and overlaps merged
        n_windows=None if group.windows is None else len(merged_windows(group.windows, plan.duration)),
        samples=samples,
        bytes=_group_bytes(len(group.variables), n_neurons, samples),
    )


def estimate(plan: RecordingPlan) -> RecordingEstimate:
    """Bytes the plan's recordings take in memory and on disk."""
    if plan.dt <= 0 or plan.duration < 0 or plan.n_neurons < 0:
        raise HHCError("a recording plan needs dt > 0, duration >= 0 and n_neurons >= 0")
    n_spiking = plan.n_neurons if plan.spike_neurons is None else plan.spike_neurons
    expected_spikes = math.ceil(n_spiking * plan.rate_hz * plan.duration)
    spike_bytes = expected_spikes * BYTES_PER_SPIKE
    groups = [_estimate_group(g, plan) for g in plan.trace_groups]
    trace_bytes = sum(g.bytes for g in groups)
    if plan.segment and plan.duration > 0:
        # written segment by segment and streamed into spikes.npz: one segment's spikes in memory;
        # trace samples are gathered from the segments at the end (their list and the joined copy)
        recordings = math.ceil(spike_bytes * min(1.0, plan.segment / plan.duration)) + 2 * trace_bytes
    else:
        # Spikes and StateMonitor samples both stay in memory until the run ends, then are written.
        recordings = spike_bytes + trace_bytes
    return RecordingEstimate(
        plan=plan,
        expected_spikes=expected_spikes,
        spike_bytes=spike_bytes,
        trace_bytes=trace_bytes,
        memory_bytes=plan.baseline_bytes + plan.state_bytes + recordings,
        disk_bytes=spike_bytes + trace_bytes,
        groups=groups,
        recording_memory_bytes=recordings,
    )


# ---------------------------------------------------------------------------------------------
# Does it fit?


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (what can be used without swapping), else free pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def free_disk_bytes(out_dir: str | os.PathLike) -> int:
    """Free space where out_dir is or will be (its nearest existing parent)."""
    path = Path(out_dir).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _alternatives(est: RecordingEstimate, budget: float) -> list[str]:
    """Cheaper recordings that fit in `budget` bytes, changing one thing in one trace group."""
    plan = est.plan
    suggestions = []
    # Biggest group first: that is where the bytes are.
    for index in sorted(range(len(est.groups)), key=lambda k: -est.groups[k].bytes):
        group, g = plan.trace_groups[index], est.groups[index]
        names = ", ".join(g.variables)
        room = budget - (est.memory_bytes - g.bytes)  # what this group may take, others unchanged
        if room <= 0 or g.samples == 0:
            continue
        per_sample = BYTES_PER_VALUE * (len(g.variables) * g.n_neurons + 1)
        max_samples = int(room // per_sample)

        # fewer neurons
        max_neurons = int((room // (g.samples * BYTES_PER_VALUE) - 1) // len(g.variables))
        if 1 <= max_neurons < g.n_neurons:
            suggestions.append(
                f"record {names} of at most {max_neurons:,} neurons instead of {g.n_neurons:,} "
                f"(same interval and windows)"
            )
        # fewer variables, if one of them alone fits
        if len(g.variables) > 1 and _group_bytes(1, g.n_neurons, g.samples) <= room:
            fit = max(1, int((room // (g.samples * BYTES_PER_VALUE) - 1) // g.n_neurons))
            suggestions.append(f"record only {min(fit, len(g.variables) - 1)} of the variables {names}")
        # a longer interval: the samples scale as 1/interval
        if max_samples >= 1:
            wanted = g.interval * g.samples / max_samples
            interval = _nice_interval_at_least(wanted, plan.dt)
            while samples_in_windows(group.windows, plan.duration, interval) > max_samples:
                interval = _nice_interval_at_least(interval * 1.01, plan.dt)  # next 1-2-5 step
            suggestions.append(
                f"record {names} every {format_seconds(interval)} instead of every "
                f"{format_seconds(g.interval)} (same neurons and windows)"
            )
        # time windows: the recorded time that fits at this interval
        if max_samples >= 1:
            recorded_time = max_samples * g.interval
            covered = sum(stop - start for start, stop in merged_windows(group.windows, plan.duration))
            if recorded_time < covered:
                example = min(recorded_time, plan.duration)
                suggestions.append(
                    f"record {names} only in time windows totalling at most "
                    f"{format_seconds(recorded_time)} (e.g. windows = [[0, {example:.6g}]], in seconds)"
                )
    # spikes alone too big: record the spikes of fewer neurons
    if est.spike_bytes > budget and plan.rate_hz > 0 and plan.duration > 0:
        per_neuron = plan.rate_hz * plan.duration * BYTES_PER_SPIKE
        n_fit = int(budget // per_neuron)
        if n_fit >= 1:
            suggestions.append(f"record the spikes of at most {n_fit:,} neurons")
    return suggestions


def check_fits(
    est: RecordingEstimate,
    available_memory: int | None = None,
    free_disk: int | None = None,
    out_dir: str | os.PathLike = ".",
) -> None:
    """Raise HHCError if the recordings would take more than 80% of the available memory or more
    than the free disk space under out_dir. The message gives the estimate and alternatives."""
    if available_memory is None:
        available_memory = available_memory_bytes()
    if free_disk is None:
        free_disk = free_disk_bytes(out_dir)
    memory_limit = MEMORY_FRACTION * available_memory
    problems = []
    if est.memory_bytes > memory_limit:
        problems.append(
            f"the recordings need {format_bytes(est.memory_bytes)} of memory until the run ends, "
            f"but only {format_bytes(available_memory)} is available "
            f"(limit {MEMORY_FRACTION:.0%}: {format_bytes(memory_limit)})"
        )
    if est.disk_bytes > free_disk:
        problems.append(
            f"the results need {format_bytes(est.disk_bytes)} on disk, but only "
            f"{format_bytes(free_disk)} is free under {Path(out_dir).absolute()}"
        )
    if not problems:
        return
    budget = min(memory_limit, free_disk)
    lines = ["the recording plan does not fit: " + "; ".join(problems) + ".", "estimate:"]
    lines += [f"  {line}" for line in est.lines()]
    suggestions = _alternatives(est, budget)
    if suggestions:
        lines.append(f"cheaper alternatives that fit in {format_bytes(budget)}:")
        lines += [f"  - {s}" for s in suggestions]
    raise HHCError("\n".join(lines))
