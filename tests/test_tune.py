"""hhc tune: thread counts measured side by side; the recommendation written back into the file."""
import pytest

from conftest import write_experiment
from hhc.tune import default_thread_counts, write_threads

BODY = """
[population]
size = 400
[simulation]
dt = "0.1 ms"
method = "rk2"
[initial]
v = "-65 mV"
[[protocol]]
duration = "40 ms"
inputs = { Iapp = "18 pA" }
[record]
spikes = "all"
[backend]
name = "brian2"
device = "%s"
threads = 1   # a comment stays
"""


def test_write_threads_keeps_the_rest_of_the_file(tmp_path):
    path = write_experiment(tmp_path / "e.toml", BODY % "cpp_standalone")
    write_threads(path, 2)
    text = path.read_text()
    assert "threads = 2 # a comment stays" in text and text.count("threads") == 1
    assert 'device = "cpp_standalone"' in text
    no_backend = tmp_path / "n.toml"
    no_backend.write_text(text.split("[backend]")[0])
    write_threads(no_backend, 4)
    assert no_backend.read_text().rstrip().endswith("[backend]\nthreads = 4")
    no_threads = tmp_path / "m.toml"
    no_threads.write_text(text.replace("threads = 2 # a comment stays\n", "") + "[other]\nx = 1\n")
    write_threads(no_threads, 3)
    assert "[backend]\nthreads = 3\n" in no_threads.read_text() and no_threads.read_text().endswith("[other]\nx = 1\n")


def test_default_counts_cover_one_and_all_cores():
    counts = default_thread_counts()
    import os
    assert counts[0] == 1 and counts[-1] == (os.cpu_count() or 1)


@pytest.mark.slow
def test_tune_measures_each_count_and_writes_the_pick(tmp_path, cli):
    path = write_experiment(tmp_path / "e.toml", BODY % "cpp_standalone")
    res = cli("tune", path, "--threads", "1,2", "--duration", "20 ms", "--repeats", "1", "--write")
    assert res.returncode == 0, res.stderr
    import re
    rows = [line.split() for line in res.stdout.splitlines() if re.match(r"^\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+x", line)]
    assert [int(r[0]) for r in rows] == [1, 2]
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)
    best = int(res.stdout.split("recommended: threads = ")[1].split()[0])
    assert best in (1, 2) and f"threads = {best}" in path.read_text()


def test_tune_refuses_the_single_threaded_runtime(tmp_path, cli):
    path = write_experiment(tmp_path / "e.toml", BODY % "runtime")
    res = cli("tune", path, "--threads", "1,2")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "single-threaded" in res.stderr
