"""hhc plot: raster, traces and rate histograms as PNG, overlaid for several runs."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hhc.backends.results import load_results, write_results  # noqa: E402
from hhc.plot import COLORS, raster  # noqa: E402


def _run(path, shift=0.0):
    rng = np.random.default_rng(1)
    i = rng.integers(0, 30, 400)
    t = rng.uniform(0, 0.5, 400) + shift
    tt = np.arange(0, 0.5, 1e-4)
    v = np.stack([-0.065 + 0.02 * np.sin(2 * np.pi * 8 * tt + k + shift * 100) for k in range(2)], axis=1)
    write_results(path, spike_i=i, spike_t=t, traces=[{"t": tt, "neurons": [0, 1], "variables": {"v": v}}],
                  meta={"backend": "brian2", "method": "rk4", "dt": 1e-5, "n_neurons": 30, "duration": 0.5})
    return path


def _pixels_near(image, color, tol=0.08) -> int:
    """How many pixels of an RGB(A) image (floats 0..1) have this colour."""
    rgb = np.asarray(matplotlib.colors.to_rgb(color))
    return int((np.abs(image[..., :3] - rgb).max(axis=-1) < tol).sum())


def test_raster_draws_every_spike_of_every_run(tmp_path):
    """One marker per spike at (time in ms, the neuron's row), each run in its own colour."""
    runs = [load_results(_run(tmp_path / "a")), load_results(_run(tmp_path / "b", 0.001))]
    fig, ax = plt.subplots()
    try:
        raster(ax, runs, labels=["a", "b"])
        drawn = ax.collections
        assert len(drawn) == 2
        for k, (run, points) in enumerate(zip(runs, drawn)):
            xy = points.get_offsets()
            assert len(xy) == len(run.spike_t) == 400           # 30 neurons: every one has a row
            offset = (k - 0.5) * 0.25                            # runs are drawn a quarter row apart
            want = sorted(zip(np.round(run.spike_t * 1e3, 9), run.spike_i + offset))
            got = sorted(zip(np.round(xy[:, 0], 9), xy[:, 1]))
            assert np.allclose(got, want)
            assert matplotlib.colors.same_color(points.get_facecolor()[0], COLORS[k])
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    finally:
        plt.close(fig)


def test_raster_of_chosen_neurons_up_to_a_time(tmp_path):
    run = load_results(_run(tmp_path / "a"))
    t_max = 0.2
    fig, ax = plt.subplots()
    try:
        raster(ax, [run], neurons=[3, 7], t_max=t_max)
        xy = ax.collections[0].get_offsets()
        keep = np.isin(run.spike_i, [3, 7]) & (run.spike_t <= t_max)
        assert len(xy) == keep.sum() > 0
        assert set(xy[:, 1]) == {0.0, 1.0}                        # neuron 3 on row 0, neuron 7 on row 1
        assert [t.get_text() for t in ax.get_yticklabels()] == ["3", "7"]
    finally:
        plt.close(fig)


@pytest.fixture
def drawn(monkeypatch):
    """The figures hhc.plot saves, by file name, kept open to be inspected."""
    from matplotlib.figure import Figure
    figures = {}
    save = Figure.savefig

    def spy(fig, fname, *args, **kwargs):
        figures[Path(fname).name] = fig
        return save(fig, fname, *args, **kwargs)
    close = plt.close
    monkeypatch.setattr(Figure, "savefig", spy)
    monkeypatch.setattr(plt, "close", lambda *args, **kwargs: None)
    yield figures
    close("all")


def test_plot_runs_draws_what_the_runs_hold(tmp_path, drawn):
    """raster: every spike of both runs; traces: each run's v (in mV) of its first neurons, the
    second run dashed; rates: one histogram per run over the 30 neurons."""
    from hhc.plot import plot_runs
    runs = [load_results(_run(tmp_path / "a")), load_results(_run(tmp_path / "b", 0.001))]
    written = plot_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "plots")
    assert sorted(p.name for p in written) == sorted(drawn) == ["raster.png", "rates.png", "traces.png"]

    (ax,) = drawn["raster.png"].axes
    assert [len(c.get_offsets()) for c in ax.collections] == [400, 400]

    (ax,) = drawn["traces.png"].axes
    lines = ax.get_lines()
    assert len(lines) == 4                                   # 2 runs x 2 recorded neurons
    for k, run in enumerate(runs):
        t, neurons, v = run.trace("v")
        for j in range(len(neurons)):
            line = lines[2 * k + j]
            assert np.allclose(line.get_xdata(), t * 1e3) and np.allclose(line.get_ydata(), v[:, j] * 1e3)
            assert matplotlib.colors.same_color(line.get_color(), COLORS[k])
            assert line.get_linestyle() == ("-" if k == 0 else "--")
    assert ax.get_ylabel() == "v (mV)"

    (ax,) = drawn["rates.png"].axes
    assert len(ax.patches) == 2
    for k, (run, hist) in enumerate(zip(runs, ax.patches)):
        xy = hist.get_xy()
        heights = xy[1:-1:2, 1]                              # a step outline: (edge, 0), (edge, h0), ...
        assert heights.sum() == 30                           # every neuron is counted once
        rates = np.bincount(run.spike_i, minlength=30) / 0.5
        assert xy[:, 0].max() >= rates.max()
        assert matplotlib.colors.same_color(hist.get_edgecolor(), COLORS[k])


def test_plot_command_writes_the_figures(tmp_path, cli):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", 0.001)
    res = cli("plot", a, b, "--out", tmp_path / "plots")
    assert res.returncode == 0, res.stderr
    for name in ("raster.png", "traces.png", "rates.png"):
        image = mpimg.imread(tmp_path / "plots" / name)
        assert image.shape[0] > 300 and image.shape[1] > 500
        not_white = (image[..., :3] < 0.9).any(axis=-1).mean()
        assert not_white > 0.005, f"{name} is blank"
    # the second run is drawn in the second colour; a single run has none of it
    assert _pixels_near(mpimg.imread(tmp_path / "plots" / "raster.png"), COLORS[1]) > 200
    res = cli("plot", a, "--out", tmp_path / "one")
    assert res.returncode == 0, res.stderr
    assert _pixels_near(mpimg.imread(tmp_path / "one" / "raster.png"), COLORS[1]) == 0
