"""hhc plot: raster, traces and rate histograms as PNG, overlaid for several runs."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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


def test_figures_draw_what_the_runs_hold(tmp_path):
    """raster: every spike of both runs; traces: each run's v (in mV) of its recorded neurons, the
    second run dashed; rates: one histogram per run over the 30 neurons."""
    from hhc.plot import raster_figure, rate_figure, trace_figure
    runs = [load_results(_run(tmp_path / "a")), load_results(_run(tmp_path / "b", 0.001))]
    labels = ["a", "b"]
    figures = [raster_figure(runs, labels), trace_figure(runs, labels), rate_figure(runs, labels)]
    try:
        (ax,) = figures[0].axes
        assert [len(c.get_offsets()) for c in ax.collections] == [400, 400]
        assert "all 30 neurons" in ax.get_title()

        (ax,) = figures[1].axes                                  # one variable, one recording window
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

        (ax,) = figures[2].axes
        assert len(ax.patches) == 2
        for k, (run, hist) in enumerate(zip(runs, ax.patches)):
            xy = hist.get_xy()
            heights = xy[1:-1:2, 1]                              # a step outline: (edge, 0), (edge, h0), ...
            assert heights.sum() == 30                           # every neuron is counted once
            assert xy[:, 0].max() >= (np.bincount(run.spike_i, minlength=30) / 0.5).max()
            assert matplotlib.colors.same_color(hist.get_edgecolor(), COLORS[k])
    finally:
        for fig in figures:
            plt.close(fig)


def test_trace_windows_are_drawn_apart(tmp_path):
    """Samples in two windows (10-20 ms and 300-310 ms): two panels, no line across the gap."""
    from hhc.plot import trace_figure
    t = np.concatenate([np.arange(100, 200), np.arange(3000, 3100)]) * 1e-4
    v = -0.065 + 0.01 * np.sin(t * 100)[:, None]
    write_results(tmp_path / "w", spike_i=[], spike_t=[], traces=[{"t": t, "neurons": [0], "variables": {"v": v}}],
                  meta={"n_neurons": 1, "duration": 0.5})
    fig = trace_figure([load_results(tmp_path / "w")], ["w"])
    try:
        assert len(fig.axes) == 2
        for ax, (lo, hi) in zip(fig.axes, [(10.0, 19.9), (300.0, 309.9)]):
            xs = np.concatenate([line.get_xdata() for line in ax.get_lines()])
            assert np.isclose(xs.min(), lo) and np.isclose(xs.max(), hi)
            for line in ax.get_lines():                          # each line inside one window
                x = line.get_xdata()
                assert np.diff(x).max() < 0.2
    finally:
        plt.close(fig)


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
