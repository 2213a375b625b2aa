"""hhc advise: the recommended method x dt really meets the tolerance against the reference."""
import json

import pytest

from conftest import ROOT, write_experiment

EXP = """
[population]
size = 3
[simulation]
dt = "%s"
method = "%s"
[initial]
v = "uniform(-70 mV, -60 mV)"
[[protocol]]
duration = "20 ms"
inputs = { Iapp = "0 pA" }
[[protocol]]
duration = "280 ms"
inputs = { Iapp = "18 pA" }
[record]
spikes = "all"
"""


@pytest.mark.slow
def test_advisor_pick_on_the_kenyon_cell_meets_the_tolerance(tmp_path, cli):
    exp = write_experiment(tmp_path / "e.toml", EXP % ("0.01 ms", "rk4"))
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
    picked = write_experiment(tmp_path / "picked.toml", EXP % (f"{best['dt'] * 1e3:g} ms", best["method"]))
    assert cli("run", picked, "--out", tmp_path / "run").returncode == 0
    assert cli("reference", picked, "--sample", "3", "--out", tmp_path / "ref").returncode == 0
    res = cli("compare", tmp_path / "run", tmp_path / "ref", "--report", tmp_path / "cmp", "--no-plots",
              "--count", "0", "--first-spike", "0.1", "--spike-time", "1000", "--marginal-count", "0",
              "--marginal-first-spike", "0.1", "--marginal-spike-time", "1000")
    assert res.returncode == 0, res.stdout


@pytest.mark.slow
def test_advise_on_the_seed_example_runs_on_a_short_sample(tmp_path, cli):
    res = cli("advise", ROOT / "examples" / "kenyon_50k_50s.toml", "--sample", "2", "--duration", "150 ms",
              "--methods", "rk4", "--dts", "0.05", "--out", tmp_path / "adv")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rk4" in res.stdout and "recommended: method = \"rk4\", dt = \"0.05 ms\"" in res.stdout
    assert "of 50,000 neurons" in res.stderr
