"""Models of other dtypes through every method: float16 (and bfloat16) weights, uint8/int8 images.

float16: seeds go in as float32 and are Cast to the model's type inside the gradient model;
gradients come back as float32 arrays; every method agrees with the float32 model within float16
precision. uint8/int8 inputs: forward-only methods round and clip their perturbations to the
input dtype; gradient methods differentiate the float value of the input through a
straight-through Cast (graph.autodiff.inputs), so they equal the float model's gradients on the
same integer-valued image. bfloat16: onnxruntime's CPU provider has no bfloat16 kernels for
Conv or Relu (NOT_IMPLEMENTED, onnxruntime 1.32), so bfloat16 models are checked at the graph
level in tests/autodiff/test_autodiff_dtypes.py and the run here is skipped when the CPU
provider cannot load one.
"""

from __future__ import annotations

import numpy as np
import pytest
from dtype_models import cosine, to_float, with_integer_input
from factory import small_cnn
from onnx import TensorProto

from inspector.graph.info import describe_model
from inspector.maximize.request import run as maximize
from inspector.methods import METHODS, Target, get_method
from inspector.methods.run import gradients
from inspector.runtime.access import OrtModelAccess

SMALL = {"rise": {"masks": 40}, "smoothgrad": {"samples": 4}, "smoothgrad_sq": {"samples": 4},
         "vargrad": {"samples": 4}, "integrated_gradients": {"steps": 8}, "occlusion": {"stride": 8}}
NEEDS_LAYER_TYPE = {"attention_rollout"}  # MatMul -> Softmax -> MatMul blocks; small_cnn has none
FORWARD_ONLY = ["scorecam", "ablationcam", "occlusion", "rise", "eigencam", "reciprocam"]
EXACT_GRADIENT = ["saliency", "inputxgradient", "gradcam", "layercam", "guided_backprop", "guided_gradcam"]


@pytest.fixture(scope="module")
def models():
    base = small_cnn()
    return {"float32": OrtModelAccess(base), "float16": OrtModelAccess(to_float(base)),
            "uint8": OrtModelAccess(with_integer_input(base, TensorProto.UINT8)),
            "int8": OrtModelAccess(with_integer_input(base, TensorProto.INT8))}


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 3, 32, 32)).astype(np.float32)


def pixels(dtype=np.uint8, seed: int = 1) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, int(info.max) + 1, (2, 3, 32, 32)).astype(dtype)


def explain(access, x, name):
    return get_method(name).explain(access, x, Target(), None, **SMALL.get(name, {}))


# --- float16 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["standard", "guided_backprop", "deconvnet"])
def test_float16_gradients_match_float32(models, policy):
    x = image()
    want = gradients(models["float32"], x, ["input", "relu4_out"], policy=policy)
    got = gradients(models["float16"], x.astype(np.float16), ["input", "relu4_out"], policy=policy)
    assert got.targets == want.targets
    for name in ("input", "relu4_out"):
        assert got.gradients[name].dtype == np.float32  # float32 out, whatever the model's dtype
        for i in range(len(x)):
            assert cosine(got.gradients[name][i], want.gradients[name][i]) > 0.99, (name, i)


def test_float16_seeded_backward_takes_a_float32_seed(models):
    """A given seed (not top-1): float32 or float64 seeds are fed to the float16 model."""
    x = image(3)
    seed = np.zeros((2, 10), np.float64)
    seed[:, 4] = 1.0
    want = models["float32"].backward(x, "logits", seed, ["input"])["input"]
    got = models["float16"].backward(x.astype(np.float16), "logits", seed, ["input"])["input"]
    assert got.dtype == np.float32
    assert min(cosine(got[i], want[i]) for i in range(2)) > 0.99


@pytest.mark.parametrize("name", [m for m in METHODS if m not in NEEDS_LAYER_TYPE])
def test_every_method_runs_on_float16(models, name):
    x = image()
    got = explain(models["float16"], x.astype(np.float16), name)
    want = explain(models["float32"], x, name)
    assert got.heatmap.shape == (2, 32, 32)
    assert np.all(np.isfinite(got.heatmap))
    assert got.heatmap.max() > 0
    # same map as the float32 model's, up to float16 rounding (noise samples amplify it most)
    for i in range(2):
        assert cosine(got.heatmap[i] - got.heatmap[i].mean(), want.heatmap[i] - want.heatmap[i].mean()) > 0.98
    assert np.abs(got.heatmap - want.heatmap).max() < (0.3 if name in SMALL else 0.05)


@pytest.mark.parametrize("classes", [(6, 6), (2, 3)])
def test_float16_guided_backprop_matches_float32(models, classes):
    """Given classes, so a near tie of top-1 logits (float16 rounding) cannot change the target."""
    x = image(2)
    target = Target(classes=classes)
    got = get_method("guided_backprop").explain(models["float16"], x.astype(np.float16), target, None)
    want = get_method("guided_backprop").explain(models["float32"], x, target, None)
    for i in range(2):
        assert cosine(got.attribution[i], want.attribution[i]) > 0.99


# --- uint8 / int8 images ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", FORWARD_ONLY)
def test_forward_only_methods_on_uint8_match_the_float_model(models, name):
    x = pixels()
    got = explain(models["uint8"], x, name)
    want = explain(models["float32"], x.astype(np.float32), name)
    assert got.heatmap.shape == (2, 32, 32)
    np.testing.assert_allclose(got.heatmap, want.heatmap, atol=0.01)  # blends rounded to uint8
    np.testing.assert_allclose(got.score, want.score, rtol=1e-5)


def test_blends_of_integer_images_are_rounded_and_clipped(models):
    from inspector.methods.run import Run

    x = pixels(np.int8)
    run = Run.start(models["int8"], x, Target(), score_after=False)
    maps = np.full((2, 32, 32), 0.5, np.float32)
    out = run.blend(maps, np.arange(2), baseline=-1000.0)
    assert out.dtype == np.int8
    want = np.clip(np.round(x.astype(np.float32) * 0.5 - 500.0), -128, 127)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("policy", ["standard", "guided_backprop"])
def test_integer_input_gradients_are_straight_through(models, dtype, policy):
    """d/d(float value of the input): the float model's gradient on the same integer values."""
    x = pixels(dtype)
    key = np.dtype(dtype).name
    want = gradients(models["float32"], x.astype(np.float32), ["input", "relu2_out"], policy=policy)
    got = gradients(models[key], x, ["input", "relu2_out"], policy=policy)
    assert got.targets == want.targets
    for name in ("input", "relu2_out"):
        assert got.gradients[name].dtype == np.float32
        np.testing.assert_allclose(got.gradients[name], want.gradients[name], rtol=1e-5,
                                   atol=1e-6 * np.abs(want.gradients[name]).max())


@pytest.mark.parametrize("name", EXACT_GRADIENT)
def test_gradient_methods_on_uint8_equal_the_float_model(models, name):
    x = pixels()
    got = explain(models["uint8"], x, name)
    want = explain(models["float32"], x.astype(np.float32), name)
    np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-5)


@pytest.mark.parametrize("name", ["integrated_gradients", "smoothgrad"])
def test_sampling_gradient_methods_run_on_uint8(models, name):
    """Their interpolated/noisy samples stay float until the runtime rounds and clips them to the
    input's range (a cast to uint8 would wrap negative noise around), so the maps follow the float
    model's on the same pixels."""
    got = explain(models["uint8"], pixels(), name)
    assert got.heatmap.shape == (2, 32, 32)
    assert np.all(np.isfinite(got.heatmap)) and got.heatmap.max() > 0
    want = explain(models["float32"], pixels().astype(np.float32), name)
    assert cosine(got.heatmap, want.heatmap) > 0.9


def test_backward_rounds_float_values_fed_to_an_integer_input(models):
    """Float values reaching the straight-through input are the integer values the model sees."""
    x = pixels()
    seed = np.eye(10, dtype=np.float32)[[1, 2]]
    exact = models["uint8"].backward(x, "logits", seed, ["input"], fetch=["logits"])
    near = models["uint8"].backward(x.astype(np.float32) + 0.3, "logits", seed, ["input"], fetch=["logits"])
    np.testing.assert_array_equal(near["logits"], exact["logits"])
    np.testing.assert_array_equal(near["input"], exact["input"])


def test_maximize_on_a_uint8_model_climbs(models):
    access = models["uint8"]
    info = describe_model(access.graph).inputs[0]
    gen = maximize(access, None, info, "relu4_out", [3], steps=12, objective="channel", params={"size": 32})
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert len(events) == 12
    assert result.final_objective[0] > 1.5 * result.initial_objective[0] > 0
    inputs = result.inputs
    np.testing.assert_array_equal(inputs, np.round(inputs))  # what was fed: integer values
    assert inputs.min() >= 0 and inputs.max() <= 255


def test_maximize_on_a_float16_model_climbs(models):
    access = models["float16"]
    info = describe_model(access.graph).inputs[0]
    gen = maximize(access, None, info, "relu4_out", [3], steps=8, objective="channel", params={"size": 32})
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        result = stop.value
    assert result.final_objective[0] > result.initial_objective[0]


def test_bfloat16_model_runs_where_the_provider_has_kernels():
    """Skipped on CPU: onnxruntime's CPU provider has no bfloat16 Conv/Relu kernels."""
    from onnx import version_converter

    from inspector import errors

    model = version_converter.convert_version(small_cnn(), 22)  # bfloat16 Conv needs opset 22
    access = OrtModelAccess(to_float(model, TensorProto.BFLOAT16))
    try:
        access.forward(np.zeros((1, 3, 32, 32), np.float32))
    except errors.InspectorError as exc:
        pytest.skip(f"onnxruntime cannot run this bfloat16 model here: {str(exc)[:120]}")
    got = gradients(access, image())  # pragma: no cover (needs a provider with bfloat16 kernels)
    assert got.gradients["input"].dtype == np.float32
