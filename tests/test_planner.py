"""The recording planner: byte estimates, window arithmetic, refusing plans that cannot fit."""
import re

import pytest

from hhc.compiler.errors import HHCError
from hhc.planner import (
    RecordingPlan,
    TracePlan,
    check_fits,
    estimate,
    format_bytes,
    merged_windows,
    samples_in_windows,
)

DT = 1e-5           # 0.01 ms, the seed's time step
T_SEED = 50.05      # 50 ms at rest + 50 s of current

GB = 10**9


def _full_voltage_plan():
    """The plan that must be refused: v of 50,000 neurons every step for the whole seed run."""
    return RecordingPlan(
        n_neurons=50_000, duration=T_SEED, dt=DT, trace_groups=[TracePlan(variables=["v"], interval=DT)]
    )


def test_two_terabyte_plan_estimate():
    est = estimate(_full_voltage_plan())
    assert est.samples == [5_005_000]  # 50.05 s / 0.01 ms, despite floating point
    # 8 bytes per sample per neuron, plus the time axis
    assert est.trace_bytes == 5_005_000 * (50_000 + 1) * 8
    assert est.trace_bytes == pytest.approx(2.0e12, rel=0.01)
    # 50 Hz assumed, 16 bytes per spike
    assert est.spike_bytes == 50_000 * 50 * T_SEED * 16
    assert est.memory_bytes == est.disk_bytes == est.spike_bytes + est.trace_bytes
    assert "traces: v of 50000 neurons, whole run, every 0.01 ms: 2.0 TB" in est.lines()


def test_two_terabyte_plan_refused_with_estimate_and_alternatives():
    est = estimate(_full_voltage_plan())
    with pytest.raises(HHCError) as info:
        check_fits(est, available_memory=16 * GB, free_disk=500 * GB)
    message = str(info.value)
    assert "2.0 TB" in message                     # the estimate, in human units
    assert "memory" in message and "disk" in message  # both limits are exceeded
    # budget is 80% of 16 GB = 12.8 GB; spikes take 2.0 GB, leaving ~10.8 GB for v
    subset = re.search(r"at most ([\d,]+) neurons", message)
    assert subset, message
    n_fit = int(subset.group(1).replace(",", ""))
    assert 0 < n_fit < 50_000
    assert estimate(
        RecordingPlan(50_000, T_SEED, DT, trace_groups=[TracePlan(["v"], neurons=range(n_fit), interval=DT)])
    ).memory_bytes <= 0.8 * 16 * GB
    assert re.search(r"every [\d.]+ ms instead of every 0.01 ms", message), message
    assert "time windows" in message


def test_suggested_interval_fits():
    est = estimate(_full_voltage_plan())
    with pytest.raises(HHCError) as info:
        check_fits(est, available_memory=16 * GB, free_disk=500 * GB)
    interval_ms = float(re.search(r"every ([\d.]+) ms instead", str(info.value)).group(1))
    cheaper = RecordingPlan(50_000, T_SEED, DT, trace_groups=[TracePlan(["v"], interval=interval_ms * 1e-3)])
    check_fits(estimate(cheaper), available_memory=16 * GB, free_disk=500 * GB)  # does not raise


def test_disk_alone_can_refuse():
    plan = RecordingPlan(1000, 1.0, DT, trace_groups=[TracePlan(["v"], interval=DT)])
    est = estimate(plan)  # 100,000 samples * 1001 * 8 = ~0.8 GB
    with pytest.raises(HHCError, match="on disk"):
        check_fits(est, available_memory=100 * GB, free_disk=100 * 10**6)


def test_small_plan_accepted(tmp_path):
    plan = RecordingPlan(
        n_neurons=10,
        duration=0.35,
        dt=DT,
        trace_groups=[TracePlan(variables=["v", "mnaf"], neurons=[0, 1], interval=1e-4)],
    )
    est = estimate(plan)
    assert est.samples == [3500]
    assert est.trace_bytes == 3500 * (2 * 2 + 1) * 8
    # real machine limits and the real output directory (nearest existing parent)
    check_fits(est, out_dir=tmp_path / "not" / "yet" / "created")


def test_window_arithmetic():
    # grid every 1 ms over 100 ms: window [10, 20) ms holds 10, 11, ..., 19 -> 10 samples
    assert samples_in_windows([(0.010, 0.020)], 0.1, 1e-3) == 10
    # two disjoint windows add up
    assert samples_in_windows([(0.0, 0.005), (0.050, 0.060)], 0.1, 1e-3) == 15
    # overlapping windows are merged, not counted twice: [0, 30) ms
    assert samples_in_windows([(0.0, 0.020), (0.010, 0.030)], 0.1, 1e-3) == 30
    assert merged_windows([(0.01, 0.02), (0.0, 0.015), (0.5, 0.6)], 1.0) == [(0.0, 0.02), (0.5, 0.6)]
    # clipped to the run; windows outside the run vanish
    assert samples_in_windows([(0.095, 0.2), (0.3, 0.4)], 0.1, 1e-3) == 5
    # None: the whole run
    assert samples_in_windows(None, 0.1, 1e-3) == 100
    # window edges not on the grid: [0.5, 2.5) ms holds 1 and 2 ms
    assert samples_in_windows([(0.0005, 0.0025)], 0.1, 1e-3) == 2
    with pytest.raises(HHCError):
        merged_windows([(0.2, 0.1)], 1.0)


def test_windows_in_estimate_and_lines():
    plan = RecordingPlan(
        n_neurons=100,
        duration=T_SEED,
        dt=DT,
        spike_neurons=0,
        trace_groups=[TracePlan(["v"], neurons=range(10), interval=DT, windows=[(0.0, 0.1), (1.0, 1.1)])],
    )
    est = estimate(plan)
    assert est.samples == [20_000]
    assert est.spike_bytes == 0
    assert est.trace_bytes == 20_000 * 11 * 8
    assert "traces: v of 10 neurons, 2 windows, every 0.01 ms: 1.8 MB" in est.lines()


def test_interval_shorter_than_dt_refused():
    plan = RecordingPlan(10, 1.0, DT, trace_groups=[TracePlan(["v"], interval=DT / 2)])
    with pytest.raises(HHCError, match="shorter than the time step"):
        estimate(plan)


def test_several_groups_add_up():
    plan = RecordingPlan(
        n_neurons=10,
        duration=1.0,
        dt=DT,
        rate_hz=10,
        trace_groups=[
            TracePlan(["v"], interval=1e-3),                      # 1000 samples x (10 + 1)
            TracePlan(["hka", "mka"], neurons=[3], interval=DT),  # 100000 samples x (2 + 1)
        ],
    )
    est = estimate(plan)
    assert est.samples == [1000, 100_000]
    assert est.trace_bytes == (1000 * 11 + 100_000 * 3) * 8
    assert est.spike_bytes == 10 * 10 * 16


def test_format_bytes():
    assert format_bytes(2.002e12) == "2.0 TB"
    assert format_bytes(1_500_000) == "1.5 MB"
    assert format_bytes(2048) == "2.0 kB"
    assert format_bytes(12) == "12 B"


def test_total_says_what_it_counts_and_the_search_is_beside_it():
    """The total is the peak of hhc's own process; the accuracy search of method/dt = "auto" ran
    before, in its own process: named with its measured peak, not added to the total."""
    plan = RecordingPlan(1000, 1.0, DT, baseline_bytes=160_000_000, state_bytes=1_000_000, segment=1.0)
    est = estimate(plan)
    total = next(line for line in est.lines() if line.startswith("total:"))
    assert "in memory at peak (simulator process 160.0 MB, neuron state 1.0 MB" in total
    assert "of hhc's own process" in total
    assert not any("accuracy search" in line for line in est.lines())
    plan.search_peak_bytes = 310_000_000
    searched = estimate(plan)
    assert searched.memory_bytes == est.memory_bytes
    assert searched.lines()[-1] == ('method/dt = "auto" accuracy search: peak 310.0 MB in its own process, '
                                    'before the run (not in the total)')
    bare = estimate(RecordingPlan(1000, 1.0, DT))
    assert "recordings only" in next(line for line in bare.lines() if line.startswith("total:"))
