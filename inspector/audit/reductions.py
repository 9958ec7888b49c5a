"""The audit model: per-channel reductions computed inside the ONNX graph, so only small arrays leave it.

Exposing every audited tensor costs megabytes per image and a numpy pass over each element;
this rewrite appends, per tensor T [N, C, ...] (viewed as [N, C, M]), nodes that return
  sum, sumsq       float64 [C]   (Cast to DOUBLE, ReduceSum / ReduceSumSquare over N and M)
  image_min/max    [N, C]        (ReduceMin / ReduceMax over M; the host takes channel min, max, activity)
  zeros            [N, C]        (Equal(T, 0), counted per map in float32 when exact, else int64)
  saturated        [N, C]        (T <= lo | T >= hi, only for bounded tensors; same counting)
  sample           float32 [N, C, <= SAMPLE]  a strided subsample of M for the percentile sketch
  shape            int64 [rank]
A non-finite value makes `sum` non-finite, which is how the host knows to redo that tensor exactly.
ModelProto in, ModelProto out; no onnxruntime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector.audit.aggregate import ReducedBatch
from inspector.graph.info import value_infos

SAMPLE = 32  # positions per channel per image kept for percentiles (strided over the flattened map)
PARTS = ("sum", "sumsq", "image_min", "image_max", "zeros", "shape", "sample")
MIN_OPSET = 11  # Equal on floats; older models keep the exposed-tensor path


def output_name(tensor: str, part: str) -> str:
    """The graph output that carries one reduction of one tensor."""
    return f"{tensor}::audit_{part}"


def reducible(model: onnx.ModelProto, tensors: Sequence[str]) -> list[str]:
    """The tensors the rewrite can reduce: known rank >= 2 in a model of opset >= MIN_OPSET."""
    if _opset(model) < MIN_OPSET:
        return []
    infos = value_infos(model)
    out = []
    for name in tensors:
        vi = infos.get(name)
        kind = vi.type.tensor_type if vi is not None else None
        if kind is not None and kind.HasField("shape") and len(kind.shape.dim) >= 2:
            out.append(name)
    return out


def reduced_outputs(tensor: str, bounded: bool) -> list[str]:
    """Every output the rewrite adds for one tensor."""
    return [output_name(tensor, p) for p in (*PARTS, *(("saturated",) if bounded else ()))]


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _float32_bounds(lo: float, hi: float) -> tuple[float, float]:
    """Float32 bounds with the same answers on float32 values as float64 `v <= lo`, `v >= hi`."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if math.isfinite(lo) and float(lo32) > lo:
        lo32 = np.nextafter(lo32, np.float32(-np.inf))
    if math.isfinite(hi) and float(hi32) < hi:
        hi32 = np.nextafter(hi32, np.float32(np.inf))
    return float(lo32), float(hi32)


class _Graph:
    """Node emitter over a copy of the model, aware of the opset's Reduce* signatures."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.ModelProto()
        self.model.CopyFrom(model)
        self.opset = _opset(model)
        self.count = 0
        names = {t for n in model.graph.node for t in (*n.input, *n.output, n.name)}
        names |= {t.name for t in model.graph.initializer}
        self.prefix = "audit_reduction"
        while any(n.startswith(self.prefix) for n in names):  # fresh names for every added tensor
            self.prefix += "_"

    def node(self, op: str, inputs: Sequence[str], out: str | None = None, **attrs) -> str:
        self.count += 1
        out = out or f"{self.prefix}_{self.count}"
        self.model.graph.node.append(helper.make_node(op, list(inputs), [out], name=f"{out}__node", **attrs))
        return out

    def const(self, value: np.ndarray) -> str:
        self.count += 1
        name = f"{self.prefix}_const_{self.count}"
        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def reduce(self, op: str, x: str, axes: list[int], out: str | None = None) -> str:
        """op over `axes` without keepdims; axes go in as an input where the opset wants one."""
        as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if as_input:
            return self.node(op, [x, self.const(np.asarray(axes, np.int64))], out, keepdims=0)
        return self.node(op, [x], out, axes=axes, keepdims=0)

    def output(self, name: str, elem: int) -> None:
        self.model.graph.output.append(helper.make_tensor_value_info(name, elem, None))


def _add_tensor(g: _Graph, name: str, elem: int, positions: int | None,
                bounds: tuple[float, float] | None) -> None:
    """The reductions of one tensor; counts are float32 (faster, exact below 2**24 per map) when the
    map size `positions` is known to be small enough."""
    zero_type = TensorProto.FLOAT if positions is not None and positions < 2**24 else TensorProto.INT64
    x = name if elem == TensorProto.FLOAT else g.node("Cast", [name], to=TensorProto.FLOAT)
    flat = g.node("Reshape", [x, g.const(np.asarray([0, 0, -1], np.int64))])  # [N, C, M]
    wide = g.node("Cast", [flat], to=TensorProto.DOUBLE)
    g.reduce("ReduceSum", wide, [0, 2], output_name(name, "sum"))
    g.reduce("ReduceSumSquare", wide, [0, 2], output_name(name, "sumsq"))
    g.reduce("ReduceMin", flat, [2], output_name(name, "image_min"))
    g.reduce("ReduceMax", flat, [2], output_name(name, "image_max"))
    zero = g.node("Cast", [g.node("Equal", [flat, g.const(np.zeros(1, np.float32))])], to=zero_type)
    g.reduce("ReduceSum", zero, [2], output_name(name, "zeros"))  # per image: [N, C]
    g.node("Shape", [name], output_name(name, "shape"))
    _strided_sample(g, flat, output_name(name, "sample"))
    outputs = [("sum", TensorProto.DOUBLE), ("sumsq", TensorProto.DOUBLE), ("image_min", TensorProto.FLOAT),
               ("image_max", TensorProto.FLOAT), ("zeros", zero_type), ("shape", TensorProto.INT64),
               ("sample", TensorProto.FLOAT)]
    if bounds is not None:
        lo, hi = _float32_bounds(*bounds)
        inside = g.node("And", [g.node("Greater", [flat, g.const(np.asarray([lo], np.float32))]),
                                g.node("Less", [flat, g.const(np.asarray([hi], np.float32))])])
        at_bound = g.node("Cast", [g.node("Not", [inside])], to=zero_type)  # finite values only
        g.reduce("ReduceSum", at_bound, [2], output_name(name, "saturated"))
        outputs.append(("saturated", zero_type))
    for part, kind in outputs:
        g.output(output_name(name, part), kind)


def _strided_sample(g: _Graph, flat: str, out: str) -> None:
    """flat[:, :, ::step] with step = ceil(M / SAMPLE) (at least 1), computed in the graph for any M."""
    def ints(*v: int) -> str:
        return g.const(np.asarray(v, np.int64))

    size = g.node("Slice", [g.node("Shape", [flat]), ints(2), ints(3)])
    step = g.node("Add", [g.node("Div", [g.node("Sub", [size, ints(1)]), ints(SAMPLE)]), ints(1)])
    g.node("Slice", [flat, ints(0), ints(2**62), ints(2), step], out)


def _positions(vi: onnx.ValueInfoProto | None) -> int | None:
    """Values per map (product of the dims after N and C) when every one is known."""
    dims = vi.type.tensor_type.shape.dim[2:] if vi is not None else None
    if dims is None or not all(d.HasField("dim_value") for d in dims):
        return None
    return int(np.prod([d.dim_value for d in dims], dtype=np.int64))


def with_reductions(model: onnx.ModelProto, tensors: Sequence[str],
                    bounds: Mapping[str, tuple[float, float]], raw: Sequence[str] = ()) -> onnx.ModelProto:
    """A copy of `model` that also returns the reductions of `tensors` and the tensors in `raw` as they are."""
    infos = value_infos(model)
    g = _Graph(model)
    for name in tensors:
        vi = infos.get(name)
        elem = vi.type.tensor_type.elem_type if vi is not None else TensorProto.FLOAT
        _add_tensor(g, name, elem, _positions(vi), bounds.get(name))
    current = {o.name for o in model.graph.output}
    for name in dict.fromkeys(raw):
        if name not in current:
            g.output(name, infos[name].type.tensor_type.elem_type if name in infos else TensorProto.FLOAT)
    return g.model


def read_reduced(values: Mapping[str, np.ndarray], tensor: str) -> ReducedBatch:
    """The reductions of one tensor from a run of the audit model."""
    shape = [int(d) for d in values[output_name(tensor, "shape")]]
    saturated = values.get(output_name(tensor, "saturated"))
    return ReducedBatch(
        shape=shape, sum=values[output_name(tensor, "sum")], sumsq=values[output_name(tensor, "sumsq")],
        image_min=values[output_name(tensor, "image_min")], image_max=values[output_name(tensor, "image_max")],
        zeros=values[output_name(tensor, "zeros")], saturated=saturated,
        sample=values[output_name(tensor, "sample")])
