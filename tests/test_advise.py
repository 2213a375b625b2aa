"""hhc advise: the recommended method x dt really meets the tolerance against the reference."""
import json

import pytest

from builders import trace, write_experiment
from paths import SEED_EXAMPLE


def experiment(path, dt="0.01 ms", method="rk4", **fields):
    """Three Kenyon cells, 20 ms at rest then 280 ms at 18 pA."""
    return write_experiment(path, size=3, dt=dt, method=method, initial={"v": "uniform(-70 mV, -60 mV)"},
                            protocol=[("20 ms", "0 pA"), ("280 ms", "18 pA")], **fields)


@pytest.mark.slow
def test_advisor_pick_on_the_kenyon_cell_meets_the_tolerance(tmp_path, cli):
    exp = experiment(tmp_path / "e.toml")
    res = cli("advise", exp, "--sample", "3", "--duration", "full", "--methods", "exponential_euler,rk4",
              "--dts", "0.1,0.05,0.025", "--out", tmp_path / "adv", "--no-cost-probe")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "recommended:" in res.stdout
    report = json.loads((tmp_path / "adv" / "advise.json").read_text())
    trials = report["trials"]
    assert len(trials) == 6
    best = next(t for t in trials if f"{t['method']} @ {t['dt'] * 1e3:g} ms" == report["recommended"])
    assert best["ok"] and best["count_mismatches"] == 0 and best["first_spike_error"] <= 1e-4
    # nothing cheaper passed
    assert all(not t["ok"] for t in trials if t["cost"] < best["cost"])
    # check independently: run the pick through `hhc run`, the reference through `hhc reference`,
    # and `hhc compare` with the advisor's tolerance (identical counts, first spike <= 0.1 ms)
    picked = experiment(tmp_path / "picked.toml", dt=f"{best['dt'] * 1e3:g} ms", method=best["method"])
    assert cli("run", picked, "--out", tmp_path / "run").returncode == 0
    assert cli("reference", picked, "--sample", "3", "--out", tmp_path / "ref").returncode == 0
    res = cli("compare", tmp_path / "run", tmp_path / "ref", "--report", tmp_path / "cmp", "--no-plots",
              "--count", "0", "--first-spike", "0.1", "--spike-time", "1000", "--marginal-count", "0",
              "--marginal-first-spike", "0.1", "--marginal-spike-time", "1000")
    assert res.returncode == 0, res.stdout


@pytest.mark.slow
def test_advise_on_the_seed_example_runs_on_a_short_sample(tmp_path, cli):
    res = cli("advise", SEED_EXAMPLE, "--sample", "2", "--duration", "150 ms",
              "--methods", "rk4", "--dts", "0.05", "--out", tmp_path / "adv")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rk4" in res.stdout and "recommended: method = \"rk4\", dt = \"0.05 ms\"" in res.stdout
    assert "of 50,000 neurons" in res.stderr


def _auto_experiment(tmp_path, name, interval="0.1 ms", tolerance=None):
    """method and dt "auto", v of neuron 0 recorded every `interval`."""
    return experiment(tmp_path / name, dt="auto", method="auto", tolerance=tolerance,
                      traces=[trace(["v"], [0], interval=interval)])


def _independent_check(cli, tmp_path, run_dir, exp, first_spike_ms):
    """`hhc reference` + `hhc compare` with the tolerance "auto" was asked to meet."""
    assert cli("reference", exp, "--sample", "3", "--out", tmp_path / "ref").returncode == 0
    res = cli("compare", run_dir, tmp_path / "ref", "--report", tmp_path / "cmp", "--no-plots",
              "--count", "0", "--first-spike", str(first_spike_ms), "--spike-time", "1000", "--marginal-count", "0",
              "--marginal-first-spike", str(first_spike_ms), "--marginal-spike-time", "1000")
    assert res.returncode == 0, res.stdout


@pytest.mark.slow
def test_auto_method_and_dt_meet_the_tolerance_and_are_cached(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HHC_CACHE", str(tmp_path / "cache"))
    exp = _auto_experiment(tmp_path, "auto.toml")
    res = cli("run", exp, "--out", tmp_path / "run")
    assert res.returncode == 0, res.stdout + res.stderr
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    choice = meta["auto_choice"]
    assert meta["method"] == choice["method"] and meta["dt"] == pytest.approx(choice["dt"])
    # tried cheapest first, stopped at the first that met the tolerance
    tried = choice["tried"]
    assert tried[-1]["ok"] and not any(t["ok"] for t in tried[:-1])
    assert tried[-1]["count_mismatches"] == 0 and tried[-1]["first_spike_error"] <= 1e-4
    _independent_check(cli, tmp_path, tmp_path / "run", exp, 0.1)
    import hhc
    traces = hhc.load_results(tmp_path / "run").traces[0]
    assert traces.t[1] - traces.t[0] == pytest.approx(1e-4)   # the interval, whatever dt was chosen
    again = cli("run", exp, "--out", tmp_path / "run2")
    assert again.returncode == 0 and "cached advice" in again.stdout + again.stderr
    t = json.loads((tmp_path / "run2" / "meta.json").read_text())
    assert t["dt"] == meta["dt"] and t["method"] == meta["method"]


@pytest.mark.slow
def test_auto_is_never_coarser_than_a_strict_tolerance(tmp_path, cli, monkeypatch):
    """A stricter [simulation] tolerance makes "auto" pick a finer combination that meets it."""
    monkeypatch.setenv("HHC_CACHE", str(tmp_path / "cache"))
    exp = _auto_experiment(tmp_path, "strict.toml", interval="0.05 ms",
                           tolerance={"count": 0, "first_spike": "0.02 ms"})
    res = cli("run", exp, "--out", tmp_path / "run")
    assert res.returncode == 0, res.stdout + res.stderr
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["dt"] <= 0.05e-3 + 1e-12            # divides the 0.05 ms trace interval
    assert meta["auto_choice"]["tolerance"]["first_spike"] == pytest.approx(2e-5)
    _independent_check(cli, tmp_path, tmp_path / "run", exp, 0.02)


def test_bad_tolerance_is_a_located_error(tmp_path, cli):
    exp = _auto_experiment(tmp_path, "bad.toml", tolerance={"first_spike": "0.1 mV"})
    res = cli("run", exp, "--out", tmp_path / "run")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "tolerance first_spike" in res.stderr and "bad.toml" in res.stderr
