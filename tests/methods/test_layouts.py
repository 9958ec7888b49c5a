"""Methods on exports that are not [N, C, H, W] CNNs: ViT token layers ([N, T, C], [T, N, C], with and
without a class token), time-major [T, N, K] heads, NHWC stage outputs, outputs without a batch axis,
empty detector outputs, recurrent and 2-D layers, windowed attention. Values are checked against
numpy references and finite differences; every refusal is InvalidArgument / FailedPrecondition
naming the tensor."""

import numpy as np
import onnx
import pytest
from methods_models import (
    detector_model,
    nhwc_features_model,
    swin_like_model,
    time_major_model,
    vit_model,
)
from onnx import TensorProto, helper, numpy_helper

from inspector.errors import FailedPrecondition, InvalidArgument
from inspector.inputs import PreparedInput
from inspector.methods import get_method
from inspector.methods.base import Target
from inspector.methods.layouts import LayerLayout, grid_for
from inspector.methods.maps import upsample
from inspector.methods.run import Run, gradients
from inspector.runtime.access import OrtModelAccess

VIT_X = np.random.default_rng(0).random((2, 3, 16, 16)).astype(np.float32)
OCR_X = np.random.default_rng(1).random((2, 3, 8, 24)).astype(np.float32)


def scaled(m: np.ndarray) -> np.ndarray:
    flat = m.reshape(len(m), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1)).reshape(m.shape)


def grid_maps(tokens: np.ndarray, axis: int, cls: bool) -> np.ndarray:
    """[N, T, C] / [T, N, C] token values -> [N, C, 4, 4] by hand (the class token dropped)."""
    t = np.moveaxis(np.asarray(tokens, np.float64), axis, 0)
    t = t[:, 1:] if cls else t
    return t.reshape(len(t), 4, 4, t.shape[2]).transpose(0, 3, 1, 2)


def reference(method: str, act: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's formulas over [N, C, h, w] (eigencam's sign as inspector orients it)."""
    if method == "gradcam":
        cam = (grad.mean(axis=(2, 3))[:, :, None, None] * act).sum(1)
    elif method == "gradcam++":
        g2, g3 = grad ** 2, grad ** 3
        alpha = g2 / (2 * g2 + act.sum(axis=(2, 3))[:, :, None, None] * g3 + 1e-6)
        alpha = np.where(grad != 0, alpha, 0)
        cam = ((np.maximum(grad, 0) * alpha).sum(axis=(2, 3))[:, :, None, None] * act).sum(1)
    else:
        cams = []
        for a in act:
            flat = a.reshape(a.shape[0], -1).T
            centered = flat - flat.mean(0)
            proj = centered @ np.linalg.svd(centered, full_matrices=False)[2][0]
            total = flat.sum(1)
            if np.dot(proj - proj.mean(), total - total.mean()) < 0:
                proj = -proj
            cams.append(proj.reshape(a.shape[1:]))
        cam = np.asarray(cams)
    return scaled(np.maximum(cam, 0))


@pytest.mark.parametrize("layout, axis", [("NTC", 0), ("TNC", 1)])
@pytest.mark.parametrize("cls", [True, False])
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigencam"])
def test_vit_token_cams_match_a_numpy_reference(layout, axis, cls, method):
    access = OrtModelAccess(vit_model(layout, cls=cls))
    exp = get_method(method).explain(access, VIT_X, Target(index=(0,)), layers=["block1"], score_after=False)
    tokens = access.forward(VIT_X, fetch=["block1"])["block1"]
    assert tokens.shape == ((2, 16 + cls, 8) if axis == 0 else (16 + cls, 2, 8))
    seed = np.zeros((2, 3), np.float32)
    seed[:, 0] = 1
    grad = access.backward(VIT_X, "logits", seed, ["block1"])["block1"]
    want = reference(method, grid_maps(tokens, axis, cls), grid_maps(grad, axis, cls))
    np.testing.assert_allclose(exp.layer_heatmap, want, atol=2e-4)
    heat = exp.heatmap
    assert heat.shape == (2, 16, 16) and np.all(np.isfinite(heat)) and heat.min() == 0 and heat.max() == 1
    assert all(np.std(h) > 0.05 for h in heat)
    np.testing.assert_allclose(heat, scaled(upsample(want.astype(np.float32), (16, 16))), atol=2e-4)
    assert exp.targets == ["logits[0]", "logits[0]"]


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "ablationcam", "reciprocam"])
def test_token_first_and_sequence_first_exports_agree(method):
    """The same weights exported as [N, T, C] and as [T, N, C]: the same maps, also for the methods
    that edit the layer and run the rest of the network in its own layout."""
    params = {"batch_size": 16} if method != "gradcam" else {}
    a = get_method(method).explain(OrtModelAccess(vit_model("NTC")), VIT_X, Target(), layers=["block1"], **params)
    b = get_method(method).explain(OrtModelAccess(vit_model("TNC")), VIT_X, Target(), layers=["block1"], **params)
    np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)
    np.testing.assert_allclose(a.score_after, b.score_after, rtol=1e-5)
    assert np.std(a.heatmap) > 0.05


def test_layer_layout_round_trip_and_grids():
    rng = np.random.default_rng(0)
    like = rng.standard_normal((17, 2, 8)).astype(np.float32)  # [T, N, C] with a class token
    layout = LayerLayout("tokens", 1, 1, (4, 4))
    maps = layout.to_maps(like)
    assert maps.shape == (2, 8, 4, 4)
    np.testing.assert_array_equal(maps[1, :, 2, 3], like[1 + 2 * 4 + 3, 1])
    np.testing.assert_array_equal(layout.from_maps(maps, like), like)
    assert grid_for(197, (224, 224)) == (1, 14, 14)  # ViT-B/16 with its class token
    assert grid_for(196, (224, 224)) == (0, 14, 14)
    assert grid_for(49, (224, 224)) == (0, 7, 7)  # a Swin stage
    assert grid_for(281, (224, 320)) == (1, 14, 20)  # a non-square image
    assert grid_for(24, (8, 24)) is None  # OCR time steps: no grid
    assert grid_for(26, (32, 100)) is None


@pytest.mark.parametrize("lstm", [False, True])
def test_time_major_target_seeds_the_batch_axis(lstm):
    """logits [T, N, K]: index (t, k) addresses one image's [T, K] slice; the gradient of image i is
    d logits[t, i, k] / d x_i, checked against central finite differences."""
    access = OrtModelAccess(time_major_model(lstm=lstm))
    t, k = 5, 1
    g = gradients(access, OCR_X, target=Target(index=(t, k)))
    logits = access.forward(OCR_X)["logits"]
    assert logits.shape == (24, 2, 4)
    np.testing.assert_allclose(g.scores, logits[t, :, k], rtol=1e-6)
    assert g.targets == ["logits[5,1]", "logits[5,1]"]
    grad = g.gradients["input"]
    rng = np.random.default_rng(2)
    eps = 1e-2
    for _ in range(6):
        i, c, y = rng.integers(2), rng.integers(3), rng.integers(8)
        xx = int(rng.integers(max(0, t - 2), t + 3))  # inside the receptive field of step t (conv width 3)
        if lstm:
            xx = int(rng.integers(0, t + 2))  # the LSTM sees every earlier step
        up, down = OCR_X.copy(), OCR_X.copy()
        up[i, c, y, xx] += eps
        down[i, c, y, xx] -= eps
        fd = (access.forward(up)["logits"][t, :, k] - access.forward(down)["logits"][t, :, k]) / (2 * eps)
        assert abs(fd[1 - i]) < 1e-4  # the other image's score does not move
        np.testing.assert_allclose(grad[i, c, y, xx], fd[i], rtol=3e-2, atol=2e-4)
    assert np.abs(grad).max() > 1e-3


def test_perturbations_on_a_time_major_output():
    """Occlusion with non-overlapping windows: each pixel's attribution is its window's score drop,
    recomputed here by running the occluded image."""
    access = OrtModelAccess(time_major_model())
    target = Target(index=(7, 2))
    exp = get_method("occlusion").explain(access, OCR_X, target, window=(8, 4), stride=(8, 4), batch_size=5)
    run = Run.start(access, OCR_X, target)
    assert run.batch_axis == 1
    np.testing.assert_allclose(exp.score, access.forward(OCR_X)["logits"][7, :, 2], rtol=1e-6)
    for i, x0 in [(0, 4), (1, 8), (1, 20)]:
        occluded = OCR_X[i:i + 1].copy()
        occluded[..., x0:x0 + 4] = 0
        drop = exp.score[i] - access.forward(occluded)["logits"][7, 0, 2]
        np.testing.assert_allclose(exp.attribution[i, :, :, x0:x0 + 4], drop, rtol=1e-4, atol=1e-5)
    for method in ("rise", "integrated_gradients", "smoothgrad"):
        params = {"rise": {"masks": 8}, "integrated_gradients": {"steps": 4}, "smoothgrad": {"samples": 3}}[method]
        e = get_method(method).explain(access, OCR_X, target, **params)
        assert e.heatmap.shape == (2, 8, 24) and np.all(np.isfinite(e.heatmap)) and np.std(e.heatmap) > 0
    ig = get_method("integrated_gradients").explain(access, OCR_X, target, steps=32)
    assert np.abs(ig.extras["convergence_delta"]).max() < 1e-2 * np.abs(exp.score).max()  # completeness


def test_time_major_default_target_asks_for_an_index():
    access = OrtModelAccess(time_major_model())
    with pytest.raises(InvalidArgument, match=r"'logits' has per-image shape \[24, 4\]; give a target index"):
        get_method("gradcam").explain(access, OCR_X, Target())


def test_empty_detector_output_is_refused_naming_it():
    access = OrtModelAccess(detector_model())
    x = np.random.default_rng(0).random((2, 3, 12, 12)).astype(np.float32)
    assert access.forward(x)["boxes"].shape == (2, 0, 4)
    for method in ("gradcam", "occlusion", "saliency"):
        with pytest.raises(InvalidArgument, match="the output 'boxes' is empty for this image: nothing to explain"):
            get_method(method).explain(access, x, Target())
    agnostic = get_method("eigencam").explain(access, x, Target())  # explains activations: no target needed
    assert agnostic.targets == ["(class-agnostic)"] * 2 and np.all(np.isfinite(agnostic.heatmap))
    with pytest.raises(InvalidArgument, match="'boxes' is empty"):
        gradients(access, x)
    exp = get_method("gradcam").explain(access, x, Target(tensor="logits"))  # what the message suggests
    assert exp.heatmap.shape == (2, 12, 12) and np.std(exp.heatmap) > 0


@pytest.mark.parametrize("model, layer, x, words", [
    (time_major_model(lstm=True), "lstm_out", OCR_X, "[24, N=2, 5] and comes from a LSTM"),
    (time_major_model(lstm=True), "lstm_y", OCR_X, "[24, 1, N=2, 5], the batch on axis 2"),
    (time_major_model(), "seq", OCR_X, "24 tokens do not form a patch grid for a 8x24 image"),
    (vit_model(), "pooled", VIT_X, "[2, 8] and is not spatial"),
], ids=["lstm_out", "lstm_y", "sequence", "2d"])
@pytest.mark.parametrize("method", ["eigencam", "gradcam"])
def test_non_spatial_layers_are_refused_naming_them(model, layer, x, words, method):
    with pytest.raises(InvalidArgument) as err:
        get_method(method).explain(OrtModelAccess(model), x, Target(index=(3, 1)) if x is OCR_X else Target(),
                                   layers=[layer])
    assert f"layer '{layer}' has shape" in err.value.message and words in err.value.message
    assert err.value.field == "layers"


def test_default_cam_layer_skips_recurrent_outputs():
    exp = get_method("eigencam").explain(OrtModelAccess(time_major_model(lstm=True)), OCR_X, Target(index=(3, 1)))
    assert exp.layers == ["feat"] and np.std(exp.heatmap) > 0


@pytest.mark.parametrize("channels", [24, 16])  # 16: the channels-first reading (8, 16) fits in 16x16
def test_nhwc_stage_output_equals_its_nchw_twin(channels):
    """[N, H, W, C] (timm's Swin stages) is read channels-last: the same map as on the NCHW tensor."""
    access = OrtModelAccess(nhwc_features_model(channels=channels))
    x = VIT_X
    for method in ("gradcam", "eigencam", "ablationcam"):
        a = get_method(method).explain(access, x, Target(), layers=["feat_nhwc"])
        b = get_method(method).explain(access, x, Target(), layers=["relu"])
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)
        assert np.std(a.heatmap) > 0.05


def test_windowed_attention_rollout_is_refused():
    access = OrtModelAccess(swin_like_model())
    with pytest.raises(FailedPrecondition) as err:
        get_method("attention_rollout").explain(access, VIT_X, Target())
    assert "'attn2'" in err.value.message or "'attn1'" in err.value.message
    assert "gradcam on a stage output" in err.value.message
    exp = get_method("gradcam").explain(access, VIT_X, Target(), layers=["stage1"])  # the suggested way
    assert exp.heatmap.shape == (2, 16, 16) and np.std(exp.heatmap) > 0.05


def batchless_model() -> onnx.ModelProto:
    """A batch-1 export whose output has no batch axis: "rows" [64, 4] (conv -> Reshape [4, -1] -> Transpose)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([4, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("Reshape", ["relu", "shape"], ["flat"]),
             helper.make_node("Transpose", ["flat"], ["rows"], perm=[1, 0])]
    graph = helper.make_graph(nodes, "batchless", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                 [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [64, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_output_without_batch_axis():
    """One image: the seed is built on the whole tensor, perturbed copies run one at a time; two
    images are refused naming the tensor."""
    access = OrtModelAccess(batchless_model())
    x = np.random.default_rng(3).random((1, 3, 8, 8)).astype(np.float32)
    target = Target(index=(27, 2))
    g = gradients(access, x, target=target)
    value = access.forward(x)["rows"]
    assert g.scores == [pytest.approx(float(value[27, 2]))]
    eps = 1e-2
    for c, y, xx in [(0, 3, 2), (2, 3, 4), (1, 2, 3)]:  # row 27 = position (3, 3): its 3x3 neighbourhood
        up, down = x.copy(), x.copy()
        up[0, c, y, xx] += eps
        down[0, c, y, xx] -= eps
        fd = (access.forward(up)["rows"][27, 2] - access.forward(down)["rows"][27, 2]) / (2 * eps)
        np.testing.assert_allclose(g.gradients["input"][0, c, y, xx], fd, rtol=2e-2, atol=1e-4)
    exp = get_method("occlusion").explain(access, x, target, window=2, stride=2)
    assert np.std(exp.heatmap) > 0 and exp.targets == ["rows[27,2]"]
    sm = get_method("smoothgrad").explain(access, x, target, samples=3)
    assert np.all(np.isfinite(sm.heatmap))
    with pytest.raises(InvalidArgument, match="'rows'.* send 1 image per call"):  # the access's own refusal
        get_method("saliency").explain(access, np.concatenate([x, x]), target)


def test_display_of_inputs_that_are_not_images():
    for shape in [(2, 17, 8), (2, 8), (2, 3, 4, 8, 8)]:
        with pytest.raises(InvalidArgument, match="overlays need an image input.*pass overlay=False"):
            PreparedInput(np.zeros(shape, np.float32), None).display(0)
    x = np.random.default_rng(0).random((2, 8, 5, 6)).astype(np.float32)  # 8 channels: their mean, gray
    shown = PreparedInput(x, None).display(1)
    assert shown.shape == (5, 6, 3) and shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255
    mean = x[1].mean(0)
    np.testing.assert_array_equal(shown[..., 0], np.round((mean - mean.min()) / np.ptp(mean) * 255))
    nhwc = PreparedInput(np.random.default_rng(1).random((1, 5, 6, 3)).astype(np.float32), None).display(0)
    assert nhwc.shape == (5, 6, 3)
    rgba = PreparedInput(np.random.default_rng(1).random((1, 4, 5, 6)).astype(np.float32), None).display(0)
    assert rgba.shape == (5, 6, 3)
    with pytest.raises(InvalidArgument, match="overlay 2 asked for a batch of 2"):
        PreparedInput(x, None).display(2)


def test_a_target_whose_shape_changes_under_perturbation():
    """A detector output with data-dependent rows: perturbation and path methods refuse naming it; a
    gradient CAM explains it and leaves score_after out (x * heatmap has other boxes)."""
    access = OrtModelAccess(detector_model(threshold=0.3))
    x = np.random.default_rng(0).random((1, 3, 12, 12)).astype(np.float32)
    rows = access.forward(x)["boxes"].shape[1]
    assert rows > 0
    for method, params in [("occlusion", {"window": 4, "stride": 4}), ("integrated_gradients", {"steps": 4}),
                           ("smoothgrad", {"samples": 3}), ("rise", {"masks": 4})]:
        with pytest.raises(InvalidArgument, match=rf"'boxes' changes shape on perturbed images \(\[{rows}, 4\] per image"):
            get_method(method).explain(access, x, Target(index=(0, 1)), **params)
    exp = get_method("gradcam").explain(access, x, Target(index=(0, 1)))
    assert exp.score_after is None and np.std(exp.heatmap) > 0
    assert exp.score == [pytest.approx(float(access.forward(x)["boxes"][0, 0, 1]))]


def test_class_agnostic_methods_need_no_target_on_a_detector_output():
    """Eigen-CAM explains the activations: on an output with no default target (a detector's
    boxes) it runs anyway and reports no score; a target-based method still asks for a target."""
    from factory import CNNBuilder

    b = CNNBuilder((1, 3, 16, 16), seed=3)
    x = b.relu(b.conv(b.input_name, 4, name="conv1"), name="relu1")
    model = b.build(b.conv(x, 6, k=1, name="head"), output_names=["boxes"])  # [N, 6, 16, 16]: no top-1
    access = OrtModelAccess(model)
    images = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    for name in ("eigencam", "fem"):
        exp = get_method(name).explain(access, images, Target(), [x])
        assert exp.heatmap.shape == (2, 16, 16) and np.ptp(exp.heatmap) > 0
        assert exp.targets == ["(class-agnostic)"] * 2 and exp.score == [] and exp.score_after is None
    with pytest.raises(InvalidArgument, match="give a target"):
        get_method("scorecam").explain(access, images, Target(), [x])
