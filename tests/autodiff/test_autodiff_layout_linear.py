"""Layout, indexing, resize, matrix, reduction and normalization rules against central
differences (linear ops with eps 1: exact up to float32 rounding)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from autodiff_reference import analytic, check_op, single_op, start_value
from onnx import helper

RNG = np.random.default_rng(11)
I64 = np.int64


def arr(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def linear(model, feeds):
    check_op(model, feeds, eps=1.0, rtol=1e-4)


@pytest.mark.parametrize("op, consts, attrs", [
    ("Reshape", {"s": np.array([3, -1], I64)}, {}),
    ("Squeeze", {"a": np.array([1], I64)}, {}),
    ("Unsqueeze", {"a": np.array([0, 3], I64)}, {}),
    ("Expand", {"s": np.array([2, 2, 1, 4], I64)}, {}),
    ("Tile", {"r": np.array([2, 1, 3], I64)}, {}),
    ("Slice", {"st": np.array([0, 3], I64), "en": np.array([2, 0], I64),
               "ax": np.array([0, 2], I64), "sp": np.array([1, -2], I64)}, {}),
    ("Slice", {"st": np.array([1], I64), "en": np.array([100], I64)}, {}),
    ("Gather", {"i": np.array([[0, 2], [2, -1]], I64)}, {"axis": 2}),
    ("GatherND", {"i": np.array([[1, 2], [0, 0], [1, 2]], I64)}, {}),
    ("GatherElements", {"i": np.array([[[0], [3], [3]]] * 2, I64)}, {"axis": 2}),
    ("Pad", {"p": np.array([0, 1, 2, 1, 0, 3], I64), "v": np.float32(0.5)}, {}),
    ("Pad", {"p": np.array([0, 0, 2, 1, 0, 3], I64)}, {"mode": "reflect"}),
    ("Pad", {"p": np.array([0, 1, 2, 1, 0, 3], I64)}, {"mode": "edge"}),
    ("Pad", {"p": np.array([0, 0, -1, 0, 0, 2], I64)}, {}),
])
def test_pick_and_reshape(op, consts, attrs):
    x = arr(2, 1, 4) if op in ("Squeeze", "Expand") else arr(2, 3, 4)
    linear(single_op(op, {"x": x}, consts, **attrs), {"x": x})


@pytest.mark.parametrize("axis", [1, -1])
def test_concat(axis):
    a, b, c = arr(2, 3, 4), arr(2, 3, 4), arr(2, 3, 4)
    linear(single_op("Concat", {"a": a, "b": b}, {"c": c}, axis=axis), {"a": a, "b": b})


def test_split_with_sizes_one_piece_unused():
    x = arr(2, 7, 3)
    model = single_op("Split", {"x": x}, {"s": np.array([2, 4, 1], I64)}, n_out=3, axis=1)
    check_op(model, {"x": x}, start="y1", eps=1.0, rtol=1e-4)


def test_split_opset18_num_outputs():
    x = arr(2, 6)
    model = single_op("Split", {"x": x}, n_out=3, opset=18, axis=-1, num_outputs=3)
    model.graph.node.append(helper.make_node("Concat", ["y2", "y0"], ["z"], axis=0))
    model.graph.output.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None))
    check_op(model, {"x": x}, start="z", eps=1.0, rtol=1e-4)


RESIZE = [
    dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    dict(mode="nearest"),
    dict(mode="linear"),
    dict(mode="linear", coordinate_transformation_mode="align_corners"),
    dict(mode="cubic"),
]


@pytest.mark.parametrize("attrs", RESIZE, ids=str)
@pytest.mark.parametrize("how", ["scales", "sizes", "down"])
def test_resize(attrs, how):
    x = arr(2, 2, 4, 5)
    if how == "sizes":
        consts, order = {"sz": np.array([2, 2, 7, 11], I64)}, ["x", "", "", "sz"]
    else:
        factors = [1, 1, 2, 3] if how == "scales" else [1, 1, 0.5, 0.6]
        consts, order = {"sc": np.array(factors, np.float32)}, ["x", "", "sc"]
    linear(single_op("Resize", {"x": x}, consts, order=order, **attrs), {"x": x})


def test_resize_opset11_with_roi_is_converted():
    x = arr(1, 2, 3, 4)
    consts = {"roi": np.array([], np.float32), "sc": np.array([1, 1, 2, 2], np.float32)}
    linear(single_op("Resize", {"x": x}, consts, opset=11, mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor"), {"x": x})


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2)),
                                    ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((4,), (4,))])
def test_matmul(shapes):
    a, b = arr(*shapes[0]), arr(*shapes[1])
    linear(single_op("MatMul", {"a": a, "b": b}), {"a": a, "b": b})


@pytest.mark.parametrize("ta, tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(ta, tb):
    a = arr(4, 3) if ta else arr(3, 4)
    b = arr(5, 4) if tb else arr(4, 5)
    c = arr(5)
    model = single_op("Gemm", {"a": a, "b": b, "c": c}, transA=ta, transB=tb, alpha=0.7, beta=1.3)
    linear(model, {"a": a, "b": b, "c": c})


REDUCE = [
    ("ReduceSum", 17, dict(keepdims=1), np.array([1, -1], I64)),
    ("ReduceSum", 17, dict(keepdims=0), np.array([0, 2], I64)),
    ("ReduceSum", 17, dict(keepdims=0), None),
    ("ReduceMean", 17, dict(axes=[1], keepdims=0), None),
    ("ReduceMean", 18, dict(keepdims=1), np.array([2], I64)),
    ("ReduceMean", 17, dict(), None),
    ("ReduceMax", 17, dict(axes=[2], keepdims=0), None),
    ("ReduceMax", 18, dict(keepdims=1), np.array([0, 1], I64)),
    ("ReduceMin", 17, dict(keepdims=1), None),
    ("ReduceSumSquare", 17, dict(axes=[1]), None),
    ("ReduceL2", 17, dict(axes=[2], keepdims=0), None),
    ("ReduceLogSumExp", 18, dict(keepdims=0), np.array([1], I64)),
]


@pytest.mark.parametrize("op, opset, attrs, axes", REDUCE, ids=str)
def test_reduce(op, opset, attrs, axes):
    x = RNG.permutation(24).reshape(2, 3, 4).astype(np.float32) / 7
    consts = {} if axes is None else {"axes": axes}
    eps = 1.0 if op in ("ReduceSum", "ReduceMean") else 1e-2
    check_op(single_op(op, {"x": x}, consts, opset=opset, **attrs), {"x": x}, eps=eps, rtol=1e-3)


def test_reduce_max_ties_share_gradient():
    x = np.array([[1.0, 3.0, 3.0, 0.0]], np.float32)
    model = single_op("ReduceMax", {"x": x}, axes=[1], keepdims=0)
    got = analytic(model, {"x": x}, "y", ["x"], np.array([2.0], np.float32))["x"]
    np.testing.assert_array_equal(got, [[0.0, 1.0, 1.0, 0.0]])


def test_batch_norm_inference():
    x = arr(2, 3, 4, 4)
    consts = {"s": arr(3), "b": arr(3), "m": arr(3), "v": np.abs(arr(3)) + 0.5}
    linear(single_op("BatchNormalization", {"x": x}, consts, epsilon=1e-3), {"x": x})


@pytest.mark.parametrize("opset", [17, 18])  # ReduceMean axes: attribute, then input
def test_instance_norm(opset):
    x = arr(2, 3, 4, 5)
    check_op(single_op("InstanceNormalization", {"x": x}, {"s": arr(3), "b": arr(3)},
                       opset=opset), {"x": x}, eps=1e-2, rtol=2e-3)


@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_norm(axis):
    x = arr(2, 3, 5)
    shape = (5,) if axis == -1 else (3, 5)
    check_op(single_op("LayerNormalization", {"x": x}, {"s": arr(*shape), "b": arr(*shape)},
                       axis=axis), {"x": x}, eps=1e-2, rtol=2e-3)


def test_quantize_dequantize_is_straight_through():
    x = arr(2, 8)
    model = single_op("QuantizeLinear", {"x": x}, {"sc": np.float32(0.05), "zp": np.uint8(128)})
    model.graph.node.append(helper.make_node("DequantizeLinear", ["y", "sc", "zp"], ["z"]))
    model.graph.node.append(helper.make_node("Mul", ["z", "z"], ["w"]))
    model.graph.output[0].name = "w"
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    seed = arr(2, 8)
    got = analytic(model, {"x": x}, "w", ["x"], seed, fetch=["z"])
    np.testing.assert_allclose(got["x"], 2 * got["z"] * seed, rtol=1e-6)
    assert np.abs(got["z"] - x).max() <= 0.026  # really quantized


def test_unused_start_value_gives_exact_zero_gradient_for_disconnected_wrt():
    a, b = arr(2, 3), arr(2, 3)
    model = single_op("Add", {"a": a, "b": b})
    model.graph.node.append(helper.make_node("Neg", ["a"], ["n"]))
    model.graph.output.append(helper.make_tensor_value_info("n", onnx.TensorProto.FLOAT, None))
    got = analytic(model, {"a": a, "b": b}, "n", ["a", "b"], np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(got["a"], -np.ones((2, 3)))
    np.testing.assert_array_equal(got["b"], np.zeros((2, 3)))
    assert start_value(model, {"a": a, "b": b}, "n").shape == (2, 3)


@pytest.mark.parametrize("op, mode", [("DepthToSpace", "DCR"), ("DepthToSpace", "CRD"),
                                      ("SpaceToDepth", None)])
def test_depth_space(op, mode):
    x = arr(2, 8, 3, 4) if op == "DepthToSpace" else arr(2, 2, 6, 4)
    attrs = {"mode": mode} if mode else {}
    linear(single_op(op, {"x": x}, blocksize=2, **attrs), {"x": x})
