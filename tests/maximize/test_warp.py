"""Transforms: exact adjoints (dot-product test) and known-answer geometry."""

import numpy as np
import pytest

from inspector.maximize import warp
from inspector.maximize.warp import Resample, Robustness

SIZE = (13, 17)


def _dot_test(affine: warp.Affine, source=SIZE) -> None:
    rng = np.random.default_rng(1)
    r = Resample(affine, source)
    x = rng.standard_normal((2, *source, 3)).astype(np.float32)
    y = rng.standard_normal((2, *affine.size, 3)).astype(np.float32)
    lhs = float(np.sum(r.linear(x).astype(np.float64) * y))
    rhs = float(np.sum(x.astype(np.float64) * r.adjoint(y)))
    assert lhs == pytest.approx(rhs, rel=1e-5, abs=1e-4)
    assert abs(lhs) > 1e-2  # the test would be empty if the op sampled nothing


@pytest.mark.parametrize("make", [
    lambda: warp.pad(SIZE, 3),
    lambda: warp.jitter(SIZE, 4, 1, 3),
    lambda: warp.scale(SIZE, 1.1),
    lambda: warp.scale(SIZE, 0.9),
    lambda: warp.rotate(SIZE, 10.0),
    lambda: warp.rotate(SIZE, -7.3),
    lambda: warp.center(SIZE, (9, 20)),
], ids=["pad", "jitter", "zoom_in", "zoom_out", "rotate", "rotate_neg", "center"])
def test_every_transform_has_an_exact_adjoint(make):
    _dot_test(make())


@pytest.mark.parametrize("seed", range(4))
def test_the_random_chain_has_an_exact_adjoint(seed):
    affine = Robustness().sample(np.random.default_rng(seed), SIZE, (16, 16))
    _dot_test(affine)


def test_pad_then_jitter_is_an_integer_shift_with_grey_fill():
    img = np.random.default_rng(0).random((1, *SIZE, 3)).astype(np.float32)
    chain = warp.pad(SIZE, 3).then(warp.jitter((SIZE[0] + 6, SIZE[1] + 6), 6, 1, 5))
    out = Resample(chain, SIZE, fill=0.5)(img)  # source y = out y - 2, x = out x + 2
    np.testing.assert_allclose(out[0, 2:, :-2], img[0, :-2, 2:], atol=1e-6)
    np.testing.assert_allclose(out[0, :2], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[0, :, -2:], 0.5, atol=1e-6)


def test_rotation_by_90_degrees_matches_rot90():
    square = (9, 9)
    img = np.random.default_rng(0).random((1, *square, 3)).astype(np.float32)
    out = Resample(warp.rotate(square, 90.0), square)(img)
    turned = np.rot90(img[0], k=1, axes=(0, 1))
    assert np.allclose(out[0], turned, atol=1e-5) or np.allclose(
        out[0], np.rot90(img[0], k=-1, axes=(0, 1)), atol=1e-5)


def test_zoom_of_a_linear_ramp_scales_its_slope():
    ramp = np.broadcast_to(np.arange(SIZE[1], dtype=np.float32)[None, :, None], (1, *SIZE, 3))
    out = Resample(warp.scale(SIZE, 2.0), SIZE)(np.ascontiguousarray(ramp))
    mid = out[0, SIZE[0] // 2, 6:11, 0]
    np.testing.assert_allclose(np.diff(mid), 0.5, atol=1e-5)  # zoom x2: half the slope


def test_rotation_keeps_a_constant_image_constant_inside():
    img = np.full((2, *SIZE, 3), 0.3, np.float32)
    out = Resample(warp.rotate(SIZE, 10.0), SIZE, fill=0.9)(img)
    interior = out[:, 4:-4, 4:-4]  # away from corners that rotate in from outside
    np.testing.assert_allclose(interior, 0.3, atol=1e-6)


def test_a_window_entirely_outside_the_image_is_all_fill_and_has_zero_adjoint():
    far = warp.Affine(warp.pad(SIZE, 40).matrix, (5, 5))  # reads only the padding
    r = Resample(far, SIZE, fill=0.25)
    np.testing.assert_allclose(r(np.ones((1, *SIZE, 3), np.float32)), 0.25)
    assert not r.adjoint(np.ones((1, 5, 5, 3), np.float32)).any()
