"""Preprocessing pullback: the measured affine map, its adjoint, and refusal of non-affine maps."""

import numpy as np
import pytest

from inspector import errors
from inspector.maximize.pullback import InputPullback

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def nchw_bgr(rgb):
    return ((rgb[..., ::-1] * 255 - MEAN[::-1] * 255) / (STD[::-1] * 255)).transpose(0, 3, 1, 2)


def nhwc(rgb):
    return (rgb - MEAN) / STD


def gray_nchw(rgb):
    return (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[:, None]


@pytest.mark.parametrize("to_input", [nchw_bgr, nhwc, gray_nchw], ids=["nchw_bgr", "nhwc", "gray"])
def test_pullback_is_the_adjoint_of_the_preprocessing(to_input):
    size = (6, 9)
    pull = InputPullback(to_input, size)
    rng = np.random.default_rng(0)
    r = rng.random((2, *size, 3)).astype(np.float32)
    base = to_input(np.zeros_like(r))
    g = rng.standard_normal(base.shape).astype(np.float32)
    lhs = np.sum((to_input(r) - base).astype(np.float64) * g)
    rhs = np.sum(r.astype(np.float64) * pull(g))
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_layout_is_read_from_the_output_shape():
    assert InputPullback(nchw_bgr, (6, 9)).channel_axis == 1
    assert InputPullback(nhwc, (6, 9)).channel_axis == 3
    np.testing.assert_allclose(InputPullback(nhwc, (6, 9)).matrix, np.diag(1 / STD), rtol=1e-6)


def test_non_affine_or_resizing_preprocessing_is_refused():
    with pytest.raises(errors.FailedPrecondition, match="not a per-pixel affine map"):
        InputPullback(lambda r: (r**2).transpose(0, 3, 1, 2), (6, 9))
    with pytest.raises(errors.InvalidArgument, match="keep the size"):
        InputPullback(lambda r: r[:, ::2, ::2].transpose(0, 3, 1, 2), (6, 9))
    with pytest.raises(errors.InvalidArgument, match="floating-point"):
        InputPullback(lambda r: (r * 255).astype(np.uint8).transpose(0, 3, 1, 2), (6, 9))
