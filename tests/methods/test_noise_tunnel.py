"""The noise tunnel: smoothgrad / smoothgrad_sq / vargrad around any input-attribution method,
against numpy references built from direct backward passes on the same noisy copies."""

import numpy as np
import pytest
from factory import small_cnn

from inspector.errors import InvalidArgument
from inspector.methods import Target, get_method
from inspector.runtime.access import OrtModelAccess


@pytest.fixture(scope="module")
def cnn():
    x = np.random.default_rng(4).random((2, 3, 32, 32)).astype(np.float32)
    return OrtModelAccess(small_cnn(seed=3)), x


def noisy_gradients(access, x, k, samples, noise, seed, batch):
    """Per-copy input gradients, drawing the noise exactly as the tunnel documents it."""
    rng = np.random.default_rng(seed)
    flat = x.reshape(len(x), -1)
    sigma = noise * (flat.max(1) - flat.min(1))
    rows = np.repeat(np.arange(len(x)), samples)
    out = []
    for i0 in range(0, len(rows), batch):
        r = rows[i0:i0 + batch]
        eps = rng.standard_normal((len(r), *x.shape[1:])).astype(np.float32)
        xs = x[r] + eps * sigma[r].reshape(-1, 1, 1, 1).astype(np.float32)
        seed_k = np.zeros((len(r), 10), np.float32)
        seed_k[:, k] = 1
        out.append((xs, access.backward(xs, "logits", seed_k, [access.input_name])[access.input_name]))
    xs = np.concatenate([o[0] for o in out])
    grads = np.concatenate([o[1] for o in out]).astype(np.float64)
    return rows, xs, grads


@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_each_kind_aggregates_the_gradients_of_the_same_noisy_copies(cnn, kind):
    access, x = cnn
    rows, _, g = noisy_gradients(access, x, 2, samples=5, noise=0.2, seed=3, batch=4)
    per_image = np.stack([g[rows == i] for i in range(len(x))])  # [N, samples, ...]
    expected = {"smoothgrad": per_image.mean(1), "smoothgrad_sq": (per_image ** 2).mean(1),
                "vargrad": per_image.var(1)}[kind]
    exp = get_method(kind).explain(access, x, Target(index=(2,)), samples=5, noise=0.2, seed=3, batch_size=4)
    np.testing.assert_allclose(exp.attribution, expected, rtol=1e-4, atol=1e-9)
    m = np.abs(expected).max(1)  # saliency's map: absmax over channels, scaled per image
    np.testing.assert_allclose(exp.heatmap, m / m.max((1, 2), keepdims=True), rtol=1e-4, atol=1e-6)


def test_it_wraps_another_method_and_passes_its_parameters(cnn):
    access, x = cnn
    rows, xs, g = noisy_gradients(access, x, 1, samples=3, noise=0.1, seed=0, batch=16)
    exp = get_method("smoothgrad").explain(access, x, Target(index=(1,)), base="inputxgradient",
                                           samples=3, noise=0.1)
    expected = np.stack([(xs * g)[rows == i].mean(0) for i in range(len(x))])
    np.testing.assert_allclose(exp.attribution, expected, rtol=1e-4, atol=1e-9)
    ig = get_method("vargrad").explain(access, x, Target(index=(1,)), base="integrated_gradients",
                                       samples=2, steps=4)
    assert ig.attribution.shape == x.shape and np.all(ig.attribution >= 0) and np.any(ig.attribution > 0)


def test_without_noise_smoothgrad_is_the_method_and_vargrad_is_zero(cnn):
    access, x = cnn
    ixg = get_method("inputxgradient").explain(access, x, Target(index=(4,)))
    sg = get_method("smoothgrad").explain(access, x, Target(index=(4,)), base="inputxgradient",
                                          samples=2, noise=0.0)
    np.testing.assert_allclose(sg.attribution, ixg.attribution, rtol=1e-5, atol=1e-8)
    var = get_method("vargrad").explain(access, x, Target(index=(4,)), samples=2, noise=0.0)
    np.testing.assert_allclose(var.attribution, 0.0, atol=1e-10)


def test_bad_bases_and_parameters_are_named(cnn):
    access, x = cnn
    with pytest.raises(InvalidArgument, match="wraps input-attribution methods.*not 'gradcam'"):
        get_method("smoothgrad").explain(access, x, Target(), base="gradcam")
    with pytest.raises(InvalidArgument, match="wraps input-attribution methods"):
        get_method("vargrad").explain(access, x, Target(), base="smoothgrad")
    with pytest.raises(InvalidArgument, match="does not take parameter.*window"):
        get_method("smoothgrad").explain(access, x, Target(), window=3)
