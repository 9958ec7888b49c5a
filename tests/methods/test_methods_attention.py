"""Attention rollout and squeeze-and-excitation gates, on built models and on PP-OCR's SVTR recognizer."""

import numpy as np
import pytest
from methods_models import attention_model, se_model
from onnx import numpy_helper

from inspector.errors import InvalidArgument
from inspector.imaging.render import resize_map
from inspector.methods import Target, get_method
from inspector.methods.attention import (
    attention_probabilities,
    rollout,
    squeeze_excitation_gates,
    token_grid,
)
from inspector.runtime.access import OrtModelAccess


def minmax(m):
    flat = m.reshape(len(m), -1)
    lo, hi = flat.min(1)[:, None], flat.max(1)[:, None]
    return ((flat - lo) / np.where(hi - lo > 0, hi - lo, 1)).reshape(m.shape)


def reference_rollout(layers):
    r = None
    for a in layers:
        a = a.mean(1) if a.ndim == 4 else a
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])
        a = a / a.sum(-1, keepdims=True)
        r = a if r is None else np.einsum("nij,njk->nik", a, r)
    return r


def test_rollout_on_a_vision_transformer_block():
    model = attention_model()
    assert attention_probabilities(model) == ["attn"]
    access = OrtModelAccess(model)
    x = np.random.default_rng(0).random((2, 3, 16, 16)).astype(np.float32)
    attn = access.forward(x, ["attn"])["attn"].astype(np.float64)
    grid = reference_rollout([attn]).mean(1).reshape(2, 4, 4)  # no class token: mean over query rows
    exp = get_method("attention_rollout").explain(access, x, Target())
    assert exp.layers == ["attn"]
    np.testing.assert_allclose(exp.layer_heatmap, minmax(grid), atol=1e-5)
    np.testing.assert_allclose(exp.heatmap, minmax(np.stack([resize_map(g, (16, 16)) for g in grid])), atol=1e-5)
    np.testing.assert_allclose(exp.extras["attention/attn"], attn, atol=1e-6)


def test_rollout_fuses_heads_multiplies_layers_and_reads_the_class_token():
    rng = np.random.default_rng(1)
    layers = [rng.random((2, 3, 10, 10)) for _ in range(3)]
    layers = [a / a.sum(-1, keepdims=True) for a in layers]
    r = rollout(layers, 2, "mean")
    np.testing.assert_allclose(r, reference_rollout(layers), rtol=1e-12)
    np.testing.assert_allclose(r.sum(-1), 1.0, rtol=1e-12)  # rows stay distributions
    np.testing.assert_allclose(token_grid(r, (30, 30)), r[:, 0, 1:].reshape(2, 3, 3))  # 9 + class token
    with pytest.raises(InvalidArgument, match="grid"):
        token_grid(r, (30, 30), grid=(2, 2))


def test_models_without_attention_are_refused():
    with pytest.raises(InvalidArgument, match="no attention blocks"):
        get_method("attention_rollout").explain(OrtModelAccess(se_model()), np.zeros((1, 3, 12, 12), np.float32),
                                                Target())


def test_squeeze_excitation_gates_are_reported_with_cams():
    model = se_model()
    assert squeeze_excitation_gates(model) == ["gate_out"]
    p = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    access = OrtModelAccess(model)
    x = np.random.default_rng(3).random((2, 3, 12, 12)).astype(np.float32)
    feat = access.forward(x, ["feat_out"])["feat_out"].astype(np.float64)
    s = np.maximum(feat.mean((2, 3)) @ p["reduce.weight"][:, :, 0, 0].T + p["reduce.bias"], 0)
    gate = 1 / (1 + np.exp(-(s @ p["expand.weight"][:, :, 0, 0].T + p["expand.bias"])))
    exp = get_method("gradcam").explain(access, x, Target())
    np.testing.assert_allclose(exp.extras["channel_attention/gate_out"], gate, rtol=1e-5)


def test_svtr_recognizer_rollout_and_se_gates(real_model_path):
    import onnx

    model = onnx.load(str(real_model_path("ppocr-rec")))
    access = OrtModelAccess(model)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 320)).astype(np.float32)
    names = attention_probabilities(model)
    assert len(names) == 2 and len(squeeze_excitation_gates(model)) >= 1
    fetched = access.forward(x, names)
    grid = reference_rollout([fetched[n].astype(np.float64) for n in names]).mean(1).reshape(1, 1, 40)
    exp = get_method("attention_rollout").explain(access, x, Target(index=(3,)), grid=(1, 40))
    np.testing.assert_allclose(exp.layer_heatmap, minmax(grid), atol=1e-4)
    assert exp.heatmap.shape == (1, 48, 320) and np.isfinite(exp.heatmap).all()
    assert any(k.startswith("channel_attention/") for k in exp.extras)
