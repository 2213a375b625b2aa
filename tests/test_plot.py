"""hhc plot: raster, traces and rate histograms as PNG, overlaid for several runs."""
import numpy as np

from hhc.backends.results import write_results


def _run(path, shift=0.0):
    rng = np.random.default_rng(1)
    i = rng.integers(0, 30, 400)
    t = rng.uniform(0, 0.5, 400) + shift
    tt = np.arange(0, 0.5, 1e-4)
    v = np.stack([-0.065 + 0.02 * np.sin(2 * np.pi * 8 * tt + k + shift * 100) for k in range(2)], axis=1)
    write_results(path, spike_i=i, spike_t=t, traces=[{"t": tt, "neurons": [0, 1], "variables": {"v": v}}],
                  meta={"backend": "brian2", "method": "rk4", "dt": 1e-5, "n_neurons": 30, "duration": 0.5})
    return path


def test_plot_one_and_several_runs(tmp_path, cli):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", 0.001)
    res = cli("plot", a, b, "--out", tmp_path / "plots")
    assert res.returncode == 0, res.stderr
    for name in ("raster.png", "traces.png", "rates.png"):
        png = tmp_path / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    res = cli("plot", a, "--out", tmp_path / "one")
    assert res.returncode == 0 and (tmp_path / "one" / "raster.png").exists()
