"""Input-space attributions: values against direct gradients / forward passes, IG completeness,
locality on the patch model, the Adebayo randomization check, NHWC inputs, non-differentiable models."""

import numpy as np
import pytest
from factory import small_cnn
from methods_models import GREEN_BOX, RED_BOX, mass_in, nhwc, patch_image, patch_model
from onnx import numpy_helper

from inspector.errors import FailedPrecondition
from inspector.methods import Target, get_method
from inspector.methods.integrated_gradients import quadrature
from inspector.runtime.access import OrtModelAccess


@pytest.fixture(scope="module")
def cnn():
    x = np.random.default_rng(2).random((2, 3, 32, 32)).astype(np.float32)
    return OrtModelAccess(small_cnn(seed=5)), x


def input_grad(access, x, k, policy="standard"):
    seed = np.zeros((len(x), 10), np.float32)
    seed[:, k] = 1
    return access.backward(x, "logits", seed, [access.input_name], policy=policy)[access.input_name]


def test_saliency_inputxgradient_guided_equal_backward(cnn):
    access, x = cnn
    g = input_grad(access, x, 3)
    sal = get_method("saliency").explain(access, x, Target(index=(3,)))
    np.testing.assert_allclose(sal.attribution, g, rtol=1e-6)
    m = np.abs(g).max(1)
    np.testing.assert_allclose(sal.heatmap, m / m.max((1, 2), keepdims=True), rtol=1e-5)
    ixg = get_method("inputxgradient").explain(access, x, Target(index=(3,)))
    np.testing.assert_allclose(ixg.attribution, x * g, rtol=1e-6)
    gb = get_method("guided_backprop").explain(access, x, Target(index=(3,)))
    np.testing.assert_allclose(gb.attribution, input_grad(access, x, 3, "guided_backprop"), rtol=1e-6)
    assert not np.allclose(gb.attribution, g)  # the policy is really used
    cam = get_method("gradcam").explain(access, x, Target(index=(3,)))
    ggc = get_method("guided_gradcam").explain(access, x, Target(index=(3,)))
    np.testing.assert_allclose(ggc.attribution, gb.attribution * cam.heatmap[:, None], rtol=1e-5, atol=1e-7)


def test_smoothgrad_without_noise_is_the_gradient_and_noise_is_seeded(cnn):
    access, x = cnn
    exp = get_method("smoothgrad").explain(access, x, Target(index=(1,)), samples=3, noise=0.0)
    np.testing.assert_allclose(exp.attribution, input_grad(access, x, 1), rtol=1e-5, atol=1e-7)
    a = get_method("smoothgrad").explain(access, x, Target(index=(1,)), samples=4, noise=0.2, seed=7)
    b = get_method("smoothgrad").explain(access, x, Target(index=(1,)), samples=4, noise=0.2, seed=7, batch_size=3)
    c = get_method("smoothgrad").explain(access, x, Target(index=(1,)), samples=4, noise=0.2, seed=8)
    np.testing.assert_allclose(a.attribution, b.attribution, rtol=1e-5)
    assert not np.allclose(a.attribution, c.attribution)


def test_integrated_gradients_completeness_within_one_percent(cnn):
    access, x = cnn
    logits, at_zero = access.forward(x)["logits"], access.forward(np.zeros_like(x))["logits"]
    for k in range(10):
        exp = get_method("integrated_gradients").explain(access, x, Target(index=(k,)), steps=128, batch_size=128)
        change = logits[:, k] - at_zero[:, k]
        gap = exp.attribution.reshape(2, -1).sum(1) - change
        np.testing.assert_allclose(exp.extras["convergence_delta"], gap, atol=1e-4)
        # within 1 % of f(x) - f(0), above float32 noise (some classes barely change along the path)
        assert np.all(np.abs(gap) <= 0.01 * np.abs(change) + 1e-3), (k, gap, change)
        if k == 0:
            assert np.all(np.abs(gap) <= 0.01 * np.abs(change))
    assert exp.params["method"] == "gausslegendre" and exp.params["steps"] == 128


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])
def test_integrated_gradients_riemann_rules_and_baselines(cnn, method):
    access, x = cnn
    blurred = get_method("integrated_gradients").explain(access, x, Target(index=(2,)), steps=64,
                                                         method=method, baseline="blurred", blur_sigma=2.0)
    f_x = access.forward(x)["logits"][:, 2]
    f_b = blurred.extras["baseline_score"]
    assert np.all(np.abs(blurred.extras["convergence_delta"]) <= 0.05 * np.abs(f_x - f_b) + 1e-3)
    zeros = get_method("integrated_gradients").explain(access, x, Target(index=(2,)), steps=8, method=method)
    given = get_method("integrated_gradients").explain(access, x, Target(index=(2,)), steps=8, method=method,
                                                       baseline=np.zeros((3, 32, 32), np.float32))
    np.testing.assert_allclose(given.attribution, zeros.attribution, rtol=1e-6)


def test_quadratures_integrate_polynomials():
    a, w = quadrature("gausslegendre", 4)
    assert np.sum(w * a**7) == pytest.approx(1 / 8, rel=1e-12)
    for name in ("riemann_middle", "riemann_trapezoid"):
        a, w = quadrature(name, 5)
        assert np.sum(w * (3 * a + 1)) == pytest.approx(2.5, rel=1e-12)
    a, w = quadrature("riemann_left", 10)
    assert np.sum(w * a) == pytest.approx(0.45) and quadrature("riemann_right", 10)[0][-1] == 1.0


def test_occlusion_equals_direct_score_drops(cnn):
    access, x = cnn
    exp = get_method("occlusion").explain(access, x, Target(index=(6,)), window=8, stride=8, baseline=0.5)
    base = access.forward(x)["logits"][:, 6]
    for y, xx in ((0, 0), (8, 16), (24, 24)):
        occluded = x.copy()
        occluded[:, :, y:y + 8, xx:xx + 8] = 0.5
        drop = base - access.forward(occluded)["logits"][:, 6]
        np.testing.assert_allclose(exp.attribution[:, :, y:y + 8, xx:xx + 8],
                                   np.broadcast_to(drop[:, None, None, None], (2, 3, 8, 8)), rtol=1e-4, atol=1e-5)


def test_rise_with_keep_probability_one_gives_the_score_everywhere(cnn):
    access, x = cnn
    exp = get_method("rise").explain(access, x, Target(index=(0,)), masks=8, probability=1.0)
    score = access.forward(x)["logits"][:, 0]
    np.testing.assert_allclose(exp.attribution, np.broadcast_to(score[:, None, None, None], x.shape), rtol=1e-5)
    assert np.all(exp.heatmap == 0)  # a constant map is scaled to zeros, never NaN


LOCAL = {"saliency": {}, "inputxgradient": {}, "smoothgrad": {"samples": 8, "noise": 0.05},
         "integrated_gradients": {"steps": 32}, "guided_backprop": {}, "guided_gradcam": {},
         "occlusion": {"window": 4, "stride": 2}, "rise": {"masks": 300, "grid": 4}}


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_attribution_lies_on_the_class_patch(name):
    access, x = OrtModelAccess(patch_model()), patch_image(2)
    for k, box in ((0, RED_BOX), (1, GREEN_BOX)):
        exp = get_method(name).explain(access, x, Target(index=(k,)), **LOCAL[name])
        if name == "rise":  # RISE maps carry a broad offset: compare densities and the peak instead
            y0, x0, y1, x1 = box
            inside = exp.heatmap[:, y0:y1, x0:x1].mean((1, 2))
            outside = (exp.heatmap.sum((1, 2)) - inside * 64) / (256 - 64)
            assert np.all(inside > 3 * outside), (k, inside, outside)
            peaks = [np.unravel_index(h.argmax(), h.shape) for h in exp.heatmap]
            assert all(y0 <= py < y1 and x0 <= px < x1 for py, px in peaks)
            continue
        share = mass_in(exp.heatmap, box)
        assert np.all(share > 0.9), (name, k, share)


def spearman(a, b):
    ra, rb = (np.argsort(np.argsort(v.ravel())) for v in (a, b))
    return np.corrcoef(ra, rb)[0, 1]


@pytest.mark.parametrize("name", ["gradcam", "saliency"])
def test_randomizing_top_layers_changes_the_map(name):
    """Adebayo et al. (2018): a map that survives weight randomization does not explain the model."""
    model = small_cnn(seed=5)
    x = np.random.default_rng(2).random((1, 3, 32, 32)).astype(np.float32)
    original = get_method(name).explain(OrtModelAccess(model), x, Target(index=(0,))).heatmap
    again = get_method(name).explain(OrtModelAccess(small_cnn(seed=5)), x, Target(index=(0,))).heatmap
    rng = np.random.default_rng(99)
    for init in model.graph.initializer:
        if init.name.split(".")[0] in ("fc", "conv4", "pw3", "dw3"):
            w = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(rng.standard_normal(w.shape).astype(np.float32) * w.std(), init.name))
    randomized = get_method(name).explain(OrtModelAccess(model), x, Target(index=(0,))).heatmap
    assert spearman(original, again) == pytest.approx(1.0)
    assert spearman(original, randomized) < 0.5


@pytest.mark.parametrize("name", ["gradcam", "saliency", "occlusion", "scorecam"])
def test_nhwc_input_gives_the_same_maps(name):
    x = patch_image(2)
    a = get_method(name).explain(OrtModelAccess(patch_model()), x, Target(index=(0,)))
    b = get_method(name).explain(OrtModelAccess(nhwc(patch_model())), np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                                 Target(index=(0,)))
    np.testing.assert_allclose(b.heatmap, a.heatmap, atol=1e-5)
    np.testing.assert_allclose(b.score_after, a.score_after, rtol=1e-5)
    if a.attribution is not None:
        np.testing.assert_allclose(b.attribution, a.attribution.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-7)


def test_gradient_free_methods_work_where_gradients_do_not():
    from inspector.graph.autodiff.registry import RULES

    assert "Shrink" not in RULES, "pick another op without a gradient rule for this test"
    access, x = OrtModelAccess(patch_model(extra_op="Shrink")), patch_image(1)
    for name in ("saliency", "integrated_gradients"):
        with pytest.raises(FailedPrecondition, match="Shrink"):
            get_method(name).explain(access, x, Target(index=(0,)))
    with pytest.raises(FailedPrecondition, match="Shrink"):  # the layer is below the Shrink node
        get_method("gradcam").explain(access, x, Target(index=(0,)), layers=["fire_out"])
    above = get_method("gradcam").explain(access, x, Target(index=(0,)))  # default layer: above it
    assert mass_in(above.heatmap, RED_BOX)[0] > 0.85
    for name, params in (("scorecam", {}), ("ablationcam", {}), ("eigencam", {}), ("occlusion", {"window": 4}),
                         ("rise", {"masks": 300, "grid": 4}), ("reciprocam", {})):
        exp = get_method(name).explain(access, x, Target(index=(0,)), **params)
        # 64 of 256 pixels: a map blind to the class would put ~25 % there (eigencam is class-agnostic)
        assert mass_in(exp.heatmap, RED_BOX)[0] > {"eigencam": 0.4, "rise": 0.5}.get(name, 0.8), name
