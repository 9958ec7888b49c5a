"""ActivationAggregator against numpy over all feature maps: exact statistics, merge, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from audit_models import IMAGES
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.audit import ActivationAggregator, default_audit_tensors, saturation_bounds, sketch
from inspector.audit.tensors import tensor_op_types
from inspector.errors import InvalidArgument

SPLITS = (0, 7, 20, 53, 54, 90, IMAGES)  # uneven batches, one of a single image


def _aggregator(model, maps) -> ActivationAggregator:
    ops = tensor_op_types(model)
    return ActivationAggregator({n: (ops[n], ["N", *maps[n].shape[1:]]) for n in maps},
                                saturation_bounds(model))


def _fed(model, maps, start: int = 0, stop: int = IMAGES) -> ActivationAggregator:
    agg = _aggregator(model, maps)
    cuts = [s for s in SPLITS if start < s < stop]
    for a, b in zip([start, *cuts], [*cuts, stop], strict=True):
        agg.update({n: m[a:b] for n, m in maps.items()})
    return agg


def _per_channel(m: np.ndarray) -> np.ndarray:
    """[C, everything else] in float64."""
    return np.moveaxis(m, 1, 0).reshape(m.shape[1], -1).astype(np.float64)


def test_statistics_equal_numpy_over_all_maps(planted, planted_maps):
    stats = _fed(planted, planted_maps).result()
    bounds = saturation_bounds(planted)
    assert set(stats) == set(default_audit_tensors(planted))
    for name, m in planted_maps.items():
        v, s = _per_channel(m), stats[name]
        assert s.images == IMAGES
        np.testing.assert_allclose(s.mean, v.mean(axis=1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s.std, v.std(axis=1), rtol=1e-6, atol=1e-12)
        np.testing.assert_array_equal(s.min, v.min(axis=1))
        np.testing.assert_array_equal(s.max, v.max(axis=1))
        np.testing.assert_array_equal(s.zero_fraction, (v == 0).mean(axis=1))
        active = (np.moveaxis(m, 1, 0).reshape(m.shape[1], IMAGES, -1) != 0).any(axis=2).mean(axis=1)
        np.testing.assert_array_equal(s.active_fraction, active)
        if name in bounds:
            lo, hi = bounds[name]
            np.testing.assert_array_equal(s.saturation_fraction, ((v <= lo) | (v >= hi)).mean(axis=1))
        else:
            assert s.saturation_fraction is None


def test_percentiles_within_the_documented_sketch_error(planted, planted_maps):
    stats = _fed(planted, planted_maps).result()
    for name, m in planted_maps.items():
        v = _per_channel(m)
        for q, estimate in ((1, stats[name].p1), (50, stats[name].p50), (99, stats[name].p99)):
            exact = np.percentile(v, q, axis=1, method="lower")
            tolerance = sketch.RELATIVE_ERROR * np.abs(exact) + 2.0 ** sketch.MIN_EXP
            assert np.all(np.abs(estimate - exact) <= tolerance), (name, q, estimate, exact)


def test_merge_of_two_halves_equals_one_pass(planted, planted_maps):
    whole = _fed(planted, planted_maps)
    first, second = _fed(planted, planted_maps, 0, 54), _fed(planted, planted_maps, 54, IMAGES)
    first.merge(second)
    a, b = whole.to_dict(), first.to_dict()
    for name in a["tensors"]:
        ta, tb = a["tensors"][name], b["tensors"][name]
        for key in ("count", "min", "max", "zeros", "active", "saturated", "nonfinite", "hist"):
            assert ta[key] == tb[key], (name, key)
        np.testing.assert_allclose(tb["mean"], ta["mean"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(tb["m2"], ta["m2"], rtol=1e-10)
    assert first.images == whole.images == IMAGES


def test_json_round_trip_resumes_bit_for_bit(planted, planted_maps):
    uninterrupted = _fed(planted, planted_maps)
    partial = _fed(planted, planted_maps, 0, 53)
    saved = json.dumps(partial.to_dict(), allow_nan=False)
    resumed = ActivationAggregator.from_dict(json.loads(saved))
    assert resumed.to_dict() == partial.to_dict()
    for a, b in zip([53, 54, 90], [54, 90, IMAGES], strict=True):
        resumed.update({n: m[a:b] for n, m in planted_maps.items()})
    assert resumed.to_dict() == uninterrupted.to_dict()


def test_the_array_form_restores_what_the_json_form_restores(planted, planted_maps):
    """to_dict(arrays=True), pickled (the Ray engine's partial states), gives back the same
    aggregate as the JSON form, bit for bit, non-finite values and empty channels included."""
    import pickle

    x = np.random.default_rng(3).standard_normal((6, 3, 4, 4)).astype(np.float32)
    x[0, 1, 0, :3] = [np.nan, np.inf, -np.inf]
    x[:, 2] = np.nan
    odd = ActivationAggregator({"t": ("Relu", ["N", 3, 4, 4])}, {"t": (0.0, 1.0)})
    odd.update({"t": x})
    for agg in (_fed(planted, planted_maps, 0, 53), odd):
        from_arrays = ActivationAggregator.from_dict(pickle.loads(pickle.dumps(agg.to_dict(arrays=True))))
        from_json = ActivationAggregator.from_dict(json.loads(json.dumps(agg.to_dict(), allow_nan=False)))
        assert from_arrays.to_dict() == from_json.to_dict() == agg.to_dict()
        assert isinstance(agg.to_dict(arrays=True)["tensors"]["t" if agg is odd else next(iter(agg.state))]["mean"],
                          np.ndarray)


def test_nonfinite_values_are_counted_and_kept_out_of_the_statistics():
    x = np.random.default_rng(1).standard_normal((5, 3, 4, 4)).astype(np.float32)
    x[0, 1, 0, :3] = [np.nan, np.inf, -np.inf]
    x[:, 2] = np.nan  # a channel without a single finite value
    agg = ActivationAggregator({"t": ("Conv", ["N", 3, 4, 4])})
    agg.update({"t": x[:2]})
    agg.update({"t": x[2:]})
    s = agg.result()["t"]
    v = _per_channel(x)
    finite = np.where(np.isfinite(v[:2]), v[:2], np.nan)
    np.testing.assert_allclose(s.mean[:2], np.nanmean(finite, axis=1), rtol=1e-12)
    np.testing.assert_allclose(s.std[:2], np.nanstd(finite, axis=1), rtol=1e-9)
    np.testing.assert_array_equal(s.min[:2], np.nanmin(finite, axis=1))
    np.testing.assert_array_equal(s.max[:2], np.nanmax(finite, axis=1))
    np.testing.assert_array_equal(s.nonfinite_fraction, [0.0, 3 / 80, 1.0])
    assert np.isnan(s.mean[2]) and np.isnan(s.p50[2])
    json.dumps(agg.to_dict(), allow_nan=False)  # still JSON-safe


def test_bad_batches_fail_with_a_sentence():
    agg = ActivationAggregator({"a": ("Relu", ["N", 2, 3]), "b": ("Relu", ["N", 4])})
    with pytest.raises(InvalidArgument, match="'b'"):
        agg.update({"a": np.zeros((1, 2, 3), np.float32)})
    with pytest.raises(InvalidArgument, match="expected"):
        agg.update({"a": np.zeros((1, 3, 3), np.float32), "b": np.zeros((1, 4), np.float32)})
    with pytest.raises(InvalidArgument, match="same N"):
        agg.update({"a": np.zeros((2, 2, 3), np.float32), "b": np.zeros((1, 4), np.float32)})
    with pytest.raises(InvalidArgument, match="channel count"):
        ActivationAggregator({"c": ("Conv", ["N", "C", 8, 8])})
    other = ActivationAggregator({"a": ("Relu", ["N", 2, 3])})
    with pytest.raises(InvalidArgument, match="different tensors"):
        agg.merge(other)


def test_sketch_bins_hold_every_magnitude_within_the_documented_error():
    rng = np.random.default_rng(3)
    v = (rng.standard_normal(200_000) * np.exp2(rng.uniform(-24, 24, 200_000))).astype(np.float32)
    v = np.r_[v, 0.0, -0.0, 2.0 ** sketch.MIN_EXP, -(2.0 ** sketch.MIN_EXP)].astype(np.float32)
    read = sketch.bin_values()[sketch.bin_index(v)].astype(np.float64)
    inside = (np.abs(v) >= 2.0 ** sketch.MIN_EXP) & (np.abs(v) < 2.0 ** sketch.MAX_EXP)
    assert np.all(np.abs(read - v)[inside] <= sketch.RELATIVE_ERROR * np.abs(v[inside]) * (1 + 1e-12))
    assert np.all(np.sign(read[inside]) == np.sign(v[inside]))
    assert np.all(read[np.abs(v) < 2.0 ** sketch.MIN_EXP] == 0)
    top = np.abs(v) >= 2.0 ** sketch.MAX_EXP  # clamped into the outermost bins, sign kept
    assert np.all(np.abs(read[top]) > 2.0 ** (sketch.MAX_EXP - 1)) and np.all(np.sign(read[top]) == np.sign(v[top]))


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(1, 11), max_size=4, unique=True), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-3, 1.0, 1e4]), offset=st.sampled_from([0.0, 5.0, -1e3]))
def test_any_split_merges_to_numpy(cuts, seed, scale, offset):
    """Property: whatever the batch cuts and partial aggregates, the merged result equals numpy."""
    x = (np.random.default_rng(seed).standard_normal((12, 3, 5)) * scale + offset).astype(np.float32)
    x[x < offset] = 0.0  # plenty of exact zeros
    edges = [0, *sorted(cuts), 12]
    total = ActivationAggregator({"t": ("Relu", ["N", 3, 5])}, {"t": (0.0, offset + scale)})
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = ActivationAggregator({"t": ("Relu", ["N", 3, 5])}, {"t": (0.0, offset + scale)})
        part.update({"t": x[a:b]})
        total.merge(ActivationAggregator.from_dict(json.loads(json.dumps(part.to_dict()))))
    s, v = total.result()["t"], _per_channel(x)
    np.testing.assert_allclose(s.mean, v.mean(axis=1), rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(s.std, v.std(axis=1), rtol=1e-6, atol=1e-9 * scale)
    np.testing.assert_array_equal(s.min, v.min(axis=1))
    np.testing.assert_array_equal(s.max, v.max(axis=1))
    np.testing.assert_array_equal(s.zero_fraction, (v == 0).mean(axis=1))
    np.testing.assert_array_equal(s.saturation_fraction, ((v <= 0) | (v >= offset + scale)).mean(axis=1))
    assert total.images == 12


def test_corrupt_saved_state_fails_with_a_sentence(planted, planted_maps):
    saved = _fed(planted, planted_maps, 0, 20).to_dict()
    name = next(iter(saved["tensors"]))
    truncated = json.loads(json.dumps(saved))
    truncated["tensors"][name]["mean"].pop()
    with pytest.raises(InvalidArgument, match="incomplete or corrupt"):
        ActivationAggregator.from_dict(truncated)
    del saved["tensors"][name]["hist"]
    with pytest.raises(InvalidArgument, match="incomplete or corrupt"):
        ActivationAggregator.from_dict(saved)
    with pytest.raises(InvalidArgument, match="incompatible version"):
        ActivationAggregator.from_dict({"version": 0})
