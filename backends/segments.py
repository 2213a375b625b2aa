"""Results written in segments while a long run proceeds, so a run killed at 49 s of 50 keeps
what it recorded up to its last segment, and `hhc run --resume DIR` continues from there.

Layout inside a run directory:

    segments/manifest.json    {"fingerprint": ..., "segments": [{"index", "start", "stop", "file"}, ...]}
    segments/0000.npz         spikes (absolute times), trace samples, and the final state of the segment

Each segment file is written atomically before the manifest names it, so the manifest never
points at a partial file. When the run finishes, the segments are merged into hhc's one result
format (spikes.npz, traces.npz) and removed.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hhc.compiler.errors import HHCError

from .results import ChunkedArray, TraceGroup

SEGMENT_DIR = "segments"
MANIFEST = "manifest.json"


@dataclass
class Segment:
    index: int
    start: float
    stop: float
    spike_i: np.ndarray
    spike_t: np.ndarray                 # absolute times, s
    traces: list                        # per trace group: {"t": array, "variables": {var: (time, neuron) array}}
    state: dict                         # state variable → array at `stop` (what the next segment starts from)


class SegmentStore:
    def __init__(self, out_dir: Path, fingerprint: str):
        self.dir = Path(out_dir) / SEGMENT_DIR
        self.fingerprint = fingerprint
        self.manifest_path = self.dir / MANIFEST

    def _manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {"fingerprint": self.fingerprint, "segments": []}
        try:
            manifest = json.loads(self.manifest_path.read_text())
            if not isinstance(manifest, dict) or not isinstance(manifest.get("segments"), list):
                raise ValueError("not a segment manifest")
        except (OSError, ValueError) as exc:
            raise HHCError(f"the segment manifest {self.manifest_path} is damaged ({exc}); the run cannot be "
                           f"resumed from it", hint="start the run again in a new --out folder") from None
        if manifest.get("fingerprint") != self.fingerprint:
            raise HHCError(f"{self.dir} holds segments of a different run (another model text, experiment, duration, dt or "
                           f"method); resume with the same settings, or write to a new --out directory")
        return manifest

    def done(self) -> list[dict]:
        return self._manifest()["segments"]

    def resume_point(self):
        """(number of finished segments, the last one's final state or None)."""
        segments = self.done()
        if not segments:
            return 0, None
        self.check()
        last = self._load(segments[-1])
        state = {k[len("state/"):]: last[k] for k in last.files if k.startswith("state/")}
        return len(segments), state

    def _load(self, entry: dict) -> dict:
        path = self.dir / str(entry.get("file", ""))
        try:
            with np.load(path, allow_pickle=False) as data:
                return _Loaded({k: data[k] for k in data.files})
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise HHCError(f"the segment file {path} is missing or damaged ({type(exc).__name__}: {exc})",
                           hint="start the run again in a new --out folder") from None

    def check(self) -> None:
        """Every segment the manifest names is there and readable, before anything is simulated."""
        for entry in self.done():
            data = self._load(entry)
            if "spike_i" not in data.files or len(data["spike_t"]) != int(entry.get("spikes", -1)):
                raise HHCError(f"the segment file {self.dir / entry['file']} does not match the manifest "
                               f"({len(data['spike_t']) if 'spike_t' in data.files else 'no'} spikes, manifest says "
                               f"{entry.get('spikes')})", hint="start the run again in a new --out folder")

    def write(self, seg: Segment):
        self.dir.mkdir(parents=True, exist_ok=True)
        arrays = {"spike_i": np.asarray(seg.spike_i, np.int64), "spike_t": np.asarray(seg.spike_t, float)}
        for g, group in enumerate(seg.traces):
            arrays[f"trace{g}/t"] = np.asarray(group["t"], float)
            for var, values in group["variables"].items():
                arrays[f"trace{g}/{var}"] = np.asarray(values, float)
        for name, values in seg.state.items():
            arrays[f"state/{name}"] = np.asarray(values)
        name = f"{seg.index:05d}.npz"
        tmp = self.dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / name)
        manifest = self._manifest()
        manifest["segments"] = [s for s in manifest["segments"] if s["index"] < seg.index]
        manifest["segments"].append({"index": seg.index, "start": seg.start, "stop": seg.stop, "file": name,
                                     "spikes": int(len(seg.spike_t))})
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, self.manifest_path)

    def merge(self, trace_specs) -> tuple:
        """All segments in one piece: (spike_i, spike_t, trace groups).
        Spikes come as ChunkedArrays, streamed segment by segment into spikes.npz (a 50 s run of
        50,000 neurons need not hold every spike in memory); traces are concatenated.
        trace_specs: the experiment's Traces (neurons, variables) in order."""
        entries = self.done()
        total = sum(int(e["spikes"]) for e in entries)

        def pieces(key):
            def gen():
                for entry in entries:
                    yield self._load(entry)[key]
            return gen
        spike_i = ChunkedArray(np.dtype(np.int64), total, pieces("spike_i"))
        spike_t = ChunkedArray(np.dtype(np.float64), total, pieces("spike_t"))
        times = [[] for _ in trace_specs]
        values = [{var: [] for var in tr.variables} for tr in trace_specs]
        for entry in entries:
            data = self._load(entry)
            for g, tr in enumerate(trace_specs):
                if f"trace{g}/t" in data.files:
                    times[g].append(data[f"trace{g}/t"])
                    for var in tr.variables:
                        values[g][var].append(data[f"trace{g}/{var}"])
        groups = []
        for g, tr in enumerate(trace_specs):
            n = len(tr.neurons)
            t = np.concatenate(times[g]) if times[g] else np.zeros(0)
            groups.append(TraceGroup(t, np.asarray(tr.neurons),
                                     {var: (np.concatenate(values[g][var]) if values[g][var] else np.zeros((0, n)))
                                      for var in tr.variables}))
        return spike_i, spike_t, groups


class _Loaded(dict):
    """A segment file's arrays, read whole (np.load is lazy: a damaged member would fail later)."""

    @property
    def files(self):
        return list(self)
