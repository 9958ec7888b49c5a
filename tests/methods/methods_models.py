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


# --- layouts beyond NCHW (tests/methods/test_layouts.py, tests/graph/test_batch_axis.py) ---------------

def _model(nodes, inputs, outputs, inits, opset: int = 18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "layouts", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _f32(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _i64(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.int64), name)


def vit_model(layout: str = "NTC", cls: bool = True, norm: bool = True, fixed: bool = False, size: int = 16,
              patch: int = 4, dim: int = 8, classes: int = 3, seed: int = 0) -> onnx.ModelProto:
    """A tiny ViT: patch conv -> tokens ([N, T, C] for layout "NTC", [T, N, C] for "TNC") -> class token
    (expanded to the batch) -> + position -> two token-mixing MLP blocks with residuals ("block1", "block2")
    -> LayerNorm -> the class token (or the token mean) -> Gemm "logits". `fixed`: a batch-1 export
    (input [1, 3, H, W], Reshapes to constants with 1), where shape inference loses the batch."""
    rng = np.random.default_rng(seed)
    g = (size // patch) ** 2
    t = g + int(cls)
    tnc = layout == "TNC"
    batch = 1 if fixed else "N"
    inits = [_f32("patch_w", rng.standard_normal((dim, 3, patch, patch)) * 0.5),
             _f32("patch_b", rng.standard_normal(dim) * 0.1),
             _i64("flat_shape", [1 if fixed else 0, dim, g]),
             _f32("pos", rng.standard_normal((1, t, dim) if not tnc else (t, 1, dim)) * 0.1),
             _f32("ln_g", 1 + 0.1 * rng.standard_normal(dim)), _f32("ln_b", 0.1 * rng.standard_normal(dim)),
             _f32("fc_w", rng.standard_normal((classes, dim))), _f32("fc_b", 0.1 * rng.standard_normal(classes)),
             _i64("zero", 0)]
    nodes = [helper.make_node("Conv", ["input", "patch_w", "patch_b"], ["patches"], kernel_shape=[patch, patch],
                              strides=[patch, patch]),
             helper.make_node("Reshape", ["patches", "flat_shape"], ["flat"]),
             helper.make_node("Transpose", ["flat"], ["patch_tokens"], perm=[2, 0, 1] if tnc else [0, 2, 1])]
    tokens = "patch_tokens"
    if cls:
        inits += [_f32("cls_token", rng.standard_normal((1, 1, dim)))]
        inits += [_i64("cls_head", [1]), _i64("cls_dim", [dim])] if tnc else [_i64("cls_tail", [1, dim])]
        nodes += [helper.make_node("Shape", ["input"], ["n"], start=0, end=1),
                  helper.make_node("Concat", ["cls_head", "n", "cls_dim"] if tnc else ["n", "cls_tail"],
                                   ["cls_shape"], axis=0),
                  helper.make_node("Expand", ["cls_token", "cls_shape"], ["cls"]),
                  helper.make_node("Concat", ["cls", "patch_tokens"], ["tokens"], axis=0 if tnc else 1)]
        tokens = "tokens"
    nodes.append(helper.make_node("Add", [tokens, "pos"], ["embedded"]))
    x = "embedded"
    for b in (1, 2):
        mix = np.eye(t) + rng.standard_normal((t, t)) / t
        inits += [_f32(f"w{b}", rng.standard_normal((dim, dim)) / np.sqrt(dim)), _f32(f"mix{b}", mix.T if tnc else mix)]
        nodes += [helper.make_node("MatMul", [x, f"w{b}"], [f"h{b}"]),
                  helper.make_node("Relu", [f"h{b}"], [f"r{b}"])]
        if tnc:  # mix over tokens on axis 0: [T, N, C] -> [N, C, T] @ mix^T -> back
            nodes += [helper.make_node("Transpose", [f"r{b}"], [f"r{b}_nct"], perm=[1, 2, 0]),
                      helper.make_node("MatMul", [f"r{b}_nct", f"mix{b}"], [f"m{b}_nct"]),
                      helper.make_node("Transpose", [f"m{b}_nct"], [f"m{b}"], perm=[2, 0, 1])]
        else:
            nodes.append(helper.make_node("MatMul", [f"mix{b}", f"r{b}"], [f"m{b}"]))
        nodes.append(helper.make_node("Add", [x, f"m{b}"], [f"block{b}"]))
        x = f"block{b}"
    if norm:
        nodes.append(helper.make_node("LayerNormalization", [x, "ln_g", "ln_b"], ["normed"], axis=-1))
        x = "normed"
    if cls:
        nodes.append(helper.make_node("Gather", [x, "zero"], ["pooled"], axis=0 if tnc else 1))
    else:
        inits.append(_i64("mean_axis", [0 if tnc else 1]))
        nodes.append(helper.make_node("ReduceMean", [x, "mean_axis"], ["pooled"], keepdims=0))
    nodes.append(helper.make_node("Gemm", ["pooled", "fc_w", "fc_b"], ["logits"], transB=1))
    return _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])], inits)


def time_major_model(lstm: bool = False, height: int = 8, width: int = 24, channels: int = 6, hidden: int = 5,
                     classes: int = 4, seed: int = 0) -> onnx.ModelProto:
    """A CRNN-like OCR head: conv over the full height -> squeeze -> Transpose to time-major "seq" [W, N, C]
    -> (an LSTM, Y [W, 1, N, hidden] -> "lstm_out" [W, N, hidden]) -> MatMul -> "logits" [W, N, K]."""
    rng = np.random.default_rng(seed)
    inits = [_f32("conv_w", rng.standard_normal((channels, 3, height, 3)) * 0.3),
             _f32("conv_b", 0.1 * rng.standard_normal(channels)), _i64("h_axis", [2])]
    nodes = [helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], kernel_shape=[height, 3],
                              pads=[0, 1, 0, 1]),
             helper.make_node("Relu", ["conv"], ["feat"]),
             helper.make_node("Squeeze", ["feat", "h_axis"], ["squeezed"]),
             helper.make_node("Transpose", ["squeezed"], ["seq"], perm=[2, 0, 1])]
    x, width_in = "seq", channels
    if lstm:
        inits += [_f32("lstm_w", rng.standard_normal((1, 4 * hidden, channels)) * 0.4),
                  _f32("lstm_r", rng.standard_normal((1, 4 * hidden, hidden)) * 0.4),
                  _f32("lstm_b", 0.1 * rng.standard_normal((1, 8 * hidden))), _i64("dir_axis", [1])]
        nodes += [helper.make_node("LSTM", ["seq", "lstm_w", "lstm_r", "lstm_b"], ["lstm_y"], hidden_size=hidden),
                  helper.make_node("Squeeze", ["lstm_y", "dir_axis"], ["lstm_out"])]
        x, width_in = "lstm_out", hidden
    inits.append(_f32("head_w", rng.standard_normal((width_in, classes))))
    nodes.append(helper.make_node("MatMul", [x, "head_w"], ["logits"]))
    return _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, height, width])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [width, "N", classes])], inits)


def detector_model(threshold: float = 1e9, seed: int = 0) -> onnx.ModelProto:
    """A detector-like head: conv -> per-position boxes [N, P, 4] -> NonZero(max score > threshold) ->
    "boxes" [N, K, 4] (K = 0 with the default threshold) and "logits" [N, 2] from pooled features."""
    rng = np.random.default_rng(seed)
    inits = [_f32("det_w", rng.standard_normal((4, 3, 3, 3)) * 0.3), _f32("det_b", 0.1 * rng.standard_normal(4)),
             _i64("box_shape", [0, 4, -1]), _i64("box_axis", [2]), _f32("threshold", threshold),
             _i64("one", 1), _f32("cls_w", rng.standard_normal((2, 4)))]
    nodes = [helper.make_node("Conv", ["input", "det_w", "det_b"], ["det"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["det", "box_shape"], ["det_flat"]),
             helper.make_node("Transpose", ["det_flat"], ["all_boxes"], perm=[0, 2, 1]),
             helper.make_node("ReduceMax", ["all_boxes", "box_axis"], ["score"], keepdims=0),
             helper.make_node("Greater", ["score", "threshold"], ["keep"]),
             helper.make_node("NonZero", ["keep"], ["where"]),
             helper.make_node("Gather", ["where", "one"], ["positions"], axis=0),
             helper.make_node("Gather", ["all_boxes", "positions"], ["boxes"], axis=1),
             helper.make_node("GlobalAveragePool", ["det"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["pooled"], axis=1),
             helper.make_node("Gemm", ["pooled", "cls_w"], ["logits"], transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 12, 12])],
                  [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", "K", 4]),
                   helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], inits)


def nhwc_features_model(seed: int = 0, channels: int = 24) -> onnx.ModelProto:
    """conv -> Transpose to [N, 8, 8, C] ("feat_nhwc", a timm Swin stage's layout) -> mean over H, W -> fc."""
    rng = np.random.default_rng(seed)
    inits = [_f32("c_w", rng.standard_normal((channels, 3, 3, 3)) * 0.3),
             _f32("c_b", 0.1 * rng.standard_normal(channels)), _i64("hw", [1, 2]),
             _f32("fc_w", rng.standard_normal((3, channels)))]
    nodes = [helper.make_node("Conv", ["input", "c_w", "c_b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("Transpose", ["relu"], ["feat_nhwc"], perm=[0, 2, 3, 1]),
             helper.make_node("ReduceMean", ["feat_nhwc", "hw"], ["pooled"], keepdims=0),
             helper.make_node("Gemm", ["pooled", "fc_w"], ["logits"], transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)


def swin_like_model(size: int = 16, dim: int = 4, seed: int = 0) -> onnx.ModelProto:
    """Two window-attention stages as Swin exports them: attention [N * windows, T, T] inside 2x2 windows
    of a 4x4 token grid (4 windows), then over the merged 2x2 grid (1 window); GAP -> fc."""
    rng = np.random.default_rng(seed)
    inits = [_f32("patch_w", rng.standard_normal((dim, 3, 4, 4)) * 0.3),
             _i64("win1", [-1, 2, 2, 2, 2, dim]), _i64("tok1", [-1, 4, dim]), _i64("back1", [-1, 2, 2, 2, 2, dim]),
             _i64("grid1", [-1, 4, 4, dim]), _i64("tok2", [-1, 4, dim]), _i64("mean_axes", [1]),
             _f32("fc_w", rng.standard_normal((2, dim)))]
    nodes = [helper.make_node("Conv", ["input", "patch_w"], ["patches"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Transpose", ["patches"], ["nhwc"], perm=[0, 2, 3, 1]),  # [N, 4, 4, C]
             helper.make_node("Reshape", ["nhwc", "win1"], ["w6"]),  # [N, 2, 2, 2, 2, C]
             helper.make_node("Transpose", ["w6"], ["w6t"], perm=[0, 1, 3, 2, 4, 5]),
             helper.make_node("Reshape", ["w6t", "tok1"], ["windows1"])]  # [N * 4, 4, C]
    x = "windows1"
    for s in (1, 2):
        nodes += [helper.make_node("Transpose", [x], [f"kt{s}"], perm=[0, 2, 1]),
                  helper.make_node("MatMul", [x, f"kt{s}"], [f"scores{s}"]),
                  helper.make_node("Softmax", [f"scores{s}"], [f"attn{s}"], axis=-1),
                  helper.make_node("MatMul", [f"attn{s}", x], [f"mixed{s}"])]
        if s == 1:  # windows back to the grid, then merge 2x2 patches by averaging into a 2x2 grid
            nodes += [helper.make_node("Reshape", ["mixed1", "back1"], ["b6"]),
                      helper.make_node("Transpose", ["b6"], ["b6t"], perm=[0, 1, 3, 2, 4, 5]),
                      helper.make_node("Reshape", ["b6t", "grid1"], ["stage1"]),  # [N, 4, 4, C]
                      helper.make_node("Transpose", ["stage1"], ["stage1_nchw"], perm=[0, 3, 1, 2]),
                      helper.make_node("AveragePool", ["stage1_nchw"], ["merged"], kernel_shape=[2, 2],
                                       strides=[2, 2]),
                      helper.make_node("Transpose", ["merged"], ["merged_nhwc"], perm=[0, 2, 3, 1]),
                      helper.make_node("Reshape", ["merged_nhwc", "tok2"], ["windows2"])]  # [N, 4, C]
            x = "windows2"
    nodes += [helper.make_node("ReduceMean", ["mixed2", "mean_axes"], ["pooled"], keepdims=0),
              helper.make_node("Gemm", ["pooled", "fc_w"], ["logits"], transB=1)]
    return _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], inits)
