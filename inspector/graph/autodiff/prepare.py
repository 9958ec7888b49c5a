"""Make a model ready for differentiation: a recent enough opset and static type/shape facts."""

from __future__ import annotations

import onnx
from onnx import version_converter

from ...errors import FailedPrecondition
from .emitter import Dims

# ScatterElements(reduction="add") for MaxPool gradients needs opset 16.
MIN_OPSET = 16
TARGET_OPSET = 17


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` at opset >= 16 (converted with onnx's version converter when older)."""
    if default_opset(model) >= MIN_OPSET:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    try:
        return version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the converter raises plain RuntimeError/ValueError subclasses
        raise FailedPrecondition(
            f"The model uses ONNX opset {default_opset(model)} and could not be converted to opset "
            f"{TARGET_OPSET} for gradient computation ({type(exc).__name__}); re-export it with "
            f"opset {TARGET_OPSET} or newer.") from exc


def tensor_types(model: onnx.ModelProto) -> dict[str, tuple[int, Dims | None]]:
    """Element type and dims (int, symbol or None) of every tensor shape inference can type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference cannot handle still runs; fall back to declarations
        inferred = model
    graph = inferred.graph
    types: dict[str, tuple[int, Dims | None]] = {}
    for info in [*graph.value_info, *graph.input, *graph.output]:
        tensor = info.type.tensor_type
        dims = None
        if tensor.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in tensor.shape.dim]
        types[info.name] = (tensor.elem_type, dims)
    for init in graph.initializer:
        types[init.name] = (init.data_type, list(init.dims))
    return types


def constant_tensors(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Tensors whose value is fixed: initializers no graph input overrides, Constant(value) outputs."""
    graph = model.graph
    inputs = {i.name for i in graph.input}
    found = {t.name: t for t in graph.initializer if t.name not in inputs}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found
