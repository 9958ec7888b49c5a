"""The in-graph audit reductions: each output against numpy, and the reduced path against the full one."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from audit_models import IMAGES, OrtAccess, planted_images
from factory import CNNBuilder

from inspector.audit import AuditRun, default_audit_tensors, saturation_bounds, sketch
from inspector.audit.audit import fold_batch
from inspector.audit.reductions import SAMPLE, output_name, read_reduced, reducible, with_reductions
from inspector.errors import FailedPrecondition
from inspector.runtime.access import OrtModelAccess

CUTS = (0, 7, 20, 53, 54, 90, IMAGES)  # uneven batches, one of a single image
EXACT = ("min", "max", "zero_fraction", "active_fraction", "saturation_fraction", "nonfinite_fraction")


def _run_audit_model(model, names, x):
    reduce = reducible(model, names)
    audit_model = with_reductions(model, reduce, saturation_bounds(model))
    session = ort.InferenceSession(audit_model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    return reduce, dict(zip(outputs, session.run(outputs, {model.graph.input[0].name: x}), strict=True))


def test_every_reduction_equals_numpy_over_the_plain_maps(planted, planted_maps):
    names = default_audit_tensors(planted)
    reduce, values = _run_audit_model(planted, names, planted_images())
    assert reduce == names  # all ranks are known in the planted model
    bounds = saturation_bounds(planted)
    for name in names:
        m = planted_maps[name]
        flat = m.reshape(m.shape[0], m.shape[1], -1)
        v = np.moveaxis(flat, 1, 0).reshape(m.shape[1], -1).astype(np.float64)
        r = read_reduced(values, name)
        assert r.shape == list(m.shape) and r.finite()
        np.testing.assert_allclose(r.sum, v.sum(axis=1), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(r.sumsq, (v * v).sum(axis=1), rtol=1e-12)
        np.testing.assert_array_equal(r.image_min, flat.min(axis=2))
        np.testing.assert_array_equal(r.image_max, flat.max(axis=2))
        np.testing.assert_array_equal(r.zeros, (flat == 0).sum(axis=2))
        step = -(-flat.shape[2] // SAMPLE)
        np.testing.assert_array_equal(r.sample, flat[:, :, ::step])
        if name in bounds:
            lo, hi = bounds[name]
            np.testing.assert_array_equal(r.saturated, ((flat <= lo) | (flat >= hi)).sum(axis=2))
        else:
            assert output_name(name, "saturated") not in values


def test_float32_bounds_count_like_float64_comparisons():
    """Clip at float32(0.1): the graph's own bound counts the clipped values; a float64 0.1 (below
    float32(0.1)) counts none of them at the low side, exactly as the host's float64 comparison does."""
    b = CNNBuilder((1, 2, 6, 6), seed=1)
    lo, hi = b.init("lo", np.asarray(0.1, np.float32)), b.init("hi", np.asarray(0.7, np.float32))
    model = b.build(b.node("Clip", [b.conv(b.input_name, 3, name="c"), lo, hi], name="clip"))
    x = np.random.default_rng(0).random((4, 2, 6, 6), dtype=np.float32)
    for bounds in (saturation_bounds(model)["clip_out"], (0.1, 0.7)):
        audit_model = with_reductions(model, ["clip_out"], {"clip_out": bounds})
        session = ort.InferenceSession(audit_model.SerializeToString(), providers=["CPUExecutionProvider"])
        clip, saturated = session.run([model.graph.output[0].name, output_name("clip_out", "saturated")],
                                      {"input": x})
        flat = clip.reshape(4, 3, -1).astype(np.float64)
        expected = ((flat <= bounds[0]) | (flat >= bounds[1])).sum(axis=2)
        np.testing.assert_array_equal(saturated, expected)
        assert (flat == np.float32(0.1)).any() and (flat == np.float32(0.7)).any()
        assert ((flat > 0.1) & (flat < 0.7)).any()
    assert ((flat <= 0.1) | (flat >= 0.7)).sum() < ((flat <= np.float32(0.1)) | (flat >= 0.7)).sum()


def _audit(model, images, *, reduced: bool, cuts=CUTS, run=None) -> AuditRun:
    run = run or AuditRun(model, name="t")
    access = OrtModelAccess(model) if reduced else OrtAccess(model)
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        fold_batch(access, run, images[a:b])
    return run


def _assert_same_statistics(got: dict, want: dict, *, percentiles: str) -> None:
    """All statistics equal; mean and std to float64 rounding; percentiles exact or within a band."""
    assert got["images"] == want["images"] and got["layers"].keys() == want["layers"].keys()
    for name, layer in want["layers"].items():
        for g, w in zip(got["layers"][name]["channels"], layer["channels"], strict=True):
            for key in EXACT:
                assert g.get(key) == w.get(key), (name, g["index"], key)
            assert g["mean"] == pytest.approx(w["mean"], rel=1e-9, abs=1e-12)
            assert g["std"] == pytest.approx(w["std"], rel=1e-7, abs=1e-9)
            if percentiles == "exact":
                assert [g["p1"], g["p50"], g["p99"]] == [w["p1"], w["p50"], w["p99"]]
            assert g["flags"] == w["flags"]


def _small_map_model(dynamic: bool = False):
    """Maps of at most 25 positions: the subsample is the whole map, so percentiles are exact too.
    `dynamic`: height and width unknown to the graph (counts in int64 instead of float32)."""
    b = CNNBuilder((1, 3, 10, 10), seed=5)
    x = b.relu(b.conv(b.input_name, 6, stride=2, name="conv1"), name="relu1")
    x = b.act("Sigmoid", b.conv(x, 4, name="conv2"), name="sig")
    model = b.build(b.gemm(b.flatten(b.gap(x)), 5, name="fc"), output_names=["logits"])
    if dynamic:
        for dim, name in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], "HW", strict=True):
            dim.dim_param = name
        del model.graph.value_info[:]
    return model


@pytest.mark.parametrize("dynamic", [False, True])
def test_reduced_path_equals_the_full_tensor_path_where_the_sample_is_the_whole_map(dynamic):
    model = _small_map_model(dynamic)
    _, values = _run_audit_model(model, ["relu1_out"], np.zeros((2, 3, 10, 10), np.float32))
    assert values[output_name("relu1_out", "zeros")].dtype == (np.int64 if dynamic else np.float32)
    images = np.random.default_rng(2).standard_normal((IMAGES, 3, 10, 10)).astype(np.float32)
    got, want = _audit(model, images, reduced=True), _audit(model, images, reduced=False)
    _assert_same_statistics(got.result(), want.result(), percentiles="exact")
    a, b = got.aggregator.to_dict(), want.aggregator.to_dict()
    for name, t in b["tensors"].items():
        for key in ("count", "min", "max", "zeros", "active", "saturated", "nonfinite", "hist"):
            assert a["tensors"][name][key] == t[key], (name, key)


def test_planted_defects_and_statistics_survive_the_subsample(planted, planted_maps):
    got = _audit(planted, planted_images(), reduced=True).result()
    want = _audit(planted, planted_images(), reduced=False).result()
    _assert_same_statistics(got, want, percentiles="band")
    for name, m in planted_maps.items():  # percentiles of a 1-in-8 subsample: inside the p0.1..p99.9 band
        v = np.moveaxis(m, 1, 0).reshape(m.shape[1], -1).astype(np.float64)
        slack = sketch.RELATIVE_ERROR * np.abs(v).max(axis=1) + 2.0 ** sketch.MIN_EXP
        for q, key in ((1, "p1"), (50, "p50"), (99, "p99")):
            estimate = np.array([c[key] for c in got["layers"][name]["channels"]])
            lo = np.percentile(v, max(q - 10, 0), axis=1) - slack
            hi = np.percentile(v, min(q + 10, 100), axis=1) + slack
            assert np.all((estimate >= lo) & (estimate <= hi)), (name, key)


def test_a_nonfinite_batch_falls_back_to_the_exact_host_path():
    model = _small_map_model()
    images = np.random.default_rng(3).standard_normal((24, 3, 10, 10)).astype(np.float32)
    images[9, 1, 4, 4] = np.nan
    images[17, 0, 0, 0] = np.inf
    cuts = (0, 8, 16, 24)
    got, want = _audit(model, images, reduced=True, cuts=cuts), _audit(model, images, reduced=False, cuts=cuts)
    _assert_same_statistics(got.result(), want.result(), percentiles="exact")
    assert any(c["nonfinite_fraction"] > 0 for layer in got.result()["layers"].values() for c in layer["channels"])

    asked: list[list[str]] = []
    run, access = AuditRun(model), OrtModelAccess(model)
    names, build = run.graph_reductions()
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        values = access.forward_variant(("audit", names), build, images[a:b], names)
        run.update_reduced(values, batch_size=b - a,
                           fetch_raw=lambda t, x=images[a:b]: asked.append(t) or access.forward(x, fetch=t))
    assert len(asked) == 2 and all(asked)  # only the two batches with a NaN or an infinity
    values = access.forward_variant(("audit", names), build, images[8:16], names)
    with pytest.raises(FailedPrecondition, match="NaN or infinity"):
        run.update_reduced(values, batch_size=8)


def test_checkpoint_and_resume_on_the_reduced_path_equal_one_pass(planted):
    images = planted_images()
    whole = _audit(planted, images, reduced=True)
    first = _audit(planted, images, reduced=True, cuts=CUTS[:4])
    saved = json.loads(json.dumps(first.to_dict(), allow_nan=False))
    resumed = _audit(planted, images, reduced=True, cuts=CUTS[3:], run=AuditRun.from_dict(planted, saved, name="t"))
    assert resumed.to_dict() == whole.to_dict()
    second = _audit(planted, images, reduced=True, cuts=CUTS[3:])
    first.aggregator.merge(second.aggregator)
    _assert_same_statistics(first.result(), whole.result(), percentiles="exact")


def test_tensors_the_graph_cannot_reduce_come_back_whole():
    """Opset 10 has no float Equal: every tensor is exposed whole and the audit is the host path's."""
    model = _small_map_model()
    model.opset_import[0].version = 10
    names = default_audit_tensors(model)
    assert reducible(_small_map_model(), names) == names and reducible(model, names) == []
    run = AuditRun(model)
    fetched, _ = run.graph_reductions()
    assert set(fetched) == {*names, "logits"}
    images = np.random.default_rng(4).standard_normal((IMAGES, 3, 10, 10)).astype(np.float32)
    got = _audit(model, images, reduced=True, run=run).aggregator.to_dict()
    assert got == _audit(model, images, reduced=False).aggregator.to_dict()


def test_a_real_model_audits_the_same_on_both_paths():
    """PP-OCR's classifier: dynamic spatial dims (int64 counts), HardSigmoid/Clip bounds, 48x192 maps."""
    import onnx
    from audit_models import real_model

    model = onnx.load(str(real_model("rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx")))
    images = np.random.default_rng(5).random((6, 3, 48, 192), dtype=np.float32)
    cuts = (0, 4, 6)
    got = _audit(model, images, reduced=True, cuts=cuts)
    want = _audit(model, images, reduced=False, cuts=cuts)
    assert len(reducible(model, got.tensors)) > 20 and saturation_bounds(model)  # the rest go whole
    _assert_same_statistics(got.result(), want.result(), percentiles="band")
