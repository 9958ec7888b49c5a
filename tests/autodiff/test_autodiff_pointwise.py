"""Pointwise and broadcasting rules against central differences."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from autodiff_reference import analytic, check_op, single_op


def away_from(x: np.ndarray, kinks: tuple[float, ...], gap: float = 0.05) -> np.ndarray:
    """x with every value moved at least `gap` away from each kink (FD is invalid there)."""
    for k in kinks:
        near = np.abs(x - k) < gap
        x = np.where(near, k + np.sign(x - k + 1e-9) * gap * 2, x)
    return x.astype(np.float32)


def data(shape, seed=0, scale=1.5, kinks=(0.0,)) -> np.ndarray:
    return away_from(np.random.default_rng(seed).standard_normal(shape) * scale, kinks)


UNARY = [
    ("Relu", {}, (0.0,)), ("LeakyRelu", {"alpha": 0.2}, (0.0,)), ("Elu", {"alpha": 0.7}, (0.0,)),
    ("Selu", {}, (0.0,)), ("Sigmoid", {}, ()), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4},
                                                 (-4 / 3, 2.0)),
    ("HardSwish", {}, (-3.0, 3.0)), ("Tanh", {}, ()), ("Softplus", {}, ()), ("Erf", {}, ()),
    ("Exp", {}, ()), ("Neg", {}, ()), ("Abs", {}, (0.0,)), ("Identity", {}, ()),
    ("Softmax", {"axis": 1}, ()), ("LogSoftmax", {"axis": -1}, ()), ("Dropout", {}, ()),
    ("Softsign", {}, (0.0,)), ("ThresholdedRelu", {"alpha": 0.5}, (0.5,)),
    ("Celu", {"alpha": 0.8}, (0.0,)), ("Sin", {}, ()), ("Cos", {}, ()),
    ("Flatten", {"axis": 2}, ()), ("Transpose", {"perm": [2, 0, 1]}, ()), ("Transpose", {}, ()),
]


@pytest.mark.parametrize("op, attrs, kinks", UNARY, ids=lambda v: v if isinstance(v, str) else "")
def test_unary(op, attrs, kinks):
    x = data((2, 3, 4), kinks=kinks or (99.0,), scale=2.5)
    check_op(single_op(op, {"x": x}, **attrs), {"x": x})


@pytest.mark.parametrize("op", ["Log", "Sqrt", "Reciprocal"])
def test_positive_domain(op):
    x = (np.random.default_rng(1).random((3, 4)) + 0.5).astype(np.float32)
    check_op(single_op(op, {"x": x}), {"x": x}, eps=1e-3)


def test_mish_opset18():
    x = data((3, 5), scale=2.0, kinks=(99.0,))
    check_op(single_op("Mish", {"x": x}, opset=18), {"x": x})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    x = data((3, 5), scale=2.0, kinks=(99.0,))
    check_op(single_op("Gelu", {"x": x}, opset=20, approximate=approximate), {"x": x})


@pytest.mark.parametrize("bounds", [(-0.5, 0.8), (None, 0.8), (0.0, 6.0)])
def test_clip_bounds_as_inputs(bounds):
    lo, hi = bounds
    x = data((2, 12), kinks=tuple(b for b in bounds if b is not None), scale=3.0)
    consts = {k: np.float32(v) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
    order = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
    check_op(single_op("Clip", {"x": x}, consts, order=order), {"x": x})


def test_clip_attributes_opset6_is_converted():
    x = data((2, 12), kinks=(0.0, 6.0), scale=4.0)
    check_op(single_op("Clip", {"x": x}, opset=6, min=0.0, max=6.0), {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 1)), ((1, 4), (2, 3, 1)),
                                    ((2, 3, 4), ())])
def test_broadcasting_binary(op, shapes):
    a, b = data(shapes[0], 1), data(shapes[1], 2)
    if op == "Div":
        b = np.asarray(np.abs(b) + 0.5, dtype=np.float32)
    check_op(single_op(op, {"a": a, "b": b}), {"a": a, "b": b})


def test_pow_constant_exponent():
    x = (np.random.default_rng(3).random((2, 5)) + 0.3).astype(np.float32)
    check_op(single_op("Pow", {"x": x}, {"p": np.float32(2.5)}), {"x": x})


def test_prelu_both_inputs():
    x = data((2, 3, 4, 4), 4)
    slope = np.array([[[0.1]], [[0.5]], [[-0.3]]], dtype=np.float32)
    check_op(single_op("PRelu", {"x": x, "slope": slope}), {"x": x, "slope": slope})


def test_where_values_get_gradient_condition_none():
    a, b = data((2, 3), 5), data((3,), 6)
    cond = np.array([[True, False, True], [False, False, True]])
    check_op(single_op("Where", {"a": a, "b": b}, {"c": cond}, order=["c", "a", "b"]),
             {"a": a, "b": b})


def test_cast_round_trip():
    x = data((2, 3))
    model = single_op("Cast", {"x": x}, to=11)
    model.graph.node.append(onnx.helper.make_node("Cast", ["y"], ["z"], to=1))
    model.graph.output[0].name = "z"
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    check_op(model, {"x": x}, start="z", eps=1e-3)


@pytest.mark.parametrize("op", ["Max", "Min", "Mean"])
def test_variadic_with_broadcasting(op):
    a, b, c = data((2, 3, 4), 7), data((3, 1), 8), data((4,), 9)
    check_op(single_op(op, {"a": a, "b": b, "c": c}), {"a": a, "b": b, "c": c})


def test_max_tie_is_shared():
    a = np.array([1.0, 2.0], np.float32)
    model = single_op("Max", {"a": a, "b": a.copy()})
    got = analytic(model, {"a": a, "b": a.copy()}, "y", ["a", "b"], np.ones(2, np.float32))
    np.testing.assert_array_equal(got["a"], [0.5, 0.5])


def test_same_tensor_twice_accumulates():
    x = data((2, 5), 10)
    model = single_op("Mul", {"x": x}, order=["x", "x"])
    seed = data((2, 5), 11)
    np.testing.assert_allclose(analytic(model, {"x": x}, "y", ["x"], seed)["x"], 2 * x * seed,
                               rtol=1e-6)


def test_saturated_sigmoid_and_tanh_keep_their_small_slopes():
    """float32 y*(1-y) and 1-y^2 are exactly 0 once y rounds to 1; the true slopes are not."""
    x = np.array([12.0, 17.0, 20.0, -20.0, 9.0, -10.0], np.float32)
    seed = np.ones_like(x)
    x64 = x.astype(np.float64)
    sig = 1 / (1 + np.exp(-x64))
    got = analytic(single_op("Sigmoid", {"x": x}), {"x": x}, "y", ["x"], seed)["x"]
    np.testing.assert_allclose(got, sig * (1 - sig), rtol=1e-4)
    got = analytic(single_op("Tanh", {"x": x}), {"x": x}, "y", ["x"], seed)["x"]
    np.testing.assert_allclose(got, 1 / np.cosh(x64) ** 2, rtol=1e-4)
