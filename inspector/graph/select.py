"""Turn user selectors (tensor, node, op type or "all") into tensor names, in graph order.

Default selection (no selectors): the float-typed "feature" tensors a person wants to look at, chosen so
exposing them keeps onnxruntime's fusions (docs/probes.md section 1):
- outputs of activations (Relu, Clip, Sigmoid, HardSwish, ...), pools, Add/Sum/Concat merges;
- gated products Mul(x, Sigmoid/HardSigmoid(..)) (SiLU, hard-swish, squeeze-excitation), while
  the gate itself is skipped when it only feeds such products;
- Conv/ConvTranspose/BatchNormalization outputs only where no activation, BN or gate follows
  (a pre-activation tensor is not shown next to its own activation).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import onnx

from inspector import errors
from inspector.graph.info import node_names, value_infos

ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Clip",
                         "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Softplus", "Mish",
                         "ThresholdedRelu"})
GATES = frozenset({"Sigmoid", "HardSigmoid"})
POOLS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"})
MERGES = frozenset({"Add", "Sum", "Concat"})
LINEAR = frozenset({"Conv", "ConvTranspose", "BatchNormalization"})
FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                         onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16})


def resolve_tensors(model: onnx.ModelProto, selectors: Sequence[str] | None) -> list[str]:
    """Tensor names for the selectors, in graph order without duplicates.

    A selector is a tensor name, a node name (its first output), an op type (the first output
    of each such node) or "all" (every float node output). Unknown selectors raise InvalidArgument with close matches.
    """
    graph = model.graph
    if not selectors:
        floats = _float_tensors(model)
        return [t for t in _default(graph) if t in floats]
    order = _tensor_order(graph)
    by_node = {n: node.output[0] for n, node in zip(node_names(model), graph.node, strict=True)
               if node.output and node.output[0]}
    by_op: dict[str, list[str]] = {}
    for node in graph.node:  # first outputs only: MaxPool's Indices are no feature map
        if node.output and node.output[0]:
            by_op.setdefault(node.op_type, []).append(node.output[0])
    ops_lower = {op.lower(): op for op in by_op}
    chosen: set[str] = set()
    unknown: list[str] = []
    for sel in selectors:
        if sel == "all":
            floats = _float_tensors(model)
            chosen.update(o for node in graph.node for o in node.output if o in floats)
        elif sel in order:
            chosen.add(sel)
        elif sel in by_node:
            chosen.add(by_node[sel])
        elif sel.lower() in ops_lower:
            chosen.update(by_op[ops_lower[sel.lower()]])
        else:
            unknown.append(sel)
    if unknown:
        raise errors.InvalidArgument(unknown_selectors_message(unknown, [*order, *by_node, *by_op]),
                                     field="layers")
    return sorted(chosen, key=order.__getitem__)


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors whose inferred element type is a floating-point type (feature maps, not shapes)."""
    return {name for name, vi in value_infos(model).items()
            if vi.type.tensor_type.elem_type in FLOAT_TYPES}


def _tensor_order(graph: onnx.GraphProto) -> dict[str, int]:
    """Position of every top-level tensor: graph inputs, initializers, then node outputs."""
    names = [i.name for i in graph.input] + [t.name for t in graph.initializer]
    names += [o for node in graph.node for o in node.output if o]
    return {n: i for i, n in enumerate(dict.fromkeys(names))}


def _default(graph: onnx.GraphProto) -> list[str]:
    """The feature tensors described in the module docstring."""
    producer = {o: n for n in graph.node for o in n.output if o}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in graph.output}

    def gated(node: onnx.NodeProto) -> bool:
        return node.op_type == "Mul" and any(
            i in producer and producer[i].op_type in GATES for i in node.input)

    def follows(out: str) -> bool:  # an activation, BN or gate consumes this tensor
        return any(c.op_type in ACTIVATIONS or c.op_type == "BatchNormalization" or gated(c)
                   for c in consumers.get(out, ()))

    chosen: list[str] = []
    for node in graph.node:
        out = node.output[0] if node.output else ""
        op = node.op_type
        if not out:
            continue
        if op in GATES and out not in outputs and consumers.get(out) and all(
                gated(c) for c in consumers[out]):
            continue
        if (op in ACTIVATIONS or op in POOLS or op in MERGES or gated(node)
                or (op in LINEAR and (out in outputs or not follows(out)))):
            chosen.append(out)
    return chosen


def unknown_selectors_message(unknown: list[str], known: list[str],
                              kinds: str = "tensor, node or op type") -> str:
    """One sentence per unknown selector, with up to three close matches."""
    parts = []
    for sel in unknown:
        low = sel.lower()
        prefixed = sorted((k for k in known if k.lower().startswith(low)), key=len)  # layer4 -> layer4.1.relu
        close = list(dict.fromkeys([*difflib.get_close_matches(sel, known, n=3, cutoff=0.6), *prefixed]))[:3]
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        parts.append(f"'{sel}'{hint}")
    return (f"no {kinds} in this model matches " + "; ".join(parts)
            + ". The layer table lists valid names: `inspector models show MODEL`, GetModelInfo, or "
              "model_info() in the clients.")
