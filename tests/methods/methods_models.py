"""Known-answer models for the method tests: evidence for each class sits in one image region.

patch_model: channel c of a 3x3 "detector" conv fires only where input channel c is bright
(local mean > 0.5); class c reads only detector channel c (GAP -> Gemm with a diagonal weight, 100).
The patch image has a bright red patch top-left (class 0) and a bright green patch bottom-right
(class 1), so every faithful map for class 0 lies in the top-left quadrant.
"""

from __future__ import annotations

import numpy as np
import onnx
from factory import CNNBuilder
from onnx import TensorProto, helper, numpy_helper

SIZE = 16
RED_BOX = (0, 0, 8, 8)  # (y0, x0, y1, x1): where class 0's evidence lies (patch + conv support)
GREEN_BOX = (8, 8, 16, 16)
HEAD = np.array([[100.0, 0.0], [0.0, 100.0]], np.float32)  # large logits: softmax-based Score-CAM is sharp


def patch_model(extra_op: str | None = None) -> onnx.ModelProto:
    """3-channel 16x16 input -> detect (conv, shift, relu) -> pool 8x8 ("feat") -> gap -> fc -> logits."""
    b = CNNBuilder((1, 3, SIZE, SIZE), seed=1)
    w = np.zeros((2, 3, 3, 3), np.float32)
    w[0, 0] = w[1, 1] = 1.0 / 9.0
    y = b.conv(b.input_name, 2, weight=w, bias=False, name="detect")
    y = b._same(y, b.node("Add", [y, b.init("shift", np.full((1, 2, 1, 1), -0.5, np.float32))], name="shifted"))
    y = b.relu(y, name="fire")
    if extra_op:
        y = b.act(extra_op, y, name="extra", **({"lambd": 0.0, "bias": 0.0} if extra_op == "Shrink" else {}))
    y = b.maxpool(y, name="feat")
    y = b.flatten(b.gap(y, name="gap"), name="flatten")
    return b.build(b.gemm(y, 2, name="fc", weight=HEAD, bias=np.zeros(2, np.float32)), output_names=["logits"])


def patch_image(n: int = 1, seed: int = 0) -> np.ndarray:
    """[n, 3, 16, 16]: dim noise, a bright red patch at rows/cols 2..5, a green one at 10..13."""
    rng = np.random.default_rng(seed)
    x = (0.3 * rng.random((n, 3, SIZE, SIZE))).astype(np.float32)
    x[:, 0, 2:6, 2:6] = 1.0
    x[:, 1, 10:14, 10:14] = 1.0
    return x


def mass_in(heat: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Share of each image's heatmap mass inside box."""
    y0, x0, y1, x1 = box
    return heat[:, y0:y1, x0:x1].reshape(len(heat), -1).sum(1) / heat.reshape(len(heat), -1).sum(1)


def attention_model(size: int = 16, patch: int = 4, dim: int = 8, seed: int = 0) -> onnx.ModelProto:
    """A one-block vision transformer without class token: patchify conv, softmax(QK^T/sqrt(d)) V, mean, fc."""
    rng = np.random.default_rng(seed)
    t = (size // patch) ** 2

    def init(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value, np.float32 if value.dtype.kind == "f" else np.int64), name)

    inits = [init("patch_w", rng.standard_normal((dim, 3, patch, patch)) * 0.3),
             init("shape_tokens", np.array([0, dim, t])), init("wq", rng.standard_normal((dim, dim))),
             init("wk", rng.standard_normal((dim, dim))), init("wv", rng.standard_normal((dim, dim))),
             init("scale", np.array(np.sqrt(dim), np.float32)), init("fc_w", rng.standard_normal((dim, 3))),
             init("axes", np.array([1]))]
    nodes = [
        helper.make_node("Conv", ["input", "patch_w"], ["patches"], kernel_shape=[patch, patch],
                         strides=[patch, patch]),
        helper.make_node("Reshape", ["patches", "shape_tokens"], ["tokens_t"]),
        helper.make_node("Transpose", ["tokens_t"], ["tokens"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["tokens", "wq"], ["q"]),
        helper.make_node("MatMul", ["tokens", "wk"], ["k"]),
        helper.make_node("MatMul", ["tokens", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Div", ["scores", "scale"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["mixed"]),
        helper.make_node("Add", ["mixed", "tokens"], ["resid"]),
        helper.make_node("ReduceMean", ["resid", "axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "fc_w"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "vit", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                            ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def se_model(seed: int = 0) -> onnx.ModelProto:
    """conv -> relu -> squeeze-and-excitation (gap, 1x1 convs, sigmoid, mul) -> gap -> fc."""
    b = CNNBuilder((1, 3, 12, 12), seed=seed)
    feat = b.relu(b.conv(b.input_name, 6, name="conv"), name="feat")
    s = b.relu(b.conv(b.gap(feat, name="squeeze"), 3, k=1, name="reduce"), name="se_relu")
    gate = b.act("Sigmoid", b.conv(s, 6, k=1, name="expand"), name="gate")
    y = b._same(feat, b.node("Mul", [feat, gate], name="excite"))
    y = b.flatten(b.gap(y, name="gap"), name="flatten")
    return b.build(b.gemm(y, 4, name="fc"), output_names=["logits"])


def nhwc(model: onnx.ModelProto, size: int = SIZE) -> onnx.ModelProto:
    """The same network behind a Transpose, so it takes [N, H, W, 3] images."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    old = g.input[0].name
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = "nchw"
    g.node.insert(0, helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]))
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", size, size, 3]))
    return out
