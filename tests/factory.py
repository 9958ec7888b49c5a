"""Small deterministic CNNs built with onnx.helper, for tests and benchmarks (and one hostile
input, `declared_png`).

`CNNBuilder` appends layers to a chain; every layer returns its output tensor name so
branches (residual add, concat) can be wired by hand. Weights come from a seeded RNG.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class CNNBuilder:
    """Build a float32 NCHW CNN node by node."""

    def __init__(self, input_shape=(1, 3, 32, 32), seed: int = 0, input_name: str = "input",
                 batch_dim: str | int = "N") -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input_name = input_name
        shape = [batch_dim, *input_shape[1:]]
        self.input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)
        self.channels = {input_name: input_shape[1]}
        self.count = 0

    def _name(self, op: str) -> str:
        self.count += 1
        return f"{op.lower()}{self.count}"

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, name: str | None = None,
             **attrs) -> str | list[str]:
        name = name or self._name(op)
        outs = [f"{name}_out"] if n_out == 1 else [f"{name}_out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x: str, out_ch: int, k: int = 3, stride: int = 1, pad: int | None = None,
             group: int = 1, bias: bool = True, dilation: int = 1, name: str | None = None,
             weight: np.ndarray | None = None) -> str:
        in_ch = self.channels[x]
        pad = (k // 2) * dilation if pad is None else pad
        name = name or self._name("Conv")
        w = weight if weight is not None else (
            self.rng.standard_normal((out_ch, in_ch // group, k, k)) * np.sqrt(2.0 / (in_ch // group * k * k)))
        inputs = [x, self.init(f"{name}.weight", w.astype(np.float32))]
        if bias:
            inputs.append(self.init(f"{name}.bias", (self.rng.standard_normal(out_ch) * 0.1).astype(np.float32)))
        y = self.node("Conv", inputs, name=name, kernel_shape=[k, k], strides=[stride, stride],
                      pads=[pad] * 4, group=group, dilations=[dilation, dilation])
        self.channels[y] = out_ch
        return y

    def bn(self, x: str, name: str | None = None) -> str:
        c = self.channels[x]
        name = name or self._name("BatchNormalization")
        r = self.rng
        ins = [x] + [self.init(f"{name}.{p}", v.astype(np.float32)) for p, v in (
            ("scale", 1 + 0.1 * r.standard_normal(c)), ("bias", 0.1 * r.standard_normal(c)),
            ("mean", 0.1 * r.standard_normal(c)), ("var", 1 + 0.1 * r.random(c)))]
        return self._same(x, self.node("BatchNormalization", ins, name=name, epsilon=1e-5))

    def _same(self, x: str, y: str) -> str:
        self.channels[y] = self.channels[x]
        return y

    def relu(self, x: str, name: str | None = None) -> str:
        return self._same(x, self.node("Relu", [x], name=name))

    def act(self, op: str, x: str, **attrs) -> str:
        return self._same(x, self.node(op, [x], **attrs))

    def maxpool(self, x: str, k: int = 2, stride: int = 2, pad: int = 0, name: str | None = None) -> str:
        return self._same(x, self.node("MaxPool", [x], name=name, kernel_shape=[k, k],
                                       strides=[stride, stride], pads=[pad] * 4))

    def avgpool(self, x: str, k: int = 2, stride: int = 2, name: str | None = None) -> str:
        return self._same(x, self.node("AveragePool", [x], name=name, kernel_shape=[k, k],
                                       strides=[stride, stride]))

    def gap(self, x: str, name: str | None = None) -> str:
        return self._same(x, self.node("GlobalAveragePool", [x], name=name))

    def flatten(self, x: str, name: str | None = None) -> str:
        return self._same(x, self.node("Flatten", [x], name=name, axis=1))

    def add(self, a: str, b: str, name: str | None = None) -> str:
        return self._same(a, self.node("Add", [a, b], name=name))

    def concat(self, xs: list[str], name: str | None = None) -> str:
        y = self.node("Concat", xs, name=name, axis=1)
        self.channels[y] = sum(self.channels[x] for x in xs)
        return y

    def gemm(self, x: str, out: int, name: str | None = None, weight: np.ndarray | None = None,
             bias: np.ndarray | None = None) -> str:
        name = name or self._name("Gemm")
        n_in = self.channels[x]
        w = weight if weight is not None else self.rng.standard_normal((out, n_in)) / np.sqrt(n_in)
        b = bias if bias is not None else 0.1 * self.rng.standard_normal(out)
        y = self.node("Gemm", [x, self.init(f"{name}.weight", w.astype(np.float32)),
                               self.init(f"{name}.bias", b.astype(np.float32))], name=name, transB=1)
        self.channels[y] = out
        return y

    def build(self, outputs: list[str] | str, output_names: list[str] | None = None,
              name: str = "factory") -> onnx.ModelProto:
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        nodes = list(self.nodes)
        final = []
        for i, o in enumerate(outputs):
            new = output_names[i] if output_names else o
            if new != o:
                nodes.append(helper.make_node("Identity", [o], [new], name=f"{new}_identity"))
            final.append(helper.make_tensor_value_info(new, TensorProto.FLOAT, None))
        graph = helper.make_graph(nodes, name, [self.input], final, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="inspector-tests")
        model.ir_version = 8
        model = onnx.shape_inference.infer_shapes(model)
        # give the outputs their inferred types so onnx.checker accepts them
        known = {v.name: v for v in model.graph.value_info}
        for out in model.graph.output:
            if out.name in known:
                out.CopyFrom(known[out.name])
        onnx.checker.check_model(model)
        return model


def small_cnn(seed: int = 0, size: int = 32, classes: int = 10, batch_dim: str | int = "N") -> onnx.ModelProto:
    """conv-bn-relu, maxpool, residual block, depthwise + concat, gap, flatten, gemm -> logits."""
    b = CNNBuilder((1, 3, size, size), seed=seed, batch_dim=batch_dim)
    x = b.relu(b.bn(b.conv(b.input_name, 8, name="conv1")), name="relu1")
    x = b.maxpool(x, name="pool1")
    r = b.relu(b.conv(x, 8, name="conv2a"), name="relu2a")
    r = b.conv(r, 8, name="conv2b")
    x = b.relu(b.add(x, r, name="add2"), name="relu2")
    d = b.relu(b.conv(x, 8, group=8, name="dw3"), name="relu3a")
    p = b.relu(b.conv(x, 8, k=1, name="pw3"), name="relu3b")
    x = b.concat([d, p], name="cat3")
    x = b.relu(b.conv(x, 16, stride=2, name="conv4"), name="relu4")
    x = b.flatten(b.gap(x, name="gap"), name="flatten")
    return b.build(b.gemm(x, classes, name="fc"), output_names=["logits"])


def resnet18_like(seed: int = 0, size: int = 224, classes: int = 1000, bn: bool = False) -> onnx.ModelProto:
    """A ResNet-18-shaped network (random weights, ~11.7 M params) for benchmarks."""
    b = CNNBuilder((1, 3, size, size), seed=seed)

    def cbr(x, ch, k=3, s=1, relu=True):
        y = b.conv(x, ch, k=k, stride=s, bias=not bn)
        if bn:
            y = b.bn(y)
        return b.relu(y) if relu else y

    x = b.maxpool(cbr(b.input_name, 64, k=7, s=2), k=3, stride=2, pad=1)
    ch = 64
    for stage, out_ch in enumerate((64, 128, 256, 512)):
        for block in range(2):
            s = 2 if stage > 0 and block == 0 else 1
            y = cbr(cbr(x, out_ch, s=s), out_ch, relu=False)
            sc = cbr(x, out_ch, k=1, s=s, relu=False) if (s != 1 or ch != out_ch) else x
            x = b.relu(b.add(y, sc))
            ch = out_ch
    x = b.flatten(b.gap(x))
    return b.build(b.gemm(x, classes, name="fc"), output_names=["logits"])


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header (IHDR) declares width x height over a few bytes of data: a
    decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
