"""Audits of third-party models: statistics equal a plain onnxruntime run, bounds come from the graph."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from audit_models import OrtAccess, real_model

from inspector.audit import audit_model, default_audit_tensors, saturation_bounds, write_report
from inspector.errors import InvalidArgument

PPOCR_CLS = "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
YOLO = "nudenet/320n.onnx"


def _check_against_plain_run(model: onnx.ModelProto, images: np.ndarray, batch: int) -> dict:
    access = OrtAccess(model)
    audit = audit_model(access, [images[i:i + batch] for i in range(0, len(images), batch)])
    names = default_audit_tensors(model)
    maps = access.forward(images, fetch=names)
    assert set(audit["layers"]) | set(audit["skipped_tensors"]) == set(names)
    for name in audit["skipped_tensors"]:  # only tensors that are not per-image maps are left out
        assert maps[name].ndim < 2 or maps[name].shape[0] != len(images)
    names = list(audit["layers"])
    bounds = saturation_bounds(model)
    for name in names:
        v = np.moveaxis(maps[name], 1, 0).reshape(maps[name].shape[1], -1).astype(np.float64)
        channels = audit["layers"][name]["channels"]
        np.testing.assert_allclose([c["mean"] for c in channels], v.mean(axis=1), rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal([c["max"] for c in channels], v.max(axis=1))
        np.testing.assert_array_equal([c["zero_fraction"] for c in channels], (v == 0).mean(axis=1))
        if name in bounds:
            lo, hi = bounds[name]
            expected = ((v <= lo) | (v >= hi)).mean(axis=1)
            np.testing.assert_array_equal([c["saturation_fraction"] for c in channels], expected)
    return audit


def test_ppocr_classifier(tmp_path):
    model = onnx.load(str(real_model(PPOCR_CLS)))
    ops = Counter(n.op_type for n in model.graph.node)
    bounds = saturation_bounds(model)
    clips = [n.output[0] for n in model.graph.node if n.op_type == "Clip"]
    assert set(clips) <= set(bounds) and {bounds[c] for c in clips} == {(0.0, 6.0)}  # Constant-node inputs
    images = np.random.default_rng(0).uniform(-1, 1, (4, 3, 48, 192)).astype(np.float32)
    audit = _check_against_plain_run(model, images, batch=2)
    assert len(audit["layers"]) == sum(ops[o] for o in ("Conv", "Relu", "Clip", "HardSigmoid", "Add"))
    assert audit["behaviour"]["images"] == 4  # softmax over 2 text directions
    assert len(audit["batchnorm"]) == ops["BatchNormalization"]
    paths = write_report(audit, tmp_path)
    assert paths["html"].stat().st_size > 10_000


def test_yolo_detector_sigmoid_bounds():
    model = onnx.load(str(real_model(YOLO)))
    sigmoids = [n.output[0] for n in model.graph.node if n.op_type == "Sigmoid"]
    assert {saturation_bounds(model)[s] for s in sigmoids} == {(0.0, 1.0)}
    images = np.random.default_rng(1).random((2, 3, 320, 320), dtype=np.float32)
    audit = _check_against_plain_run(model, images, batch=1)
    assert audit["behaviour"] is None  # detections, not class scores


def test_labels_for_a_detector_are_refused():
    model = onnx.load(str(real_model(YOLO)))
    images = np.zeros((1, 3, 320, 320), np.float32)
    with pytest.raises(InvalidArgument, match="not \\[N, classes\\]"):
        audit_model(OrtAccess(model), [(images, np.array([1]))])
