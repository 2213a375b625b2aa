"""hhc validate: the models x backends matrix, the short protocols and the long cases."""
import json

import numpy as np
import pytest

from hhc import validate as v
from hhc.backends import backend_class
from hhc.backends.base import UnsupportedError
from hhc.backends.results import load_results
from hhc.compiler.errors import HHCError
from paths import SQUID


def test_unknown_and_code_only_backends_are_listed_with_the_reason(tmp_path, cli):
    # no runnable backend: only the listing
    res = cli("validate", "--backends", "neuroml,nosuch", "--models", "SquidAxon", "--out", tmp_path / "v")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "neuroml: unavailable here: generates NeuroML2/LEMS documents only" in res.stdout
    assert "nosuch: unavailable here:" in res.stdout and "unknown backend" in res.stdout


@pytest.mark.parametrize("args, long", [((), True), (("--no-long",), False)])
def test_the_long_cases_are_in_unless_no_long(cli, monkeypatch, tmp_path, args, long):
    seen = {}

    def fake(*a, **kw):
        seen.update(kw)
        return {}, {}, {}
    monkeypatch.setattr("hhc.commands.validate.validate", fake)
    res = cli.here("validate", "--backends", "brian2", "--out", tmp_path / "v", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert seen["long"] is long


def _case(long=True, name="spread"):
    return v.Case(name, long, 1e-9, 0.1, 0.0, 2, {"v": "uniform(-75 mV, -55 mV)", "gates": "steady_state"},
                  ref_dir=None)


def test_a_backend_with_its_own_validate_dt_skips_the_long_cases_and_is_not_failed_for_it():
    cls = backend_class("jneuroml")
    assert cls.capabilities.validate_dt            # what makes it skip; no run, no reference needed
    d = v.run_case(_case(), SQUID, None, "jneuroml", "jneuroml", None, dt=1e-5, method="auto", out=None)
    assert d["status"] == "skipped"
    assert "0.001 ms" in d["message"] and "euler" in d["message"]
    passed = {"level": "strong", "long": False, "status": "PASS", "max_spike_dt_s": 2e-5, "count_mismatches": 0}
    cell = v.summarise([passed, d])
    assert cell.status == "PASS" and cell.worst.endswith("skipped: spread")
    assert v.long_skip_reason(backend_class("brian2")) is None


@pytest.mark.parametrize("error, status", [(UnsupportedError("brian2", "a different initial v per neuron"), "n/a"),
                                           (HHCError("the run blew up"), "ERROR")])
def test_a_case_the_backend_cannot_express_is_not_applicable_other_errors_are_errors(monkeypatch, error, status):
    from hhc.compiler import load_model
    cell = load_model(SQUID).cells[0]

    def refuse(exp, **kw):
        raise error
    monkeypatch.setattr(v, "run_experiment", refuse)
    d = v.run_case(_case(), SQUID, cell, "brian2", "brian2", None, dt=1e-5, method="auto", out=None)
    assert d["status"] == status and d["message"] == error.message
    passed = {"level": "strong", "long": False, "status": "PASS", "max_spike_dt_s": 2e-5, "count_mismatches": 0}
    summary = v.summarise([passed, d])
    if status == "n/a":
        assert summary.status == "PASS" and "n/a: spread" in summary.worst
        # nothing compared at all is not a PASS
        alone = v.summarise([d])
        assert alone.status == "N/A" and error.message in alone.worst
    else:
        assert summary.status == "ERROR" and summary.worst == "spread: the run blew up"


def test_a_failing_case_fails_the_matrix_cell_whichever_case_it_is():
    ok = {"level": "strong", "long": False, "status": "PASS", "max_spike_dt_s": 1e-5, "count_mismatches": 0}
    bad = {"level": "tonic", "long": True, "status": "FAIL", "message": "neuron 0 spike count 1149 vs 1148",
           "max_spike_dt_s": 2e-3, "count_mismatches": 1}
    assert v.summarise([ok, bad]).status == "FAIL"
    assert v.summarise([ok, bad]).worst == "tonic: neuron 0 spike count 1149 vs 1148"
    assert v.summarise([ok, ok]).status == "PASS"


# ---- one brian2 run of the whole suite, read by the tests below --------------------------------

@pytest.fixture(scope="module")
def brian2_report(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("validate") / "v"
    res = cli("validate", "--backends", "brian2", "--out", out)
    return res, out, json.loads((out / "validate.json").read_text()) if (out / "validate.json").exists() else None


def _detail(report, model, case):
    row = next(r for r in report["matrix"] if r["model"] == model and r["backend"] == "brian2")
    return next(d for d in row["details"] if d["level"] == case)


def _long(report, model, case):
    return next(c for c in report["info"]["long"] if c["model"] == model and c["case"] == case)


@pytest.mark.slow
def test_validate_brian2_passes_on_every_model(brian2_report):
    res, out, _ = brian2_report
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["model", "brian2"]
    assert any(line.startswith("hh_squid:SquidAxon") and "PASS" in line for line in lines)
    assert any(line.startswith("kenyon_cell:KenyonCell") and "PASS" in line for line in lines)
    assert (out / "validate.md").exists()


@pytest.mark.slow
def test_the_squid_axon_fires_tonically_for_the_whole_long_run_and_brian2_keeps_its_phase(brian2_report):
    _, out, report = brian2_report
    tonic = _long(report, "hh_squid:SquidAxon", "tonic")
    assert tonic["neurons"] == 1 and tonic["spikes"] > 500
    ref = load_results(tonic["reference_dir"])
    assert ref.duration() == pytest.approx(v.REST + v.LONG_TONIC)
    assert ref.spike_t.max() > v.REST + v.LONG_TONIC - 0.1          # still firing at the end
    assert ref.crossings is not None                                 # the compiled reference's crossings
    d = _detail(report, "hh_squid:SquidAxon", "tonic")
    assert d["status"] == "PASS", d
    assert d["spikes_reference"] == tonic["spikes"] and d["spikes_backend"] == tonic["spikes"]
    assert 0 < d["max_spike_dt_s"] <= 0.5e-3 and d["unmatched_backend"] == d["unmatched_reference"] == 0
    md = (out / "validate.md").read_text()
    assert "| hh_squid:SquidAxon | tonic | brian2 | PASS |" in md


@pytest.mark.slow
def test_the_spread_case_starts_its_neurons_from_different_v(brian2_report):
    _, _, report = brian2_report
    for model in ("hh_squid:SquidAxon", "kenyon_cell:KenyonCell"):
        spread = _long(report, model, "spread")
        v0 = np.array(spread["initial_v"])
        assert len(v0) == v.SPREAD_NEURONS == spread["neurons"]
        assert len(np.unique(v0)) == len(v0)
        assert v0.min() >= -75e-3 and v0.max() <= -55e-3 and np.ptp(v0) > 10e-3
        ref = load_results(spread["reference_dir"])
        assert list(ref.neurons()) == list(range(v.SPREAD_NEURONS))
        assert _detail(report, model, "spread")["status"] == "PASS"
    # different starts, different trajectories: every firing neuron's first spike at its own time
    # (the squid axon is bistable at this drive: the neurons that start above about -60 mV stay silent)
    ref = load_results(_long(report, "hh_squid:SquidAxon", "spread")["reference_dir"])
    firsts = [t[0] for t in ref.trains_for(ref.neurons()) if len(t)]
    assert len(firsts) >= v.SPREAD_NEURONS // 2
    assert len(np.unique(np.round(firsts, 9))) == len(firsts) and np.ptp(firsts) > 0.1e-3


@pytest.mark.slow
def test_the_kenyon_cell_gets_no_tonic_case_and_the_report_says_why(brian2_report):
    _, out, report = brian2_report
    left = _long(report, "kenyon_cell:KenyonCell", "tonic")
    assert left["left_out"].startswith("not tonic at 3× rheobase: last spike at ")
    assert "tonic" not in [d["level"] for d in next(r for r in report["matrix"]
                                                    if r["model"] == "kenyon_cell:KenyonCell")["details"]]
    md = (out / "validate.md").read_text()
    assert "| kenyon_cell:KenyonCell | tonic | no case: not tonic at 3× rheobase: last spike at " in md


def _write_spikes(folder, trains):
    from hhc.backends.results import write_results
    i = [n for n, times in trains.items() for _ in times]
    t = [x for times in trains.values() for x in times]
    write_results(folder, spike_i=i, spike_t=t, meta={"backend": "test"})
    return folder


def test_same_spike_drift_pairs_the_kth_spikes_beyond_the_matching_window(tmp_path):
    ref = _write_spikes(tmp_path / "ref", {0: [0.010, 0.050, 0.090], 1: [0.020]})
    late = _write_spikes(tmp_path / "late", {0: [0.0101, 0.0535, 0.0998], 1: [0.0203]})   # 9.8 ms by the third
    lost = _write_spikes(tmp_path / "lost", {0: [0.0101, 0.0535], 1: [0.0203]})           # the third past the end
    assert v._same_spike_drift(ref, late) == (pytest.approx(9.8e-3), True)
    assert v._same_spike_drift(ref, lost) == (pytest.approx(3.5e-3), False)


@pytest.mark.parametrize("halves, expected", [
    ([(0.5e-3, True)], "converging"),                  # halves with dt: integration error, said and not judged
    ([(1.9e-3, True)], None),                          # does not move: a model mismatch, the FAIL stands
    ([(0.1e-3, True)], None),                          # falls far faster than first order: not explained by dt
    ([(0.5e-3, False)], None),                         # converging, but a spike still missing: FAIL stands
    ([(0.5e-3, False), (0.25e-3, True)], "converging"),    # ... until the counts agree at dt/4
])
def test_a_first_order_backend_off_by_its_integration_error_is_told_apart(monkeypatch, tmp_path, halves, expected):
    drift = {"run": (1.0e-3, True), **{f"run-dt-{k + 1}": h for k, h in enumerate(halves)}}
    monkeypatch.setattr(v, "_same_spike_drift", lambda ref_dir, run_dir: drift[run_dir.name])
    reruns = []
    message = v._converging(_case(long=False), "neuron", 1e-5, tmp_path / "run", v.Tolerances(),
                            lambda step, folder: reruns.append(folder.name), 1, halvings=len(halves))
    assert reruns == [f"run-dt-{k + 1}" for k in range(len(halves))]
    if expected is None:
        assert message is None
    else:
        assert expected in message and "1 ms at dt 0.01 ms" in message
        assert "needs dt <= 0.005 ms" in message or "needs dt <= 0.0025 ms" in message
