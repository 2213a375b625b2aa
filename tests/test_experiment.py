"""Experiment files: checked before anything runs, with located errors; the recording planner and
initial-value sanity report on the seed's own mistakes."""
import numpy as np
import pytest

from hhc.api import prepare
from hhc.compiler.errors import HHCError
from hhc.compiler.experiment import RunOverrides

from builders import trace
from paths import SEED_EXAMPLE


@pytest.fixture
def experiment(make_experiment):
    """Kenyon cells at rk4, dt 0.01 ms: 50 ms at rest, then `long` at `step` (18 pA); spikes of all."""
    def make(size=10, v="-65 mV", long="300 ms", step="18 pA", **fields):
        fields = {"dt": "0.01 ms", "method": "rk4", **fields}
        return make_experiment(size=size, initial={"v": v}, protocol=[("50 ms", "0 pA"), (long, step)],
                               record={"spikes": "all"}, **fields)
    return make


def test_small_experiment_resolves(experiment):
    exp, cell, estimate = prepare(experiment())
    assert cell.name == "KenyonCell"
    assert [p.inputs["Iapp"] for p in exp.protocol] == [0.0, pytest.approx(18e-12)]
    assert exp.duration == pytest.approx(0.35)
    assert np.all(exp.initial_arrays["v"] == pytest.approx(-0.065))
    assert exp.initial_arrays["h_NaF"] == pytest.approx(np.ones(10))
    assert exp.warnings == ()


def test_seed_init_is_reported(experiment):
    # the researcher's init: v = -80 mV * rand() * i — most of 50,000 neurons start below -100 V
    exp, _, _ = prepare(experiment(size=50000, v="-80 mV * rand() * i"))
    assert len(exp.warnings) == 1
    warning = exp.warnings[0]
    v0 = exp.initial_arrays["v"]
    outside = int(((v0 < -0.2) | (v0 > 0.1)).sum())
    assert outside > 45000
    assert f"{outside:,} of 50,000" in warning
    assert "physiological" in warning and "mV" in warning
    assert (v0 < -100).sum() > 25000      # below -100 V, as the issue says


def test_uniform_initial_values_are_drawn_once_per_seed(experiment):
    a, _, _ = prepare(experiment(v="uniform(-70 mV, -60 mV)"))
    b, _, _ = prepare(experiment(v="uniform(-70 mV, -60 mV)"))
    assert np.array_equal(a.initial_arrays["v"], b.initial_arrays["v"])
    assert a.initial_arrays["v"].min() >= -0.070 and a.initial_arrays["v"].max() <= -0.060
    assert len(np.unique(a.initial_arrays["v"])) == 10


def test_seed_two_terabyte_plan_is_refused(tmp_path, cli, experiment):
    path = experiment(size=50000, long="50 s", traces=[trace(["v"], "all", interval="0.01 ms")])
    result = cli("run", path, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "does not fit" in result.stderr
    assert "2.0 TB" in result.stderr
    assert "at most" in result.stderr          # the cheaper alternatives
    assert not (tmp_path / "out" / "spikes.npz").exists()


@pytest.mark.parametrize("fields, line_text, words", [
    (dict(dt="0.01 mV"), 'dt = "0.01 mV"', "must be a time"),
    (dict(step="18 pV"), 'inputs = { Iapp = "18 pV" }', "must be a current"),
    (dict(step="18 pAA"), 'inputs = { Iapp = "18 pAA" }', "unknown unit 'pAA'"),
    (dict(step={"Ibad": "18 pA"}), 'inputs = { Ibad = "18 pA" }', "no input 'Ibad'"),
    (dict(size=-5), "size = -5", "positive integer"),
    (dict(v="-65 ms"), 'v = "-65 ms"', "must be a voltage"),
], ids=["dt", "current", "unit", "input", "size", "v"])
def test_bad_values_get_located_errors(cli, experiment, fields, line_text, words):
    path = experiment(**fields)
    result = cli("run", path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words in result.stderr
    line_no = path.read_text().splitlines().index(line_text) + 1
    assert f"{path}:{line_no}:" in result.stderr
    assert "^" in result.stderr


def test_invalid_toml_is_located(cli, experiment):
    path = experiment()
    # the builder writes valid TOML only: break it by hand
    path.write_text(path.read_text().replace('method = "rk4"', 'method = rk4'))
    result = cli("run", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "invalid TOML" in result.stderr
    line_no = path.read_text().splitlines().index("method = rk4") + 1
    assert f":{line_no}:" in result.stderr


def test_trace_neurons_out_of_range(experiment):
    path = experiment(traces=[trace(["v"], "0:20")])
    with pytest.raises(HHCError, match=r"'0:20' goes beyond the population \(10 neurons, 0\.\.9\)") as info:
        prepare(path)
    assert info.value.location.line_text.strip() == 'neurons = "0:20"'


def test_unknown_trace_variable(experiment):
    path = experiment(traces=[trace(["w"], [0])])
    with pytest.raises(HHCError, match="cannot record 'w'"):
        prepare(path)


def test_duration_cuts_the_protocol(experiment):
    exp, _, _ = prepare(experiment(), RunOverrides(duration="100 ms"))
    assert [p.duration for p in exp.protocol] == [pytest.approx(0.05), pytest.approx(0.05)]
    with pytest.raises(HHCError, match="must be a time"):
        prepare(experiment(), RunOverrides(duration="100 mV"))


def test_seed_job_file_plans_within_memory():
    exp, cell, estimate = prepare(SEED_EXAMPLE, choose_auto=False)
    assert exp.size == 50000 and exp.method == "auto" and exp.dt == pytest.approx(1e-5)   # provisional dt
    assert exp.duration == pytest.approx(50.05)
    assert estimate.memory_bytes < 8e9


def test_seed_init_blowup_is_a_clear_error(tmp_path, cli, experiment):
    """The seed's init with exponential_euler: Brian2 divides by zero; hhc says so, no traceback,
    and points at the initial values."""
    path = experiment(size=100, v="-80 mV * rand() * i", long="5 ms", method="exponential_euler")
    result = cli("run", path, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "outside the physiological range" in result.stderr
    assert "failed numerically" in result.stderr
    assert "check [initial] v first" in result.stderr


def test_unknown_method_is_refused(tmp_path, cli, experiment):
    path = experiment(long="1 ms", method="rk5")
    result = cli("run", path, "--out", tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unknown integration method 'rk5'" in result.stderr


def test_backend_override_drops_the_other_backends_device():
    exp, _, _ = prepare(SEED_EXAMPLE, RunOverrides(backend="nest"), choose_auto=False)
    assert exp.backend.name == "nest" and exp.backend.device is None and exp.backend.threads == 2
    same, _, _ = prepare(SEED_EXAMPLE, RunOverrides(backend="brian2"), choose_auto=False)
    assert same.backend.device == "cpp_standalone"
