"""method/dt = "auto" runs its accuracy search in a process of its own, so the search does not
inflate the run's peak memory: its peak is measured there and kept in meta.json, its messages and
errors reach the user as if it had run in hhc's process, and Ctrl-C stops it."""
import json
import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import pytest

from builders import trace
from hhc import api
from hhc.backends.base import UnsupportedError
from hhc.compiler.errors import HHCError, Interrupted, SourceLocation


def _auto(make_experiment, name="auto", **fields):
    """20 Kenyon cells, 20 ms at rest then 80 ms at 18 pA, method and dt "auto", brian2 runtime."""
    return make_experiment(name, size=20, dt="auto", method="auto", initial={"v": "uniform(-70 mV, -60 mV)"},
                           protocol=[("20 ms", "0 pA"), ("80 ms", "18 pA")], **fields)


def test_errors_cross_the_process_boundary_unchanged():
    """What the search process sends back: the same class, message, location, hint and exit code,
    also for subclasses whose __init__ is not (message,)."""
    where = SourceLocation("exp.toml", 3, 5, "tolerance = 1")
    for exc in (HHCError("no candidate", where, "loosen it"), Interrupted("interrupted"),
                UnsupportedError("nest", "method 'rk45'", where, "use rk4")):
        back = pickle.loads(api._dumps(("error", exc)))[1]
        assert type(back) is type(exc) and str(back) == str(exc) and back.exit_code == exc.exit_code
        assert (back.message, back.location, back.hint) == (exc.message, exc.location, exc.hint)
    assert back.target == "nest" and back.construct == "method 'rk45'"


def test_an_error_in_the_search_process_is_a_clean_error(make_experiment, cli):
    """Raised in the search's own process before any trial (no dt divides the trace interval)."""
    exp = _auto(make_experiment, traces=[trace(["v"], [0], interval="0.007 ms")])
    res = cli("run", exp, "--out", exp.parent / "run")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "found no candidate dt" in res.stderr and "hint:" in res.stderr


@pytest.mark.slow
def test_the_search_peak_is_measured_in_its_own_process(make_experiment, cli):
    exp = _auto(make_experiment)
    res = cli("run", exp, "--out", exp.parent / "run")
    assert res.returncode == 0, res.stderr
    meta = json.loads((exp.parent / "run" / "meta.json").read_text())
    search = meta["auto_choice"]["search_peak_memory_bytes"]
    assert search > 50e6                                 # a Python process that ran Brian2
    assert meta["peak_memory_bytes"]["accuracy_search"] == search
    assert "accuracy search" in meta["peak_memory_bytes"]["note"]
    out = res.stdout + res.stderr
    # the search's messages, printed as they came and before the plan, which names its peak
    assert out.index("auto: choosing") < out.index("recording plan:")
    assert f"accuracy search: peak {search / 1e6:.1f} MB in its own process, before the run" in out
    assert "of hhc's own process" in out


@pytest.mark.slow
def test_a_tolerance_nothing_meets_is_a_clean_error(make_experiment, cli):
    exp = _auto(make_experiment, tolerance={"first_spike": "0.000001 ms"})
    res = cli("run", exp, "--out", exp.parent / "run")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "no candidate method x dt met the tolerance" in res.stderr
    assert "hint: set method and dt yourself" in res.stderr
    assert not (exp.parent / "run" / "meta.json").exists()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_ctrl_c_during_the_search_stops_it(make_experiment, cli):
    """SIGINT to hhc (what Ctrl-C sends it) while the search runs: the search's process group (it
    and the compilers it started) is stopped and hhc exits as an interrupted run does."""
    exp = _auto(make_experiment)
    proc = cli.popen("run", exp, "--out", exp.parent / "run", stderr=subprocess.PIPE, text=True,
                     env={"HHC_CACHE": exp.parent / "cache"})     # no cached advice: a search runs
    seen = ""
    while "auto: choosing" not in seen:                 # the search is under way
        line = proc.stderr.readline()
        assert line, f"hhc ended before the search started: {seen}"
        seen += line
    searchers = _children(proc.pid)
    assert searchers, "no search process"
    proc.send_signal(signal.SIGINT)
    err = seen + proc.stderr.read()
    assert proc.wait(60) == 130, err
    assert "interrupted during the accuracy search" in err and "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while any(_group_alive(p) for p in searchers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_group_alive(p) for p in searchers)
    assert not (exp.parent / "run" / "meta.json").exists()
