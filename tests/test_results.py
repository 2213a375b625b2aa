"""The result format: what a backend writes is what the reader gives back."""
import json

import numpy as np
import pytest

from hhc.compiler.errors import HHCError
from hhc.backends.results import TraceGroup, load_results, write_results


def _v_group(n_samples=5, neurons=(0, 3), offset=0.0):
    t = np.arange(n_samples) * 1e-4
    v = -0.065 + offset + 1e-3 * np.arange(n_samples * len(neurons)).reshape(n_samples, len(neurons))
    return TraceGroup(t=t, neurons=np.array(neurons), variables={"v": v})


def test_round_trip_single_group(tmp_path):
    spike_i = np.array([2, 0, 2])
    spike_t = np.array([0.010, 0.0125, 0.030])
    group = _v_group()
    group.variables["mnaf"] = np.full((5, 2), 0.25)
    meta = {"backend": "brian2", "dt": 1e-5, "n_neurons": 4}

    write_results(tmp_path / "run", spike_i=spike_i, spike_t=spike_t, traces=[group], meta=meta)
    res = load_results(tmp_path / "run")

    assert res.spike_i.dtype == np.int64 and res.spike_t.dtype == np.float64
    np.testing.assert_array_equal(res.spike_i, spike_i)
    np.testing.assert_array_equal(res.spike_t, spike_t)
    assert res.meta == meta
    assert len(res.traces) == 1
    t, neurons, v = res.trace("v")
    np.testing.assert_array_equal(t, group.t)
    np.testing.assert_array_equal(neurons, [0, 3])
    np.testing.assert_array_equal(v, group.variables["v"])
    np.testing.assert_array_equal(res.trace("mnaf")[2], 0.25)

    # single group: plain key names, no suffix
    with np.load(tmp_path / "run" / "traces.npz") as npz:
        assert sorted(npz.files) == ["mnaf", "neurons", "t", "v"]
    # meta.json: sorted keys, indented, so runs diff cleanly
    text = (tmp_path / "run" / "meta.json").read_text()
    assert text == json.dumps(meta, indent=2, sort_keys=True) + "\n"


def test_spike_helpers(tmp_path):
    write_results(
        tmp_path, spike_i=[1, 0, 1, 1], spike_t=[0.3, 0.1, 0.2, 0.1], traces=[], meta={"n_neurons": 3}
    )
    res = load_results(tmp_path)
    np.testing.assert_array_equal(res.spike_counts(), [1, 3, 0])  # n_neurons from meta
    np.testing.assert_array_equal(res.spike_counts(5), [1, 3, 0, 0, 0])
    trains = res.spike_trains()
    assert sorted(trains) == [0, 1]
    np.testing.assert_array_equal(trains[1], [0.1, 0.2, 0.3])  # sorted by time
    assert res.traces == []


def test_several_groups_use_suffixes(tmp_path):
    groups = [
        _v_group(5, (0, 1)),
        {"t": [0.1, 0.2], "neurons": [7], "variables": {"v": [[-0.07], [-0.06]], "hka": [[1.0], [0.9]]}},
        _v_group(3, (2,), offset=0.01),
    ]
    write_results(tmp_path, spike_i=[], spike_t=[], traces=groups, meta={})
    with np.load(tmp_path / "traces.npz") as npz:
        assert set(npz.files) == {
            "t", "neurons", "v",
            "t__1", "neurons__1", "v__1", "hka__1",
            "t__2", "neurons__2", "v__2",
        }
    res = load_results(tmp_path)
    assert len(res.traces) == 3
    t1, n1, hka = res.trace("hka", group=1)
    np.testing.assert_array_equal(t1, [0.1, 0.2])
    np.testing.assert_array_equal(n1, [7])
    np.testing.assert_array_equal(hka, [[1.0], [0.9]])
    np.testing.assert_array_equal(res.trace("v", group=2)[2], groups[2].variables["v"])
    assert res.spike_i.size == 0 and res.spike_counts().size == 0
    with pytest.raises(HHCError, match="hka"):
        res.trace("hka", group=0)
    with pytest.raises(HHCError, match="trace group 3"):
        res.trace("v", group=3)


def test_variable_named_like_numpy_parameter(tmp_path):
    # np.savez(f, **arrays) would fail on these names; the writer must not
    group = TraceGroup(t=[0.0], neurons=[0], variables={"file": [[1.0]], "allow_pickle": [[2.0]]})
    write_results(tmp_path, spike_i=[], spike_t=[], traces=[group], meta={})
    assert load_results(tmp_path).trace("file")[2][0, 0] == 1.0


def test_missing_directory(tmp_path):
    with pytest.raises(HHCError, match="no result directory"):
        load_results(tmp_path / "nowhere")


def test_missing_file(tmp_path):
    write_results(tmp_path, spike_i=[0], spike_t=[0.1], traces=[], meta={})
    (tmp_path / "traces.npz").unlink()
    with pytest.raises(HHCError, match="traces.npz"):
        load_results(tmp_path)


def test_bad_shapes_and_meta_are_refused(tmp_path):
    with pytest.raises(HHCError, match="shape"):
        TraceGroup(t=[0.0, 1.0], neurons=[0, 1], variables={"v": np.zeros((2, 3))})
    with pytest.raises(HHCError, match="spike"):
        write_results(tmp_path, spike_i=[0, 1], spike_t=[0.1], traces=[], meta={})
    with pytest.raises(HHCError, match="JSON"):
        write_results(tmp_path / "x", spike_i=[], spike_t=[], traces=[], meta={"bad": object()})
    assert not (tmp_path / "x" / "spikes.npz").exists()  # nothing half-written


def test_rewrite_leaves_no_temp_files(tmp_path):
    for _ in range(2):
        write_results(tmp_path, spike_i=[0], spike_t=[0.1], traces=[_v_group()], meta={"k": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "spikes.npz", "traces.npz"]


def test_chunked_spikes_stream_into_a_standard_npz(tmp_path):
    """A long run's spikes are written piece by piece; np.load reads them like any other array."""
    from hhc.backends.results import ChunkedArray
    pieces_i = [np.arange(5), np.zeros(0, np.int64), np.array([7, 8])]
    pieces_t = [np.linspace(0, 1, 5), np.zeros(0), np.array([2.0, 3.0])]
    write_results(tmp_path, spike_i=ChunkedArray(np.dtype(np.int64), 7, lambda: iter(pieces_i)),
                  spike_t=ChunkedArray(np.dtype(np.float64), 7, lambda: iter(pieces_t)), meta={"n_neurons": 9})
    back = load_results(tmp_path)
    assert np.array_equal(back.spike_i, np.concatenate(pieces_i))
    assert np.array_equal(back.spike_t, np.concatenate(pieces_t))
    with pytest.raises(HHCError, match="announced"):
        write_results(tmp_path / "bad", spike_i=ChunkedArray(np.dtype(np.int64), 8, lambda: iter(pieces_i)),
                      spike_t=np.zeros(8))


def test_run_label_neurons_duration_and_phases(tmp_path):
    """What compare and plot read off a run: its label, the neurons it simulated, its duration and
    where its protocol phases start."""
    meta = {"backend": "brian2", "device": "cpp_standalone", "method": "rk4", "dt": 1e-5, "n_neurons": 4,
            "duration": 0.35, "protocol": [{"duration": 0.05, "inputs": {}}, {"duration": 0.3, "inputs": {}}]}
    write_results(tmp_path / "run", spike_i=[3, 1], spike_t=[0.2, 0.1], traces=[], meta=meta)
    run = load_results(tmp_path / "run")
    assert run.label() == "brian2/cpp_standalone rk4 dt 0.01 ms"
    assert run.neurons().tolist() == [0, 1, 2, 3]                  # silent neurons 0 and 2 included
    assert run.duration() == pytest.approx(0.35)
    assert run.phase_starts() == [0.0, pytest.approx(0.05)]

    ref_meta = {"backend": "reference", "solver": "DOP853", "rtol": 1e-9, "sample_neurons": [0, 5, 9]}
    write_results(tmp_path / "ref", spike_i=[5], spike_t=[0.125], traces=[], meta=ref_meta)
    ref = load_results(tmp_path / "ref")
    assert ref.label() == "reference DOP853 rtol 1e-09"
    assert ref.neurons().tolist() == [0, 5, 9]                      # the sample, not 0..n-1
    assert ref.duration() == pytest.approx(0.125)                   # no duration: the last spike
    assert ref.phase_starts() == []

    write_results(tmp_path / "bare", spike_i=[2, 2], spike_t=[0.1, 0.2], traces=[], meta={})
    bare = load_results(tmp_path / "bare")
    assert bare.label("fallback") == "fallback" and bare.neurons().tolist() == [2]


def test_trains_for_keeps_the_order_asked_and_silent_neurons(tmp_path):
    write_results(tmp_path, spike_i=[1, 0, 1, 3], spike_t=[0.3, 0.1, 0.2, 0.05], traces=[], meta={})
    trains = load_results(tmp_path).trains_for(np.array([3, 2, 1]))
    assert [t.tolist() for t in trains] == [[0.05], [], [0.2, 0.3]]


def test_crossings_round_trip_and_old_results_have_none(tmp_path):
    """A reference's crossings (overshoot per spike, near misses) come back as written; a result
    without them, or re-written without them, reads as crossings None."""
    from hhc.backends.results import NEAR_MISS_RECORDED, Crossings, RunResult
    crossings = Crossings(-0.02, overshoot=[0.031, 2e-4, 0.029], near_i=[4, 1], near_t=[0.2013, 0.05],
                          near_peak=[-0.02003, -0.0212])
    write_results(tmp_path / "ref", spike_i=[2, 0, 2], spike_t=[0.01, 0.0125, 0.03], traces=[],
                  meta={"backend": "reference"}, crossings=crossings)
    back = load_results(tmp_path / "ref").crossings
    assert back is not None and back.threshold == -0.02 and back.recorded_below == NEAR_MISS_RECORDED
    np.testing.assert_array_equal(back.overshoot, [0.031, 2e-4, 0.029])
    assert back.near_i.dtype == np.int64 and back.near_i.tolist() == [4, 1]
    np.testing.assert_array_equal(back.near_t, [0.2013, 0.05])
    np.testing.assert_array_equal(back.near_peak, [-0.02003, -0.0212])
    meta = json.loads((tmp_path / "ref" / "meta.json").read_text())
    assert meta["crossings"] == {"threshold": -0.02, "recorded_below": NEAR_MISS_RECORDED}
    with np.load(tmp_path / "ref" / "spikes.npz") as npz:
        assert sorted(npz.files) == ["i", "near_i", "near_peak", "near_t", "overshoot", "t"]

    # a run written by a backend that knows nothing of crossings, and an old result folder
    write_results(tmp_path / "plain", spike_i=[0], spike_t=[0.1], traces=[], meta={})
    assert load_results(tmp_path / "plain").crossings is None
    # re-writing a loaded reference without its crossings drops meta's description of them too
    ref = load_results(tmp_path / "ref")
    write_results(tmp_path / "again", spike_i=ref.spike_i, spike_t=ref.spike_t, traces=[], meta=ref.meta)
    assert load_results(tmp_path / "again").crossings is None
    assert "crossings" not in load_results(tmp_path / "again").meta

    # RunResult carries them into the same files
    RunResult([1, 1], [0.1, 0.2], crossings=Crossings(-0.02, [0.03, 0.01], [], [], [])).write(tmp_path / "run")
    np.testing.assert_array_equal(load_results(tmp_path / "run").crossings.overshoot, [0.03, 0.01])
    with pytest.raises(HHCError, match="overshoots"):
        RunResult([1, 1], [0.1, 0.2], crossings=Crossings(-0.02, [0.03], [], [], []))
    with pytest.raises(HHCError, match="overshoots"):
        write_results(tmp_path / "bad", spike_i=[1], spike_t=[0.1], crossings=Crossings(-0.02, [], [], [], []))


def test_damaged_crossings_are_refused(tmp_path):
    from hhc.backends.results import Crossings
    write_results(tmp_path, spike_i=[0, 0], spike_t=[0.1, 0.2], meta={},
                  crossings=Crossings(-0.02, [0.03, 0.01], [0], [0.15], [-0.0201]))
    with np.load(tmp_path / "spikes.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["overshoot"] = arrays["overshoot"][:1]               # no longer one per spike
    np.savez(tmp_path / "spikes.npz", **arrays)
    with pytest.raises(HHCError, match="spike file"):
        load_results(tmp_path)


def test_ill_conditioned_lists_small_overshoots_and_close_near_misses():
    from hhc.backends.results import Crossings, ill_conditioned
    crossings = Crossings(-0.02, overshoot=[0.030, 0.0002, 0.0006, 0.0],
                          near_i=[1, 0, 3], near_t=[0.25, 0.3, 0.05], near_peak=[-0.0201, -0.0219, -0.02049])
    i, t, d = ill_conditioned([0, 0, 2, 1], [0.1, 0.2, 0.1, 0.4], crossings, margin=0.5e-3)
    # spikes 0.2 mV and 0 mV above, near misses 0.1 mV and 0.49 mV below; not 30 mV, 0.6 mV or 1.9 mV
    assert list(zip(i.tolist(), t.tolist())) == [(0, 0.2), (1, 0.25), (1, 0.4), (3, 0.05)]
    np.testing.assert_allclose(d, [0.0002, -0.0001, 0.0, -0.00049], atol=1e-12)
    i, _, _ = ill_conditioned([0, 0, 2, 1], [0.1, 0.2, 0.1, 0.4], crossings, margin=1e-3)
    assert sorted(i.tolist()) == [0, 1, 1, 2, 3]
    with pytest.raises(HHCError, match="overshoots"):
        ill_conditioned([0], [0.1], crossings, 0.5e-3)
