"""CAM family: each map equals its definition recomputed with numpy from forward/backward outputs,
and on the patch model the map for a class lies where that class's evidence is."""

import numpy as np
import pytest
from factory import small_cnn
from methods_models import GREEN_BOX, RED_BOX, mass_in, patch_image, patch_model

from inspector.imaging.render import resize_map
from inspector.methods import Target, get_method
from inspector.runtime.access import OrtModelAccess

LAYER = "relu4_out"


@pytest.fixture(scope="module")
def cnn():
    model = small_cnn(seed=3)
    x = np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32)
    return model, OrtModelAccess(model), x


def minmax(m):
    flat = m.reshape(len(m), -1)
    lo, hi = flat.min(1)[:, None], flat.max(1)[:, None]
    return ((flat - lo) / np.where(hi - lo > 0, hi - lo, 1)).reshape(m.shape)


def to_input(cam, size=(32, 32)):
    return minmax(np.stack([resize_map(c, size) for c in np.maximum(cam, 0)]))


def pc1(a):
    out = []
    for img in a.astype(np.float64):
        flat = img.reshape(len(img), -1).T
        c = flat - flat.mean(0)
        v = np.linalg.svd(c, full_matrices=False)[2][0]
        p = c @ v
        ref = flat.sum(1)
        out.append((p if np.dot(p - p.mean(), ref - ref.mean()) >= 0 else -p).reshape(img.shape[1:]))
    return np.array(out)


def act_grad(access, x, layer=LAYER, target=None):
    out = access.forward(x, [layer])
    logits = out["logits"]
    seed = np.zeros_like(logits)
    k = logits.argmax(1) if target is None else np.full(len(x), target)
    seed[np.arange(len(x)), k] = 1
    grad = access.backward(x, "logits", seed, [layer])[layer]
    return out[layer], grad, seed


def fem_map(a, g):
    th = a.mean((2, 3), keepdims=True) + 2 * a.std((2, 3), keepdims=True)
    return ((a > th).mean((2, 3))[:, :, None, None] * a).sum(1)


def gradcampp_map(a, g):
    alpha = g**2 / (2 * g**2 + a.sum((2, 3), keepdims=True) * g**3 + 1e-6)
    alpha = np.where(g != 0, alpha, 0)
    return ((np.maximum(g, 0) * alpha).sum((2, 3))[:, :, None, None] * a).sum(1)


REFERENCES = {
    "gradcam": lambda a, g: (g.mean((2, 3))[:, :, None, None] * a).sum(1),
    "gradcam++": gradcampp_map,
    "xgradcam": lambda a, g: ((g * a / (a.sum((2, 3), keepdims=True) + 1e-7)).sum((2, 3))[:, :, None, None]
                              * a).sum(1),
    "hirescam": lambda a, g: (g * a).sum(1),
    "layercam": lambda a, g: (np.maximum(g, 0) * a).sum(1),
    "eigencam": lambda a, g: pc1(a),
    "eigengradcam": lambda a, g: pc1(g * a),
    "fem": fem_map,
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_cam_equals_its_definition(cnn, name):
    _, access, x = cnn
    a, g, _ = act_grad(access, x)
    ref = REFERENCES[name](a.astype(np.float64), g.astype(np.float64))
    exp = get_method(name).explain(access, x, Target())
    assert exp.layers == [LAYER] and exp.heatmap.shape == (2, 32, 32)
    np.testing.assert_allclose(exp.layer_heatmap, minmax(np.maximum(ref, 0)), atol=2e-4)
    np.testing.assert_allclose(exp.heatmap, to_input(ref), atol=2e-4)
    assert exp.heatmap.min() == 0 and exp.heatmap.max() == pytest.approx(1)


def test_cam_reads_classifier_weights_and_matches_gradcam(cnn):
    model, access, x = cnn
    from onnx import numpy_helper
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}["fc.weight"]
    a, _, seed = act_grad(access, x)
    ref = np.einsum("nk,kc,nchw->nhw", seed, w, a)
    cam = get_method("cam").explain(access, x, Target())
    np.testing.assert_allclose(cam.heatmap, to_input(ref), atol=2e-4)
    # for GAP + linear, the mean gradient is W[k] / (h w): Grad-CAM is CAM
    np.testing.assert_allclose(get_method("gradcam").explain(access, x, Target()).heatmap, cam.heatmap, atol=2e-4)


def test_kpcacam_linear_kernel_is_eigencam_and_sigmoid_matches_kernel_pca(cnn):
    _, access, x = cnn
    eig = get_method("eigencam").explain(access, x, Target())
    lin = get_method("kpcacam").explain(access, x, Target(), kernel="linear")
    np.testing.assert_allclose(lin.heatmap, eig.heatmap, atol=1e-3)
    a = access.forward(x, [LAYER])[LAYER].astype(np.float64)
    ref = []
    for img in a:
        flat = img.reshape(len(img), -1).T
        k = np.tanh(flat @ flat.T / flat.shape[1] + 1)
        n = len(k)
        one = np.full((n, n), 1 / n)
        kc = k - one @ k - k @ one + one @ k @ one
        vals, vecs = np.linalg.eig(kc)  # the sigmoid kernel is not PSD: largest algebraic eigenvalue
        top = np.argmax(vals.real)
        p = vecs[:, top].real / np.linalg.norm(vecs[:, top].real) * np.sqrt(vals[top].real)
        ref.append((p if np.dot(p - p.mean(), flat.sum(1) - flat.sum(1).mean()) >= 0 else -p).reshape(img.shape[1:]))
    got = get_method("kpcacam").explain(access, x, Target())
    np.testing.assert_allclose(got.heatmap, to_input(np.array(ref)), atol=1e-3)


def test_eigen_smooth_takes_first_component_of_weighted_activations(cnn):
    _, access, x = cnn
    a, g, _ = act_grad(access, x)
    ref = pc1(g.mean((2, 3))[:, :, None, None].astype(np.float64) * a)
    exp = get_method("gradcam").explain(access, x, Target(), eigen_smooth=True)
    np.testing.assert_allclose(exp.heatmap, to_input(ref), atol=2e-4)
    assert exp.params["eigen_smooth"] is True and exp.params["aug_smooth"] is False


def test_aug_smooth_averages_flips_and_brightness(cnn):
    _, access, x = cnn
    k = access.forward(x)["logits"].argmax(1)
    maps = []
    for flip in (False, True):
        for factor in (0.9, 1.0, 1.1):
            xa = np.ascontiguousarray(np.flip(x * np.float32(factor), 3) if flip else x * np.float32(factor))
            out = access.forward(xa, [LAYER])
            seed = np.zeros_like(out["logits"])
            seed[np.arange(2), k] = 1
            g = access.backward(xa, "logits", seed, [LAYER])[LAYER]
            heat = to_input((g.mean((2, 3))[:, :, None, None] * out[LAYER]).sum(1))
            maps.append(np.flip(heat, 2) if flip else heat)
    exp = get_method("gradcam").explain(access, x, Target(), aug_smooth=True)
    np.testing.assert_allclose(exp.heatmap, minmax(np.mean(maps, 0)), atol=2e-4)


def test_several_layers_are_averaged_after_scaling(cnn):
    _, access, x = cnn
    maps = []
    for layer in ("relu2_out", LAYER):
        a, g, _ = act_grad(access, x, layer)
        maps.append(to_input((g.mean((2, 3))[:, :, None, None] * a).sum(1)))
    exp = get_method("gradcam").explain(access, x, Target(), layers=["relu2_out", LAYER])
    np.testing.assert_allclose(exp.heatmap, minmax(np.mean(maps, 0)), atol=2e-4)
    assert exp.layers == ["relu2_out", LAYER] and exp.layer_heatmap.shape == (2, 16, 16)


def test_score_after_is_the_score_on_the_masked_image(cnn):
    _, access, x = cnn
    exp = get_method("gradcam").explain(access, x, Target(index=(4,)))
    logits = access.forward(x * exp.heatmap[:, None])["logits"]
    np.testing.assert_allclose(exp.score_after, logits[:, 4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(exp.score, access.forward(x)["logits"][:, 4], rtol=1e-6)
    assert exp.targets == ["logits[4]", "logits[4]"]


CLASS_SPECIFIC = ["cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigengradcam",
                  "scorecam", "ablationcam", "reciprocam"]


@pytest.mark.parametrize("name", CLASS_SPECIFIC)
def test_class_map_lies_on_that_class_patch(name):
    access, x = OrtModelAccess(patch_model()), patch_image(2)
    for k, box in ((0, RED_BOX), (1, GREEN_BOX)):
        exp = get_method(name).explain(access, x, Target(index=(k,)))
        assert np.all(mass_in(exp.heatmap, box) > 0.85), (name, k, mass_in(exp.heatmap, box))
        assert np.all(np.isfinite(exp.heatmap))


@pytest.mark.parametrize("name", ["eigencam", "kpcacam", "fem"])
def test_class_agnostic_maps_cover_the_patches(name):
    access, x = OrtModelAccess(patch_model()), patch_image(2)
    exp = get_method(name).explain(access, x, Target())
    assert np.all(mass_in(exp.heatmap, RED_BOX) + mass_in(exp.heatmap, GREEN_BOX) > 0.85), name


def test_constant_layer_gives_zero_map_not_nan():
    access = OrtModelAccess(patch_model())
    dark = np.zeros((1, 3, 16, 16), np.float32)  # nothing fires: every activation and gradient is 0
    for name in ("gradcam", "gradcam++", "eigencam", "scorecam", "fem"):
        exp = get_method(name).explain(access, dark, Target(index=(0,)))
        assert np.all(exp.heatmap == 0) and np.all(exp.layer_heatmap == 0), name
