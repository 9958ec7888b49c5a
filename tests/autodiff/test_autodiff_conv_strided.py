"""The strided Conv input gradient (ConvTranspose -> Slice -> Pad): central differences over
strides 2 and 3, kernels 1-7, pads, odd/even sizes, groups and auto_pad; one model for any batch
and size against a float64 numpy scatter. The polyphase alternative (one stride-1 Conv over the
s*s phase sub-kernels + DepthToSpace) was measured 5-7 % slower on ResNet-18 in ORT 1.32 and is
not used; the form test pins that choice."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from autodiff_reference import check_op, session, single_op
from onnx import TensorProto, helper, numpy_helper

from inspector.graph.autodiff import build_gradient_model

RNG = np.random.default_rng(23)


def arr(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def backward_ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in build_gradient_model(model, "y", ["x"]).model.graph.node]


STRIDED = [
    dict(k=3, s=2, pads=[1, 1, 1, 1], size=(8, 8)),                # ResNet 3x3 s2, even
    dict(k=3, s=2, pads=[1, 1, 1, 1], size=(7, 9), batch=1),       # odd
    dict(k=7, s=2, pads=[3, 3, 3, 3], size=(12, 11)),              # ResNet stem
    dict(k=1, s=2, pads=[0, 0, 0, 0], size=(8, 7)),                # ResNet 1x1 downsample
    dict(k=2, s=2, pads=[0, 0, 0, 0], size=(7, 6)),                # last row untouched
    dict(k=4, s=2, pads=[1, 2, 2, 1], size=(9, 8)),                # asymmetric
    dict(k=3, s=3, pads=[0, 2, 1, 0], size=(10, 8)),               # row 9 untouched
    dict(k=2, s=3, pads=[0, 0, 0, 0], size=(8, 8)),                # untouched tail rows
    dict(k=4, s=3, pads=[2, 2, 2, 2], size=(7, 9), batch=1),
    dict(k=5, s=3, pads=[1, 0, 0, 1], size=(9, 10)),
    dict(k=3, s=2, pads=[4, 0, 0, 3], size=(7, 7)),                # pad beyond the kernel
    dict(k=3, s=2, pads=[1, 1, 1, 1], group=2),
    dict(k=3, s=2, pads=[1, 1, 1, 1], group=4, cout=4),            # depthwise
    dict(k=3, s=2, pads=[0, 1, 1, 0], group=4, cout=8, size=(7, 8)),  # depthwise, multiplier 2
    dict(k=3, s=2, pads=[1, 1, 1, 1], bias=True),
    dict(k=3, s=2, auto_pad="SAME_UPPER", size=(7, 8)),
    dict(k=4, s=2, auto_pad="SAME_LOWER", size=(7, 8)),
    dict(k=3, s=3, auto_pad="SAME_UPPER", size=(8, 7)),
    dict(k=7, s=2, auto_pad="SAME_LOWER", size=(9, 10), batch=1),
    dict(k=3, s=2, auto_pad="VALID", size=(7, 8)),
    dict(k=7, s=2, auto_pad="VALID", size=(10, 9), batch=1),
]


def strided_model(case: dict) -> tuple[onnx.ModelProto, np.ndarray]:
    case = dict(case)
    k, s, size = case.pop("k"), case.pop("s"), case.pop("size", (6, 6))
    group, cout = case.pop("group", 1), case.pop("cout", 6)
    bias, batch = case.pop("bias", False), case.pop("batch", 3)
    x = arr(batch, 4, *size)
    consts = {"w": arr(cout, 4 // group, k, k)}
    if bias:
        consts["b"] = arr(cout)
    return single_op("Conv", {"x": x}, consts, kernel_shape=[k, k], strides=[s, s],
                     group=group, **case), x


@pytest.mark.parametrize("case", STRIDED, ids=str)
def test_strided_conv_input_gradient_matches_central_differences(case):
    model, x = strided_model(case)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


@pytest.mark.parametrize("case", STRIDED[:4], ids=str)
def test_strided_conv_uses_the_conv_transpose_adjoint(case):
    """Not the polyphase Conv + DepthToSpace form: slower in onnxruntime (see module doc)."""
    ops = backward_ops(strided_model(case)[0])
    assert ops.count("ConvTranspose") == 1 and "Conv" not in ops  # forward Conv pruned
    assert "DepthToSpace" not in ops


@pytest.mark.parametrize("attrs", [dict(strides=[2, 1]), dict(strides=[1, 3]),
                                   dict(strides=[2, 2], dilations=[2, 2])], ids=str)
def test_unequal_strides_and_strided_dilation(attrs):
    x = arr(2, 4, 9, 8)
    model = single_op("Conv", {"x": x}, {"w": arr(6, 4, 3, 3)}, kernel_shape=[3, 3],
                      pads=[1, 1, 1, 1], **attrs)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


@pytest.mark.parametrize("dims", [1, 3], ids=["1d", "3d"])
def test_strided_conv_in_other_ranks(dims):
    x = arr(1, 2, *[7] * dims)
    model = single_op("Conv", {"x": x}, {"w": arr(3, 2, *[3] * dims)}, strides=[2] * dims,
                      pads=[1] * 2 * dims)
    check_op(model, {"x": x}, eps=1.0, rtol=1e-4)


def symbolic_conv(weight: np.ndarray, **attrs) -> onnx.ModelProto:
    """Conv over x[N, 4, H, W] with batch and spatial dims symbolic and W an initializer."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], **attrs)], "c",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def leading_pads(size: int, k: int, s: int, attrs: dict, axis: int) -> int:
    """Pad before `axis` as the Conv applies it (SAME resolved from the size, as ONNX does)."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "NOTSET":
        return attrs["pads"][axis]
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2 if auto == "SAME_UPPER" else total - total // 2


def scattered_gradient(seed: np.ndarray, w: np.ndarray, x_shape: tuple, s: int,
                       begin: tuple[int, int], group: int) -> np.ndarray:
    """d sum(seed * conv(x)) / dx in float64: each output position scatters seed . W back."""
    n, c, h, wd = x_shape
    out_ch, per_group, kh, kw = w.shape
    ho, wo = seed.shape[2:]
    room = (max(begin[0] + h, (ho - 1) * s + kh), max(begin[1] + wd, (wo - 1) * s + kw))
    padded = np.zeros((n, c, *room))
    o_per = out_ch // group
    for g in range(group):
        outs, ins = slice(g * o_per, (g + 1) * o_per), slice(g * per_group, (g + 1) * per_group)
        for i, j in np.ndindex(ho, wo):
            padded[:, ins, i * s:i * s + kh, j * s:j * s + kw] += np.einsum(
                "no,ocuv->ncuv", seed[:, outs, i, j].astype(np.float64), w[outs])
    return padded[:, :, begin[0]:begin[0] + h, begin[1]:begin[1] + wd]


@pytest.mark.parametrize("attrs", [dict(strides=[2, 2], pads=[3, 3, 3, 3], k=7),
                                   dict(strides=[3, 3], pads=[0, 1, 2, 0], k=4),
                                   dict(strides=[2, 2], pads=[0, 0, 0, 0], k=1),
                                   dict(strides=[2, 2], auto_pad="SAME_LOWER", k=3, group=2),
                                   dict(strides=[2, 2], auto_pad="SAME_UPPER", k=4, group=4)],
                         ids=str)
def test_one_model_serves_any_batch_and_size(attrs):
    attrs = dict(attrs)
    k, group, s = attrs.pop("k"), attrs.get("group", 1), attrs["strides"][0]
    w = arr(8, 4 // group, k, k)
    model = symbolic_conv(w, **attrs)
    gm = build_gradient_model(model, "y", ["x"])
    grad, forward = session(gm.model), session(model)
    for batch, h, wd in [(1, 9, 9), (3, 16, 13), (2, 10, 11), (1, 28, 28)]:
        x = arr(batch, 4, h, wd)
        seed = arr(*forward.run(["y"], {"x": x})[0].shape)
        got = grad.run([gm.gradient_outputs["x"]], {"x": x, gm.seed_input: seed})[0]
        begin = (leading_pads(h, k, s, attrs, 0), leading_pads(wd, k, s, attrs, 1))
        want = scattered_gradient(seed, w, x.shape, s, begin, group)
        assert got.shape == x.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_stem_sized_conv_matches_the_float64_scatter():
    """ResNet's 7x7 s2 p3 stem on a 3-channel image: 64 channels back to 3."""
    x, w = arr(2, 3, 32, 30), arr(64, 3, 7, 7)
    model = single_op("Conv", {"x": x}, {"w": w}, strides=[2, 2], pads=[3, 3, 3, 3])
    gm = build_gradient_model(model, "y", ["x"])
    seed = arr(2, 64, 16, 15)
    got = session(gm.model).run([gm.gradient_outputs["x"]], {"x": x, gm.seed_input: seed})[0]
    want = scattered_gradient(seed, w, x.shape, 2, (3, 3), 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
