"""Which axis of a tensor carries the input's batch: [N, C, H, W], [N, H, W, C], [N, tokens, C]
(axis 0), [tokens, N, C] or time-major [T, N, K] (axis 1), or none at all ([K, 4] detections of
a batch-1 export).

First from the graph: a copy of the model whose image input has dim 0 set to a fresh symbol goes
through onnx shape inference (with data propagation, so Shape -> Gather -> Concat -> Reshape
chains keep it); a tensor where the symbol lands on exactly one axis has its answer. Where
inference loses it (a Reshape to [1, -1, C] in a batch-1 export, a custom op), a probe asks the
model: one image, then the same image twice, with the tensor exposed; the axis whose size goes
from 1 to 2 is the batch axis, a tensor whose shape does not change has none, and one whose
size doubles from more than 1 folds the batch into another axis ([N * windows, T, T]) and is
refused. Both answers are memoized per model through `access.memo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnx

from inspector import errors

if TYPE_CHECKING:
    from inspector.model_access import ModelAccess

SYMBOL = "inspector_batch_axis"  # the fresh dim_param the input's batch dimension gets
FLOATS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                    onnx.TensorProto.BFLOAT16})


def _light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for shape inference without value_info: large float weights keep their type and dims,
    not their data (inference reads the values only of small shape-like constants)."""
    g = model.graph
    inits = [t if int(np.prod(t.dims)) <= 1024 or t.data_type not in FLOATS
             else onnx.TensorProto(name=t.name, data_type=t.data_type, dims=t.dims) for t in g.initializer]
    graph = onnx.GraphProto(name=g.name, node=g.node, input=g.input, output=g.output, initializer=inits,
                            sparse_initializer=g.sparse_initializer)
    return onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import,
                           functions=model.functions, graph=graph)


def graph_batch_axes(model: onnx.ModelProto, input_name: str | None = None) -> dict[str, tuple[int, ...]]:
    """{tensor: the axes where shape inference puts the input's batch symbol} for every tensor
    inference types (an empty tuple: the symbol is on no axis, which may still mean it was lost).

    `input_name` defaults to the first graph input that is not an initializer.
    """
    inits = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if input_name is None:
        if not inputs:
            return {}
        input_name = inputs[0]
    out = _light_copy(model)
    g = out.graph
    found = False
    for vi in g.input:
        if vi.name == input_name and vi.type.tensor_type.HasField("shape") and vi.type.tensor_type.shape.dim:
            vi.type.tensor_type.shape.dim[0].dim_param = SYMBOL  # a oneof: clears dim_value
            found = True
    if not found:
        return {}
    for vi in g.output:
        if vi.type.HasField("tensor_type"):
            vi.type.tensor_type.ClearField("shape")
    inferred = None
    for data_prop in (True, False):
        try:
            inferred = onnx.shape_inference.infer_shapes(out, strict_mode=False, data_prop=data_prop)
            break
        except Exception:  # noqa: BLE001 - inference is a best effort; the probe covers the rest
            continue
    if inferred is None:
        return {input_name: (0,)}
    axes: dict[str, tuple[int, ...]] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        tt = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tt.HasField("shape"):
            axes[vi.name] = tuple(i for i, d in enumerate(tt.shape.dim) if d.dim_param == SYMBOL)
    return axes


def _memo(access: ModelAccess, key: tuple, compute):
    memo = getattr(access, "memo", None)
    return memo(key, compute) if memo else compute()


def _probe_input(access: ModelAccess, x: np.ndarray | None) -> np.ndarray:
    """One image: the first of `x`, or random values in the declared input shape."""
    if x is not None and len(x):
        return np.ascontiguousarray(np.asarray(x)[:1])
    dims = (access.input_shapes or {}).get(access.input_name)
    if not dims or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise errors.FailedPrecondition(
            f"cannot probe the batch axis: input '{access.input_name}' declares no fixed image shape "
            f"({list(dims) if dims else 'none'}); pass an example input", field="input")
    return np.random.default_rng(0).random((1, *dims[1:])).astype(np.float32)


def probe_batch_axis(access: ModelAccess, tensor: str, x: np.ndarray | None = None) -> int | None:
    """The batch axis of `tensor` as seen in runs of one image and of that image twice (None: its
    shape does not depend on the batch; also where the model runs only one image and the tensor has
    no axis of size 1). Raises FailedPrecondition when the batch is folded into another axis or
    changes the rank."""
    one = _probe_input(access, x)
    a = np.asarray(access.forward(one, fetch=[tensor])[tensor])
    try:
        b = np.asarray(access.forward(np.concatenate([one, one]), fetch=[tensor])[tensor])
    except errors.Cancelled:
        raise
    except errors.InspectorError:
        # the model (or its fixed-batch export, run in splits) does not give this tensor for two
        # images: it runs one image at a time; the only axis of size 1 is the batch axis, and
        # without one the whole tensor is one image's
        sized = [i for i, d in enumerate(a.shape) if d == 1]
        return sized[0] if len(sized) == 1 else None
    if a.ndim != b.ndim:
        raise errors.FailedPrecondition(
            f"tensor '{tensor}' changes rank with the batch ({list(a.shape)} for one image, {list(b.shape)} "
            "for two); it has no batch axis a method can use", field="tensor")
    changed = [i for i in range(a.ndim) if a.shape[i] != b.shape[i]]
    if not changed:
        return None
    if len(changed) == 1 and a.shape[changed[0]] == 1 and b.shape[changed[0]] == 2:
        return changed[0]
    raise errors.FailedPrecondition(
        f"tensor '{tensor}' folds the batch into another axis ({list(a.shape)} for one image, "
        f"{list(b.shape)} for two); its per-image values cannot be told apart: pick a tensor that keeps "
        "the batch on an axis of its own", field="tensor")


def batch_axis(access: ModelAccess, tensor: str, x: np.ndarray | None = None) -> int | None:
    """The axis of `tensor` that carries the input's batch, None when it carries none (or for an
    initializer); the graph first, a probe run (on the first image of `x`) where inference is unsure."""
    if tensor == access.input_name:
        return 0
    model = access.graph
    if any(t.name == tensor for t in model.graph.initializer):
        return None
    axes = _memo(access, ("batch_axis", "graph"), lambda: graph_batch_axes(model, access.input_name))
    inferred = axes.get(tensor)
    if inferred is not None and len(inferred) == 1:
        return inferred[0]

    def probe() -> int | None | errors.FailedPrecondition:
        try:
            return probe_batch_axis(access, tensor, x)
        except errors.FailedPrecondition as exc:  # remembered too: a folded batch stays folded
            return exc

    found = _memo(access, ("batch_axis", "probe", tensor), probe)
    if isinstance(found, errors.FailedPrecondition):
        raise errors.FailedPrecondition(found.message, field=found.field)
    return found


def batch_axes(access: ModelAccess, tensors: Sequence[str], x: np.ndarray | None = None) -> dict[str, int | None]:
    """batch_axis of each tensor."""
    return {t: batch_axis(access, t, x) for t in dict.fromkeys(tensors)}


def layout_label(shape: Sequence[int], axis: int | None) -> str:
    """A shape with the batch axis marked, e.g. "[26, N=2, 37]" (for messages)."""
    return "[" + ", ".join(f"N={d}" if i == axis else str(d) for i, d in enumerate(shape)) + "]"
