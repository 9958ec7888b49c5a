"""The in-graph audit reductions: each output against numpy, and the reduced path against the full one."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from audit_models import IMAGES, OrtAccess, planted_images
from factory import CNNBuilder
from onnx import numpy_helper

from inspector.audit import AuditRun, default_audit_tensors, saturation_bounds, sketch
from inspector.audit.audit import fold_batch
from inspector.audit.reductions import SAMPLE, output_name, read_reduced, reducible, with_reductions
from inspector.errors import FailedPrecondition
from inspector.runtime.access import OrtModelAccess

CUTS = (0, 7, 20, 53, 54, 90, IMAGES)  # uneven batches, one of a single image
EXACT = ("min", "max", "zero_fraction", "active_fraction", "saturation_fraction", "nonfinite_fraction")


def _run_audit_model(model, names, x, centered=()):
    reduce = reducible(model, names)
    audit_model = with_reductions(model, reduce, saturation_bounds(model), centered=centered)
    session = ort.InferenceSession(audit_model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    return reduce, dict(zip(outputs, session.run(outputs, {model.graph.input[0].name: x}), strict=True))


@pytest.mark.parametrize("centered", [False, True])
def test_every_reduction_equals_numpy_over_the_plain_maps(planted, planted_maps, centered):
    names = default_audit_tensors(planted)
    reduce, values = _run_audit_model(planted, names, planted_images(), centered=names if centered else ())
    assert reduce == names  # all ranks are known in the planted model
    bounds = saturation_bounds(planted)
    for name in names:
        m = planted_maps[name]
        flat = m.reshape(m.shape[0], m.shape[1], -1)
        maps = flat.astype(np.float64)
        r = read_reduced(values, name)
        assert r.shape == list(m.shape) and r.finite()
        scale = np.abs(maps).sum(axis=2)  # float32 sums: errors relative to the sum of |x|
        np.testing.assert_allclose(r.sum, maps.sum(axis=2), rtol=0, atol=1e-6 * scale.max() + 1e-30)
        m2 = ((maps - maps.mean(axis=2, keepdims=True)) ** 2).sum(axis=2)
        if r.conditioned:
            np.testing.assert_allclose(r.m2, m2, rtol=6e-4, atol=1e-6 * (maps * maps).sum(axis=2).max())
        np.testing.assert_array_equal(r.image_min, flat.min(axis=2))
        np.testing.assert_array_equal(r.image_max, flat.max(axis=2))
        np.testing.assert_array_equal(r.zeros, (flat == 0).sum(axis=2))
        step = -(-flat.shape[2] // SAMPLE)
        np.testing.assert_array_equal(r.sample, flat[:, :, ::step])
        assert (output_name(name, "shift") in values) == centered
        if name in bounds:
            lo, hi = bounds[name]
            np.testing.assert_array_equal(r.saturated, ((flat <= lo) | (flat >= hi)).sum(axis=2))
        else:
            assert output_name(name, "saturated") not in values


def _offset_model():
    """conv1 + Relu, then a conv whose channels sit near 1000 with a spread of about 1e-3: float32
    sums of x and x*x cannot give that spread (1000**2 / 1e-3**2 = 1e12 to cancel)."""
    b = CNNBuilder((1, 3, 12, 12), seed=7)
    x = b.relu(b.conv(b.input_name, 4, name="conv1"), name="relu1")
    w = np.full((3, 4, 1, 1), 1e-3, np.float32)
    x = b.conv(x, 3, k=1, pad=0, name="offset", weight=w)
    model = b.build(b.gemm(b.flatten(b.gap(x)), 5, name="fc"), output_names=["logits"])
    bias = next(t for t in model.graph.initializer if t.name == "offset.bias")
    bias.CopyFrom(numpy_helper.from_array(np.full(3, 1000.0, np.float32), "offset.bias"))
    return model


def test_sums_that_cannot_give_the_spread_fold_exactly_then_centre():
    model = _offset_model()
    images = np.random.default_rng(8).standard_normal((24, 3, 12, 12)).astype(np.float32)
    _, values = _run_audit_model(model, ["offset_out"], images)
    assert not read_reduced(values, "offset_out").conditioned
    _, values = _run_audit_model(model, ["offset_out"], images, centered=["offset_out"])
    r = read_reduced(values, "offset_out")
    maps = OrtAccess(model).forward(images, fetch=["offset_out"])["offset_out"].reshape(24, 3, -1)
    m2 = ((maps.astype(np.float64) - maps.mean(axis=2, keepdims=True, dtype=np.float64)) ** 2).sum(axis=2)
    assert r.conditioned and np.allclose(r.m2, m2, rtol=1e-4)

    run, access = AuditRun(model), OrtModelAccess(model)
    names, build = run.graph_reductions()
    first = access.forward_variant(("audit", names), build, images[:8], names)
    assert run.recentre(first) and run.centered == {"offset_out"}
    assert run.graph_reductions()[0] != names and not run.recentre(first)  # asked once only
    with pytest.raises(FailedPrecondition, match="spread too small"):  # never folded from uncentred sums
        run.update_reduced(first, batch_size=8)
    run = _audit(model, images, reduced=True, cuts=(0, 8, 16, 24))
    assert run.centered == {"offset_out"}
    want = _audit(model, images, reduced=False, cuts=(0, 8, 16, 24)).result()
    _assert_same_statistics(run.result(), want, percentiles="band")
    std = [c["std"] for c in run.result()["layers"]["offset_out"]["channels"]]
    assert 1e-4 < min(std) and max(std) < 1e-2


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
    """All statistics equal; mean and std to the reduced path's float32 sums (see reductions.py);
    percentiles exact or within a band."""
    assert got["images"] == want["images"] and got["layers"].keys() == want["layers"].keys()
    for name, layer in want["layers"].items():
        for g, w in zip(got["layers"][name]["channels"], layer["channels"], strict=True):
            for key in EXACT:
                assert g.get(key) == w.get(key), (name, g["index"], key)
            peak = max(abs(w["min"]), abs(w["max"]))
            assert g["mean"] == pytest.approx(w["mean"], rel=1e-6, abs=1e-6 * peak)
            assert g["std"] == pytest.approx(w["std"], rel=6e-4, abs=1e-6 * peak)
            if percentiles == "exact":
                assert [g["p1"], g["p50"], g["p99"]] == [w["p1"], w["p50"], w["p99"]]
            assert g["flags"] == w["flags"]


def _small_map_model(dynamic: bool = False):
    """Maps of at most 25 positions: the subsample is the whole map, so percentiles are exact too.
    `dynamic`: height and width unknown to the graph (the counting column is built in the graph)."""
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
    x = np.zeros((2, 3, 10, 10), np.float32)
    _, values = _run_audit_model(model, ["relu1_out"], x)
    relu = OrtAccess(model).forward(x, fetch=["relu1_out"])["relu1_out"]
    np.testing.assert_array_equal(values[output_name("relu1_out", "zeros")], (relu == 0).sum(axis=(2, 3)))
    images = np.random.default_rng(2).standard_normal((IMAGES, 3, 10, 10)).astype(np.float32)
    got, want = _audit(model, images, reduced=True), _audit(model, images, reduced=False)
    _assert_same_statistics(got.result(), want.result(), percentiles="exact")
    a, b = got.aggregator.to_dict(), want.aggregator.to_dict()
    for name, t in b["tensors"].items():
        for key in ("count", "min", "max", "zeros", "active", "saturated", "nonfinite", "hist"):
            assert a["tensors"][name][key] == t[key], (name, key)
    # the Relu output's sketch was read from conv1's all along (ActivationAggregator's mirrors);
    # the full path counted it itself: the histograms above are equal all the same
    assert got.aggregator.state["relu1_out"].mirror is not None
    assert all(state.mirror is None for state in want.aggregator.state.values())


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
    assert got.aggregator.state["relu1_out"].mirror is None  # an exact batch: counted itself from then on

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


def test_relu_and_clip_outputs_read_min_max_and_subsample_from_their_input(planted):
    """monotone_sources: the audit graph skips three passes per Relu/Clip output; the values equal
    the tensor's own (checked against numpy above and against the full path in every audit here)."""
    from inspector.audit.reductions import monotone_sources

    names = default_audit_tensors(planted)
    sources = monotone_sources(planted, names, saturation_bounds(planted))
    relus = [n.output[0] for n in planted.graph.node if n.op_type == "Relu"]
    assert relus and set(sources) == set(relus) and all(s in names for s in sources.values())
    run, access = AuditRun(planted), OrtModelAccess(planted)
    fetched, _ = run.graph_reductions()
    assert all(output_name(t, "image_min") not in fetched for t in sources)
    values = access.forward_variant(("audit", fetched), run.graph_reductions()[1], planted_images()[:9], fetched)
    maps = OrtAccess(planted).forward(planted_images()[:9], fetch=relus)
    for t in relus:
        r = run._read(values)[t]
        flat = maps[t].reshape(9, maps[t].shape[1], -1)
        np.testing.assert_array_equal(r.image_min, flat.min(axis=2))
        np.testing.assert_array_equal(r.image_max, flat.max(axis=2))
        np.testing.assert_array_equal(r.sample, sketch.subsample(flat))


@pytest.mark.parametrize("model_name", ["planted", "ppocr_cls"])
def test_folding_every_tensor_at_once_gives_the_same_bits_as_one_by_one(model_name, planted, monkeypatch):
    """After the first batch, a finite, well-conditioned batch is folded side by side
    (read_columns); the state equals folding each tensor alone, bit for bit."""
    import onnx
    from audit_models import real_model

    from inspector.audit import audit as audit_module
    from inspector.audit.aggregate import ActivationAggregator

    if model_name == "planted":
        model, images, cuts = planted, planted_images(), CUTS
    else:  # Clip/HardSigmoid bounds (saturation columns), Clip outputs read from their input, 48x192 maps
        model = onnx.load(str(real_model("rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx")))
        images, cuts = np.random.default_rng(6).random((7, 3, 48, 192), dtype=np.float32), (0, 3, 5, 7)
    calls = []
    original = ActivationAggregator._add_columns
    monkeypatch.setattr(ActivationAggregator, "_add_columns",
                        lambda self, batch: (len(batch.tensors) > 1 and calls.append(batch.images)) or
                        original(self, batch))  # folds of many tensors at once
    at_once = _audit(model, images, reduced=True, cuts=cuts)
    assert calls == [b - a for a, b in zip(cuts[1:-1], cuts[2:], strict=True)]  # every batch after the first
    monkeypatch.setattr(audit_module, "read_columns", lambda *a, **k: None)
    one_by_one = _audit(model, images, reduced=True, cuts=cuts)
    assert len(calls) == len(cuts) - 2
    assert json.dumps(at_once.to_dict()) == json.dumps(one_by_one.to_dict())
    if model_name == "ppocr_cls":
        assert at_once.aggregator.bounds and at_once.sources
        assert any(sum(t["saturated"]) for t in at_once.to_dict()["aggregate"]["tensors"].values())
