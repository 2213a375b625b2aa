"""hhc tune: thread counts measured side by side; the recommendation written back into the file."""
import os
import re

import pytest

from hhc.tune import Measurement, default_thread_counts, recommend, write_threads


@pytest.fixture
def experiment(make_experiment):
    """400 Kenyon cells, rk2 at dt 0.1 ms, 40 ms at 18 pA, on brian2 `device` with threads = 1."""
    def make(device):
        path = make_experiment(size=400, dt="0.1 ms", method="rk2", initial={"v": "-65 mV"},
                               protocol=[("40 ms", "18 pA")], record={"spikes": "all"},
                               backend={"name": "brian2", "device": device, "threads": 1})
        # a comment by hand, to be kept by write_threads
        path.write_text(path.read_text().replace("threads = 1\n", "threads = 1   # a comment stays\n"))
        return path
    return make


def test_write_threads_keeps_the_rest_of_the_file(tmp_path, experiment):
    path = experiment("cpp_standalone")
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
    assert counts[0] == 1 and counts[-1] == (os.cpu_count() or 1)
    assert counts == sorted(set(counts))


def _measured(*walls):
    """Measurements at 1, 2, 4, ... threads with these wall times (s)."""
    return [Measurement(threads=2 ** k, wall_s=w, ns_per_neuron_step=w * 100) for k, w in enumerate(walls)]


@pytest.mark.parametrize("walls, pick", [
    ((1.00, 0.96), 1),            # 4 % faster: not worth a second thread
    ((1.00, 0.951), 1),           # 4.9 %
    ((1.00, 0.94), 2),            # 6 % faster
    ((1.00, 0.50, 0.49), 2),      # 4 threads only 2 % faster than 2
    ((1.00, 0.50, 0.40), 4),      # each step up more than 5 % faster
    ((1.00, 0.97, 0.90), 4),      # 2 is within the margin, 4 is 10 % faster than 1
    ((1.00, 1.20, 0.99), 1),      # slower, then within the margin of 1
    ((0.80,), 1),
])
def test_recommend_prefers_more_threads_only_when_more_than_5_percent_faster(walls, pick):
    assert recommend(_measured(*walls)) == pick


def test_recommend_margin_and_order():
    measured = _measured(1.00, 0.92)
    assert recommend(measured, margin=0.05) == 2
    assert recommend(measured, margin=0.10) == 1          # 8 % is within a 10 % margin
    assert recommend(measured, margin=0.0) == 2
    assert recommend(list(reversed(measured))) == 2        # judged from the fewest threads up


@pytest.mark.slow
def test_tune_measures_each_count_and_writes_the_pick(tmp_path, cli, experiment):
    path = experiment("cpp_standalone")
    res = cli("tune", path, "--threads", "1,2", "--duration", "20 ms", "--repeats", "1", "--write")
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if re.match(r"^\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+x", line)]
    assert [int(r[0]) for r in rows] == [1, 2]
    walls = [float(r[1]) for r in rows]
    assert all(w > 0 for w in walls) and all(float(r[2]) > 0 for r in rows)
    best = int(res.stdout.split("recommended: threads = ")[1].split()[0])
    # the pick follows the 5 % rule on the times it printed (to the ms they are rounded to) and is
    # what --write put in the file
    if abs(walls[1] - 0.95 * walls[0]) > 0.001:
        assert best == recommend(_measured(*walls))
    assert best in (1, 2)
    assert f"threads = {best}" in path.read_text()


def test_tune_refuses_the_single_threaded_runtime(tmp_path, cli, experiment):
    path = experiment("runtime")
    res = cli("tune", path, "--threads", "1,2")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "single-threaded" in res.stderr
