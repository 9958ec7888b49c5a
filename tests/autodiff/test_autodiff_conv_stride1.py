"""The stride-1 Conv input gradient as an ordinary Conv with flipped, transposed weights:
central differences for every padding/dilation/group form, equality with the ConvTranspose
path on larger tensors, and which form each case gets (strided convs keep ConvTranspose)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from autodiff_reference import analytic, check_op, conv_case, session, single_op
from onnx import TensorProto, helper, numpy_helper

from inspector.graph.autodiff import build_gradient_model

RNG = np.random.default_rng(11)


def arr(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def backward_ops(model: onnx.ModelProto, wrt: str = "x") -> list[str]:
    """Op types of the generated model (forward + backward)."""
    return [n.op_type for n in build_gradient_model(model, "y", [wrt]).model.graph.node]


STRIDE1 = [
    dict(k=3, pads=[1, 1, 1, 1]),
    dict(k=3, pads=[0, 0, 0, 0]),
    dict(k=3, pads=[0, 2, 1, 0], size=(7, 6)),                     # asymmetric pads
    dict(k=3, pads=[2, 2, 2, 2], dilations=[2, 2]),
    dict(k=2, pads=[1, 0, 0, 3], dilations=[1, 3], size=(6, 7)),   # per-axis dilation, pad = k_eff-1
    dict(k=5, pads=[2, 2, 2, 2], size=(7, 7)),
    dict(k=3, pads=[1, 1, 1, 1], group=2),
    dict(k=3, pads=[1, 1, 1, 1], group=4, cout=4),                 # depthwise
    dict(k=3, pads=[1, 1, 1, 1], group=4, cout=8),                 # depthwise, multiplier 2
    dict(k=3, auto_pad="SAME_UPPER", size=(7, 8)),
    dict(k=4, auto_pad="SAME_UPPER", size=(7, 8)),                 # uneven SAME split
    dict(k=4, auto_pad="SAME_LOWER", size=(7, 8)),
    dict(k=2, auto_pad="SAME_LOWER", size=(6, 5)),                 # ORT refuses SAME + dilation
    dict(k=3, auto_pad="VALID", size=(7, 8)),
    dict(k=1, pads=[0, 0, 0, 0], bias=True),
    dict(k=3, pads=[3, 0, 0, 1], size=(6, 6)),                     # pad > k-1: ConvTranspose path
]


def stride1_model(case: dict) -> tuple[onnx.ModelProto, np.ndarray]:
    return conv_case(case, arr, strides=[1, 1])


@pytest.mark.parametrize("case", STRIDE1, ids=str)
def test_stride1_conv_input_gradient_matches_central_differences(case):
    model, x = stride1_model(case)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


@pytest.mark.parametrize("case", STRIDE1, ids=str)
def test_stride1_conv_uses_a_conv_unless_the_pad_exceeds_the_kernel(case):
    ops = backward_ops(stride1_model(case)[0])
    oversized = case.get("pads") == [3, 0, 0, 1]
    assert ("ConvTranspose" in ops) == oversized
    assert ops.count("Conv") == (0 if oversized else 1)  # the forward Conv is pruned (linear)
    if not oversized:  # static pads: no run-time shape arithmetic, crop or zero-fill
        assert not {"Shape", "Slice", "Pad", "Transpose"} & set(ops)


@pytest.mark.parametrize("strides", [[2, 2], [2, 1], [1, 3]], ids=str)
def test_strided_conv_keeps_the_conv_transpose_adjoint(strides):
    x = arr(2, 4, 7, 8)
    model = single_op("Conv", {"x": x}, {"w": arr(6, 4, 3, 3)}, kernel_shape=[3, 3],
                      strides=strides, pads=[1, 1, 1, 1])
    assert "ConvTranspose" in backward_ops(model)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


@pytest.mark.parametrize("dims", [1, 3], ids=["1d", "3d"])
def test_stride1_conv_in_other_ranks(dims):
    x = arr(1, 2, *[5] * dims)
    model = single_op("Conv", {"x": x}, {"w": arr(3, 2, *[3] * dims)}, pads=[1, 0, 2][:dims] * 2)
    assert "ConvTranspose" not in backward_ops(model)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


def constant_weight_model(w: np.ndarray) -> onnx.ModelProto:
    """Conv whose weight comes from a Constant node instead of an initializer."""
    nodes = [helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w, "w")),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], group=2)]
    graph = helper.make_graph(nodes, "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         ["N", 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_constant_node_weight_is_flipped_at_build_time():
    x, w = arr(2, 4, 6, 6), arr(6, 2, 3, 3)
    model = constant_weight_model(w)
    assert "ConvTranspose" not in backward_ops(model)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


def test_weight_fed_at_run_time_keeps_the_conv_transpose_path_and_agrees():
    """A weight that is a graph input is unknown at build time: ConvTranspose, same values."""
    x, w = arr(3, 8, 13, 11), arr(16, 2, 3, 3)
    attrs = dict(pads=[1, 2, 1, 0], group=4, dilations=[1, 2])
    fixed = single_op("Conv", {"x": x}, {"w": w}, **attrs)
    fed = single_op("Conv", {"x": x, "w": w}, **attrs)
    assert "ConvTranspose" in backward_ops(fed)
    assert "ConvTranspose" not in backward_ops(fixed)
    seed = arr(3, 16, 13, 9)
    new = analytic(fixed, {"x": x}, "y", ["x"], seed)["x"]
    old = analytic(fed, {"x": x, "w": w}, "y", ["x"], seed)["x"]
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-5 * np.abs(old).max())


def test_one_flipped_weight_model_serves_any_batch_size():
    w = arr(6, 2, 3, 3)
    gm = build_gradient_model(constant_weight_model(w), "y", ["x"])
    sess = session(gm.model)
    out = gm.gradient_outputs["x"]
    one, three = arr(1, 4, 6, 6), arr(3, 4, 6, 6)
    seeds = arr(3, 6, 6, 6)
    g3 = sess.run([out], {"x": three, gm.seed_input: seeds})[0]
    g1 = sess.run([out], {"x": one, gm.seed_input: seeds[1:2]})[0]
    np.testing.assert_allclose(g1[0], g3[1], rtol=0, atol=1e-6)
    assert g3.shape == three.shape


def test_relu_mask_reads_the_relu_output_so_conv_relu_can_fuse():
    """No backward node consumes the Conv output that feeds the Relu."""
    x = arr(1, 4, 6, 6)
    conv = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"])
    graph = helper.make_graph([conv, relu], "cr", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, x.shape)], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                          None)],
        [numpy_helper.from_array(arr(6, 4, 3, 3), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for policy in ("standard", "guided_backprop"):
        gm = build_gradient_model(model, "y", ["x"], policy=policy)
        assert [n.op_type for n in gm.model.graph.node if "c" in n.input] == ["Relu"]
    check_op(model, {"x": x}, eps=1e-2, rtol=2e-3)


def test_relu_gradient_is_the_exact_mask_at_zero_and_below():
    """The Relu mask times g equals where(x > 0, g, 0) bit for bit, also at x == 0 and x == -0."""
    x = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0, -1e-30, 7.5, 0.0]], np.float32)
    seed = np.array([[1.5, -2.0, 3.0, -4.25, 5.0, 6.0, -1e30, 1e-30]], np.float32)
    got = analytic(single_op("Relu", {"x": x}), {"x": x}, "y", ["x"], seed)["x"]
    want = np.where(x > 0, seed, np.float32(0))
    np.testing.assert_array_equal(got, want)


def test_a_weight_shared_by_two_convs_is_flipped_once():
    x = arr(1, 4, 6, 6)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, x.shape)], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                          None)],
        [numpy_helper.from_array(arr(4, 4, 3, 3), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    gm = build_gradient_model(model, "y", ["x"])
    # the forward Convs are pruned (linear), so only the one flipped copy remains
    assert len([t for t in gm.model.graph.initializer if t.dims[:2] == [4, 4]]) == 1
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)
