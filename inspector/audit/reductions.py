"""The audit model: per-channel reductions computed inside the ONNX graph, so only small arrays leave it.

Exposing every audited tensor costs megabytes per image and a numpy pass over each element;
this rewrite appends, per tensor T [N, C, ...] (viewed as [N, C, M]), nodes that return per map
(one image, one channel):
  sum, sumsq       float32 [N, C]   ReduceSum of T and of T*T (of T - shift when centered)
  shift            float32 [N, C, 1] only when centered: the mean of the map's subsample
  image_min/max    [N, C]           ReduceMin / ReduceMax
  zeros            int32 [N, C]     Equal(T, 0) as uint8, counted by MatMulInteger with a ones column
  saturated        int32 [N, C]      (T <= lo | T >= hi), only for bounded tensors; same counting
  sample           float32 [N, C, <= SAMPLE]  a strided subsample of M for the percentile sketch
  shape            int64 [rank]
Counts, minima and maxima are exact. Sums are float32 over one map (M values) and are merged in
float64 on the host; `read_reduced` says when a map's float32 sums cannot give its variance to
the documented accuracy (a large mean next to a small spread), and the audit then centres that
tensor from then on (`centered`: each map minus its subsample's mean, which leaves little to
cancel) and runs the batch again. A non-finite value (or a float32 overflow of the sums) makes the
sums non-finite, which is how the host knows to redo that tensor exactly.
Why these ops: each is one vectorized pass over the map in onnxruntime (Cast to float64 was 2x the
memory traffic; ReduceSumSquare and Cast(bool->float) are scalar loops; see bench_audit.py).
ModelProto in, ModelProto out; no onnxruntime.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector.audit import sketch
from inspector.audit.aggregate import ReducedBatch, ReducedColumns
from inspector.audit.sketch import SAMPLE, sample_step
from inspector.graph.info import value_infos

PARTS = ("sum", "sumsq", "image_min", "image_max", "zeros", "shape", "sample")
_FROM_SOURCE = ("image_min", "image_max", "sample")  # what a derived tensor reads from its source
MIN_OPSET = 11  # Equal on floats; older models keep the exposed-tensor path
# A map's float32 sums give its M2 = sumsq - sum**2 / M to about 3 * 2e-6 * sumsq (measured worst
# case of onnxruntime's float32 ReduceSum over 112x112 maps); where sumsq exceeds CANCELLATION times
# M2 that could exceed 6e-4 of M2, so the tensor is centred instead (AuditRun.recentre).
CANCELLATION = 100.0


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


def reduced_outputs(tensor: str, bounded: bool, centered: bool = False, derived: bool = False) -> list[str]:
    """Every output the rewrite adds for one tensor."""
    parts = [p for p in PARTS if not (derived and not centered and p in _FROM_SOURCE)]
    parts += [*(("saturated",) if bounded else ()), *(("shift",) if centered else ())]
    return [output_name(tensor, p) for p in parts]


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
        self.consts: dict[tuple, str] = {}
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
        """An initializer holding `value`, shared by every use of the same value."""
        value = np.asarray(value)
        key = (value.dtype.str, value.shape, value.tobytes())
        if key not in self.consts:
            self.count += 1
            self.consts[key] = name = f"{self.prefix}_const_{self.count}"
            self.model.graph.initializer.append(numpy_helper.from_array(value, name))
        return self.consts[key]

    def reduce(self, op: str, x: str, axes: list[int], out: str | None = None, keepdims: int = 0) -> str:
        """op over `axes`; axes go in as an input where the opset wants one."""
        as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if as_input:
            return self.node(op, [x, self.const(np.asarray(axes, np.int64))], out, keepdims=keepdims)
        return self.node(op, [x], out, axes=axes, keepdims=keepdims)

    def output(self, name: str, elem: int) -> None:
        self.model.graph.output.append(helper.make_tensor_value_info(name, elem, None))


def _ones_column(g: _Graph, flat: str, positions: int | None) -> str:
    """uint8 ones [M, 1]: a constant when the map size is known, else built from flat's shape."""
    if positions is not None:
        return g.const(np.ones((positions, 1), np.uint8))
    m = g.node("Slice", [g.node("Shape", [flat]), g.const(np.asarray([2], np.int64)),
                         g.const(np.asarray([3], np.int64))])
    shape = g.node("Concat", [m, g.const(np.asarray([1], np.int64))], axis=0)
    return g.node("ConstantOfShape", [shape], value=numpy_helper.from_array(np.ones(1, np.uint8)))


def _count(g: _Graph, mask: str, ones: str, out: str) -> None:
    """Per-map count of true values of a bool [N, C, M] -> int32 [N, C] (exact)."""
    column = g.node("MatMulInteger", [g.node("Cast", [mask], to=TensorProto.UINT8), ones])  # [N, C, 1]
    g.node("Reshape", [column, g.const(np.asarray([0, 0], np.int64))], out)


def _add_tensor(g: _Graph, name: str, elem: int, positions: int | None,
                bounds: tuple[float, float] | None, centered: bool, derived: bool) -> None:
    """The reductions of one tensor (see the module docstring); `derived`: no minima, maxima or
    subsample, the host reads them from the tensor's source (see monotone_sources)."""
    x = name if elem == TensorProto.FLOAT else g.node("Cast", [name], to=TensorProto.FLOAT)
    flat = g.node("Reshape", [x, g.const(np.asarray([0, 0, -1], np.int64))])  # [N, C, M]
    outputs = [("sum", TensorProto.FLOAT), ("sumsq", TensorProto.FLOAT), ("zeros", TensorProto.INT32),
               ("shape", TensorProto.INT64)]
    if not derived:
        g.reduce("ReduceMin", flat, [2], output_name(name, "image_min"))
        g.reduce("ReduceMax", flat, [2], output_name(name, "image_max"))
        _strided_sample(g, flat, positions, output_name(name, "sample"))
        outputs += [("image_min", TensorProto.FLOAT), ("image_max", TensorProto.FLOAT), ("sample", TensorProto.FLOAT)]
    base = flat
    if centered:
        shift = g.reduce("ReduceMean", output_name(name, "sample"), [2], output_name(name, "shift"), keepdims=1)
        base = g.node("Sub", [flat, shift])
        outputs.append(("shift", TensorProto.FLOAT))
    g.reduce("ReduceSum", base, [2], output_name(name, "sum"))
    g.reduce("ReduceSum", g.node("Mul", [base, base]), [2], output_name(name, "sumsq"))
    ones = _ones_column(g, flat, positions)
    _count(g, g.node("Equal", [flat, g.const(np.zeros(1, np.float32))]), ones, output_name(name, "zeros"))
    g.node("Shape", [name], output_name(name, "shape"))
    if bounds is not None:
        lo, hi = _float32_bounds(*bounds)
        inside = g.node("And", [g.node("Greater", [flat, g.const(np.asarray([lo], np.float32))]),
                                g.node("Less", [flat, g.const(np.asarray([hi], np.float32))])])
        _count(g, g.node("Not", [inside]), ones, output_name(name, "saturated"))  # finite values only
        outputs.append(("saturated", TensorProto.INT32))
    for part, kind in outputs:
        g.output(output_name(name, part), kind)


def _strided_sample(g: _Graph, flat: str, positions: int | None, out: str) -> None:
    """flat[:, :, ::sketch.sample_step(M)]; the step is computed in the graph (the same formula) when M is
    not known before the run."""
    def ints(*v: int) -> str:
        return g.const(np.asarray(v, np.int64))

    if positions is not None:
        step = ints(sample_step(positions))
    else:
        size = g.node("Slice", [g.node("Shape", [flat]), ints(2), ints(3)])
        step = g.node("Add", [g.node("Div", [g.node("Sub", [size, ints(1)]), ints(SAMPLE)]), ints(1)])
    g.node("Slice", [flat, ints(0), ints(2**62), ints(2), step], out)


def monotone_sources(model: onnx.ModelProto, tensors: Collection[str],
                     bounds: Mapping[str, tuple[float, float]]) -> dict[str, str]:
    """Relu and constant-bound Clip outputs whose input is also reduced: tensor -> that input.

    min, max and the subsample of Relu(x) / Clip(x) are those of x passed through the same clamp
    (exactly, in float32), so the audit graph does not compute them twice (one pass each saved).
    """
    chosen: dict[str, str] = {}
    for node in model.graph.node:
        out = node.output[0] if node.output else ""
        if out in tensors and node.input and node.input[0] in tensors and node.input[0] not in chosen and (
                node.op_type == "Relu" or (node.op_type == "Clip" and out in bounds)):
            chosen[out] = node.input[0]
    return chosen


def clamp_of(tensor: str, bounds: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """The float32 (lo, hi) a monotone source's values pass through to become `tensor` (a Relu
    output has no saturation bounds; a Clip output's are its clip bounds)."""
    return (0.0, math.inf) if tensor not in bounds else tuple(float(np.float32(b)) for b in bounds[tensor])


def _positions(vi: onnx.ValueInfoProto | None) -> int | None:
    """Values per map (product of the dims after N and C) when every one is known."""
    dims = vi.type.tensor_type.shape.dim[2:] if vi is not None else None
    if dims is None or not all(d.HasField("dim_value") for d in dims):
        return None
    return int(np.prod([d.dim_value for d in dims], dtype=np.int64))


def with_reductions(model: onnx.ModelProto, tensors: Sequence[str],
                    bounds: Mapping[str, tuple[float, float]], raw: Sequence[str] = (),
                    centered: Collection[str] = (), derived: Collection[str] = ()) -> onnx.ModelProto:
    """A copy of `model` that also returns the reductions of `tensors` (those in `centered` with
    centred sums, those in `derived` without what monotone_sources gives) and `raw` as they are."""
    infos = value_infos(model)
    g = _Graph(model)
    for name in tensors:
        vi = infos.get(name)
        elem = vi.type.tensor_type.elem_type if vi is not None else TensorProto.FLOAT
        _add_tensor(g, name, elem, _positions(vi), bounds.get(name), name in centered,
                    name in derived and name not in centered)
    current = {o.name for o in model.graph.output}
    for name in dict.fromkeys(raw):
        if name not in current:
            g.output(name, infos[name].type.tensor_type.elem_type if name in infos else TensorProto.FLOAT)
    return g.model


def _spread(s: np.ndarray, q: np.ndarray, positions: int | np.ndarray) -> tuple[np.ndarray, bool]:
    """Each map's M2 from its sums s and sums of squares q (float64 of the graph's float32), and
    whether every one is trustworthy (see CANCELLATION; NaN or infinity is not)."""
    with np.errstate(invalid="ignore", over="ignore"):
        m2 = q - s * s / positions
        return m2, bool(np.all((q == 0) | (m2 * CANCELLATION >= q)))


def read_reduced(values: Mapping[str, np.ndarray], tensor: str,
                 source: tuple[str, tuple[float, float]] | None = None) -> ReducedBatch:
    """The reductions of one tensor from a run of the audit model, as per-map float64 sums and M2;
    `source`: (input, clamp) of a derived tensor, whose minima, maxima and subsample are its input's
    clamped (monotone_sources)."""
    shape = [int(d) for d in values[output_name(tensor, "shape")]]
    n, c = shape[0], shape[1]
    m = int(np.prod(shape[2:], dtype=np.int64))
    s = np.asarray(values[output_name(tensor, "sum")], np.float64).reshape(n, c)
    q = np.asarray(values[output_name(tensor, "sumsq")], np.float64).reshape(n, c)
    m2, conditioned = _spread(s, q, max(m, 1))
    shift = values.get(output_name(tensor, "shift"))
    if shift is not None:  # sums of T - shift: back to sums of T
        with np.errstate(invalid="ignore", over="ignore"):
            s = s + m * np.asarray(shift, np.float64).reshape(n, c)
    part, lo, hi = tensor, None, None
    if source is not None and output_name(tensor, "image_min") not in values:
        part, (lo, hi) = source[0], (np.float32(b) for b in source[1])

    def clamp(a: np.ndarray) -> np.ndarray:  # float32 in and out: what Relu/Clip computed
        return a if lo is None else np.clip(a, lo, hi)
    saturated = values.get(output_name(tensor, "saturated"))
    return ReducedBatch(
        shape=shape, sum=s, m2=np.maximum(m2, 0.0), conditioned=conditioned,
        image_min=clamp(values[output_name(part, "image_min")]), image_max=clamp(values[output_name(part, "image_max")]),
        zeros=values[output_name(tensor, "zeros")].reshape(n, c),
        saturated=None if saturated is None else saturated.reshape(n, c),
        sample=clamp(values[output_name(part, "sample")]), source=None if part == tensor else part)


class _Layout:
    """Where each tensor's values go when a batch of them is folded at once (read_columns)."""

    def __init__(self, tensors: Sequence[str], shapes: Sequence[np.ndarray], bounded: Collection[str],
                 rows: Mapping[str, tuple[int, int]]) -> None:
        dims = [[int(d) for d in s] for s in shapes]
        self.images = dims[0][0] if dims else 0
        positions = [int(np.prod(d[2:], dtype=np.int64)) for d in dims]
        self.usable = bool(dims) and min(positions) > 0 and all(
            len(d) >= 2 and d[0] == self.images and d[1] == rows[t][1] for t, d in zip(tensors, dims, strict=True))
        channels = [rows[t][1] for t in tensors]
        self.positions = np.repeat(np.asarray(positions, np.int64), channels)
        self.columns, at = {}, 0
        for t, c in zip(tensors, channels, strict=True):
            self.columns[t] = slice(at, at + c)
            at += c
        # the aggregator's row of every column and of the bounded tensors' columns; for each tensor's
        # subsample [N, C, K], each value's offset (its channel's) in the tensor's flat histogram
        self.rows = np.concatenate([np.arange(rows[t][0], sum(rows[t]), dtype=np.intp) for t in tensors]
                                   or [np.zeros(0, np.intp)])
        self.bounded = np.concatenate([self.rows[self.columns[t]] for t in tensors if t in bounded]
                                      or [np.zeros(0, np.intp)])
        self.kept = {t: -(-p // sample_step(p)) if p else 0 for t, p in zip(tensors, positions, strict=True)}
        self.offsets = {t: np.broadcast_to(np.arange(rows[t][1], dtype=np.int32)[:, None] * np.int32(sketch.BINS),
                                           (self.images, rows[t][1], self.kept[t])).reshape(-1)
                        for t in tensors} if self.usable else {}
        self._bins: dict[tuple, np.ndarray] = {}

    def bin_of(self, bounds: tuple[float, float]) -> np.ndarray:
        """The sketch bins of a clamp's two bounds."""
        if bounds not in self._bins:
            self._bins[bounds] = sketch.bin_index(np.asarray(bounds, np.float32))
        return self._bins[bounds]


def read_columns(values: Mapping[str, np.ndarray], rows: Mapping[str, tuple[int, int]],
                 sources: Mapping[str, tuple[str, tuple[float, float]]], bounded: Collection[str],
                 layouts: dict, mirrored: Collection[str] = ()) -> ReducedColumns | None:
    """The reductions of the tensors in `rows` (tensor -> its first row in the aggregator and its
    channel count) from one audit-model run, side by side, or None where they cannot be folded at
    once: a map that is not [N, C, ...] with the batch's N and the known C, an empty map, a
    non-finite value, or float32 sums that cannot give a map's spread (see read_reduced, which then
    takes the tensors one by one). `sources`: as read_reduced's, for the tensors whose minima,
    maxima and subsample are their input's; `layouts`: a cache; `mirrored`: tensors whose
    subsample is not binned (the aggregator reads their sketch from their source's)."""
    tensors = list(rows)
    shapes = [values[output_name(t, "shape")] for t in tensors]
    key = (tuple(tensors), b"".join(s.tobytes() for s in shapes))
    if key not in layouts:
        layouts.clear()
        layouts[key] = _Layout(tensors, shapes, bounded, rows)
    layout = layouts[key]
    if not layout.usable:
        return None
    n = layout.images

    def side_by_side(part: str, names: Sequence[str]) -> np.ndarray:
        return np.concatenate([values[output_name(t, part)].reshape(n, -1) for t in names], axis=1)

    s = side_by_side("sum", tensors).astype(np.float64)
    q = side_by_side("sumsq", tensors).astype(np.float64)
    m2, conditioned = _spread(s, q, layout.positions)
    if not conditioned:
        return None
    for t in tensors:
        shift = values.get(output_name(t, "shift"))
        if shift is not None:  # sums of T - shift: back to sums of T
            cols = layout.columns[t]
            s[:, cols] += layout.positions[cols] * np.asarray(shift, np.float64).reshape(n, -1)
    if not (np.isfinite(s).all() and np.isfinite(m2).all()):
        return None
    clamps = {t: (sources[t][0], tuple(np.float32(b) for b in sources[t][1])) for t in tensors
              if output_name(t, "image_min") not in values}

    def extreme(part: str) -> np.ndarray:
        return np.concatenate([values[output_name(t, part)].reshape(n, -1) if t not in clamps else np.clip(
            values[output_name(clamps[t][0], part)].reshape(n, -1), *clamps[t][1]) for t in tensors], axis=1)

    # subsample bins: a clamped value's bin is its source's bin clamped (binning is monotone)
    counted = [t for t in tensors if t not in mirrored]
    binned = list(dict.fromkeys(clamps[t][0] if t in clamps else t for t in counted))
    kept = sketch.bin_index(np.concatenate([values[output_name(t, "sample")].reshape(-1) for t in binned] or
                                           [np.zeros(0, np.float32)]))
    segment, at = {}, 0
    for t in binned:
        size = values[output_name(t, "sample")].size
        segment[t], at = kept[at:at + size], at + size
    if any(segment[clamps[t][0] if t in clamps else t].size != layout.offsets[t].size for t in counted):
        return None  # a subsample of another length than the layout's: fold tensor by tensor
    bins = [(segment[t] if t not in clamps else np.clip(segment[clamps[t][0]], *layout.bin_of(clamps[t][1])))
            + layout.offsets[t] for t in counted]
    chosen = [t for t in tensors if t in bounded]
    return ReducedColumns(
        images=n, rows=layout.rows, positions=layout.positions, sum=s, m2=np.maximum(m2, 0.0),
        image_min=extreme("image_min"), image_max=extreme("image_max"), zeros=side_by_side("zeros", tensors),
        saturated=side_by_side("saturated", chosen) if chosen else np.zeros((n, 0), np.int32),
        bounded=layout.bounded, binned=tuple(counted), bins=bins, tensors=tuple(tensors))
