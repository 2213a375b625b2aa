"""The one result format every hhc backend writes, and its reader.

A result directory holds three files:

``spikes.npz``
    ``i`` (int64 neuron index) and ``t`` (float64, seconds), one entry per spike, in the order
    the simulator reported them. A run that knows the threshold at each spike (the reference:
    Crossings) adds ``overshoot`` (V, one per spike, aligned with ``i``/``t``) and its near misses
    ``near_i``, ``near_t``, ``near_peak``; meta.json then says ``"crossings": {"threshold": ...,
    "recorded_below": ...}``.
``traces.npz``
    Recorded state variables, in trace groups. A group is a time axis ``t`` (seconds), the
    recorded ``neurons`` (indices) and one 2-D array per variable, shape ``(len(t), len(neurons))``
    in SI units (volt, ampere, dimensionless gates). Group 0 uses the plain names (``t``,
    ``neurons``, ``v``); group k >= 1 adds the suffix ``__k`` to every key (``t__1``, ``v__1``),
    so one flat npz can hold groups with different neurons, intervals or windows.
``meta.json``
    Anything JSON-serialisable describing the run (backend, model, dt, wall time...), written
    with sorted keys so that two runs can be diffed.

Every file is written to a temporary name in the same directory and then moved into place with
``os.replace``, so a reader never sees a half-written file, even if the writer is killed.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from hhc.compiler.errors import HHCError

SPIKES_FILE = "spikes.npz"
TRACES_FILE = "traces.npz"
META_FILE = "meta.json"

# Keys with this suffix belong to trace group k >= 1.
_GROUP_SUFFIX = re.compile(r"^(?P<name>.+)__(?P<group>[1-9][0-9]*)$")

# Peaks that come this close below the threshold (V) without crossing it are recorded as near misses.
NEAR_MISS_RECORDED = 2e-3
_CROSSING_KEYS = ("overshoot", "near_i", "near_t", "near_peak")


@dataclass
class Crossings:
    """What a reference knows about the threshold at each spike: how far above the threshold each spike's peak went
    (one per spike, in the order of the spikes it accompanies) and the peaks that came close below it without crossing."""
    threshold: float                # V
    overshoot: np.ndarray           # V, peak - threshold, one per spike (>= 0)
    near_i: np.ndarray              # int64 neuron index of each near miss
    near_t: np.ndarray              # s, time of the near-miss peak
    near_peak: np.ndarray           # V, the peak value (below threshold)
    recorded_below: float = NEAR_MISS_RECORDED   # V: near misses are recorded down to threshold - this

    def __post_init__(self) -> None:
        self.threshold = float(self.threshold)
        self.recorded_below = float(self.recorded_below)
        self.overshoot = np.asarray(self.overshoot, dtype=np.float64).reshape(-1)
        self.near_i = np.asarray(self.near_i, dtype=np.int64).reshape(-1)
        self.near_t = np.asarray(self.near_t, dtype=np.float64).reshape(-1)
        self.near_peak = np.asarray(self.near_peak, dtype=np.float64).reshape(-1)
        if not len(self.near_i) == len(self.near_t) == len(self.near_peak):
            raise HHCError(f"near misses: {len(self.near_i)} neuron indices, {len(self.near_t)} times and "
                           f"{len(self.near_peak)} peaks")

    def reordered(self, order) -> "Crossings":
        """The same crossings with the overshoots in the spikes' new order (spikes[order])."""
        return Crossings(self.threshold, self.overshoot[np.asarray(order)], self.near_i, self.near_t,
                         self.near_peak, self.recorded_below)


def ill_conditioned(spike_i, spike_t, crossings: Crossings, margin: float):
    """Threshold crossings within `margin` (V) of the threshold: the spikes whose peak went less than
    margin above it and the near misses whose peak stayed less than margin below it. Returns numpy
    arrays (neuron, time in s, distance = peak - threshold in V, signed), sorted by neuron then time.
    Near misses are known only down to threshold - crossings.recorded_below."""
    spike_i = np.asarray(spike_i, dtype=np.int64).reshape(-1)
    spike_t = np.asarray(spike_t, dtype=np.float64).reshape(-1)
    if len(crossings.overshoot) != len(spike_i):
        raise HHCError(f"{len(crossings.overshoot)} overshoots for {len(spike_i)} spikes")
    low = crossings.overshoot < margin
    near = crossings.threshold - crossings.near_peak < margin
    i = np.concatenate([spike_i[low], crossings.near_i[near]])
    t = np.concatenate([spike_t[low], crossings.near_t[near]])
    d = np.concatenate([crossings.overshoot[low], crossings.near_peak[near] - crossings.threshold])
    order = np.lexsort((t, i))
    return i[order], t[order], d[order]


@dataclass
class TraceGroup:
    """Samples of some variables for some neurons on one time axis."""

    t: np.ndarray                      # 1-D, seconds
    neurons: np.ndarray                # 1-D, int neuron indices (columns of every variable)
    variables: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (len(t), len(neurons))

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64).reshape(-1)
        self.neurons = np.asarray(self.neurons, dtype=np.int64).reshape(-1)
        checked = {}
        for name, values in self.variables.items():
            values = np.asarray(values, dtype=np.float64)
            if values.ndim == 1 and len(self.neurons) == 1:
                values = values.reshape(-1, 1)  # a single neuron's trace is a column
            expected = (len(self.t), len(self.neurons))
            if values.shape != expected:
                raise HHCError(
                    f"trace of {name!r} has shape {values.shape}, expected {expected} "
                    f"(time samples x recorded neurons)"
                )
            checked[name] = values
        self.variables = checked

    @classmethod
    def coerce(cls, group: "TraceGroup | Mapping[str, Any]") -> "TraceGroup":
        """Accept a TraceGroup or a dict with keys t, neurons, variables."""
        if isinstance(group, TraceGroup):
            return group
        try:
            return cls(t=group["t"], neurons=group["neurons"], variables=dict(group["variables"]))
        except KeyError as missing:
            raise HHCError(f"trace group is missing the key {missing}") from None


@dataclass
class RunResult:
    """What a backend's run() gives back: spikes (neuron index, time in s; ChunkedArrays when they
    are streamed from segments), trace groups and the backend's own meta (device, method,
    wall_time_s, simulator versions ...). hhc adds the run's settings to meta and writes it."""
    spike_i: np.ndarray | "ChunkedArray"
    spike_t: np.ndarray | "ChunkedArray"
    traces: list[TraceGroup] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    crossings: Crossings | None = None     # overshoots aligned with spike_i/spike_t, and near misses

    def __post_init__(self) -> None:
        if not isinstance(self.spike_i, ChunkedArray):
            self.spike_i = np.asarray(self.spike_i, dtype=np.int64).reshape(-1)
        if not isinstance(self.spike_t, ChunkedArray):
            self.spike_t = np.asarray(self.spike_t, dtype=np.float64).reshape(-1)
        if len(self.spike_i) != len(self.spike_t):
            raise HHCError(f"{len(self.spike_i)} spike indices but {len(self.spike_t)} spike times")
        if self.crossings is not None and len(self.crossings.overshoot) != len(self.spike_t):
            raise HHCError(f"{len(self.crossings.overshoot)} overshoots for {len(self.spike_t)} spikes")
        self.traces = [TraceGroup.coerce(g) for g in self.traces]

    @property
    def n_spikes(self) -> int:
        return len(self.spike_t)

    def write(self, out_dir: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> Path:
        """Write in hhc's one result format; `meta` is merged over the backend's own."""
        return write_results(out_dir, spike_i=self.spike_i, spike_t=self.spike_t, traces=self.traces,
                             meta={**(meta or {}), **self.meta} if meta is not None else self.meta,
                             crossings=self.crossings)


# ---------------------------------------------------------------------------------------------
# Writing


def _atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file next to path, then move it onto path."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


@dataclass
class ChunkedArray:
    """A 1-d array written piece by piece (a long run's spikes, segment after segment), so the
    whole of it is never in memory. `pieces()` yields the pieces in order."""
    dtype: np.dtype
    length: int
    pieces: Any

    def __len__(self):
        return self.length


def _write_npz(handle, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez, but taking the arrays as a dict: np.savez(f, **arrays) breaks on a variable
    named 'file' or 'allow_pickle', which collide with its own parameters. A ChunkedArray is
    streamed into its member (a standard .npy: np.load reads it like any other)."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", mode="w", force_zip64=True) as member:
                if isinstance(value, ChunkedArray):
                    dtype = np.dtype(value.dtype)
                    np.lib.format.write_array_header_2_0(
                        member, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                 "shape": (value.length,)})
                    written = 0
                    for piece in value.pieces():
                        piece = np.ascontiguousarray(piece, dtype=dtype).reshape(-1)
                        member.write(piece.tobytes())
                        written += len(piece)
                    if written != value.length:
                        raise HHCError(f"{key}: {written} values written, {value.length} announced")
                else:
                    np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)


def _trace_arrays(groups: list[TraceGroup]) -> dict[str, np.ndarray]:
    """Flatten trace groups into npz keys: group 0 plain, group k suffixed with __k."""
    arrays: dict[str, np.ndarray] = {}
    for k, group in enumerate(groups):
        suffix = "" if k == 0 else f"__{k}"
        for name in group.variables:
            if name in ("t", "neurons") or _GROUP_SUFFIX.match(name):
                # would collide with the time axis, the neuron list or another group's keys
                raise HHCError(f"cannot store a traced variable named {name!r}")
        arrays[f"t{suffix}"] = group.t
        arrays[f"neurons{suffix}"] = group.neurons
        for name, values in group.variables.items():
            arrays[f"{name}{suffix}"] = values
    return arrays


def write_results(
    out_dir: str | os.PathLike,
    *,
    spike_i: Iterable[int] | np.ndarray,
    spike_t: Iterable[float] | np.ndarray,
    traces: Iterable[TraceGroup | Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
    crossings: Crossings | None = None,
) -> Path:
    """Write spikes.npz, traces.npz and meta.json into out_dir (created if needed).

    spike_t is in seconds. crossings (optional): each spike's overshoot, aligned with spike_i/spike_t
    as given, and the near misses; meta's "crossings" entry follows it (set, or removed when None).
    Returns the directory as a Path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    if not isinstance(spike_i, ChunkedArray):
        spike_i = np.asarray(spike_i, dtype=np.int64).reshape(-1)
    if not isinstance(spike_t, ChunkedArray):
        spike_t = np.asarray(spike_t, dtype=np.float64).reshape(-1)
    if len(spike_i) != len(spike_t):
        raise HHCError(f"{len(spike_i)} spike indices but {len(spike_t)} spike times")
    spike_arrays = {"i": spike_i, "t": spike_t}
    meta = dict(meta or {})
    meta.pop("crossings", None)       # describes the arrays below: only when they are written
    if crossings is not None:
        if len(crossings.overshoot) != len(spike_t):
            raise HHCError(f"{len(crossings.overshoot)} overshoots for {len(spike_t)} spikes")
        spike_arrays.update(overshoot=crossings.overshoot, near_i=crossings.near_i, near_t=crossings.near_t,
                            near_peak=crossings.near_peak)
        meta["crossings"] = {"threshold": crossings.threshold, "recorded_below": crossings.recorded_below}
    groups = [TraceGroup.coerce(g) for g in traces]
    trace_arrays = _trace_arrays(groups)
    # Serialise meta before touching any file, so a bad meta leaves no partial result behind.
    try:
        meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    except TypeError as err:
        raise HHCError(f"run metadata is not JSON-serialisable: {err}") from None

    _atomic_write(out / SPIKES_FILE, lambda f: _write_npz(f, spike_arrays))
    _atomic_write(out / TRACES_FILE, lambda f: _write_npz(f, trace_arrays))
    _atomic_write(out / META_FILE, lambda f: f.write(meta_text.encode("utf-8")))
    return out


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Results:
    """A loaded result directory. Arrays are plain numpy; times are in seconds."""

    spike_i: np.ndarray
    spike_t: np.ndarray
    traces: list[TraceGroup]
    meta: dict[str, Any]
    path: Path | None = None
    crossings: Crossings | None = None     # overshoots aligned with spike_i/spike_t (as stored); None if not recorded

    def spike_counts(self, n_neurons: int | None = None) -> np.ndarray:
        """Spikes per neuron, indexed by neuron. n_neurons defaults to meta['n_neurons'] if
        present, else to the highest index that spiked plus one."""
        if n_neurons is None:
            n_neurons = self.meta.get("n_neurons")
        if n_neurons is None:
            n_neurons = int(self.spike_i.max()) + 1 if self.spike_i.size else 0
        return np.bincount(self.spike_i, minlength=int(n_neurons))

    def spike_trains(self) -> dict[int, np.ndarray]:
        """Sorted spike times (s) per neuron that spiked at least once."""
        order = np.lexsort((self.spike_t, self.spike_i))  # by neuron, then time
        i, t = self.spike_i[order], self.spike_t[order]
        neurons, starts = np.unique(i, return_index=True)
        return {int(n): chunk for n, chunk in zip(neurons, np.split(t, starts[1:]))}

    def label(self, fallback: str = "?") -> str:
        """A short name for the run: backend/device method dt (or the reference's solver)."""
        m = self.meta
        if m.get("backend") == "reference":
            return f"reference {m.get('solver', '')} rtol {m.get('rtol', '')}".strip()
        parts = [str(m.get("backend", "?"))]
        if m.get("device"):
            parts[0] += f"/{m['device']}"
        if m.get("method"):
            parts.append(str(m["method"]))
        if m.get("dt"):
            parts.append(f"dt {m['dt'] * 1e3:g} ms")
        label = " ".join(parts)
        return label if label != "?" else fallback

    def neurons(self) -> np.ndarray:
        """The neurons the run simulated (and recorded spikes of)."""
        m = self.meta
        for key in ("sample_neurons", "spike_neurons"):
            if m.get(key) is not None:
                return np.asarray(m[key], dtype=np.int64)
        if m.get("n_neurons") is not None:
            return np.arange(int(m["n_neurons"]), dtype=np.int64)
        return np.unique(self.spike_i)

    def duration(self) -> float:
        """Biological time simulated (s): meta's duration, else the last spike."""
        if self.meta.get("duration") is not None:
            return float(self.meta["duration"])
        return float(self.spike_t.max()) if self.spike_t.size else 0.0

    def phases(self) -> list[tuple[float, float, dict[str, float]]]:
        """(start, stop, inputs) of each protocol phase (meta.json 'protocol'), or [] if unknown."""
        phases = self.meta.get("protocol")
        if not isinstance(phases, list) or not phases:
            return []
        out, t = [], 0.0
        try:
            for p in phases:
                inputs = {k: float(v) for k, v in dict(p.get("inputs", {})).items()}
                out.append((t, t + float(p["duration"]), inputs))
                t += float(p["duration"])
        except (TypeError, KeyError, ValueError, AttributeError):
            return []
        return out

    def phase_starts(self) -> list[float]:
        """Start times of the protocol phases, or [] if unknown."""
        return [start for start, _, _ in self.phases()]

    def trains_for(self, neurons: np.ndarray) -> list[np.ndarray]:
        """Sorted spike times (s) of each of `neurons`, in their order (empty for a silent one)."""
        order = np.lexsort((self.spike_t, self.spike_i))
        i, t = self.spike_i[order], self.spike_t[order]
        starts = np.searchsorted(i, neurons, side="left")
        stops = np.searchsorted(i, neurons, side="right")
        return [t[s:e] for s, e in zip(starts, stops)]

    def trace(self, variable: str, group: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, neurons, values) of one variable in one trace group; values is (len(t), len(neurons))."""
        if not 0 <= group < len(self.traces):
            raise HHCError(f"no trace group {group}: the result has {len(self.traces)} trace group(s)")
        g = self.traces[group]
        if variable not in g.variables:
            known = ", ".join(sorted(g.variables)) or "none"
            raise HHCError(f"variable {variable!r} was not recorded in trace group {group} (recorded: {known})")
        return g.t, g.neurons, g.variables[variable]


def _read_traces(arrays: Mapping[str, np.ndarray], path: Path) -> list[TraceGroup]:
    """Regroup the flat npz keys by their __k suffix."""
    by_group: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        match = _GROUP_SUFFIX.match(key)
        name, k = (match["name"], int(match["group"])) if match else (key, 0)
        by_group.setdefault(k, {})[name] = value
    if by_group and sorted(by_group) != list(range(len(by_group))):
        raise HHCError(f"{path}: trace groups {sorted(by_group)} are not numbered 0, 1, 2, ...")
    groups = []
    for k in sorted(by_group):
        keys = by_group[k]
        if "t" not in keys or "neurons" not in keys:
            raise HHCError(f"{path}: trace group {k} has no time axis or neuron list")
        variables = {n: v for n, v in keys.items() if n not in ("t", "neurons")}
        groups.append(TraceGroup(t=keys["t"], neurons=keys["neurons"], variables=variables))
    return groups


def load_results(path: str | os.PathLike) -> Results:
    """Read a result directory written by write_results."""
    directory = Path(path)
    if not directory.is_dir():
        raise HHCError(f"no result directory at {directory}")
    missing = [name for name in (SPIKES_FILE, TRACES_FILE, META_FILE) if not (directory / name).is_file()]
    if missing:
        raise HHCError(
            f"{directory} is not a complete hhc result: missing {', '.join(missing)} "
            f"(was the run interrupted?)"
        )
    damaged = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)   # truncated, corrupt, missing
    try:
        with np.load(directory / SPIKES_FILE, allow_pickle=False) as spikes:
            spike_i = np.asarray(spikes["i"], dtype=np.int64)
            spike_t = np.asarray(spikes["t"], dtype=np.float64)
            crossing_arrays = ({key: np.asarray(spikes[key]) for key in _CROSSING_KEYS}
                               if all(key in spikes.files for key in _CROSSING_KEYS) else None)
        if spike_i.shape != spike_t.shape:
            raise ValueError(f"{len(spike_i)} neuron indices but {len(spike_t)} times")
        if crossing_arrays is not None:
            if crossing_arrays["overshoot"].shape != spike_t.shape:
                raise ValueError(f"{crossing_arrays['overshoot'].size} overshoots for {spike_t.size} spikes")
            if not crossing_arrays["near_i"].shape == crossing_arrays["near_t"].shape == crossing_arrays["near_peak"].shape:
                raise ValueError("near-miss arrays of different lengths")
    except damaged as err:
        raise HHCError(f"the spike file {directory / SPIKES_FILE} is damaged ({type(err).__name__}: {err})") from None
    try:
        with np.load(directory / TRACES_FILE, allow_pickle=False) as npz:
            trace_arrays = {key: npz[key] for key in npz.files}
    except damaged as err:
        raise HHCError(f"the trace file {directory / TRACES_FILE} is damaged ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise HHCError(f"the run description {directory / META_FILE} is damaged ({err})") from None
    crossings = None
    described = meta.get("crossings")
    if crossing_arrays is not None and isinstance(described, dict) and described.get("threshold") is not None:
        try:
            crossings = Crossings(float(described["threshold"]), crossing_arrays["overshoot"],
                                  crossing_arrays["near_i"], crossing_arrays["near_t"], crossing_arrays["near_peak"],
                                  float(described.get("recorded_below", NEAR_MISS_RECORDED)))
        except (TypeError, ValueError) as err:
            raise HHCError(f"the crossings in {directory / META_FILE} are damaged ({err})") from None
    return Results(
        spike_i=spike_i,
        spike_t=spike_t,
        traces=_read_traces(trace_arrays, directory / TRACES_FILE),
        meta=meta,
        path=directory,
        crossings=crossings,
    )
