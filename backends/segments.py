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
        manifest = json.loads(self.manifest_path.read_text())
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
        last = np.load(self.dir / segments[-1]["file"])
        state = {k[len("state/"):]: last[k] for k in last.files if k.startswith("state/")}
        return len(segments), state

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
                    yield np.load(self.dir / entry["file"])[key]
            return gen
        spike_i = ChunkedArray(np.dtype(np.int64), total, pieces("spike_i"))
        spike_t = ChunkedArray(np.dtype(np.float64), total, pieces("spike_t"))
        times = [[] for _ in trace_specs]
        values = [{var: [] for var in tr.variables} for tr in trace_specs]
        for entry in entries:
            data = np.load(self.dir / entry["file"])
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
