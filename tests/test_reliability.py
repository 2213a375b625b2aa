"""Reliability: hhc gives the right answer or a clear, located, one-line error — never a wrong answer,
mixed data or a traceback.

* `hhc compare` disagrees when the runs differ (in their spikes or in their experiments);
* a run never mixes two runs' data: --resume refuses segments of another model, a result folder
  is replaced only with --overwrite, a failed run leaves no older results beside its run.json;
* mistakes in .chan and experiment files, damaged result files and bad API arguments are
  HHCErrors (exit status 1, `file:line:col: error: ...` where there is a place to point at);
* impossible values hhc used to accept (negative tau, inf > 1, gate powers beyond reason ...) are
  refused by `hhc check`;
* Ctrl-C stops a run with exit status 130, and the run resumes to exactly the uninterrupted result.

Most checks call the `hhc` command's main() in this process (cli.here: the same code path as the
installed command, without a new interpreter per case); the runs that are interrupted, and the
checks that need a memory limit, use the real command in a child process (cli(...), cli.popen).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import hhc
from hhc.api import prepare
from hhc.backends.results import load_results, write_results
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import RunOverrides

from builders import experiment_toml, trace, write_experiment
from paths import KENYON, MODELS

LOCATED = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+): error: ", re.M)


# ---- helpers ------------------------------------------------------------------------------------

def assert_clean_error(code, err, *needles, located: str | None = None):
    """Exit status 1, no traceback, every needle in the message; located: the file the error must
    point into as `file:line:col: error:`."""
    assert code == 1, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in err.lower(), f"{needle!r} not in:\n{err}"
    if located is not None:
        m = LOCATED.search(err)
        assert m, f"no file:line:col in:\n{err}"
        assert Path(m["file"]).name == Path(located).name, err
        assert int(m["line"]) >= 1 and int(m["col"]) >= 1
    return err


# A cell with one channel of constants only (exp(1), log(2)), a leak, an input and a threshold: it
# runs in a few seconds on Brian2's runtime device. Every in-process run below uses this one model,
# so Brian2 compiles its code objects once.
TINY = """\
channel Z {
    gbar = 6 nS * exp(1)
    k = log(2)
    current = 0 pA
}

cell Tiny {
    C = 4 pF
    channels Z
    leak { g = 1 nS; E = -65 mV }
    input Iapp : current
    initial { v = -65 mV }
    spike when v rises above -20 mV
}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.chan"
    path.write_text(TINY)
    return path


@pytest.fixture
def tiny_experiment(tmp_path, tiny):
    """make(name="exp", **fields): an experiment of the tiny cell, 2 ms at 100 pA with euler."""
    def make(name="exp", **fields):
        fields = {"model": tiny, "method": "euler", "protocol": [("2 ms", "100 pA")], **fields}
        return write_experiment(tmp_path / f"{name}.toml", **fields)
    return make


def line_of(text: str, fragment: str) -> str:
    """The (1-based) number of the first line of text holding fragment, as the error prints it."""
    return str(next(k for k, line in enumerate(text.splitlines(), 1) if fragment in line))


def chan(tmp_path, text, name="model.chan") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def gate_channel(body: str, power="1") -> str:
    return ("channel K {\n    gbar = 6 nS\n    E = -81 mV\n"
            f"    gate m ^ {power} {{\n        {body}\n    }}\n}}\n")


CHANNEL_K = gate_channel("inf = 0.5; tau = 1 ms")


def cell_text(body: str) -> str:
    return CHANNEL_K + "\ncell A {\n    C = 4 pF\n" + body + "\n}\n"


# ---- 1. hhc compare disagrees when the runs differ ----------------------------------------------

N = 20
REST, DRIVE = 0.05, 0.15


def protocol(current=18e-12, total=REST + DRIVE):
    return [{"duration": REST, "inputs": {"Iapp": 0.0}}, {"duration": total - REST, "inputs": {"Iapp": current}}]


def regular_spikes(n=N, total=REST + DRIVE, shift=None):
    """Every neuron fires every 10 ms from 60 ms on (regular, not marginal); shift=(neuron, k, dt)
    moves that neuron's k-th spike by dt."""
    i, t = [], []
    for neuron in range(n):
        times = np.arange(0.06, total - 0.005, 0.01) + 1e-4 * neuron
        if shift is not None and shift[0] == neuron:
            times[shift[1]] += shift[2]
        i += [neuron] * len(times)
        t += list(times)
    return np.array(i), np.array(t)


def result_dir(path, spikes=(np.zeros(0, int), np.zeros(0)), n=N, total=REST + DRIVE, phases=None, **meta):
    write_results(path, spike_i=spikes[0], spike_t=spikes[1], traces=[],
                  meta={"n_neurons": n, "duration": total, "protocol": phases or protocol(total=total),
                        "cell": "KenyonCell", "backend": "brian2", "device": "runtime", "method": "rk4",
                        "dt": 1e-5, **meta})
    return path


@pytest.fixture
def compare(cli, tmp_path):
    """compare(a, b, *options) -> (exit status, stdout, stderr, summary.json)."""
    def run(a, b, *options):
        report = tmp_path / f"report-{Path(a).name}-{Path(b).name}"
        code, out, err = cli.here("compare", a, b, "--no-plots", "--report", report, *options)
        assert "Traceback" not in err, err
        summary = json.loads((report / "summary.json").read_text())
        return code, out, err, summary
    return run


def test_compare_agrees_on_two_identical_runs(tmp_path, compare):
    a = result_dir(tmp_path / "a", regular_spikes())
    b = result_dir(tmp_path / "b", regular_spikes())
    code, out, err, summary = compare(a, b)
    assert code == 0, out + err
    assert summary["agree"] and "runs agree" in out


def test_compare_disagrees_when_no_neuron_fires_in_one_run_and_every_neuron_once_in_the_other(tmp_path, compare):
    """Each neuron alone is marginal (one spike more is allowed near rheobase), but 20 of 20 going
    the same way is a systematic difference: the sign test on the marginal neurons fails the pair."""
    silent = result_dir(tmp_path / "silent")
    once = result_dir(tmp_path / "once", (np.arange(N), np.full(N, 0.1)))
    code, out, err, summary = compare(silent, once)
    assert code == 1, out
    pair = summary["pairs"][0]
    assert not pair["agree"] and not pair["failing_neurons"]         # no neuron fails on its own ...
    assert any("sign test" in f for f in pair["population_failures"])  # ... the population does
    assert "DISAGREE" in out and "runs disagree" in err


def test_compare_disagrees_on_different_population_sizes(tmp_path, compare):
    """The 10 neurons both runs simulated spike identically; the populations still differ."""
    ten = result_dir(tmp_path / "ten", regular_spikes(10), n=10)
    twenty = result_dir(tmp_path / "twenty", regular_spikes(20), n=20)
    code, out, err, summary = compare(ten, twenty)
    assert code == 1, out
    assert any("different populations" in f for f in summary["pairs"][0]["population_failures"])


def test_compare_disagrees_on_different_protocols(tmp_path, compare):
    """2 nA vs 3 nA, the same spikes: not the same experiment."""
    two = result_dir(tmp_path / "2nA", regular_spikes(), phases=[{"duration": REST + DRIVE, "inputs": {"Iapp": 2e-9}}])
    three = result_dir(tmp_path / "3nA", regular_spikes(), phases=[{"duration": REST + DRIVE, "inputs": {"Iapp": 3e-9}}])
    code, out, err, summary = compare(two, three)
    assert code == 1, out
    failures = summary["pairs"][0]["population_failures"]
    assert any("different protocols" in f and "Iapp" in f for f in failures), failures


def test_compare_disagrees_on_different_durations(tmp_path, compare):
    short = result_dir(tmp_path / "short", regular_spikes(total=0.2), total=0.2)
    long = result_dir(tmp_path / "long", regular_spikes(total=0.3), total=0.3)
    code, out, err, summary = compare(short, long)
    assert code == 1, out
    assert any("different durations" in f for f in summary["pairs"][0]["population_failures"])


def test_compare_disagrees_on_one_spike_moved_by_a_millisecond(tmp_path, compare):
    a = result_dir(tmp_path / "a", regular_spikes())
    b = result_dir(tmp_path / "b", regular_spikes(shift=(5, 3, 1e-3)))
    code, out, err, summary = compare(a, b)
    assert code == 1, out
    pair = summary["pairs"][0]
    assert pair["failing_neurons"] == [5] and 5 not in pair["marginal_neurons"]
    assert "moved by +1.0000 ms" in out


@pytest.mark.parametrize("kind", ["population", "duration", "protocol"])
def test_allow_different_experiments_turns_the_differences_into_notes(tmp_path, compare, kind):
    """Spikes equal on the common neurons and time: with --allow-different-experiments the runs
    agree, and what differs is said as a note."""
    if kind == "population":
        a = result_dir(tmp_path / "a", regular_spikes(10), n=10)
        b = result_dir(tmp_path / "b", regular_spikes(20), n=20)
        said = "different populations"
    elif kind == "duration":
        a = result_dir(tmp_path / "a", regular_spikes(total=0.2), total=0.2)
        b = result_dir(tmp_path / "b", regular_spikes(total=0.3), total=0.3)
        said = "different durations"
    else:
        a = result_dir(tmp_path / "a", regular_spikes(), phases=[{"duration": 0.2, "inputs": {"Iapp": 2e-9}}])
        b = result_dir(tmp_path / "b", regular_spikes(), phases=[{"duration": 0.2, "inputs": {"Iapp": 3e-9}}])
        said = "different protocols"
    assert compare(a, b)[0] == 1
    code, out, err, summary = compare(a, b, "--allow-different-experiments")
    assert code == 0, out + err
    pair = summary["pairs"][0]
    assert pair["agree"] and not pair["population_failures"]
    assert any(said in note for note in pair["notes"]) and f"note: {said}" in out


def test_compare_through_the_installed_command(tmp_path, cli):
    """The same verdict from the real `hhc compare` in a child process: exit status 1."""
    a = result_dir(tmp_path / "a", regular_spikes(10), n=10)
    b = result_dir(tmp_path / "b", regular_spikes(20), n=20)
    done = cli("compare", a, b, "--no-plots", "--report", tmp_path / "r1")
    assert done.returncode == 1 and "different populations" in done.stdout and "Traceback" not in done.stderr


# ---- damaged result files are named ----------------------------------------------------------------

def test_compare_names_a_truncated_spike_file(tmp_path, cli):
    a = result_dir(tmp_path / "a", regular_spikes())
    b = result_dir(tmp_path / "b", regular_spikes())
    spikes = b / "spikes.npz"
    spikes.write_bytes(spikes.read_bytes()[: spikes.stat().st_size // 2])
    code, out, err = cli.here("compare", a, b, "--no-plots", "--report", tmp_path / "rep")
    assert_clean_error(code, err, str(spikes), "damaged")


def test_compare_names_a_corrupt_meta_file(tmp_path, cli):
    a = result_dir(tmp_path / "a", regular_spikes())
    b = result_dir(tmp_path / "b", regular_spikes())
    (b / "meta.json").write_text('{"n_neurons": 20, "duration": ')
    code, out, err = cli.here("compare", a, b, "--no-plots", "--report", tmp_path / "rep")
    assert_clean_error(code, err, str(b / "meta.json"))


# ---- 3. --duration only cuts ------------------------------------------------------------------------

def test_a_duration_longer_than_the_protocol_is_an_error(make_experiment, cli, tmp_path):
    exp = make_experiment(protocol=[("20 ms", "0 pA")])
    code, out, err = cli.here("run", exp, "--duration", "10 s", "--out", tmp_path / "out")
    assert_clean_error(code, err, "--duration only cuts")
    assert not (tmp_path / "out").exists()


# ---- 4. result folders: never two runs mixed --------------------------------------------------------

def old_run(path: Path) -> Path:
    """A finished run of another experiment in path: spikes, traces, meta and run.json."""
    result_dir(path, (np.array([0, 0, 0]), np.array([0.001, 0.002, 0.003])), n=1, total=0.002,
               backend="old-run")
    (path / "run.json").write_text(json.dumps({"experiment": "/elsewhere/old.toml"}) + "\n")
    return path


def test_a_run_into_a_non_empty_folder_is_refused(tiny_experiment, cli, tmp_path):
    out = old_run(tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = cli.here("run", tiny_experiment(), "--out", out)
    assert_clean_error(code, err, "not empty", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before        # untouched
    other = tmp_path / "other"                                              # not hhc's files: refused too
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    code, _, err = cli.here("run", tiny_experiment(), "--out", other)
    assert_clean_error(code, err, "--overwrite")
    assert (other / "notes.txt").read_text() == "mine\n"


def test_overwrite_replaces_the_run_in_the_folder(tiny_experiment, cli, tmp_path):
    out = old_run(tmp_path / "out")
    exp = tiny_experiment()
    code, _, err = cli.here("run", exp, "--out", out, "--overwrite")
    assert code == 0, err
    result = load_results(out)
    assert result.meta["backend"] == "brian2" and result.meta["n_neurons"] == 1
    assert result.meta["duration"] == pytest.approx(2e-3)
    assert json.loads((out / "run.json").read_text())["experiment"] == str(exp.resolve())
    # the tiny cell at 100 pA charges from -65 mV by at most 2 ms * 100 pA / 4 pF = 50 mV: it
    # crosses -20 mV once or not at all; the old run's three spikes are gone
    assert len(result.spike_t) <= 1


def test_a_failed_run_with_overwrite_leaves_no_old_results(tiny_experiment, cli, tmp_path, monkeypatch):
    """The old results are removed before the new run starts: a run that then fails leaves its own
    run.json and nothing of the old run (no spikes.npz of another experiment beside it)."""
    from hhc import backends

    def fail(self, cell, experiment, out_dir, progress=None):
        raise HHCError("the simulation failed (made to fail by the test)")

    monkeypatch.setattr(backends.backend_class("brian2"), "run", fail)
    out = old_run(tmp_path / "out")
    exp = tiny_experiment()
    code, _, err = cli.here("run", exp, "--out", out, "--overwrite")
    assert_clean_error(code, err, "made to fail")
    assert json.loads((out / "run.json").read_text())["experiment"] == str(exp.resolve())
    left = sorted(p.name for p in out.iterdir())
    assert not {"spikes.npz", "traces.npz", "meta.json"} & set(left), left
    with pytest.raises(HHCError, match="not a complete hhc result"):
        load_results(out)


# ---- 5. time grid: windows after the end warn, phases off the grid are errors --------------------

def test_a_trace_window_after_the_end_of_the_run_is_a_warning(tiny_experiment, cli, tmp_path):
    exp = tiny_experiment(traces=[trace(["v"], [0], windows=[("1 ms", "2 ms"), ("50 ms", "60 ms")])])
    code, _, err = cli.here("run", exp, "--out", tmp_path / "out")
    assert code == 0, err
    assert re.search(r"warning:.*window 50\.\.60 ms starts after the run ends", err), err
    assert "window 1..2" not in err
    assert load_results(tmp_path / "out").meta["warnings"]


def test_a_phase_that_is_not_a_whole_number_of_steps_is_an_error(tiny_experiment, cli, tmp_path):
    exp = tiny_experiment(dt="0.01 ms", protocol=[("1 ms", "0 pA"), ("10.005 ms", "100 pA")])
    code, _, err = cli.here("run", exp, "--out", tmp_path / "out")
    assert_clean_error(code, err, "phase 2", "10.005 ms", "whole number of time steps")


# ---- 6. populations that cannot fit are refused before anything is allocated --------------------

def run_with_memory_limit(cli, *args, limit=4 << 30, timeout=300) -> subprocess.CompletedProcess:
    """`hhc ARGS` in a child process that cannot map more than `limit` bytes: a command that tries
    to allocate what it should have refused dies with a MemoryError instead of swapping the machine."""
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    proc = cli.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limited)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_billion_neurons_is_refused_before_allocating(make_experiment, cli, tmp_path):
    from hhc.compiler.experiment import _memory_bytes
    need = 10**9 * 10 * 8                    # the Kenyon cell's 10 states in float64
    have = _memory_bytes()
    if have is not None and have >= need:
        pytest.skip(f"this machine has {have / 2**30:.0f} GiB: a billion Kenyon cells fit")
    exp = make_experiment(size=1000000000)
    done = run_with_memory_limit(cli, "run", exp, "--out", tmp_path / "out")
    assert_clean_error(done.returncode, done.stderr, "size", "GiB", located=exp)
    assert "MemoryError" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["spikes", "traces"])
def test_a_neuron_range_far_beyond_the_population_is_refused_before_allocating(make_experiment, cli, tmp_path,
                                                                               where):
    """A typo of a few zeros in a range ("0:1000000000" for a population of 100) is refused as a
    neuron that does not exist, without first listing a billion indices."""
    if where == "spikes":
        exp = make_experiment(size=100, record={"spikes": "0:1000000000"})
    else:
        exp = make_experiment(size=100, traces=[trace(["v"], "0:1000000000")])
    done = run_with_memory_limit(cli, "run", exp, "--out", tmp_path / "out")
    assert_clean_error(done.returncode, done.stderr, "population", located=exp)


# ---- tracebacks become located errors: .chan files ------------------------------------------------

@pytest.mark.parametrize("name", ["t", "dt", "i", "N", "xi", "exp", "lambda", "class", "mV"])
def test_reserved_input_names_are_refused(tmp_path, cli, name):
    text = cell_text(f"    channels K\n    input {name} : current\n    initial {{ v = -65 mV }}")
    path = chan(tmp_path, text)
    code, _, err = cli.here("check", path)
    assert_clean_error(code, err, "reserved", f"'{name}'", located=path)
    assert LOCATED.search(err)["line"] == line_of(text, "input ")


def test_constants_with_functions_compile_and_run_on_brian2(tiny, tiny_experiment, cli, tmp_path):
    """gbar = 6 nS * exp(1) and k = log(2): constants made with functions are numbers in the generated
    module, and the model runs on Brian2's runtime device."""
    from hhc.backends.brian2.generate import import_generated
    code, out, err = cli.here("check", tiny)
    assert code == 0 and "ok" in out, err
    code, out, err = cli.here("compile", tiny, "--target", "brian2", "-o", tmp_path / "gen")
    assert code == 0, err
    module = import_generated(Path(out.split()[-1]))
    assert float(module.NAMESPACE["gbar_Z"]) == pytest.approx(6e-9 * np.e)
    assert float(module.NAMESPACE["k_Z"]) == pytest.approx(np.log(2))
    code, _, err = cli.here("run", tiny_experiment(), "--device", "runtime", "--out", tmp_path / "run")
    assert code == 0, err
    assert load_results(tmp_path / "run").meta["duration"] == pytest.approx(2e-3)


@pytest.mark.parametrize("value", ["6 nS * exp(1000)", "1e300 nS * 1e300", "6 nS * exp(exp(10))"])
def test_a_constant_too_large_for_a_double_is_refused(tmp_path, cli, value):
    """exp(1000) is about 2e434: no simulator can hold it (float64 ends near 1.8e308)."""
    path = chan(tmp_path, f"channel Z {{\n    gbar = {value}\n    current = 0 pA\n}}\n")
    code, _, err = cli.here("check", path)
    assert_clean_error(code, err, located=path)
    assert LOCATED.search(err)["line"] == "2"


def test_an_over_long_cell_name_is_refused(tmp_path, cli):
    path = chan(tmp_path, CHANNEL_K + "\ncell " + "A" * 100 + " {\n    C = 4 pF\n    channels K\n"
                                      "    initial { v = -65 mV }\n}\n")
    code, _, err = cli.here("check", path)
    assert_clean_error(code, err, "100 characters", located=path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path, cli):
    path = tmp_path / "bom.chan"
    path.write_bytes(b"\xef\xbb\xbf" + cell_text("    channels K\n    initial { v = -65 mV }").encode())
    code, out, err = cli.here("check", path)
    assert code == 0 and "ok" in out, err


def test_a_byte_that_is_not_utf8_is_located(tmp_path, cli):
    path = tmp_path / "bad.chan"
    path.write_bytes(b"channel K {\n    gbar = 6 nS \xff\n    E = -81 mV\n}\n")
    code, _, err = cli.here("check", path)
    assert_clean_error(code, err, "UTF-8", "0xff", located=path)
    m = LOCATED.search(err)
    assert (m["line"], m["col"]) == ("2", "17")


def test_a_flat_sum_of_two_thousand_terms_is_too_long(tmp_path, cli):
    path = chan(tmp_path, "channel K {\n    gbar = 6 nS\n    E = -81 mV\n    x = "
                + " + ".join(["1 mV"] * 2000) + "\n}\n")
    code, _, err = cli.here("check", path)
    assert_clean_error(code, err, "too long", located=path)


# ---- wrong acceptances: hhc check refuses values no gate can have ----------------------------------

@pytest.mark.parametrize("text, needle, at", [
    (gate_channel("inf = 0.5; tau = 1 ms", power="99999999999999999999"), "power", "gate m"),
    (gate_channel("inf = 0.5; tau = -1 ms"), "tau", "tau ="),
    (gate_channel("inf = 2.5; tau = 1 ms"), "inf", "inf ="),
    (gate_channel("alpha = -1 / ms; beta = 1 / ms"), "alpha", "alpha ="),
    (gate_channel("inf = 0.5; tau = 1 ms * mV / (v + 30 mV)"), "-30 mV", "tau ="),   # a pole, not an exprel 0/0
    (cell_text("    channels K(gbar = -1 nS)\n    initial { v = -65 mV }"), "negative", "channels K("),
], ids=["huge-power", "negative-tau", "inf-above-1", "negative-alpha", "singular-tau", "negative-override"])
def test_check_refuses_impossible_gates_and_overrides(tmp_path, cli, text, needle, at):
    path = chan(tmp_path, text)
    code, _, err = cli.here("check", path)
    assert_clean_error(code, err, needle, located=path)
    assert LOCATED.search(err)["line"] == line_of(text, at), err


def test_the_removable_singularity_is_still_accepted(tmp_path, cli):
    """The refusal of poles does not catch the classic 0/0 rates, which hhc rewrites with exprel."""
    path = chan(tmp_path, gate_channel("alpha = 0.1 / mV * (v + 40 mV) / (1 - exp(-(v + 40 mV) / 10 mV)) / ms\n"
                                       "        beta = 4 / ms * exp(-(v + 65 mV) / 18 mV)"))
    code, out, err = cli.here("check", path)
    assert code == 0 and "ok" in out, err


# ---- tracebacks become located errors: experiment files ----------------------------------------------

def test_experiment_values_are_clean_errors(make_experiment, cli, tmp_path):
    cases = {
        "v-div-zero": (make_experiment("v0", initial={"v": "-65 mV / 0"}), ["division by zero"]),
        "seed": (make_experiment("seed", seed=-1), ["seed", ">= 0"]),
        "duration": (make_experiment("dur", protocol=[("1e999 ms", "0 pA")]), ["not a finite number"]),
    }
    path = tmp_path / "file5.toml"
    path.write_text(experiment_toml(model=5))
    cases["file"] = (path, ["[model] file", "5"])
    path = tmp_path / "latin1.toml"
    path.write_bytes(experiment_toml().encode() + "# café\n".encode("latin-1"))
    cases["not-utf8"] = (path, ["UTF-8", "0xe9"])
    for name, (exp, needles) in cases.items():
        code, _, err = cli.here("run", exp, "--out", tmp_path / f"out-{name}")
        assert_clean_error(code, err, *needles, located=exp)
        assert not (tmp_path / f"out-{name}").exists(), name


def test_an_absurd_initial_v_is_reported_and_never_a_traceback(tiny_experiment, cli, tmp_path):
    """v = -4000 mV: hhc warns, naming the physiological range, before anything runs (an absurd start
    is reported, not refused); the run then either completes or fails with an error that points at
    [initial] v."""
    code, _, err = cli.here("run", tiny_experiment(initial={"v": "-4000 mV"}), "--out", tmp_path / "out")
    assert "Traceback" not in err
    assert re.search(r"warning: initial v of 1 of 1 neurons is outside the physiological range .*-4,000 mV", err), err
    if code != 0:
        assert_clean_error(code, err, "[initial] v")


def test_a_cell_without_a_threshold_cannot_record_spikes(tmp_path, make_experiment, cli):
    model = chan(tmp_path, cell_text("    channels K\n    input Iapp : current\n    initial { v = -65 mV }"))
    exp = make_experiment(model=model, record={"spikes": "all"})
    code, _, err = cli.here("run", exp, "--out", tmp_path / "out")
    assert_clean_error(code, err, "spike when", "threshold")


def test_an_unwritable_out_folder_is_a_clean_error(tiny_experiment, cli):
    code, _, err = cli.here("run", tiny_experiment(), "--out", "/proc/hhc-test/out")
    assert_clean_error(code, err, "/proc/hhc-test/out")


def test_mpi_on_brian2_is_refused(tiny_experiment, cli, tmp_path):
    code, _, err = cli.here("run", tiny_experiment(), "--mpi", "2", "--out", tmp_path / "out")
    assert_clean_error(code, err, "--mpi", "brian2")
    assert not (tmp_path / "out").exists()


def test_an_absurd_thread_count_is_refused(tiny_experiment, cli, tmp_path):
    code, _, err = cli.here("run", tiny_experiment(), "--threads", "99999", "--out", tmp_path / "out")
    assert_clean_error(code, err, "99999 threads", "cores")


# ---- the Python API: wrong types are HHCErrors ----------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda exp, out: hhc.run_experiment(exp, out=out, threads="two"),
    lambda exp, out: hhc.run_experiment(exp, out=out, backend=["brian2"]),
    lambda exp, out: hhc.run_experiment(exp, out=out, threads=0),
    lambda exp, out: hhc.run_experiment(5, out=out),
], ids=["threads-text", "backend-list", "threads-zero", "experiment-int"])
def test_the_api_refuses_wrong_types_with_an_hhc_error(tiny_experiment, tmp_path, call):
    with pytest.raises(HHCError):
        call(tiny_experiment(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- MPI x threads against the cores (planning only) -------------------------------------------------

def test_mpi_processes_times_file_threads_are_fitted_to_the_cores(make_experiment, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    exp_file = make_experiment(backend={"name": "nest", "threads": 2})
    exp, _, _ = prepare(exp_file, RunOverrides(backend="nest", mpi=2), choose_auto=False)
    assert exp.backend.mpi == 2
    assert exp.backend.threads * 2 <= os.cpu_count()
    assert any("oversubscribe" in w for w in exp.warnings), exp.warnings


# ---- plot: trace windows far apart are separate panels ------------------------------------------------

def test_trace_figure_draws_each_window_in_its_own_panel(tmp_path):
    from matplotlib.lines import Line2D
    import matplotlib.pyplot as plt
    from hhc import plot
    windows = [(0.040, 0.060), (0.500, 0.510)]
    t = np.concatenate([np.arange(round(a * 1e4), round(b * 1e4)) / 1e4 for a, b in windows])
    v = -0.065 + 0.001 * np.sin(t * 100)[:, None] * np.ones((1, 2))
    path = tmp_path / "run"
    write_results(path, spike_i=[], spike_t=[],
                  traces=[{"t": t, "neurons": [0, 1], "variables": {"v": v, "m_NaF": v * 0 + 0.1}}],
                  meta={"n_neurons": 2, "duration": 0.6})
    runs = [load_results(path)]
    fig = plot.trace_figure(runs, ["run"])
    try:
        axes = fig.get_axes()
        assert len(axes) == 2 * len(windows)          # rows: v, m_NaF; columns: the two windows
        lines = [line for ax in axes for line in ax.get_lines() if isinstance(line, Line2D)]
        assert lines
        for ax in axes:
            for line in ax.get_lines():
                x = np.asarray(line.get_xdata(), float) / 1e3        # ms -> s
                if not len(x):
                    continue
                inside = [a - 1e-9 <= x.min() and x.max() <= b + 1e-9 for a, b in windows]
                assert any(inside), f"a line spans {x.min():g}..{x.max():g} s, across the gap"
    finally:
        plt.close(fig)


# ---- runs on cpp_standalone: interrupted, resumed, refused ----------------------------------------------
# One build (about a minute on two cores) serves every test here: the same copy of the Kenyon model,
# 20 neurons, 120 ms in 12 segments of 10 ms.

@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A copy of the Kenyon model (to be edited) and an experiment of it on cpp_standalone."""
    base = tmp_path_factory.mktemp("standalone")
    model_dir = base / "model"
    model_dir.mkdir()
    shutil.copy(KENYON, model_dir / KENYON.name)
    shutil.copytree(MODELS / "channels", model_dir / "channels")
    exp = write_experiment(base / "kenyon.toml", model=model_dir / KENYON.name, size=20, seed=3,
                           initial={"v": "uniform(-70 mV, -60 mV)"},
                           protocol=[("20 ms", "0 pA"), ("100 ms", "18 pA")],
                           record={"spikes": "all", "segment": "10 ms"},
                           traces=[trace(["v"], "0:2", interval="0.1 ms")],
                           backend={"name": "brian2", "device": "cpp_standalone"})
    return {"dir": base, "experiment": exp, "model": model_dir / KENYON.name,
            "channels": model_dir / "channels" / "kenyon.chan"}


@pytest.fixture(scope="module")
def uninterrupted(standalone, cli):
    out = standalone["dir"] / "whole"
    done = cli("run", standalone["experiment"], "--out", out)
    assert done.returncode == 0, done.stderr
    return out


def sorted_spikes(results):
    order = np.lexsort((results.spike_t, results.spike_i))
    return results.spike_i[order], results.spike_t[order]


@pytest.fixture(scope="module")
def interrupted(standalone, uninterrupted, cli):
    """The run stopped by Ctrl-C (SIGINT to its process group, as a terminal sends it) once two
    segments are written: (run dir, exit status, stderr). Tests copy the folder, never change it."""
    out = standalone["dir"] / "interrupted"
    proc = cli.popen("run", standalone["experiment"], "--out", out, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True, start_new_session=True)
    manifest = out / "segments" / "manifest.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(json.loads(manifest.read_text())["segments"]) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    return out, proc.returncode, err


def copy_run(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_resume_gives_the_uninterrupted_result(interrupted, uninterrupted, cli, tmp_path):
    run_dir, status, err = interrupted
    assert status == 130, err
    assert f"interrupted; resume with `hhc run --resume {run_dir}`" in err
    assert "Traceback" not in err
    assert not (run_dir / "meta.json").exists()
    kept = json.loads((run_dir / "segments" / "manifest.json").read_text())["segments"]
    assert 2 <= len(kept) < 12

    resumed_dir = copy_run(run_dir, tmp_path / "resumed")
    done = cli("run", "--resume", resumed_dir)
    assert done.returncode == 0, done.stderr
    a, b = load_results(uninterrupted), load_results(resumed_dir)
    assert b.meta["resumed_from_segment"] >= 2 and b.meta["segments"] == a.meta["segments"] == 12
    ia, ta = sorted_spikes(a)
    ib, tb = sorted_spikes(b)
    assert len(ta) >= 20 and np.array_equal(ia, ib) and np.array_equal(ta, tb)
    assert np.array_equal(a.trace("v")[0], b.trace("v")[0]) and np.array_equal(a.trace("v")[2], b.trace("v")[2])


@pytest.mark.slow
@pytest.mark.parametrize("edit", ["channel-gbar", "cell-override"])
def test_resume_after_the_model_changed_is_refused(interrupted, standalone, cli, tmp_path, edit):
    """Segments of the model as it was are not continued with the model as it is: the run would mix
    two models' data. The edit is undone afterwards (the model copy is shared by this module)."""
    run_dir = copy_run(interrupted[0], tmp_path / "run")
    target = standalone["channels"] if edit == "channel-gbar" else standalone["model"]
    original = target.read_text()
    if edit == "channel-gbar":
        edited = original.replace("gbar = 140 nS", "gbar = 150 nS", 1)
    else:
        edited = original.replace("channels NaF, NaS", "channels NaF(gbar = 150 nS), NaS", 1)
    assert edited != original
    try:
        target.write_text(edited)
        code, _, err = cli.here("run", "--resume", run_dir)
    finally:
        target.write_text(original)
    assert_clean_error(code, err, "different run", "model")
    assert not (run_dir / "meta.json").exists()


@pytest.mark.slow
def test_resume_names_a_truncated_segment_file(interrupted, cli, tmp_path):
    run_dir = copy_run(interrupted[0], tmp_path / "run")
    entry = json.loads((run_dir / "segments" / "manifest.json").read_text())["segments"][0]
    segment = run_dir / "segments" / entry["file"]
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 2])
    code, _, err = cli.here("run", "--resume", run_dir)
    assert_clean_error(code, err, str(segment))
    assert not (run_dir / "meta.json").exists()


@pytest.mark.slow
def test_resume_names_a_corrupt_segment_manifest(interrupted, cli, tmp_path):
    run_dir = copy_run(interrupted[0], tmp_path / "run")
    manifest = run_dir / "segments" / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    code, _, err = cli.here("run", "--resume", run_dir)
    assert_clean_error(code, err, str(manifest))
    assert not (run_dir / "meta.json").exists()
