"""Conv, ConvTranspose and pooling rules against central differences (linear ops: eps 1, exact
up to float32 rounding) and max-pool ties against a first-max reverse-mode reference."""

from __future__ import annotations

import numpy as np
import pytest
from autodiff_reference import analytic, check_op, conv_case, single_op, start_value

RNG = np.random.default_rng(7)


def arr(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


CONV = [
    dict(k=3, strides=[1, 1], pads=[1, 1, 1, 1]),
    dict(k=3, strides=[2, 2], pads=[1, 1, 1, 1]),                 # even input -> needs a tail row
    dict(k=3, strides=[2, 2], pads=[1, 1, 1, 1], size=(7, 7)),    # odd input
    dict(k=3, strides=[2, 1], pads=[0, 1, 2, 0], size=(8, 7)),    # asymmetric pads
    dict(k=3, strides=[1, 1], pads=[2, 2, 2, 2], dilations=[2, 2]),
    dict(k=2, strides=[3, 3], pads=[0, 0, 0, 0], size=(8, 8)),    # untouched tail rows
    dict(k=3, strides=[1, 1], pads=[1, 1, 1, 1], group=2),
    dict(k=3, strides=[2, 2], pads=[1, 1, 1, 1], group=4, cout=4),  # depthwise
    dict(k=3, strides=[2, 2], auto_pad="SAME_UPPER", size=(7, 8)),
    dict(k=4, strides=[2, 2], auto_pad="SAME_LOWER", size=(7, 8)),
    dict(k=3, strides=[2, 2], auto_pad="VALID", size=(7, 8)),
    dict(k=1, strides=[1, 1], pads=[0, 0, 0, 0], bias=True),
]


@pytest.mark.parametrize("case", CONV, ids=str)
def test_conv_input_gradient(case):
    model, x = conv_case(case, arr)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


def test_conv_1d_without_kernel_shape_attribute():
    x = arr(1, 3, 9)
    check_op(single_op("Conv", {"x": x}, {"w": arr(2, 3, 3)}, strides=[2], pads=[1, 1]),
             {"x": x}, eps=1.0, rtol=1e-4)


CONV_T = [
    dict(k=2, strides=[2, 2], pads=[0, 0, 0, 0]),
    dict(k=3, strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    dict(k=3, strides=[1, 2], pads=[1, 0, 0, 1], dilations=[2, 1]),
    dict(k=3, strides=[2, 2], pads=[1, 1, 1, 1], group=2),
    dict(k=3, strides=[2, 2], output_shape=[10, 9]),
    dict(k=3, strides=[2, 2], auto_pad="SAME_UPPER"),
]


@pytest.mark.parametrize("case", CONV_T, ids=str)
def test_conv_transpose_input_gradient(case):
    case = dict(case)
    k, group = case.pop("k"), case.pop("group", 1)
    x = arr(2, 4, 5, 5)
    model = single_op("ConvTranspose", {"x": x}, {"w": arr(4, 6 // group, k, k)},
                      kernel_shape=[k, k], group=group, **case)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


MAXPOOL = [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),     # overlapping windows
    dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[2, 3], strides=[1, 2], dilations=[2, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
]


@pytest.mark.parametrize("case", MAXPOOL, ids=str)
def test_maxpool_against_differences(case):
    x = RNG.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7).astype(np.float32) / 10  # no ties
    check_op(single_op("MaxPool", {"x": x}, **case), {"x": x}, eps=1e-2, rtol=1e-4)


def first_max_reference(x: np.ndarray, seed: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """Reverse-mode MaxPool in float64: each window's gradient goes to its first maximum."""
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 2 * p, w + 2 * p), -np.inf)
    padded[:, :, p:p + h, p:p + w] = x
    grad = np.zeros_like(padded)
    for b, ch, i, j in np.ndindex(seed.shape):
        win = padded[b, ch, i * s:i * s + k, j * s:j * s + k]
        a, bb = np.unravel_index(np.argmax(win), win.shape)
        grad[b, ch, i * s + a, j * s + bb] += seed[b, ch, i, j]
    return grad[:, :, p:p + h, p:p + w]


def test_maxpool_ties_route_to_first_max():
    x = np.round(RNG.standard_normal((2, 2, 8, 8))).astype(np.float32)  # many exact ties
    x[0, 0] = 1.0                                                     # a flat plane
    model = single_op("MaxPool", {"x": x}, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y = start_value(model, {"x": x}, "y")
    seed = RNG.standard_normal(y.shape).astype(np.float32)
    got = analytic(model, {"x": x}, "y", ["x"], seed)["x"]
    np.testing.assert_allclose(got, first_max_reference(x, seed, 3, 2, 1), atol=1e-5)


AVGPOOL = [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1, count_include_pad=1),
    dict(kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
]


@pytest.mark.parametrize("case", AVGPOOL, ids=str)
def test_average_pool(case):
    x = arr(2, 3, 7, 8)
    check_op(single_op("AveragePool", {"x": x}, **case), {"x": x}, eps=1.0, rtol=1e-4)


def test_global_average_pool():
    x = arr(2, 3, 5, 4)
    check_op(single_op("GlobalAveragePool", {"x": x}), {"x": x}, eps=1.0, rtol=1e-4)


def test_global_max_pool():
    x = RNG.permutation(2 * 3 * 5 * 4).reshape(2, 3, 5, 4).astype(np.float32) / 10
    check_op(single_op("GlobalMaxPool", {"x": x}), {"x": x}, eps=1e-2, rtol=1e-4)
