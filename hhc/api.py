"""What the command line does, as functions: compile a model to a target, run an experiment."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import os
import pickle
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from hhc import advise, backends, planner
from hhc.compiler.version import __version__
from hhc.backends import EmitOptions
from hhc.compiler import ir, load_model, network
from hhc.compiler.errors import HHCError, Interrupted
from hhc.compiler.experiment import PROVISIONAL_DT, Experiment, RunOverrides, load_experiment, resolve
from hhc.progress import ProgressBar
from hhc.backends.results import META_FILE, SPIKES_FILE, TRACES_FILE
from hhc.backends.segments import SEGMENT_DIR

console = Console(stderr=True, highlight=False, soft_wrap=True)


def compile_model(model, target: str = "brian2", cell: str | None = None, device: str | None = None,
                  out_dir=None, experiment=None, build_only: bool = False) -> dict[str, str]:
    """Generate a target's files for one cell of a model (an ir.Model or a .chan path).
    Returns {filename: text}; with out_dir, also writes them there. With an experiment (path or
    Experiment), targets that describe simulations (LEMS) emit that too."""
    if not isinstance(model, ir.Model):
        model = load_model(model)
    chosen = model.cell(cell)
    if experiment is not None:
        exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
        if exp.temperature is not None:       # the experiment's temperature replaces the cell's
            chosen = dataclasses.replace(exp, cell_name=chosen.name).cell_of(model)
        experiment = resolve(exp, chosen)
    options = EmitOptions(device=device, experiment=experiment,
                          out_dir=Path(out_dir) if out_dir is not None else None, build_only=build_only)
    generator = backends.get(target)
    generator.check_cell(chosen)
    files = generator.emit(chosen, options)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text)
    return files


def recording_plan(exp: Experiment, cell=None) -> planner.RecordingPlan:
    spike_neurons = (exp.size if exp.record_spikes is True else
                     0 if exp.record_spikes is None else len(exp.record_spikes))
    groups = [planner.TracePlan(list(t.variables), list(t.neurons), t.interval,
                                list(t.windows) if t.windows is not None else None) for t in exp.traces]
    memory = {"baseline": 0, "state": 0, "segment": None}
    if cell is not None:
        memory = backends.get(exp.backend.name).memory_model(exp, len(cell.states))
    return planner.RecordingPlan(exp.size, exp.duration, exp.dt, spike_neurons, groups,
                                 baseline_bytes=memory["baseline"], state_bytes=memory["state"],
                                 segment=memory["segment"],
                                 search_peak_bytes=(exp.auto_choice or {}).get("search_peak_memory_bytes"))


def network_meta(net) -> dict:
    """What results of a network run say about it: each population's global index range (spikes are
    numbered population after population), the sources, the connections drawn and their digest."""
    offsets = net.offsets()
    return {"n_neurons": sum(net.sizes[p] for p in net.populations),
            "populations": {p: {"offset": offsets[p], "size": net.sizes[p], "cell": net.cells[p].name}
                            for p in net.populations},
            "sources": {s.name: {"kind": s.kind, "size": s.size, "spikes": int(len(net.source_spikes[s.name][1]))}
                        for s in net.spec.sources},
            "projections": [{"source": pr.source, "target": pr.target, "synapse": pr.synapse, "rule": pr.rule,
                             "connections": int(len(e))} for pr, e in zip(net.spec.projections, net.edges)],
            "network_digest": network.edge_digest(net)}


def default_run_dir(exp: Experiment) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    device = exp.backend.device or "default"
    return Path("runs") / f"{Path(exp.path).stem}-{exp.backend.name}-{device}-{stamp}"


def prepare(experiment, overrides: RunOverrides | None = None, choose_auto=True, say=None):
    """Load and check everything a run needs, before any simulation: (experiment, cell, estimate).
    With choose_auto, method/dt = "auto" are resolved here by the accuracy advisor (on backends that
    let it choose); otherwise dt = "auto" stands at PROVISIONAL_DT."""
    overrides = overrides or RunOverrides()
    if not isinstance(experiment, (Experiment, str, Path)):
        raise HHCError(f"an experiment is a path to a TOML file or an Experiment, not {type(experiment).__name__} "
                       f"{experiment!r}")
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    exp = _fit_to_cores(exp.with_overrides(overrides), overrides)
    cut = overrides.duration_s
    cell = exp.cell_of(load_model(exp.model_file))
    exp = resolve(exp, cell)
    # "auto" is chosen for the experiment as written, not for a --duration cut of it
    if choose_auto:
        exp = choose_auto_settings(exp, cell, say or (lambda m: console.print(escape(m))))
    elif exp.dt_auto:
        exp = exp.with_dt(PROVISIONAL_DT)
    if cut is not None:
        exp = exp.cut_to(cut)
    grid_warnings = tuple(exp.check_time_grid())
    if grid_warnings:
        exp = dataclasses.replace(exp, warnings=exp.warnings + grid_warnings)
    estimate = planner.estimate(recording_plan(exp, cell))
    return exp, cell, estimate


RUN_SETTINGS = "run.json"


def _own_peak_rss_bytes() -> int:
    """This process's own peak resident memory: VmHWM, the high-water mark of its memory since it
    started its program. Not ru_maxrss: Linux counts in that the size of the parent's process when this
    one was started (the copy before exec), so a run started from a large process (a test suite, the
    search started from hhc) would report at least its parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024          # Linux: kB


def _peak_rss_bytes(auto_choice: dict | None = None) -> dict:
    """Peak resident memory: of hhc's own process, which holds the run (what the planner's estimate
    counts); the largest ru_maxrss of its finished children; and, when method/dt = "auto" ran the
    advisor, that search's own process (before the run), so that no one reads it in largest_child."""
    peaks = {"hhc": _own_peak_rss_bytes(),
             "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}
    search = (auto_choice or {}).get("search_peak_memory_bytes")
    if search is not None:
        peaks["accuracy_search"] = search
    peaks["note"] = (
        "hhc: hhc's own process, which holds the run (memory_estimate_bytes estimates it); "
        + ("accuracy_search: the method/dt = \"auto\" search, in its own process before the run; " if search
           is not None else "")
        + "largest_child: the largest ru_maxrss of the processes hhc started (compilers, the simulation binary, "
        "an MPI launcher" + (", the accuracy search" if search is not None else "") + "), in which Linux "
        "also counts hhc's own size when each was started: at least hhc's peak before its last child, not the "
        "size of the simulation")
    return peaks


def _resume_settings(run_dir: Path) -> tuple[str, RunOverrides]:
    path = run_dir / RUN_SETTINGS
    if not path.exists():
        raise HHCError(f"cannot resume {run_dir}: it has no {RUN_SETTINGS} (not a run directory started by "
                       f"`hhc run` with an experiment file)")
    if (run_dir / "meta.json").exists() and not (run_dir / SEGMENT_DIR).exists():
        raise HHCError(f"{run_dir} holds a finished run; nothing to resume")
    settings = json.loads(path.read_text())
    if not Path(settings["experiment"]).exists():
        raise HHCError(f"cannot resume {run_dir}: its experiment file {settings['experiment']} is gone")
    return settings["experiment"], RunOverrides.from_json(settings)


class _InterruptWatch:
    """Notes a SIGINT while a backend runs, so a simulator child killed by the same Ctrl-C (whose
    failure the backend reports first) is read as an interruption, not as a failed simulation."""

    def __init__(self):
        self.interrupted = False
        self._previous = None

    def _handler(self, signum, frame):
        self.interrupted = True
        raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# OpenMP cannot start absurd thread counts ("Project run failed"); more than this many per core is refused
MAX_THREADS_PER_CORE = 4


def _fit_to_cores(exp: Experiment, overrides: RunOverrides) -> Experiment:
    """MPI processes x threads against this machine's cores (runs started by a --launcher run elsewhere):
    threads written in the experiment file are reduced so that the processes do not oversubscribe the
    cores; threads given for this run are kept, with a warning."""
    b = exp.backend
    if b.launcher:
        return exp
    cores = os.cpu_count() or 1
    procs, threads = b.mpi or 1, b.threads or 1
    if threads > MAX_THREADS_PER_CORE * cores:
        raise HHCError(f"{threads} threads on a machine with {cores} cores (at most {MAX_THREADS_PER_CORE * cores} "
                       f"are allowed)", hint=f"use --threads {cores}, or `hhc tune` to measure")
    if procs * threads <= cores:
        return exp
    if procs > 1 and overrides.threads is None:
        fitted = max(1, cores // procs)
        note = (f"{procs} MPI processes x {threads} threads (from the experiment file) would oversubscribe this "
                f"machine's {cores} cores: running {fitted} thread(s) per process (give --threads to insist)")
        return dataclasses.replace(exp, backend=dataclasses.replace(b, threads=fitted), warnings=exp.warnings + (note,))
    note = (f"{procs * threads} threads in all ({procs} process(es) x {threads}) on {cores} cores: oversubscribed "
            f"cores make the run slower, not faster")
    return dataclasses.replace(exp, warnings=exp.warnings + (note,))


def _claim(out_dir: Path, overwrite: bool) -> None:
    """A new run may write into out_dir: it does not exist, is empty, or (overwrite) held hhc's results,
    which are removed first."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise HHCError(f"the result folder {out_dir} is a file")
    if not any(out_dir.iterdir()):
        return
    ours = [out_dir / n for n in (SPIKES_FILE, TRACES_FILE, META_FILE, RUN_SETTINGS, SEGMENT_DIR)]
    if not overwrite:
        what = ", ".join(p.name for p in ours if p.exists()) or "other files"
        raise HHCError(f"the result folder {out_dir} is not empty (it holds {what})",
                       hint="choose another --out, or pass --overwrite to replace the run there")
    for path in ours:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def choose_auto_settings(exp: Experiment, cell, say) -> Experiment:
    """method/dt = "auto": the advisor's cheapest passing choice for backends that name a device
    to advise on (Capabilities.advise_device); other backends pick their own method for "auto".
    The advisor runs in a process of its own (_search_in_own_process), so its reference and sample
    runs do not grow hhc's process, which then holds the run; its peak is kept in auto_choice."""
    target_cls = backends.backend_class(exp.backend.name)
    if target_cls.capabilities.advise_device is None:
        if exp.dt_auto:
            say(f"auto: backend {exp.backend.name} chooses its own integrator; dt = \"auto\" stands at "
                f"{PROVISIONAL_DT * 1e3:g} ms there (set [simulation] dt to change it)")
            return exp.with_dt(PROVISIONAL_DT)
        return exp
    if exp.method != "auto" and not exp.dt_auto:
        return exp
    chosen, info = _search_in_own_process(exp, cell, exp.backend.name, target_cls.capabilities.advise_device, say)
    return dataclasses.replace(chosen, auto_choice=info)


# ---- the accuracy search in a process of its own ------------------------------------------------
# A fresh interpreter (not multiprocessing: its "spawn" re-runs the caller's main script, which a
# user's script without `if __name__ == "__main__"` cannot survive) in a process group of its own: a
# Ctrl-C reaches hhc's process alone, which then stops the group, the compilers the search started
# with it (also when the SIGINT was sent to hhc's process only). One socket carries pickles both ways: the
# arguments in; the advisor's messages (printed by this process as they come), then the outcome and
# the child's peak memory, out.

_SEARCH_CHILD = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
                 "from hhc.api import _search_child; _search_child(int(sys.argv[1]))")


_SEARCH_INTERRUPTED = ("interrupted during the accuracy search for method/dt = \"auto\" (before the run; nothing "
                       "was simulated)")


class _RemoteTraceback(Exception):
    """The search process's traceback, as the cause of a bug (not an HHCError) that escaped it."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n(in the accuracy search's own process)\n" + self.text


def _rebuild_error(cls, args, state):
    """An HHCError (or subclass) as it was raised: its class, args and attributes, whatever the
    class's __init__ takes (UnsupportedError's is not (message,), which plain pickling assumes)."""
    exc = cls.__new__(cls)
    BaseException.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, HHCError):
            return _rebuild_error, (type(obj), obj.args, dict(obj.__dict__))
        return NotImplemented


def _dumps(obj) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _portable(exc: BaseException) -> BaseException:
    """exc if it survives a pickle round trip, else a RuntimeError naming it."""
    try:
        pickle.loads(_dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _search_child(fd: int) -> None:
    """The search process: advise.choose on the pickled (experiment, cell, backend, device) read from
    the socket `fd`; sends ("say", message)..., then ("done", (experiment, chosen), usage) or
    ("error", exception, traceback text, usage), usage being its peak resident memory."""
    # in a process group of its own, so not the terminal's foreground one: writing there (Brian2's
    # warnings, a compiler's) must not stop it where the terminal has `stty tostop`
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        exp, cell, backend_name, device = pickle.loads(conn.recv_bytes())
        outcome = ("done", advise.choose(exp, cell, backend_name, device,
                                         say=lambda m: conn.send_bytes(_dumps(("say", str(m))))))
    except BaseException as exc:       # reaches hhc's process and is raised there
        outcome = ("error", _portable(exc), traceback.format_exc())
    usage = {"self": _own_peak_rss_bytes()}
    try:
        conn.send_bytes(_dumps(outcome + (usage,)))
        conn.close()
    except OSError:                    # hhc's process is gone: nobody to tell
        os._exit(1)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the search process and everything it started (its process group), if still running."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _search_in_own_process(exp: Experiment, cell, backend_name: str, device, say):
    """advise.choose(exp, cell, backend_name, device) in a process of its own: (experiment, chosen),
    chosen with "search_peak_memory_bytes" (that process's own peak, _own_peak_rss_bytes). Its
    messages go to `say` as they come; an HHCError it raises is raised here as it was; Ctrl-C stops it
    and raises Interrupted."""
    ours, theirs = socket.socketpair()
    conn = Connection(ours.detach())
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
    proc = None
    try:
        try:
            proc = subprocess.Popen([sys.executable, "-c", _SEARCH_CHILD, str(theirs.fileno()), json.dumps(sys.path)],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, **group)
        finally:
            theirs.close()
        try:
            conn.send_bytes(_dumps((exp, cell, backend_name, device)))
        except OSError:                 # it died on the way up; EOF below says how
            pass
        while True:
            try:
                kind, *payload = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                code = proc.wait()
                how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                raise HHCError(f"the accuracy search for method/dt = \"auto\" (its own process) ended without "
                               f"an answer ({how})",
                               hint=("killed: out of memory? set method and dt in [simulation] instead of \"auto\""
                                     if code == -signal.SIGKILL else "its own messages, above, say why")) from None
            if kind == "say":
                say(payload[0])
                continue
            break
        proc.wait()
    except KeyboardInterrupt:
        raise Interrupted(_SEARCH_INTERRUPTED) from None
    finally:
        conn.close()
        if proc is not None:
            _stop(proc)
    if kind == "error":
        exc, text, _ = payload
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(_SEARCH_INTERRUPTED)
        if isinstance(exc, HHCError):
            raise exc
        raise exc from _RemoteTraceback(text)
    (chosen_exp, chosen), usage = payload
    return chosen_exp, {**chosen, "search_peak_memory_bytes": usage["self"]}


def run_experiment(experiment, out=None, backend=None, device=None, threads=None, duration=None,
                   quiet: bool = False, mpi=None, launcher=None, precision=None, choose_auto=True,
                   resume=None, overrides: RunOverrides | None = None, overwrite: bool = False) -> Path:
    """Run an experiment (a TOML path or an Experiment) and write its results; returns the run dir.
    The run's changes to the experiment come as keywords (backend ... precision) or as one
    RunOverrides. choose_auto=False leaves method = "auto" to the backend's own default (no advisor
    run). resume=DIR continues an interrupted run in DIR from its last written segment, with the
    settings it was started with. An existing result folder is refused unless overwrite=True, which
    first removes its results, so a folder never mixes two runs."""
    say = (lambda *a: None) if quiet else console.print
    if overrides is None:
        overrides = RunOverrides(backend=backend, device=device, threads=threads, duration=duration, mpi=mpi,
                                 launcher=launcher, precision=precision)
    if resume is not None:
        experiment, overrides = _resume_settings(Path(resume))
        out = resume
        if not (Path(resume) / SEGMENT_DIR / "manifest.json").exists():
            say(escape(f"note: {resume} has no written segments (only cpp_standalone writes them, every "
                       f"[record] segment of biological time): the run starts again from t = 0"))
    exp, cell, estimate = prepare(experiment, overrides, choose_auto=choose_auto,
                                  say=None if not quiet else (lambda m: None))
    out_dir = Path(out) if out is not None else default_run_dir(exp)
    say(f"[bold]{cell.name}[/] × {exp.size:,} neurons, {exp.duration:g} s biological time, dt "
        f"{exp.dt * 1e3:g} ms, method {exp.method}, backend {exp.backend.name}"
        f"{'/' + exp.backend.device if exp.backend.device else ''}"
        f"{f', {exp.backend.threads} threads' if exp.backend.threads else ''}"
        f"{f', {exp.backend.mpi} MPI processes' if exp.backend.mpi else ''}")
    if exp.drawn is not None:
        for line in network.describe(exp.drawn):
            say(escape(line))
    say("recording plan: " + escape("; ".join(estimate.lines())))
    planner.check_fits(estimate, out_dir=out_dir.parent if out_dir.parent.exists() else ".")
    for w in exp.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")

    target = backends.get(exp.backend.name)
    target.check_cell(cell)
    target.check_run(exp)
    reason = target.unavailable_reason()
    if reason:
        raise HHCError(f"backend {exp.backend.name} cannot run here: {reason}")
    if resume is None:
        _claim(out_dir, overwrite)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HHCError(f"cannot create the result folder {out_dir}: {exc.strerror}") from None
    if resume is None:
        shutil.rmtree(out_dir / SEGMENT_DIR, ignore_errors=True)     # an older run's segments are not ours
        if isinstance(experiment, (str, Path)):
            (out_dir / RUN_SETTINGS).write_text(json.dumps({
                "experiment": str(Path(experiment).resolve()), **overrides.to_json()}, indent=1) + "\n")
    started = time.perf_counter()
    with ProgressBar(exp.duration, "simulating") as bar, _InterruptWatch() as watch:
        try:
            result = target.run(cell, exp, out_dir, progress=bar.update)
        except BaseException as exc:
            if isinstance(exc, HHCError) and not isinstance(exc, Interrupted) and any(
                    w.startswith("initial v of") for w in exp.warnings):
                # a blow-up from an absurd start is the start's fault, not the method's or the dt's
                raise HHCError(exc.message, exc.location,
                               "some neurons start outside the physiological range (the warning above): check "
                               "[initial] v first") from None
            if isinstance(exc, KeyboardInterrupt) or watch.interrupted:
                resumable = (out_dir / RUN_SETTINGS).exists()
                raise Interrupted("interrupted" + (f"; resume with `hhc run --resume {out_dir}`" if resumable else
                                                   f"; {out_dir} holds no complete result")) from None
            raise
    total_wall = time.perf_counter() - started
    meta = {
        "hhc_version": __version__, "backend": exp.backend.name, "device": exp.backend.device or "runtime",
        "threads": exp.backend.threads, "mpi_processes": exp.backend.mpi, "experiment": str(Path(exp.path).resolve()),
        "model": str(exp.model_file), "model_digest": exp.model_digest, "cell": cell.name, "n_neurons": exp.size,
        "initial": exp.initial, "dt": exp.dt,
        "method": exp.method, "duration": exp.duration, "seed": exp.seed, "precision": exp.precision,
        "auto_choice": exp.auto_choice,
        "protocol": [dataclasses.asdict(p) for p in exp.protocol],
        "recording_estimate_bytes": {"memory": estimate.recording_memory_bytes, "disk": estimate.disk_bytes},
        "memory_estimate_bytes": estimate.memory_bytes,     # the planner's peak: process + state + recordings
        "warnings": list(exp.warnings), "total_wall_time_s": total_wall,
        # which neurons' spikes were recorded, so a silent neuron is not mistaken for an unrecorded one
        # (None: all of n_neurons)
        "spike_neurons": (None if exp.record_spikes is True else
                          [] if exp.record_spikes is None else list(exp.record_spikes)),
        "python": platform.python_version(), "machine": platform.machine(),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    if exp.drawn is not None:
        meta.update(network_meta(exp.drawn))
    meta.update(result.meta)
    meta["peak_memory_bytes"] = _peak_rss_bytes(exp.auto_choice)
    result.write(out_dir, meta)
    shutil.rmtree(out_dir / SEGMENT_DIR, ignore_errors=True)          # merged into the results now
    n_spikes = result.n_spikes
    wall = meta.get("wall_time_s", total_wall)
    say(f"done: {n_spikes:,} spikes; simulation wall time {wall:.2f} s "
        f"({wall / max(exp.duration, 1e-12):.3g} s per biological second); results in {escape(str(out_dir))}")
    return out_dir
