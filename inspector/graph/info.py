"""The layer table of a model: inputs, outputs, opsets and one row per node, from the proto alone.

Shapes come from onnx shape inference (strict mode off); a model it cannot infer still gets a
table, with unknown types and shapes left as None.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import onnx
from onnx import helper

from inspector.domain import Dim, LayerInfo, TensorInfo
from inspector.graph.constants import Constants

log = logging.getLogger(__name__)

WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
# Quantized layers: op -> (weight input, bias input or None, the scale inputs the bias needs).
QUANTIZED_WEIGHT_OPS = {
    "QLinearConv": (3, 8, (1, 4)), "QGemm": (3, 6, (1, 4)), "QLinearMatMul": (3, None, ()),
    "ConvInteger": (1, None, ()), "MatMulInteger": (1, None, ()),
}


@dataclass(frozen=True)
class ModelDescription:
    """What the proto says about a model, ready for ModelInfo."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opsets: dict[str, int]
    producer: str
    layers: tuple[LayerInfo, ...]


def node_names(model: onnx.ModelProto) -> list[str]:
    """The name of every node in graph order; unnamed (or repeated) ones get "<op>_<index>"."""
    names: list[str] = []
    used: set[str] = set()
    for i, node in enumerate(model.graph.node):
        name = node.name if node.name and node.name not in used else f"{node.op_type}_{i}"
        while name in used:
            name = f"{name}_{i}"
        used.add(name)
        names.append(name)
    return names


def value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Type and shape of every tensor onnx can tell: inputs, outputs, inferred values, constants."""
    graph = model.graph
    infos: dict[str, onnx.ValueInfoProto] = {}
    for t in graph.initializer:
        infos[t.name] = helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR:
            t = n.attribute[0].t
            infos[n.output[0]] = helper.make_tensor_value_info(n.output[0], t.data_type, list(t.dims))
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception as exc:  # inference is a nicety: a model it cannot handle still gets a table
        log.info("shape inference failed (%s); using the shapes stored in the model", exc)
        inferred = graph
    for vi in [*inferred.value_info, *inferred.input, *inferred.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            infos[vi.name] = vi
    return infos


def tensor_info(name: str, vi: onnx.ValueInfoProto | None) -> TensorInfo:
    """TensorInfo from a ValueInfoProto: symbolic dims stay names, unknown dims become None."""
    if vi is None or not vi.type.HasField("tensor_type"):
        return TensorInfo(name, None, None)
    tt = vi.type.tensor_type
    shape: tuple[Dim, ...] | None = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value >= 0
                      else (d.dim_param or None) for d in tt.shape.dim)
    return TensorInfo(name, dtype_name(tt.elem_type), shape)


def dtype_name(elem_type: int) -> str | None:
    """numpy dtype name of an ONNX element type ("float32"), or the ONNX name if numpy has none."""
    if not elem_type:
        return None
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def describe_model(model: onnx.ModelProto) -> ModelDescription:
    """Inputs (initializers excluded), outputs, opsets, producer and the layer table."""
    graph = model.graph
    infos = value_infos(model)
    consts = Constants(graph)
    inits = set(consts.initializers)
    by_name = {i.name: i for i in graph.input}
    layers = tuple(_layer(name, node, infos, consts) for name, node in zip(
        node_names(model), graph.node, strict=True))
    return ModelDescription(
        inputs=tuple(tensor_info(name, infos.get(name, by_name[name]))
                     for name in image_first(model, [i.name for i in graph.input if i.name not in inits])),
        outputs=tuple(tensor_info(o.name, infos.get(o.name, o)) for o in graph.output),
        opsets={o.domain or "ai.onnx": o.version for o in model.opset_import},
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        layers=layers)


def _layer(name: str, node: onnx.NodeProto, infos: dict[str, onnx.ValueInfoProto],
           consts: Constants) -> LayerInfo:
    """One row of the layer table."""
    roots = dict.fromkeys(r for r in (consts.root(i) for i in node.input if i) if r)
    weights = tuple(r for r in (consts.root(i) for i in weight_inputs(node, consts)) if r)
    return LayerInfo(
        name=name, op_type=node.op_type, inputs=tuple(node.input),
        outputs=tuple(tensor_info(o, infos.get(o)) for o in node.output if o),
        parameter_count=sum(consts.size(r) for r in roots),
        has_weights=bool(weights), weight_names=weights)


def weight_inputs(node: onnx.NodeProto, consts: Constants) -> list[str]:
    """The node's constant weight input then its bias input (Conv/ConvTranspose/Gemm/MatMul and
    the quantized QLinearConv/QGemm/QLinearMatMul/ConvInteger/MatMulInteger)."""
    if node.op_type in QUANTIZED_WEIGHT_OPS:
        w, b, needs = QUANTIZED_WEIGHT_OPS[node.op_type]
        if w >= len(node.input) or not consts.root(node.input[w]):
            return []
        bias = [node.input[b]] if b is not None and b < len(node.input) and all(
            i < len(node.input) and consts.root(node.input[i]) for i in (b, *needs)) else []
        return [node.input[w], *bias]
    if node.op_type not in WEIGHT_OPS or len(node.input) < 2:
        return []
    if node.op_type == "MatMul":
        b, a = node.input[1], node.input[0]
        return [b] if consts.root(b) else [a] if consts.root(a) else []
    if not consts.root(node.input[1]):
        return []
    return [i for i in node.input[1:3] if i and consts.root(i)]


def image_first(model: onnx.ModelProto, names: list[str]) -> list[str]:
    """Model inputs with the image input first: the first of rank 4 (then rank 3) holding
    numbers, else the first input. Methods attribute to it; the other inputs are held fixed."""
    info = {i.name: i.type.tensor_type for i in model.graph.input}

    def rank(name: str) -> int:
        t = info[name]
        return len(t.shape.dim) if t.HasField("shape") else -1

    for wanted in (4, 3):
        for name in names:
            if rank(name) == wanted and info[name].elem_type != onnx.TensorProto.STRING:
                return [name, *(n for n in names if n != name)]
    return names
